"""The Mapper: everything uow knows about one entity class, computed once when it is declared.

``declaration`` checks the class statement and hands over its Columns and ForeignKeys; the
Mapper turns them into the prepared tuples, SQL fragments and key functions the hot paths read
(constructing, loading, tracking, flushing), so none of them inspects the class again.  Every
mapped class holds its Mapper as ``cls.__mapper__``; :func:`mapper_of` and its two stricter
siblings find it for the public calls, refusing with a message anything that is not an entity.
"""

from collections.abc import Callable
from operator import itemgetter
from typing import Any

from . import declaration
from .arguments import listed
from .errors import IdentityError, MappingError, UnknownFieldError, UnmappedClassError
from .identifiers import check_table_name, quote
from .jsontype import snapshot_entry, undo_copy
from .collection import Collection
from .relationships import Reference
from .sentinels import MISSING, NOT_LOADED


class Mapper:
    """Everything uow knows about one entity class: its table, columns and keys.

    It is computed once, when the class is declared, so that the hot paths (constructing,
    loading, flushing) read prepared tuples instead of inspecting the class again.
    """

    # Set by _prepare_construction; bind_relationships takes the reference-filled columns out.
    required: frozenset[str]      # the columns the constructor must be given
    init_names: frozenset[str]    # the columns the constructor accepts

    def __init__(self, cls, table, foreign_keys, database):
        check_table_name(cls, table, database)
        self.cls = cls
        self.table = table
        self.database = database
        # A table in an attached database is always named with its database, so the SQL says
        # where each row goes; "main" is SQLite's name for the connection's own file.
        self.quoted_table = quote(table) if database == "main" else f"{quote(database)}.{quote(table)}"
        self.columns = declaration.collect_columns(cls)
        if not self.columns:
            raise MappingError(f"{cls.__name__} declares no columns; annotate at least one attribute")
        self.column_names = tuple(column.name for column in self.columns)
        self._by_name = {column.name: column for column in self.columns}
        self.primary_key = tuple(column for column in self.columns if column.primary_key)
        if not self.primary_key:
            raise MappingError(
                f"{cls.__name__} has no primary key; mark a column with Column(primary_key=True)"
            )
        self.pk_names = tuple(column.name for column in self.primary_key)
        self.pk_indexes = tuple(column.index for column in self.primary_key)
        self.generated_key = None
        if len(self.primary_key) == 1 and self.primary_key[0].type.python_type is int:
            # A single INTEGER PRIMARY KEY is SQLite's rowid: left None, SQLite assigns it.
            self.generated_key = self.primary_key[0]
            self.generated_key.generated = True
        versions = [column for column in self.columns if column.version]
        if len(versions) > 1:
            raise MappingError(f"{cls.__name__} declares {len(versions)} version columns; one is enough")
        self.version_column = versions[0] if versions else None
        self.foreign_keys = declaration.collect_foreign_keys(cls, self.columns, foreign_keys)
        self._prepare_construction()
        self.load_converters = tuple(
            (column.index, column.type.from_db) for column in self.columns if column.type.from_db
        )
        # How each key value enters its key: as SQLite stores it (see key_for).  None
        # for a column whose values are bound as they are (int, float, str, bytes, bool).
        self.key_converters = tuple(column.type.to_db for column in self.primary_key)
        self.plain_key = not any(self.key_converters)
        self.single_key = len(self.primary_key) == 1  # its key is a scalar (see key_for)
        # get()'s fast path: a scalar of this type is a whole key (None for composite keys, and
        # for keys whose stored form differs from the value, such as Decimal).
        self.scalar_key_type = (self.primary_key[0].type.python_type
                                if len(self.primary_key) == 1 and self.plain_key else None)
        self.json_columns = tuple(column for column in self.columns if column.type.mutable)
        self.snapshot_getter = self._make_snapshot_getter()
        self.select_list = ", ".join(f"{self.quoted_table}.{quote(name)}" for name in self.column_names)
        # SQL fragments every statement that finds rows by key uses (columns always qualified).
        self.key_condition = " AND ".join(f"{self.quoted_table}.{quote(name)} = ?" for name in self.pk_names)
        self.key_order = ", ".join(f"{self.quoted_table}.{quote(name)}" for name in self.pk_names)
        # (columns bound, columns read back) of the two usual INSERT shapes, the second only for a
        # generated key; see planner.actions.insert_shape.
        self.shape_with_all_columns = (self.column_names, ())
        if self.generated_key is not None:
            key_name = self.generated_key.name
            others = tuple(name for name in self.column_names if name != key_name)
            self.shape_with_generated_key = (others, (key_name,))
        self.unique_columns = tuple(column for column in self.columns if column.unique)
        # The columns whose old values order a flush: keys, unique columns, foreign keys.
        referencing = {name for foreign_key in self.foreign_keys for name in foreign_key.column_names}
        self.ordering_columns = tuple(column for column in self.columns
                                      if column.primary_key or column.unique or column.name in referencing)
        self.references: tuple[Reference[Any], ...] = ()
        self.collections: tuple[Collection[Any], ...] = ()
        self.restorable_names = self.column_names
        self.configured = False
        self._reference_by_key = {}
        self.references_by_column = {}
        self.init_keywords = self.init_names
        self.relationships_by_name: dict[str, Any] = {}

    def bind_relationships(self):
        """Find the class's Reference and Collection attributes (the class must be mapped first)."""
        references = []
        collections = []
        for name, value in vars(self.cls).items():
            if isinstance(value, Reference):
                value.bind(self.cls, name)
                references.append(value)
                self._reference_by_key[value.foreign_key] = value
                for column_name in value.column_names:
                    self.references_by_column.setdefault(column_name, []).append(value)
            elif isinstance(value, Collection):
                value.bind(self.cls, name)
                collections.append(value)
        self.references = tuple(references)
        self.collections = tuple(collections)
        # What a rollback puts back from a memento: the columns and the cached references.
        self.restorable_names = self.column_names + tuple(reference.name for reference in references)
        self.init_keywords = self.init_names | {r.name for r in references} | {c.name for c in collections}
        # The constructor's relationship keywords (user=ann, orders=[...]), found by name.
        self.relationships_by_name = {relationship.name: relationship for relationship in references + collections}
        # Whether delete() of one of these objects can reach other objects (children to delete or
        # unlink, a referenced object to delete), known once per class: delete() of an object whose
        # class has no such relationship skips looking for them, which is most of its cost.
        self.delete_reaches_others = bool(collections) or any("delete" in r.cascade for r in references)
        # A foreign key that a Reference can fill (order.user = ann, or ann.orders.append(order))
        # need not be given to the constructor; a flush still refuses it if it is left None.
        for reference in references:
            for name in reference.column_names:
                if name in self.required:
                    self.required = self.required - {name}
                    self.constant_defaults[name] = None

    def reference_on(self, foreign_key):
        """The Reference that travels along ``foreign_key``, or None."""
        return self._reference_by_key.get(foreign_key)

    def _prepare_construction(self):
        """Precompute what ``Entity.__init__`` needs, so constructing an object is a few dict updates."""
        self.constant_defaults: dict[str, Any] = {}
        self.default_factories: list[tuple[str, Callable[[], Any]]] = []
        required = []
        for column in self.columns:
            if column.default_factory is not None:
                self.default_factories.append((column.name, column.default_factory))
            elif column.default is not MISSING:
                self.constant_defaults[column.name] = column.default
            elif column.generated or (column.nullable and column.server_default is None):
                self.constant_defaults[column.name] = None
            elif column.server_default is None:
                required.append(column.name)
        self.required = frozenset(required)
        self.init_names = frozenset(self.column_names)

    def _make_snapshot_getter(self):
        """A function returning the snapshot tuple (one value per column) of an instance dict.

        Absent (expired) columns become NOT_LOADED.  A JSON column's entry is its JSON text, so
        that changes made in place to the dict or list show up as a difference.  itemgetter
        does the common case in C.
        """
        names = self.column_names
        getter = itemgetter(*names) if len(names) > 1 else (lambda values: (values[names[0]],))

        def snapshot(values):
            try:
                return getter(values)
            except KeyError:
                return tuple(values.get(name, NOT_LOADED) for name in names)

        if not self.json_columns:
            return snapshot
        mutable = self.json_columns

        def snapshot_with_json(values):
            entries = list(snapshot(values))
            for column in mutable:
                entries[column.index] = self.snapshot_value(column, entries[column.index])
            return tuple(entries)

        return snapshot_with_json

    def snapshot_value(self, column, value):
        """What the snapshot keeps for ``value``: the value itself, or a JSON column's text (see
        ``jsontype.snapshot_entry``)."""
        if column.type.mutable and value is not None and value is not NOT_LOADED:
            return snapshot_entry(column.type, value)
        return value

    def configure(self):
        """Check what could not be checked at declaration: foreign keys to classes declared later."""
        if self.configured:
            return
        for collection in self.collections:
            collection.configure()
        declaration.check_foreign_key_targets(self)
        self.configured = True

    # -- lookups used everywhere ----------------------------------------------------------

    def column(self, name):
        """The Column called ``name``, or UnknownFieldError naming the entity's real fields."""
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            raise UnknownFieldError(
                f"{self.cls.__name__} has no field {name!r}; its fields are {', '.join(self.column_names)}"
            ) from None

    def checked_key(self, ident):
        """Turn a scalar, tuple or dict primary-key value a user gave into its key (:meth:`key_for`).

        Values are checked against the key columns' types, because ``True`` and ``1.0`` hash like
        ``1`` in a dict: accepting them would let ``get(User, True)`` find ``User(id=1)``.  They are
        also checked as any stored value is (an int beyond 64 bits, a lone surrogate, ``-0.0``),
        because the key is sent to SQLite.
        """
        if type(ident) is dict:
            names = set(ident)
            if names != set(self.pk_names):
                raise IdentityError(
                    f"{self.cls.__name__}'s primary key is ({', '.join(self.pk_names)}); got the names "
                    f"({', '.join(map(str, ident))})"
                )
            values = tuple(ident[name] for name in self.pk_names)
        elif type(ident) is tuple:
            values = ident
        else:
            values = (ident,)
        if len(values) != len(self.primary_key):
            raise IdentityError(
                f"{self.cls.__name__} has {len(self.primary_key)} primary-key column(s) "
                f"({', '.join(self.pk_names)}), got {len(values)} value(s): {ident!r}"
            )
        for column, value in zip(self.primary_key, values):
            reason = "a primary key is never NULL" if value is None else column.type.problem(value)
            if reason is not None:
                raise IdentityError(f"{column.qualified_name} key value {value!r}: {reason}")
        return self.key_for(values)

    def key_for(self, values):
        """The key of the row whose key columns hold ``values``, as the identity map files it
        under this class: the stored value itself for a one-column key (``3``), a tuple of them
        for a composite key (``(1, 'x')``).

        A one-column key is not wrapped in a tuple because every loaded object keeps its key:
        the tuple would cost each one 48 bytes, and every get() would build one to look it up.
        The class is not part of the key either: the identity map keeps one dict per class (see
        ``identity``), and :meth:`identity_key` adds the class for the public ``(cls, (values...))``.

        The key is what SQLite compares, not what Python's ``==`` says: ``Decimal("1.0")`` and
        ``Decimal("1.00")`` are equal in Python but stored as the texts '1.0' and '1.00', two
        rows; so are one instant written at two UTC offsets.  So each key value enters the key
        in the form it is bound in (``columntypes``: the text for Decimal, date and datetime;
        the value itself for the other types, whose equality SQLite shares).  A value of the
        wrong type is left as it is: the flush refuses it, with a message, before any SQL.
        :meth:`key_values` turns a key back into the values the user knows.
        """
        if not self.plain_key:
            values = [
                value if convert is None or type(value) is not column.type.python_type else convert(value)
                for column, convert, value in zip(self.primary_key, self.key_converters, values)
            ]
        return values[0] if self.single_key else tuple(values)

    def key_params(self, key):
        """A key's stored values as a tuple in key-column order: the parameters that find its row."""
        return (key,) if self.single_key else key

    def key_is_complete(self, key):
        """Whether every value of a key (from :meth:`key_of`) is known: no row has a NULL key."""
        return key is not None if self.single_key else None not in key

    def key_values(self, key):
        """The key column values, as Python values, of a key made by :meth:`key_for`."""
        params = self.key_params(key)
        if self.plain_key:
            return params
        return tuple(
            column.type.from_db(value) if convert is not None and type(value) is column.type.stored_type else value
            for column, convert, value in zip(self.primary_key, self.key_converters, params)
        )

    def key_of(self, values):
        """The key of an object given its instance dict (see :meth:`key_for`)."""
        if self.scalar_key_type is not None:
            return values.get(self.pk_names[0])
        return self.key_for([values.get(name) for name in self.pk_names])

    def identity_key(self, key):
        """The public identity key of a key: ``(cls, (stored values...))``, the shape SQLAlchemy's
        ``identity_key`` returns (see ``registers.identity_key`` and ``Session.identity_map``)."""
        return (self.cls, self.key_params(key))

    def copy_values(self, values, committed=None):
        """A copy of an instance dict for the undo log, whose JSON values are copies too.

        JSON values can change in place without the session noticing, so the undo log cannot
        trust the object's current dict or list (see ``jsontype.undo_copy``); ``committed`` is
        the object's snapshot, when it has a row.
        """
        copied = values.copy()  # (of a compact instance dict, a compact copy: see entity.write_values)
        for column in self.json_columns:
            text = committed[column.index] if committed is not None else None
            if isinstance(text, str) or copied.get(column.name) is not None:
                copied[column.name] = undo_copy(column, copied.get(column.name), text)
        return copied

    def describe(self, values):
        """``User(id=3)``: how errors and plans name a row."""
        inside = ", ".join(f"{name}={values.get(name)!r}" for name in self.pk_names)
        return f"{self.cls.__name__}({inside})"



def entity_objects(objects, operation):
    """``objects`` as a list, each checked to be an entity object, before a call changes anything."""
    objects = listed(objects, operation, "objects")
    for obj in objects:
        mapper_of_object(obj, operation)
    return objects


def mapper_of_object(obj, operation):
    """The Mapper of an entity *object*, for every call that acts on one (add, delete, merge,
    expire, ``in``, state_of...).

    Handing over the class instead (``session.add(User)``) is an easy slip that would otherwise
    fail far from the call, about some attribute of the class, or pass as a transient object;
    this one check refuses it for every such call, naming the call.
    """
    mapper = type(obj).__dict__.get("__mapper__")
    if mapper is not None:
        return mapper
    if isinstance(obj, type) and "__mapper__" in vars(obj):
        name = obj.__name__
        raise UnmappedClassError(
            f"{operation}(): an instance of {name} is needed, not the class; create one with "
            f"{name}(...), or load one with session.get({name}, key)"
        )
    raise UnmappedClassError(
        f"{operation}(): {obj!r} is not an entity object; entity classes are declared as "
        f"class Name(uow.Entity, table='...')"
    )


def mapper_of(cls_or_obj):
    """The Mapper of an entity class or object, or UnmappedClassError saying how to map it."""
    cls = cls_or_obj if isinstance(cls_or_obj, type) else type(cls_or_obj)
    mapper = cls.__dict__.get("__mapper__")
    if mapper is None:
        raise UnmappedClassError(
            f"class {cls.__name__!r} is not mapped; declare it as class {cls.__name__}(uow.Entity, table='...')"
        )
    return mapper


def mapper_of_class(entity, operation):
    """The Mapper of an entity *class*, for every call that takes one (get, filter, all, the bulk
    writes, identity_key, create_table_sql...).

    mapper_of() accepts an object too, so an object handed over by mistake
    (``session.get(user, 1)``) would silently stand for its class; here it is refused, naming the
    call and the object.
    """
    if not isinstance(entity, type) and type(entity).__dict__.get("__mapper__") is not None:
        name = type(entity).__name__
        raise UnmappedClassError(
            f"{operation}(): the class {name} is needed, not an object of it ({entity!r}); pass {name} itself"
        )
    return mapper_of(entity)
