"""Adapter for SQLAlchemy 2.x's ORM Session over the same sqlite3 connection.

It exists to validate the machine against a mature unit of work, and to show that every
difference between SQLAlchemy and the specification is a declared capability.

Setup details that matter:

* The engine reuses the machine's connection (``creator`` + ``StaticPool``).  The connection is
  in autocommit mode (``isolation_level=None``), so a ``begin`` event sends BEGIN itself, as
  SQLAlchemy's documentation recommends for pysqlite; without it SAVEPOINTs would not nest.
* Classes are mapped imperatively onto plain ``Table`` objects.  SQLAlchemy orders a flush by
  relationship() only, not by foreign-key columns, so each foreign key also gets a many-to-one
  ``relationship`` (never touched by the machine, which sets the key column itself), with
  ``passive_deletes=True`` so that it orders the flush and loads nothing.
* ``expire_on_commit=True`` (the default): with False, SQLAlchemy 2.1 leaves objects whose
  DELETE was committed in the "deleted" state forever instead of making them detached.
"""

import decimal

import sqlalchemy
from sqlalchemy import event, exc, inspect, orm
from sqlalchemy.orm import exc as orm_exc
from sqlalchemy.pool import StaticPool

from . import conditions
from .adapter import NOT_CACHED, Capabilities, SessionShapedAdapter

SQLALCHEMY_CAPABILITIES = Capabilities(
    expire_on_commit=True,
    rollback_objects="expire",
    delete_pending="refuse",
    delete_again=None,
    attach_without_row="refuse_add",
    after_failed_flush="rolled_back",
    refuses_null_before_sql=False,
    dirty_means="assigned",
    reload_compares_expired_assignments=False,
    refresh_steps="expire_autoflush_reload",
    expired_read_autoflushes=True,
    get_reloads_expired=True,
    get_finds_row_gone="delete_then_query",
    flush_order="tables",
    flush_reloads_expired="per_table",
    failed_flush_keeps_keys_and_versions=True,
    delete_finding_no_row="ignore",
    stops_delete_of_reused_key=False,
    pending_key_conflict=None,
    rollback_forgets_delete_of_new_object=False,
    predictable_keys_after_failed_flush=False,
    reproducible_self_reference_flush=False,
    inserts_in_add_order=False,
    close_detaches_deleted=False,
    close_rolls_back_objects=False,
    compares_values="equal",
    tracks_json_in_place=False,
    merge_autoflushes=True,
    merge_finds_like_get=False,
    refused_merge_keeps_loaded=False,
    insert_writes_version_1=True,
    merge_refuses_deleted_row=False,
    weak_identity_map=True,
    relationships=False,
    primary_key_changes=False,
    merge_copies_expired_key=False,
    merge_without_load=False,
    expire_refresh_fields=False,
)

# Why SQLAlchemy differs, per capability (the report prints each beside the declared difference).
SQLALCHEMY_REASONS = {
    "weak_identity_map": "Session.identity_map is a WeakInstanceDict: an object without pending changes is "
                         "held weakly (InstanceState._strong_obj only while it is modified)",
    "expire_on_commit": "the adapter keeps SQLAlchemy's default: with False, SQLAlchemy 2.1 leaves objects whose "
                        "DELETE was committed 'deleted' forever instead of detached",
    "rollback_objects": "a rollback expires objects instead of restoring their values; pending and inserted objects "
                        "become transient, deleted ones persistent",
    "delete_pending": "delete() of a pending object raises InvalidRequestError (it is not persisted)",
    "delete_again": "delete() of an object whose DELETE was flushed puts it back in the identity map and "
                    "session.deleted (still in the 'deleted' state), where the specification ignores it",
    "attach_without_row": "add() of a detached object whose row was deleted is refused, but delete() re-attaches it "
                          "and the flush's DELETE then matches no row",
    "after_failed_flush": "a failed flush rolls back the innermost transaction or savepoint at once",
    "refuses_null_before_sql": "a NOT NULL field holding None is left to SQLite, which fails the flush",
    "dirty_means": "session.dirty holds every object with an assignment, even of the value it holds",
    "reload_compares_expired_assignments": "a field assigned while expired counts as changed until the next flush",
    "refresh_steps": "refresh() expires the object, autoflushes the rest, then reloads it",
    "expired_read_autoflushes": "loading an expired field autoflushes first",
    "get_reloads_expired": "get() of a wholly expired object reloads it",
    "get_finds_row_gone": "get() that finds an expired object's row gone marks it deleted and queries",
    "flush_reloads_expired": "before a mapper's UPDATEs or DELETEs run, the expired objects among them reload",
    "failed_flush_keeps_keys_and_versions": "new versions are written onto objects as each statement runs, so a failed "
                                            "flush leaves them there",
    "delete_finding_no_row": "a DELETE that matches no row only warns (confirm_deleted_rows)",
    "stops_delete_of_reused_key": "it sends the DELETE of a stale object even when SQLite gave its key to a new "
                                  "row in the same flush",
    "rollback_forgets_delete_of_new_object": "an object inserted and deleted in a rolled-back transaction keeps its "
                                             "internal 'was deleted' flag",
    "predictable_keys_after_failed_flush": "which generated keys a failed flush leaves follows its internal "
                                           "action sort",
    "reproducible_self_reference_flush": "it orders the rows of a self-referencing mapper one by one, popping them "
                                         "from a set",
    "inserts_in_add_order": "a pending object's insert order is len(session.new) when added, which repeats after "
                            "an expunge",
    "close_detaches_deleted": "after close() objects whose DELETE was flushed stay 'deleted'",
    "close_rolls_back_objects": "close() detaches objects as they are",
    "compares_values": "a column's new value is compared with the loaded one by its type's compare_values, ==",
    "tracks_json_in_place": "plain JSON columns do not see in-place changes (sqlalchemy.ext.mutable tracks one level "
                            "only, and the machine changes nested values too)",
    "merge_autoflushes": "Session.merge(load=True) calls _autoflush() before looking anything up",
    "merge_finds_like_get": "Session._merge() takes identity_map.get(key) as it is; only assigning onto an "
                            "expired object reads its row (ObjectDeletedError when the row is gone)",
    "refused_merge_keeps_loaded": "the identity map is weak: the object a refused merge() loaded is collected at once",
    "insert_writes_version_1": "mapper.version_id_generator gives every INSERT version 1",
    "merge_refuses_deleted_row": "merge(load=False) does not ask whether the object's row was deleted",
    "merge_copies_expired_key": "merge(load=False) copies the source's loaded attributes only, not a key it "
                                "knows otherwise",
    "merge_without_load": "whether merge(load=False) refuses a source 'with changes' follows SQLAlchemy's internal "
                          "modified flag (a field assigned while expired, then expunged, is not refused), which the "
                          "model does not follow",
    "expire_refresh_fields": "after expire(obj), a refresh of a field list makes get() trust the object again "
                             "(its expired flag is cleared), while the model follows uow's rule (get() reloads "
                             "while the key is expired)",
    "flush_order": "its unit of work sorts a save and a delete action per mapper, ordered only by the "
                   "relationships between mappers both in the flush, and runs unordered ones by kind and class "
                   "name; UPDATEs and DELETEs of one mapper go by primary key",
    "pending_key_conflict": "a pending object whose key a persistent object holds is not refused: the flush "
                            "warns ('New instance ... conflicts with persistent instance') and sends the INSERT, "
                            "which fails on the key; with the holder marked it is a row switch (an UPDATE), with "
                            "the holder expired and its row gone the INSERT succeeds",
    "relationships": "its relationship semantics differ from uow's in ways the oracle does not model yet: "
                     "expire and rollback expire references and collections, delete() of a parent nulls its "
                     "children's keys during the flush rather than at delete(), and a reference set on a "
                     "transient child does not join it to the session (no backref cascade)",
    "primary_key_changes": "assigning a primary key column of an expired object loads the whole row first (active "
                           "history on key columns), where the oracle expects only the assigned column",
}


class SQLAlchemyAdapter(SessionShapedAdapter):
    """SQLAlchemy's Session, driven through the adapter protocol."""

    name = "SQLAlchemy"
    capabilities = SQLALCHEMY_CAPABILITIES
    reasons = SQLALCHEMY_REASONS
    errors = {
        "invalid_state": (exc.InvalidRequestError,),
        "conflict": (exc.InvalidRequestError,),
        # Any failure inside a flush; which one SQLAlchemy meets first depends on its action order.
        "flush": (exc.IntegrityError, orm_exc.StaleDataError, orm_exc.FlushError, exc.CircularDependencyError,
                  orm_exc.ObjectDeletedError, exc.InvalidRequestError),
        "invalid_value": (exc.IntegrityError,),
        "pending_rollback": (exc.PendingRollbackError,),
        "detached": (orm_exc.DetachedInstanceError,),
        "row_missing": (orm_exc.ObjectDeletedError, exc.InvalidRequestError),
        "stale": (orm_exc.StaleDataError,),
    }

    def setup(self, connection, schema, relations=()):
        self.engine = sqlalchemy.create_engine("sqlite://", creator=lambda: connection, poolclass=StaticPool)
        event.listen(self.engine, "begin", _send_begin)
        self.registry = orm.registry()
        metadata = sqlalchemy.MetaData()
        tables = {}
        for table in schema.tables:
            columns = []
            for name in table.key:
                column_type = sqlalchemy.Integer if name != "k2" else sqlalchemy.String
                columns.append(sqlalchemy.Column(name, column_type, primary_key=True))
            columns.append(sqlalchemy.Column("name", sqlalchemy.String))
            columns.append(sqlalchemy.Column("note", sqlalchemy.String))
            columns.append(sqlalchemy.Column("code", sqlalchemy.String, unique=table.unique_code))
            columns.append(sqlalchemy.Column("data", sqlalchemy.JSON(none_as_null=True)))
            columns.append(sqlalchemy.Column("price", _DecimalText))
            for column, parent in table.refs:
                columns.append(sqlalchemy.Column(column, sqlalchemy.Integer, sqlalchemy.ForeignKey(f"{parent}.id")))
            if table.versioned:
                columns.append(sqlalchemy.Column("version", sqlalchemy.Integer, nullable=False))
            tables[table.name] = sqlalchemy.Table(table.name, metadata, *columns)
        self.classes = {}
        for table in schema.tables:
            self.classes[table.name] = type(table.name.capitalize(), (_Row,), {"_columns": table.columns})
        for table in schema.tables:
            sql_table = tables[table.name]
            properties = {}
            for column, parent in table.refs:
                properties[f"_ref_{column}"] = orm.relationship(
                    self.classes[parent],
                    foreign_keys=[sql_table.c[column]],
                    remote_side=[tables[parent].c.id] if parent == table.name else None,
                    # Only for ordering: without it, a flush that deletes an object reads this
                    # reference's history first, loading the object's expired fields when its
                    # foreign key is expired (at the start of the flush, in set order), which a
                    # mapping with plain foreign-key columns never does.
                    passive_deletes=True,
                )
            options = {"version_id_col": sql_table.c.version} if table.versioned else {}
            self.registry.map_imperatively(self.classes[table.name], sql_table, properties=properties, **options)
        self.table_of = {cls: name for name, cls in self.classes.items()}

    def open_session(self, autoflush=True):
        self.session = orm.Session(self.engine, expire_on_commit=True, autoflush=autoflush)

    def new(self, table, values):
        obj = self.classes[table.name]()
        for name, value in values.items():
            setattr(obj, name, value)
        return obj

    def query(self, table, field, value):
        cls = self.classes[table.name]
        return list(self.session.scalars(sqlalchemy.select(cls).filter_by(**{field: value})))

    def select(self, table, query):
        cls = self.classes[table.name]
        terms = [getattr(cls, field).desc() if descending else getattr(cls, field).asc()
                 for field, descending in query.order_by]
        statement = sqlalchemy.select(cls).where(*(_condition(cls, part) for part in query.where)).order_by(*terms)
        statement = statement.limit(query.limit).offset(query.offset)
        if query.result == "count":
            return self.session.scalar(sqlalchemy.select(sqlalchemy.func.count()).select_from(statement.subquery()))
        if query.result == "exists":
            return self.session.scalar(sqlalchemy.select(statement.exists()))
        if query.result == "first":
            # With LIMIT 1, as Query.first() sends: Result.first() alone would load every row the
            # statement returns (filling expired objects) and hand back the first.
            return self.session.scalars(statement.limit(1 if query.limit is None else min(query.limit, 1))).first()
        return list(self.session.scalars(statement))

    def state(self, obj):
        info = inspect(obj)
        for name in ("transient", "pending", "persistent", "deleted", "detached"):
            if getattr(info, name):
                return name
        raise AssertionError(f"{obj!r} is in no state")

    def loaded(self, obj, columns):
        values = inspect(obj).dict
        return {column: values[column] for column in columns if column in values}

    def identity_map(self):
        held = {}
        for key, obj in self.session.identity_map.items():
            held[(self.table_of[key[0]], tuple(key[1]))] = obj
        return held

    def new_objects(self):
        return list(self.session.new)

    def dirty_objects(self):
        return list(self.session.dirty)

    def deleted_objects(self):
        return list(self.session.deleted)

    def cached_reference(self, obj, relation):
        return inspect(obj).dict.get(relation.ref_name, NOT_CACHED)

    def loaded_collection(self, obj, relation):
        held = inspect(obj).dict.get(relation.list_name)
        return None if held is None else list(held)

    def teardown(self):
        session = getattr(self, "session", None)
        if session is not None:
            session.close()
        self.registry.dispose()


def _condition(cls, condition):
    """A ``conditions`` record as a SQLAlchemy expression on ``cls``'s attributes."""
    if isinstance(condition, conditions.And):
        return sqlalchemy.and_(*(_condition(cls, part) for part in condition.parts))
    if isinstance(condition, conditions.Or):
        return sqlalchemy.or_(*(_condition(cls, part) for part in condition.parts))
    if isinstance(condition, conditions.Not):
        return sqlalchemy.not_(_condition(cls, condition.part))
    attribute = getattr(cls, condition.field)
    if isinstance(condition, conditions.IsNull):
        return attribute.is_not(None) if condition.negated else attribute.is_(None)
    if isinstance(condition, conditions.In):
        return attribute.in_(condition.values)
    if isinstance(condition, conditions.Like):
        return attribute.like(condition.pattern)
    return conditions.OPERATORS[condition.op](attribute, condition.value)


class _DecimalText(sqlalchemy.types.TypeDecorator):
    """A Decimal kept as its text, every digit and the exponent (SQLAlchemy's Numeric would store
    a float on SQLite, turning Decimal("1.10") into 1.1)."""

    impl = sqlalchemy.String
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else str(value)

    def process_result_value(self, value, dialect):
        return None if value is None else decimal.Decimal(value)


class _Row:
    """Base of the mapped classes: a short repr that never loads anything."""

    _columns = ()

    def __repr__(self):
        values = inspect(self).dict
        shown = ", ".join(f"{name}={values[name]!r}" for name in self._columns[:1] if name in values)
        return f"{type(self).__name__}({shown})"


def _send_begin(connection):
    connection.exec_driver_sql("BEGIN")
