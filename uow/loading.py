"""Loading: turning rows into objects through the identity map, now or on first access.

The :class:`Loader` is the session's reading part (the session composes one and passes it
itself): ``get``, ``get_one``, ``all``, ``filter``, and the lazy loading of expired columns and
relationships, which entities ask for through the session hooks (``hooks``).  Forgetting loaded
values (``expire``) and reading them again at once (``refresh``) is the ``expiry`` part's.

Every row goes through the identity map: a row whose object is already held returns that object,
and never overwrites its unflushed changes (only columns that were expired are filled in).  A
``get`` that finds its object in the map runs no SQL at all.

A new object made from a row is born persistent, in the one loop every load goes through
(``Loader.load``); every object that moves to persistent from another state goes through
``Registers.make_persistent``.  Loading relationships up front (``filter(..., load=[...])``) is a feature layered on
this part: see ``features.eager``.
"""

import sqlite3
from typing import Any

from .columntypes import check_key_form, read_back
from .valuechecks import bound_refusal
from .errors import (
    DatabaseLockedError,
    IdentityError,
    MappingError,
    NotFoundError,
    ObjectDeletedError,
    UnmappedClassError,
)
from .executor import is_busy
from .expiry import forget_references
from .identity import collector_paused, format_key
from .identifiers import quote
from .mapper import mapper_of_class
from .sentinels import NOT_LOADED
from .query import select_sql
from .states import PERSISTENT, STATE_ATTRIBUTE, InstanceState


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


def _raise_unreadable(mapper, row, failure):
    """If ``failure`` came from a stored value its type could not read back (an enum member since
    renamed, a value a CustomType's from_stored refuses), raise the error naming the attribute and
    the row; the conversions are run again on the raw row to find it (only when a load failed)."""
    row_shown = mapper.describe({name: row[column.index] for name, column in zip(mapper.pk_names, mapper.primary_key)})
    for index, _ in mapper.load_converters:
        read_back(mapper.columns[index], row[index], row_shown)


class Loader:
    """The session's reading part (see the module docstring).  It holds nothing of its own: rows
    become objects in the session's registers.  Called by the Session's facade (get, filter), by
    entities through the hooks (lazy loads), by the flush (expired snapshots it needs) and by
    the expiry part (the rows refresh() reads)."""

    def __init__(self, session):
        self.session = session
        self.registers = session.registers
        self.guard = session.guard
        self.boundaries = session.boundaries

    def get(self, entity, ident):
        """The object with this primary key, or None (see ``Session.get``)."""
        if not isinstance(entity, type):
            mapper_of_class(entity, "get")  # an object in place of its class: refused, naming it
        try:
            mapper = entity.__mapper__
        except AttributeError:
            raise UnmappedClassError(f"get(): {entity!r} is not a mapped entity class") from None
        identity = self.session.identity
        # The fast path for a hit: a key of the column's own type is the key as it is.  (Not
        # for float keys: -0.0 equals 0.0 in a dict, and checked_key refuses it.)
        if type(ident) is mapper.scalar_key_type is not float:
            obj = identity.get(entity, ident)
            if obj is not None:
                return obj if mapper.pk_names[0] in obj.__dict__ else self._get_expired(obj)
        key = mapper.checked_key(ident)
        obj = identity.get(entity, key)
        if obj is not None:
            return obj if mapper.pk_names[0] in obj.__dict__ else self._get_expired(obj)
        self._check_bound_key(mapper, key)
        self.session.flusher.autoflush()
        loaded = self.load(mapper, self.select_by_key(mapper, mapper.key_params(key), "get()"))
        return loaded[0] if loaded else None

    def get_fresh(self, entity, ident):
        """``get(..., populate_existing=True)``: the row read now, its values over a held object's."""
        mapper = mapper_of_class(entity, "get")
        key = mapper.checked_key(ident)
        self._check_bound_key(mapper, key)
        obj = self.session.identity.get(mapper.cls, key)
        if obj is None:
            self.session.flusher.autoflush()  # (as get() does for a key it does not hold)
            loaded = self.load(mapper, self.select_by_key(mapper, mapper.key_params(key), "get()"))
            return loaded[0] if loaded else None
        state = obj.__dict__[STATE_ATTRIBUTE]
        row = self.read_row(state, "get()")
        if row is None:  # gone: as for an expired object whose row is gone (see get)
            self._drop_gone(state)
            return None
        self.session.undo.record(state)
        values = obj.__dict__
        values.update(zip(mapper.column_names, row))
        state.committed = tuple(mapper.snapshot_value(column, value) for column, value in zip(mapper.columns, row))
        forget_references(state, mapper.columns)
        self.session.tracker.clean(state)
        return obj

    def _check_bound_key(self, mapper, key):
        """The key's values passed checked_key()'s checks; what is left is what SQLite says of the
        stored form (``valuechecks.bind_column``'s last stage): its length, before any SQL runs."""
        max_length = self.session.executor.length_limit()
        for column, value in zip(mapper.primary_key, mapper.key_params(key)):
            refusal = bound_refusal(value, max_length)
            if refusal is not None:
                raise IdentityError(f"get(): {refusal.explain(column.qualified_name + ' key value', value)}; "
                                    f"no row can be found by it")

    def _get_expired(self, obj):
        """get() of an expired held object: reload it, or drop it if its row is gone."""
        state = obj.__dict__[STATE_ATTRIBUTE]
        try:
            self.load_expired(state)
        except ObjectDeletedError:
            self._drop_gone(state)
            return None
        return obj

    def _drop_gone(self, state):
        """A held object whose row is gone leaves the session, as if expunged; rollback() brings it back."""
        self.session.undo.record(state)
        self.registers.unindex(state)
        self.registers.detach(state)

    def get_one(self, entity, ident):
        """Like get(), but a missing row raises NotFoundError."""
        mapper = mapper_of_class(entity, "get_one")
        obj = self.session.get(entity, ident)
        if obj is None:
            raise NotFoundError(f"get_one(): no {format_key(mapper, mapper.checked_key(ident))} in the database")
        return obj

    def filter(self, mapper, order_by, limit, equals):
        """The objects of ``mapper`` whose columns equal ``equals`` (see ``Session.filter``)."""
        sql, params = select_sql(mapper, equals, order_by, limit, self.session.executor.length_limit())
        self.session.flusher.autoflush()
        return self.load(mapper, self.query(mapper, sql, params, "filter()"))

    def select_by_key(self, mapper, stored_key, operation, select_list=None):
        """The row (or none) whose primary key is ``stored_key`` (a key's values in their stored
        forms: ``Mapper.key_params``), with ``select_list`` (default: every column)."""
        if select_list is None:
            select_list = mapper.select_list
        return self.query(mapper, f"SELECT {select_list} FROM {mapper.quoted_table} WHERE {mapper.key_condition}",
                          list(stored_key), operation)

    def select_referring(self, mapper, reference, owner_state, operation):
        """Load the objects of ``mapper`` whose ``reference`` columns hold the owner's key in the
        database (as last flushed), in key order."""
        where = " AND ".join(f"{mapper.quoted_table}.{quote(name)} = ?" for name in reference.column_names)
        params = list(owner_state.mapper.key_params(owner_state.key))  # stored forms (Mapper.key_for)
        return self.load(mapper, self.query(
            mapper, f"SELECT {mapper.select_list} FROM {mapper.quoted_table} WHERE {where} ORDER BY {mapper.key_order}",
            params, operation))

    def query(self, mapper, sql, params, operation):
        """Run a SELECT of ``mapper``'s table (beginning the transaction if none is open; ``operation``
        names the call that reads, for autobegin=False's refusal)."""
        session = self.session
        if not session.transaction.active:
            self.boundaries.begin_transaction(None, operation)
        try:
            return session.executor.fetchall(sql, params)
        except sqlite3.OperationalError as error:
            if str(error).startswith(("no such column", "no such table")):
                # A table made outside uow (create_all() would have said so) that lacks what the
                # class declares: name the class and the fix, not SQLite's column reference.
                raise MappingError(
                    f"{mapper.cls.__name__} cannot be read from table {mapper.table!r}: {error}; the table "
                    f"was made without a column (or under a name) that {mapper.cls.__name__} declares. "
                    f"Migrate the table, or run uow.create_all() to check every table against its class"
                ) from error
            if is_busy(error):
                # Another connection holds the lock (a writer committing, or, in rollback-journal
                # mode, one in the middle of a write): a lost race, reported as uow's like a
                # flush's, so that callers can retry it without knowing sqlite3's errors.
                raise DatabaseLockedError(
                    f"reading {mapper.cls.__name__} rows: {error} (another connection held a lock for longer "
                    f"than the busy timeout); nothing changed: retry, or rollback(). WAL mode "
                    f"(PRAGMA journal_mode = WAL) lets readers go on while one connection writes"
                ) from error
            raise

    def load(self, mapper, rows):
        """Turn rows into objects through the identity map.

        A row whose object is already held never overwrites it (its unflushed changes win);
        only the object's expired columns are filled in from the row.  A new object records the
        undo log's current epoch instead of a memento: rolling back expires it if it was loaded
        after the scope's first write (see ``rollback``).
        """
        # A class may be used only for reading (its tables made elsewhere, create_all never
        # called): the objects built here are then the first use of its mapping, so check it now.
        mapper.configure()
        objects: list[Any] = []
        created: list[Any] = []
        with collector_paused(len(rows)):
            try:
                self._build_objects(mapper, rows, objects, created)
            except BaseException as failure:
                # A load that fails (a NULL key, a stored value its type cannot read, Ctrl-C) leaves
                # the session as it was: the objects it made leave the map.
                for obj in created:
                    self.registers.unindex(obj.__dict__[STATE_ATTRIBUTE])
                if isinstance(failure, _NullKey):
                    raise _null_key_error(mapper, failure.row) from None
                if isinstance(failure, Exception) and len(objects) < len(rows):
                    _raise_unreadable(mapper, rows[len(objects)], failure)  # (rows before it were read)
                raise  # (not a stored value's conversion after all)
        return objects

    def _build_objects(self, mapper, rows, objects, created):
        cls = mapper.cls
        names = mapper.column_names
        converters = mapper.load_converters
        pk_indexes = mapper.pk_indexes
        single_key = pk_indexes[0] if len(pk_indexes) == 1 else None
        session = self.session
        identity = session.identity.of(cls)  # this class's {key: object}
        # The rows of one load enter the session together: they share one sequence number (an
        # int apiece cost each loaded object 28 bytes); among them the key decides (see
        # states.in_entry_order).  Drawn at the first new object: rows already held take none.
        sequence = None
        watch = session.tracker.watch
        new = object.__new__
        epoch = session.undo.loading_epoch()
        json_indexes = [column.index for column in mapper.json_columns]
        key_columns = [(index, mapper.columns[index]) for index, _ in converters if index in pk_indexes]
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
                key = stored[single_key]
                complete = key is not None
            else:
                key = tuple([stored[index] for index in pk_indexes])
                complete = None not in key
            obj = identity.get(key)
            if obj is None:
                if not complete:
                    raise _NullKey(row)  # (checked here: a held object's key never holds None)
                for index, column in key_columns:  # (a key that is stored as itself, an int, has no conversion)
                    check_key_form(column, row[index], stored[index])
                if sequence is None:
                    sequence = next(self.registers.sequence)
                obj = new(cls)
                values = obj.__dict__
                values.update(zip(names, row))
                # An object made from its row is born persistent: it gets in one step what
                # Registers.make_persistent gives an object that moves there (session, sequence,
                # key, snapshot, a place in the identity map, a JSON watch).  This loop runs once
                # per row loaded, so it writes those steps out: calling make_persistent here (with
                # its move check and IdentityMap.add's second lookup) made loading 100,000 rows 14%
                # slower (bench/compare.py).  The lookup above is the identity map's guard (the key
                # was free).
                state = InstanceState(obj, mapper, PERSISTENT, session, key, snapshot, sequence, epoch)
                values[STATE_ATTRIBUTE] = state
                identity[key] = obj
                if json_indexes:
                    watch(state)
                created.append(obj)
            else:
                self.fill_expired(obj.__dict__[STATE_ATTRIBUTE], row)
            objects.append(obj)

    def fill_expired(self, state, row):
        """Fill in the expired columns of a held object from its row (converted values); the
        columns it holds keep their values, unflushed changes included."""
        values = state.obj.__dict__
        committed = state.committed
        if NOT_LOADED not in committed:
            return
        self.session.undo.record(state)
        snapshot = list(committed)
        for column, value in zip(state.mapper.columns, row):
            if snapshot[column.index] is NOT_LOADED:
                snapshot[column.index] = state.mapper.snapshot_value(column, value)
                values.setdefault(column.name, value)
        state.committed = tuple(snapshot)

    def load_expired(self, state):
        """Reload an expired object's missing columns (called when one of them is read)."""
        self.guard.check("load")
        row = self.read_row(state, f"reading expired {state.describe()}")
        if row is None:
            raise ObjectDeletedError(
                f"{state.describe()} was expired and its row is no longer in the database; "
                f"expunge() the object, or add a new one"
            )
        self.fill_expired(state, row)

    def read_row(self, state, operation):
        """The row of a held object as it is now, its values converted (None: no row).  Apart
        from fill_expired, so that a caller may read several rows before it applies any."""
        mapper = state.mapper
        rows = self.select_by_key(mapper, mapper.key_params(state.key), operation)
        if not rows:
            return None
        row = list(rows[0])
        try:
            for index, convert in mapper.load_converters:
                if row[index] is not None:
                    row[index] = convert(row[index])
        except Exception as failure:
            _raise_unreadable(mapper, rows[0], failure)
            raise  # (not a stored value's conversion after all)
        return tuple(row)

    def load_reference(self, state, reference, key_values):
        """Load ``obj.user`` through the identity map (no SQL when the user is already held)."""
        target = self.session.get(reference.target, key_values)
        if target is not None:
            state.obj.__dict__[reference.name] = target
        return target

    def load_collection(self, state, collection):
        """Load ``user.orders``: the rows whose foreign key holds the user's key, plus (when autoflush
        is off) pending objects that point at the user, minus objects re-pointed elsewhere."""
        session = self.session
        self.guard.check("load " + collection.name)
        reference = collection.reference
        mapper = collection.target.__mapper__
        session.flusher.autoflush()
        loaded = self.select_referring(mapper, reference, state, f"loading {state.describe()}.{collection.name}")
        owner = state.obj
        items = [item for item in loaded if points_at(item, reference, owner)]
        # Without autoflush the database may not know yet about objects linked in memory:
        # pending ones, and persistent ones re-pointed since the last flush (those are candidates).
        # (Held is a set of ids, so that many such objects cost one look-up each, not a scan.)
        held = set(map(id, items))
        for other in list(self.registers.pending) + list(session.tracker.candidates):
            if other.mapper is mapper and id(other.obj) not in held and points_at(other.obj, reference, owner):
                held.add(id(other.obj))
                items.append(other.obj)
        for item in items:
            item.__dict__.setdefault(reference.name, owner)
        return items


def points_at(item, reference, owner):
    """Does ``item`` point at ``owner`` now: by its cached reference, or else by its key columns?"""
    values = item.__dict__
    if reference.name in values:
        return values[reference.name] is owner
    owner_key = owner.__dict__[STATE_ATTRIBUTE].key
    if owner_key is None:
        return False
    return reference.foreign_key.target_key([values.get(name) for name in reference.column_names]) == owner_key
