"""Loading: turning rows into objects through the identity map, now or on first access.

This is the reading half of the Session (the class is assembled from it in ``session``):
``get``, ``get_one``, ``all``, ``filter``, ``refresh``, ``expire`` and the lazy loading of
expired attributes and relationships.

Every row goes through the identity map: a row whose object is already held returns that object,
and never overwrites its unflushed changes (only columns that were expired are filled in).  A
``get`` that finds its object in the map runs no SQL at all.

``filter(..., load=["orders"])`` loads relationships up front: one extra SELECT per
relationship for all the objects the query returned, instead of one per object on first access.
"""

import sqlite3
import threading

from .columntypes import bound_refusal
from .errors import (
    IdentityError,
    MappingError,
    InvalidStateError,
    NotFoundError,
    ObjectDeletedError,
    UnknownFieldError,
    UnmappedClassError,
)
from .arguments import listed
from .flush import from_db
from .identity import collector_paused, format_key
from .mapping import NOT_LOADED, mapper_of, mapper_of_class, mapper_of_object, quote
from .query import select_sql
from .relationships import Collection, Reference, RelatedList
from .states import STATE_ATTRIBUTE, InstanceState, ObjectState

PERSISTENT = ObjectState.PERSISTENT
_get_ident = threading.get_ident


class _NullKey(Exception):
    """Internal: a row whose primary key holds NULL (see _null_key_error)."""

    def __init__(self, row):
        super().__init__()
        self.row = row


def _null_key_error(mapper, row):
    """SQLite accepts NULL in a key column that is not an INTEGER PRIMARY KEY (a legacy quirk it
    keeps for compatibility).  Such a row has no identity: ``key = NULL`` matches nothing, so an
    UPDATE or DELETE of it would find no row.  Every load goes through ``_build_objects``, which
    refuses the row before any object is made from it."""
    names = [column.name for column in mapper.primary_key if row[column.index] is None]
    shown = ", ".join(f"{column.name}={row[column.index]!r}" for column in mapper.primary_key)
    return IdentityError(
        f"table {mapper.table} holds a row whose primary key ({', '.join(mapper.pk_names)}) has NULL in "
        f"{', '.join(names)} ({mapper.cls.__name__}({shown})): SQLite allows NULL in a key column that is not "
        f"an INTEGER PRIMARY KEY, but such a row has no identity, and an UPDATE or DELETE by key would match "
        f"nothing. Give the row a key value, or declare {', '.join(names)} NOT NULL; nothing was loaded"
    )


class LoadingMixin:
    """The Session's reading methods (see the module docstring)."""

    def get(self, entity, ident):
        """The object with this primary key (scalar, tuple or dict), or None if there is no such row.

        An object already in the identity map is returned without any SQL, unless it was expired
        (its key among the expired fields: expire(), a rollback, expire_on_commit): then get()
        reloads it with one SELECT, and if its row is gone (another connection deleted it) the
        object leaves the session, as if expunged, and get() returns None, as for a key it does
        not hold.  rollback() brings the object back.
        """
        if _get_ident() != self._ready_thread:
            self._check("get")
        if not isinstance(entity, type):
            mapper_of_class(entity, "get")  # an object in place of its class: refused, naming it
        try:
            mapper = entity.__mapper__
        except AttributeError:
            raise UnmappedClassError(f"get(): {entity!r} is not a mapped entity class") from None
        # The fast path for a hit: a key of the column's own type found as it is.  (Not for
        # float keys: -0.0 equals 0.0 in a dict, and identity_key refuses it.)
        if type(ident) is mapper.scalar_key_type is not float:
            obj = self.identity.get((entity, (ident,)))
            if obj is not None:
                return obj if mapper.pk_names[0] in obj.__dict__ else self._get_expired(obj)
        key = mapper.identity_key(ident)
        obj = self.identity.get(key)
        if obj is not None:
            return obj if mapper.pk_names[0] in obj.__dict__ else self._get_expired(obj)
        self._check_bound_key(mapper, key)
        self._autoflush()
        loaded = self._load(mapper, self._select_by_key(mapper, key[1]))
        return loaded[0] if loaded else None

    def _check_bound_key(self, mapper, key):
        """The key's values passed identity_key()'s checks; what is left is what SQLite says of the
        stored form (``columntypes.bind_column``'s last stage): its length, before any SQL runs."""
        max_length = self.executor.length_limit()
        for column, value in zip(mapper.primary_key, key[1]):
            refusal = bound_refusal(value, max_length)
            if refusal is not None:
                raise IdentityError(f"get(): {refusal.explain(column.qualified_name + ' key value', value)}; "
                                    f"no row can be found by it")

    def _get_expired(self, obj):
        """get() of an expired held object: reload it, or drop it if its row is gone."""
        state = obj.__dict__[STATE_ATTRIBUTE]
        try:
            self._load_expired(state)
        except ObjectDeletedError:
            self.undo.record(state)
            self._unindex(state)
            self._detach(state)
            return None
        return obj

    def get_one(self, entity, ident):
        """Like get(), but a missing row raises NotFoundError."""
        mapper = mapper_of_class(entity, "get_one")
        obj = self.get(entity, ident)
        if obj is None:
            raise NotFoundError(f"get_one(): no {format_key(mapper.identity_key(ident))} in the database")
        return obj

    def all(self, entity, *, load=()):
        """Every row of the entity's table, as objects, ordered by primary key."""
        self._check("all")
        return self.filter(entity, load=load)

    def filter(self, entity, *, order_by=None, limit=None, load=(), **equals):
        """Objects whose columns equal the given values, ordered and limited::

            session.filter(User, name="ann")
            session.filter(User, active=True, order_by="-score", limit=10)

        ``order_by`` is a field name (``"-name"`` for descending) or a list of them; the default
        is the primary key.  ``None`` matches NULL.  Results go through the identity map.
        ``load`` names relationships to load up front, one SELECT each (see :meth:`load_related`).
        """
        self._check("filter")
        mapper = mapper_of_class(entity, "filter")
        relationships = [self._relationship(mapper, name) for name in listed(load, "filter", "load")]
        sql, params = select_sql(mapper, equals, order_by, limit, self.executor.length_limit())
        self._autoflush()
        objects = self._load(mapper, self._query(mapper, sql, params))
        for relationship in relationships:
            self._load_related(objects, relationship)
        return objects

    def load_related(self, objects, name):
        """Load relationship ``name`` of every object in ``objects`` with one SELECT (per batch of keys).

        Objects whose relationship is already loaded are left alone.  This is what
        ``filter(..., load=[name])`` does after its query.
        """
        self._check("load_related")
        objects = listed(objects, "load_related", "objects")
        if objects:
            self._load_related(objects, self._relationship(mapper_of_object(objects[0], "load_related"), name))

    def _relationship(self, mapper, name):
        # A name, or the relationship itself (Shelf.books) -- which must be one of this class's.
        relationship = getattr(mapper.cls, name, None) if isinstance(name, str) else name
        if not isinstance(relationship, (Reference, Collection)) or relationship.entity is not mapper.cls:
            names = [r.name for r in mapper.references] + [c.name for c in mapper.collections]
            raise UnknownFieldError(
                f"{mapper.cls.__name__} has no relationship {name!r} to load; its relationships are "
                f"{', '.join(names) or '(none)'}"
            )
        if isinstance(relationship, Collection):
            relationship.configure()
        return relationship

    def _load_related(self, objects, relationship):
        """One SELECT ... WHERE key IN (...) for a whole list of objects (chunked to SQLite's limit)."""
        if isinstance(relationship, Reference):
            target = relationship.target.__mapper__
            wanted = []
            for obj in objects:
                values = obj.__dict__
                if relationship.name in values:
                    continue
                key_values = [values.get(name) for name in relationship.column_names]
                key = relationship.foreign_key.target_key(key_values)
                if None not in key_values and key not in self.identity:
                    wanted.append(key[1])
            self._select_in(target, target.pk_names, sorted(set(wanted), key=repr))
            for obj in objects:
                if relationship.name not in obj.__dict__:
                    key_values = [obj.__dict__.get(name) for name in relationship.column_names]
                    held = self.identity.get(relationship.foreign_key.target_key(key_values))
                    if held is not None:
                        obj.__dict__[relationship.name] = held
            return
        reference = relationship.reference
        child = relationship.target.__mapper__
        parents = [obj for obj in objects if relationship.name not in obj.__dict__
                   and obj.__dict__[STATE_ATTRIBUTE].key is not None]
        keys = [obj.__dict__[STATE_ATTRIBUTE].key[1] for obj in parents]
        children = self._select_in(child, reference.column_names, keys)
        by_parent = {}
        for item in children:
            key = reference.foreign_key.target_key([item.__dict__.get(name) for name in reference.column_names])
            by_parent.setdefault(key[1], []).append(item)
        for obj, key in zip(parents, keys):
            items = [item for item in by_parent.get(key, []) if self._points_at(item, reference, obj)]
            for item in items:
                item.__dict__.setdefault(reference.name, obj)
            obj.__dict__[relationship.name] = RelatedList(obj, relationship, items)

    def _select_in(self, mapper, names, keys):
        """Load the rows of ``mapper`` whose ``names`` columns hold one of ``keys`` (stored forms, as an
        identity key holds them: see ``Mapper.key_for``)."""
        if not keys:
            return []
        chunk = max(1, self.executor.variable_limit() // len(names))
        table = mapper.quoted_table
        objects = []
        for start in range(0, len(keys), chunk):
            part = keys[start:start + chunk]
            if len(names) == 1:
                where = f"{table}.{quote(names[0])} IN ({', '.join('?' * len(part))})"
                params = [key[0] for key in part]
            else:
                row = "(" + ", ".join("?" * len(names)) + ")"
                where = f"({', '.join(f'{table}.{quote(n)}' for n in names)}) IN (VALUES {', '.join([row] * len(part))})"
                params = [value for key in part for value in key]
            order = mapper.key_order
            objects.extend(self._load(mapper, self._query(
                mapper, f"SELECT {mapper.select_list} FROM {table} WHERE {where} ORDER BY {order}", params)))
        return objects

    def _select_by_key(self, mapper, stored_key, select_list=None):
        """The row (or none) whose primary key is ``stored_key`` (an identity key's values, which are
        the stored forms), with ``select_list`` (default: every column)."""
        if select_list is None:
            select_list = mapper.select_list
        return self._query(mapper, f"SELECT {select_list} FROM {mapper.quoted_table} WHERE {mapper.key_condition}",
                           list(stored_key))

    def _select_referring(self, mapper, reference, owner_state):
        """Load the objects of ``mapper`` whose ``reference`` columns hold the owner's key in the
        database (as last flushed), in key order."""
        where = " AND ".join(f"{mapper.quoted_table}.{quote(name)} = ?" for name in reference.column_names)
        params = list(owner_state.key[1])  # stored forms (Mapper.key_for)
        return self._load(mapper, self._query(
            mapper, f"SELECT {mapper.select_list} FROM {mapper.quoted_table} WHERE {where} ORDER BY {mapper.key_order}",
            params))

    def _query(self, mapper, sql, params):
        """Run a SELECT of ``mapper``'s table (beginning the transaction if none is open)."""
        if not self.transaction.active:
            self._begin(None)
        try:
            return self.executor.fetchall(sql, params)
        except sqlite3.OperationalError as error:
            if str(error).startswith(("no such column", "no such table")):
                # A table made outside uow (create_all() would have said so) that lacks what the
                # class declares: name the class and the fix, not SQLite's column reference.
                raise MappingError(
                    f"{mapper.cls.__name__} cannot be read from table {mapper.table!r}: {error}; the table "
                    f"was made without a column (or under a name) that {mapper.cls.__name__} declares. "
                    f"Migrate the table, or run uow.create_all() to check every table against its class"
                ) from error
            raise

    def _load(self, mapper, rows):
        """Turn rows into objects through the identity map.

        A row whose object is already held never overwrites it (its unflushed changes win);
        only the object's expired columns are filled in from the row.  A new object records the
        undo log's current epoch instead of a memento: rolling back expires it if it was loaded
        after the scope's first write (see ``undo``).
        """
        # A class may be used only for reading (its tables made elsewhere, create_all never
        # called): the objects built here are then the first use of its mapping, so check it now.
        mapper.configure()
        objects = []
        created = []
        with collector_paused(len(rows)):
            try:
                self._build_objects(mapper, rows, objects, created)
            except _NullKey as found:
                # A load that fails leaves the session as it was: the objects it made leave the map.
                for obj in created:
                    state = obj.__dict__[STATE_ATTRIBUTE]
                    self.identity.discard(state.key, obj)
                    self.tracker.forget(state)
                raise _null_key_error(mapper, found.row) from None
        return objects

    def _build_objects(self, mapper, rows, objects, created):
        cls = mapper.cls
        names = mapper.column_names
        converters = mapper.load_converters
        pk_indexes = mapper.pk_indexes
        single_key = pk_indexes[0] if len(pk_indexes) == 1 else None
        identity = self.identity
        new = object.__new__
        sequence = self._sequence
        epoch = self.undo.loading_epoch()
        json_indexes = [column.index for column in mapper.json_columns]
        watch = self.tracker.watch
        for row in rows:
            snapshot = stored = row  # the key is made of the stored forms (Mapper.key_for)
            if converters:
                row = list(row)
                for index, convert in converters:
                    if row[index] is not None:
                        row[index] = convert(row[index])
                row = tuple(row)
                if json_indexes:
                    # The snapshot keeps a JSON column's text (see Mapper.snapshot_getter).
                    snapshot = list(row)
                    for index in json_indexes:
                        snapshot[index] = mapper.snapshot_value(mapper.columns[index], row[index])
                    snapshot = tuple(snapshot)
                else:
                    snapshot = row
            if single_key is not None:
                key = (cls, (stored[single_key],))
            else:
                key = (cls, tuple([stored[index] for index in pk_indexes]))
            obj = identity.get(key)
            if obj is None:
                if None in key[1]:
                    raise _NullKey(row)  # (checked here: a held object's key never holds None)
                obj = new(cls)
                values = obj.__dict__
                values.update(zip(names, row))
                state = InstanceState(obj, mapper, PERSISTENT, self, key, snapshot, next(sequence), epoch)
                values[STATE_ATTRIBUTE] = state
                identity[key] = obj
                created.append(obj)
                if json_indexes:
                    watch(state)
            else:
                self._fill_expired(obj.__dict__[STATE_ATTRIBUTE], row)
            objects.append(obj)

    def _fill_expired(self, state, row):
        values = state.obj.__dict__
        committed = state.committed
        if NOT_LOADED not in committed:
            return
        self.undo.record(state)
        snapshot = list(committed)
        for column, value in zip(state.mapper.columns, row):
            if snapshot[column.index] is NOT_LOADED:
                snapshot[column.index] = state.mapper.snapshot_value(column, value)
                values.setdefault(column.name, value)
        state.committed = tuple(snapshot)

    def _load_expired(self, state):
        """Reload an expired object's missing columns (called when one of them is read)."""
        self._check("load")
        row = self._read_row(state)
        if row is None:
            raise ObjectDeletedError(
                f"{state.describe()} was expired and its row is no longer in the database; "
                f"expunge() the object, or add a new one"
            )
        self._fill_expired(state, row)

    def _read_row(self, state):
        """The row of a held object as it is now, its values converted (None: no row).  Apart
        from _fill_expired, so that a caller may read several rows before it applies any."""
        mapper = state.mapper
        rows = self._select_by_key(mapper, state.key[1])
        if not rows:
            return None
        row = list(rows[0])
        for index, convert in mapper.load_converters:
            if row[index] is not None:
                row[index] = convert(row[index])
        return tuple(row)

    def refresh(self, obj, fields=None):
        """Reload ``fields`` (default: all) from the database now, discarding unflushed changes to them.

        refresh() does not autoflush: it exists to throw local changes away.  The refresh cascade
        reaches each object once, also when the loaded collections form a cycle (a node that is
        its own child, or two that hold each other).
        """
        self._refresh(obj, fields, set())

    def _refresh(self, obj, fields, refreshed):
        self._check("refresh")
        state = self._persistent_state(obj, "refresh")
        mapper = state.mapper
        columns = self._columns(mapper, fields, "refresh")
        if not columns:
            return  # fields=[]: nothing to reload
        select = ", ".join(f"{mapper.quoted_table}.{quote(column.name)}" for column in columns)
        rows = self._select_by_key(mapper, state.key[1], select)
        if not rows:
            raise ObjectDeletedError(f"refresh(): the row of {state.describe()} is no longer in the database")
        self.undo.record(state)
        values = obj.__dict__
        snapshot = list(state.committed)
        for column, raw in zip(columns, rows[0]):
            value = from_db(column, raw)
            values[column.name] = value
            snapshot[column.index] = mapper.snapshot_value(column, value)
        state.committed = tuple(snapshot)
        _forget_references(state, columns)
        refreshed.add(state)
        if fields is None:
            for related in self._cascade(obj, "refresh"):
                related_state = related.__dict__.get(STATE_ATTRIBUTE)
                if related_state is not None and related_state.session is self and \
                        related_state.status is PERSISTENT and related_state not in refreshed:
                    self._refresh(related, None, refreshed)

    def expire(self, obj, fields=None):
        """Forget ``fields`` (default: all) of a persistent object; they reload when next read.

        Unflushed changes to those fields are discarded.
        """
        self._check("expire")
        state = self._persistent_state(obj, "expire")
        self._expire_state(state, self._columns(state.mapper, fields, "expire"))

    def expire_all(self):
        """expire() every object in the identity map."""
        self._check("expire_all")
        for obj in list(self.identity.values()):
            state = obj.__dict__[STATE_ATTRIBUTE]
            self._expire_state(state, state.mapper.columns)

    def _expire_state(self, state, columns):
        self.undo.record(state)
        values = state.obj.__dict__
        snapshot = list(state.committed)
        for column in columns:
            values.pop(column.name, None)
            snapshot[column.index] = NOT_LOADED
        state.committed = tuple(snapshot)
        _forget_references(state, columns)
        if len(columns) == len(state.mapper.columns):
            self.tracker.clean(state)  # every assignment was just discarded: nothing to write

    def _persistent_state(self, obj, operation):
        state = self._own_state(obj, operation)
        if state.status is not PERSISTENT:
            raise InvalidStateError(
                f"{operation}(): {obj!r} is {state.status.value}; only persistent objects have a row to "
                f"{operation} from"
            )
        return state

    def _columns(self, mapper, fields, operation):
        """The columns ``fields`` names (None: all of them); a lone string is refused, not read letter by letter."""
        if fields is None:
            return mapper.columns
        if isinstance(fields, str):
            raise UnknownFieldError(
                f"{operation}(): fields must be a list of field names, not the string {fields!r}; "
                f"write fields=[{fields!r}]"
            )
        if not hasattr(fields, "__iter__"):
            raise UnknownFieldError(
                f"{operation}(): fields must be a list of {mapper.cls.__name__}'s field names, got {fields!r}"
            )
        return [mapper.column(name) for name in fields]

    def _load_reference(self, state, reference, key_values):
        """Load ``obj.user`` through the identity map (no SQL when the user is already held)."""
        target = self.get(reference.target, key_values)
        if target is not None:
            state.obj.__dict__[reference.name] = target
        return target

    def _load_collection(self, state, collection):
        """Load ``user.orders``: the rows whose foreign key holds the user's key, plus (when autoflush
        is off) pending objects that point at the user, minus objects re-pointed elsewhere."""
        self._check("load " + collection.name)
        reference = collection.reference
        mapper = collection.target.__mapper__
        self._autoflush()
        loaded = self._select_referring(mapper, reference, state)
        owner = state.obj
        items = [item for item in loaded if self._points_at(item, reference, owner)]
        # Without autoflush the database may not know yet about objects linked in memory:
        # pending ones, and persistent ones re-pointed since the last flush (those are candidates).
        for other in list(self._pending) + list(self.tracker.candidates):
            if other.mapper is mapper and self._points_at(other.obj, reference, owner):
                if not any(item is other.obj for item in items):
                    items.append(other.obj)
        for item in items:
            item.__dict__.setdefault(reference.name, owner)
        return items

    def _points_at(self, item, reference, owner):
        """Does ``item`` point at ``owner`` now: by its cached reference, or else by its key columns?"""
        values = item.__dict__
        if reference.name in values:
            return values[reference.name] is owner
        owner_key = owner.__dict__[STATE_ATTRIBUTE].key
        if owner_key is None:
            return False
        return reference.foreign_key.target_key([values.get(name) for name in reference.column_names]) == owner_key


def _forget_references(state, columns):
    """A reference is cached only as long as its foreign-key columns hold the values it was read or
    set with: when they are expired or reloaded, it is forgotten too, and reads back from the
    columns (an unflushed ``child.parent = other`` is discarded with the column it set)."""
    references_by_column = state.mapper.references_by_column
    if not references_by_column:
        return
    values = state.obj.__dict__
    for column in columns:
        for reference in references_by_column.get(column.name, ()):
            values.pop(reference.name, None)
