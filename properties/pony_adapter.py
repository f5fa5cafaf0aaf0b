"""Adapter for Pony ORM (0.7), whose session is the ``db_session`` cache.

It is the kit's second real ORM: a session shaped unlike SQLAlchemy's, driven through the same
protocol with every difference declared (see PONY_CAPABILITIES and PONY_REASONS, which the
report prints).  Pony is a test-only dependency (``pip install 'uow[test]'``).

Setup details that matter:

* Pony owns its connection (its provider opens one per thread from a pool, with
  ``isolation_level=None``, foreign keys on, and sends ``BEGIN IMMEDIATE`` itself at the first
  write), so the adapter declares owns_connection: it binds a new ``Database`` to the file the kit
  created, and hands the kit the connection the session holds now for reading the open
  transaction's rows.  Nothing of Pony is patched.
* Each drawn table is an entity class mapped onto the existing table
  (``generate_mapping(create_tables=False)`` checks that the tables exist).  Every column is a
  plain attribute, foreign keys included (``Optional(int)``: relationships are not drawn for
  Pony), so Pony orders a flush by the order objects changed, not by references.
* ``name`` is ``Optional(str, nullable=True)`` and ``code`` is not declared unique: the database's
  NOT NULL and UNIQUE constraints are what the kit checks, and a ``Required`` or ``unique``
  attribute would make Pony refuse such values at assignment, a check the kit does not model.
* ``price`` is kept as its text (a ``str`` attribute; the adapter converts to and from
  ``Decimal``): Pony's Decimal type rounds to a declared scale, so ``Decimal("1.1")`` would come
  back as ``Decimal("1.10")``.  ``data`` is Pony's ``Json``, whose tracked dicts and lists report
  in-place changes, nested ones too.
* The session is ``db_session(strict=False)``: after a rollback, objects keep the values they
  hold (``strict=True`` would wipe them).  close() is rollback() and the end of the db_session
  (ending it without rollback() would commit).
"""

import decimal

from pony import orm
from pony.orm import core
from pony.orm import dbapiprovider

from .adapter import Adapter, Capabilities, UndeclaredOperation

PONY_CAPABILITIES = Capabilities(
    objects_join_on_construction=True,
    add=False,
    expunge=False,
    expire=False,
    refresh_steps=None,
    expire_all=False,
    expunge_all=False,
    merge=False,
    merge_without_load=False,
    expire_refresh_fields=False,
    savepoints=False,
    autoflush_can_be_off=False,
    rollback_objects="discard",
    detached_refuses_changes=True,
    refuses_deleted_objects=True,
    get_skips_marked=True,
    get_finds_pending=True,
    commit_detaches_deleted=False,
    insert_expires_null_fields=True,
    expired_read_autoflushes=True,
    get_queries_after_autoflush=True,
    owns_connection=True,
    after_failed_flush="partial",
    flush_order="changes",
    dirty_means="assigned",
    refuses_null_before_sql=False,
    version_columns=False,
    outside_writers=False,
    relationships=False,
    primary_key_changes=False,
    select=False,
)

PONY_REASONS = {
    "objects_join_on_construction": "Entity.__init__ puts the object in the db_session cache at once (status "
                                    "'created'); a key another object holds raises CacheIndexError there",
    "add": "Pony has no add(): constructing is adding, and an object whose db_session cache is closed "
           "cannot join another",
    "expunge": "Pony has no expunge()",
    "select": "Pony's queries are Python generators it translates with Python's truth in places, not SQL's "
              "three-valued logic: a negated optional attribute or `not x.note.like(p)` adds `OR note IS NULL` "
              "(sqltranslation.py), while `not (x.note == v)` becomes `note <> v`, so what a condition "
              "answers for NULL depends on how it is written, which the neutral condition form cannot say",
    "expire": "Pony has no public expire()",
    "refresh_steps": "Pony has no refresh()",
    "expire_all": "Pony has no expire_all()",
    "expunge_all": "Pony has no expunge_all()",
    "merge": "Pony has no merge()",
    "merge_without_load": "Pony has no merge()",
    "expire_refresh_fields": "Pony has neither expire() nor refresh()",
    "savepoints": "Pony has no savepoints (no nested transactions)",
    "autoflush_can_be_off": "Pony always flushes a modified cache before a query (SessionCache."
                     "prepare_connection_for_query_execution)",
    "rollback_objects": "rollback() closes the db_session cache (SessionCache.close): every object keeps its _vals_ and "
                "loses its session, and the next access starts a new cache",
    "detached_refuses_changes": "Attribute.__set__, Entity.delete() and a tracked JSON value's change check that "
                                "the object's cache is alive (DatabaseSessionIsOver)",
    "refuses_deleted_objects": "Attribute.__set__ refuses an object marked_to_delete, deleted or cancelled, and "
                               "Attribute.get an object deleted or cancelled (OperationWithDeletedObjectError); "
                               "Entity._delete_ returns at once for them",
    "get_skips_marked": "Entity._find_in_cache_ raises ObjectNotFound for an object marked_to_delete, which get() "
                        "answers as None, before any SQL",
    "get_finds_pending": "the cache's primary-key index holds created objects, and get() looks there before it "
                         "flushes and queries",
    "insert_expires_null_fields": "Entity._update_dbvals_ after an INSERT drops the values that were None "
                                  "('because the value may be changed in the DB')",
    "get_queries_after_autoflush": "Entity._find_one_ looks in the cache before it flushes; the flush runs inside "
                                   "the query, whose row then loads into the object found in the identity map",
    "expired_read_autoflushes": "loading a field runs a query, and every query flushes a modified cache first",
    "commit_detaches_deleted": "commit() keeps the cache alive; a deleted object stays in it with status 'deleted'",
    "owns_connection": "Pony's provider opens its connections from its own pool (Database.bind)",
    "after_failed_flush": "SessionCache.flush() saves objects one by one without a savepoint: the rows before the failing "
                    "one stay written, and SessionCache.saved_objects is left non-empty, so every later flush fails "
                    "its 'assert not self.saved_objects' (a bare AssertionError, mapped to pending_rollback here: a "
                    "defect of Pony, which names no cause and no remedy); commit() rolls back when its flush fails",
    "flush_order": "SessionCache.objects_to_save: an object is queued when constructed, when first assigned after a "
                   "save, and again at the end when marked for deletion; foreign keys declared as plain columns "
                   "give Pony no references to order by",
    "dirty_means": "Attribute.__set__ marks the object 'modified' (and the column written) without comparing values",
    "refuses_null_before_sql": "None in a NOT NULL column is left to the database (name is mapped Optional, "
                              "see the module docstring)",
    "version_columns": "Pony has no version column (its optimistic check compares the values read instead)",
    "outside_writers": "Pony's optimistic checks compare, at every UPDATE and every reload, the values the session "
                       "read (also in earlier transactions of one db_session) with the row, and refuse a row "
                       "another connection changed (OptimisticCheckError, UnrepeatableReadError): a rule the "
                       "oracle does not model yet",
    "relationships": "Pony's relationships (Required/Optional/Set pairs) are not mapped yet: foreign keys are "
                     "plain integer columns",
    "primary_key_changes": "Pony refuses to change a primary key ('Cannot change value of primary key')",
}

# Pony's object statuses, by the state the protocol names while the object's cache is alive.
_PERSISTENT = ("loaded", "modified", "inserted", "updated", "marked_to_delete")
_STATES = {"created": "pending", "cancelled": "transient", "deleted": "deleted"}
_STATES.update((status, "persistent") for status in _PERSISTENT)


class PonyAdapter(Adapter):
    """Pony's db_session, driven through the adapter protocol."""

    name = "Pony"
    capabilities = PONY_CAPABILITIES
    reasons = PONY_REASONS
    known_defects = {
        "UnrepeatableReadError: Phantom object": (
            "Pony defect: after SQLite gives a deleted row's generated id to a new object, reading an "
            "expired field of that object once it is deleted in turn raises 'Phantom object ... "
            "disappeared' (test_pony_adapter.py::test_reading_a_deleted_object_whose_generated_id_"
            "was_reused_pony_reports_a_phantom reproduces it)"),
    }
    errors = {
        "invalid_state": (core.OperationWithDeletedObjectError,),
        "conflict": (core.CacheIndexError,),
        # An INSERT's IntegrityError is wrapped in TransactionIntegrityError; an UPDATE's or DELETE's is not.
        "flush": (core.TransactionIntegrityError, dbapiprovider.IntegrityError, core.OptimisticCheckError),
        # Pony's refusal after a flush that failed part-way (see PONY_REASONS["after_failed_flush"]).
        "pending_rollback": (AssertionError,),
        "detached": (core.DatabaseSessionIsOver,),
        # Loading the fields of an object whose row is gone: "Phantom object ... disappeared".
        "row_missing": (core.UnrepeatableReadError,),
    }

    def setup(self, path, schema, relations=()):
        self.session = None
        self.database = orm.Database()
        self.classes = {table.name: _entity(self.database, table) for table in schema.tables}
        self.table_of = {cls: table for table in schema.tables for cls in [self.classes[table.name]]}
        self.database.bind(provider="sqlite", filename=path)
        self.database.generate_mapping(create_tables=False)

    def open_session(self, autoflush=True):
        self.session = orm.db_session(strict=False)
        self.session.__enter__()

    def close_session(self):
        orm.rollback()
        self.session.__exit__(None, None, None)
        self.session = None

    def session_connection(self):
        cache = core.local.db2cache.get(self.database)
        return None if cache is None else cache.connection

    def new(self, table, values):
        given = {name: _to_pony(name, value) for name, value in values.items()
                 if not (table.generated and name == "id" and value is None)}
        return self.classes[table.name](**given)

    def delete(self, obj):
        obj.delete()

    def get(self, table, key):
        return self.classes[table.name].get(**dict(zip(table.key, key)))

    def query(self, table, field, value):
        return list(self.classes[table.name].select(**{field: value}))

    def read(self, obj, columns):
        return {column: _from_pony(column, getattr(obj, column)) for column in columns}

    def set(self, obj, column, value):
        setattr(obj, column, _to_pony(column, value))

    def flush(self):
        orm.flush()

    def commit(self):
        orm.commit()

    def rollback(self):
        orm.rollback()

    def state(self, obj):
        cache = obj._session_cache_
        if cache is None or not cache.is_alive:
            return "transient" if obj._status_ in ("created", "cancelled") else "detached"
        return _STATES[obj._status_]

    def loaded(self, obj, columns):
        return {attr.name: _from_pony(attr.name, value) for attr, value in obj._vals_.items() if attr.name in columns}

    def identity_map(self):
        held = {}
        for obj in self._cached("loaded", "modified", "inserted", "updated", "marked_to_delete"):
            key = obj._pkval_ if isinstance(obj._pkval_, tuple) else (obj._pkval_,)
            held[(self.table_of[type(obj)].name, key)] = obj
        return held

    def new_objects(self):
        return self._cached("created")

    def dirty_objects(self):
        return self._cached("modified")

    def deleted_objects(self):
        return self._cached("marked_to_delete")

    def _cached(self, *statuses):
        """The objects of the open db_session cache with one of these statuses."""
        cache = core.local.db2cache.get(self.database)
        if cache is None:
            return []
        return [obj for obj in cache.objects if obj._status_ in statuses]

    def teardown(self):
        if self.session is not None:
            self.close_session()
        self.database.disconnect()

    # -- operations Pony does not have (never drawn: see the capabilities) ------------------

    def add(self, obj):
        raise UndeclaredOperation(self.name, "add")

    def expunge(self, obj):
        raise UndeclaredOperation(self.name, "expunge")

    def refresh(self, obj):
        raise UndeclaredOperation(self.name, "refresh")

    def expire(self, obj):
        raise UndeclaredOperation(self.name, "expire")

    def begin_nested(self):
        raise UndeclaredOperation(self.name, "savepoints")

    def release(self, token):
        raise UndeclaredOperation(self.name, "savepoints")

    def rollback_nested(self, token):
        raise UndeclaredOperation(self.name, "savepoints")

    def cached_reference(self, obj, relation):
        raise UndeclaredOperation(self.name, "relationships")

    def loaded_collection(self, obj, relation):
        raise UndeclaredOperation(self.name, "relationships")


def _entity(database, table):
    """The entity class for one table (a composite key is declared by the class-body statement
    ``PrimaryKey(k1, k2)``, which Pony reads from the namespace it runs in)."""
    namespace = {"_table_": table.name}
    if table.key == ("id",):
        namespace["id"] = orm.PrimaryKey(int, auto=table.generated)
    else:
        namespace["k1"] = orm.Required(int)
        namespace["k2"] = orm.Required(str)
        exec("PrimaryKey(k1, k2)", {"PrimaryKey": orm.PrimaryKey}, namespace)
    namespace["name"] = orm.Optional(str, nullable=True)
    namespace["note"] = orm.Optional(str, nullable=True)
    namespace["code"] = orm.Optional(str, nullable=True)
    namespace["data"] = orm.Optional(orm.Json, nullable=True)
    namespace["price"] = orm.Optional(str, nullable=True)
    for column, _ in table.refs:
        namespace[column] = orm.Optional(int, nullable=True)
    return type(table.name.capitalize(), (database.Entity,), namespace)


def _to_pony(column, value):
    """A price is handed to Pony as its text (see the module docstring)."""
    if column == "price" and value is not None:
        return str(value)
    return value


def _from_pony(column, value):
    if column == "price" and value is not None:
        return decimal.Decimal(value)
    return value
