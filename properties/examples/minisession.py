"""minisession: a whole unit of work in one file, over the standard library's sqlite3.

It is the conformance kit's worked example: the smallest session that is still honest, written
to be read in one sitting next to its adapter (``minisession_adapter.py``).  It imports nothing
from uow.  What it has:

* an **identity map**: one object per row, ``get()`` answers from it without SQL;
* **change tracking** by snapshot: each object keeps the row's values in stored form (JSON text,
  a Decimal's text), so "dirty" means "writing this would change the row", which also catches a
  JSON dict changed in place;
* a **flush** that checks what it can before any SQL, then runs every statement inside a
  SAVEPOINT and changes the objects only once all of them succeeded, so a failed flush leaves
  database and objects exactly as they were;
* **commit / rollback** it sends itself (``isolation_level=None``; the module never BEGINs).

What it leaves out, on purpose: savepoints for the user, merge(), relationships, key changes and
version counters.  Its rollback expires every object instead of restoring it (SQLAlchemy's
choice; restoring needs an undo log).  The adapter declares each of these to the kit.

    >>> class User(Record): pass
    >>> map_class(User, "users", ("id", "name"), key=("id",), generated=True, required=("name",))
"""

import decimal
import json
import sqlite3

TRANSIENT, PENDING, PERSISTENT, DELETED, DETACHED = "transient", "pending", "persistent", "deleted", "detached"


class SessionError(Exception):
    """Base of every error the session raises itself."""


class InvalidStateError(SessionError):
    """The operation is not allowed for the object's state."""


class ConflictError(SessionError):
    """Two objects would stand for one row."""


class InvalidValueError(SessionError):
    """A value the table refuses, caught before any SQL."""


class FlushError(SessionError):
    """A statement of the flush failed; nothing it did is kept."""


class PendingRollbackError(SessionError):
    """A flush failed; the transaction must be rolled back before the session writes again."""


class DetachedError(SessionError):
    """An expired field of an object no session holds: there is nothing to load it from."""


class RowMissingError(SessionError):
    """The object's row is gone, so its expired fields cannot be loaded."""


# Column types: (to stored form, from stored form).  Stored forms are what the row holds, and
# what snapshots keep, so equal-but-different values ({"n": 1} and {"n": 1.0}) count as changes.
JSON = (lambda value: json.dumps(value, separators=(",", ":"), ensure_ascii=False), json.loads)
DECIMAL = (str, decimal.Decimal)
PLAIN = (lambda value: value, lambda value: value)


class Mapping:
    """How a class maps onto a table: columns, key, which columns SQLite generates or needs."""

    def __init__(self, cls, table, columns, key, generated, required, types, references):
        self.cls = cls
        self.table = table
        self.columns = tuple(columns)
        self.key = tuple(key)
        self.generated = generated  # SQLite numbers the (single integer) key when it is None
        self.required = tuple(required)  # NOT NULL columns, checked before any SQL
        self.types = types
        self.references = dict(references)  # column -> referenced table (orders the flush)

    def to_db(self, column, value):
        return None if value is None else self.types.get(column, PLAIN)[0](value)

    def from_db(self, column, value):
        return None if value is None else self.types.get(column, PLAIN)[1](value)

    def key_of(self, values):
        key = tuple(values.get(column) for column in self.key)
        return None if None in key else key


class Field:
    """A mapped attribute: reading an expired one loads the row, assigning always lands."""

    def __init__(self, column):
        self.column = column

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        state = obj._state
        if self.column not in state.values:
            _load_expired(state)
        return state.values[self.column]

    def __set__(self, obj, value):
        # No checks here: what an assignment means is the flush's business (dirty = differs).
        obj._state.values[self.column] = value


class State:
    """What the session knows of one object.  ``snapshot`` holds the row as last loaded or
    flushed, in stored form; a column missing from it is expired.  ``values`` holds what the
    user sees; a column missing from it is unloaded."""

    def __init__(self, mapping):
        self.mapping = mapping
        self.session = None
        self.status = TRANSIENT
        self.key = None  # the identity, kept even when the key's fields are expired
        self.values = {}
        self.snapshot = {}
        self.marked = False  # persistent, and delete() was called
        self.row_gone = False  # a flush deleted its row: it can never be attached again
        self.order = 0  # when it entered the session; INSERTs follow it

    def changes(self):
        """``{column: stored value}`` that differ from the snapshot (assigned while expired
        counts: the row's value is unknown, so the flush must write it)."""
        found = {}
        for column, value in self.values.items():
            if column in self.mapping.key:
                continue
            stored = self.mapping.to_db(column, value)
            if column not in self.snapshot or self.snapshot[column] != stored:
                found[column] = stored
        return found


class Record:
    """Base for mapped classes: ``User(name="ann")`` is a transient object."""

    def __init__(self, **values):
        self._state = State(self.__mapping__)
        for column in self.__mapping__.columns:
            self._state.values[column] = values.get(column)

    def __repr__(self):
        state = self._state
        return f"{type(self).__name__}{state.key or ''}<{state.status}>"


def map_class(cls, table, columns, key, generated=False, required=(), types=None, references=()):
    """Map ``cls`` (a Record subclass) onto ``table``."""
    cls.__mapping__ = Mapping(cls, table, columns, key, generated, required, types or {}, references)
    for column in columns:
        setattr(cls, column, Field(column))
    return cls


def state_of(obj):
    """One of transient, pending, persistent, deleted, detached."""
    return obj._state.status


def loaded(obj):
    """The loaded fields, read without loading anything."""
    return dict(obj._state.values)


def _load_expired(state):
    if state.session is None:
        raise DetachedError(f"{state.mapping.cls.__name__}{state.key or ''} is {state.status}: "
                            f"its expired fields cannot be loaded; add() it to a session first")
    if state.status == PENDING:
        raise InvalidStateError(f"{state.mapping.cls.__name__} is pending: it has no row to load "
                                f"expired fields from; assign them before the flush")
    state.session._reload(state, columns=None)


class Session:
    """A unit of work on one sqlite3 connection opened with ``isolation_level=None``."""

    def __init__(self, connection, autoflush=True):
        self.connection = connection
        self.autoflush = autoflush
        self.identity_map = {}  # (table, key) -> object: the persistent objects
        self._pending = {}  # id(obj) -> obj, in the order they were added
        self._flushed_inserts = []  # objects inserted, and deleted, by this transaction's flushes
        self._flushed_deletes = []
        self._failed = False  # a flush failed; only rollback() goes on
        self._counter = 0

    # -- what the session holds ------------------------------------------------------------

    @property
    def new(self):
        return list(self._pending.values())

    @property
    def deleted(self):
        return [obj for obj in self.identity_map.values() if obj._state.marked]

    @property
    def dirty(self):
        return [obj for obj in self.identity_map.values() if not obj._state.marked and obj._state.changes()]

    # -- joining and leaving ---------------------------------------------------------------

    def add(self, obj):
        state = obj._state
        if state.status == TRANSIENT:
            key = state.mapping.key_of(state.values)
            if key is not None and (state.mapping.table, key) in self.identity_map:
                raise ConflictError(f"{obj!r} claims key {key}, which {self.identity_map[state.mapping.table, key]!r} "
                                    f"holds: get() that object and change it instead")
            self._counter += 1
            state.order = self._counter
            state.session, state.status = self, PENDING
            self._pending[id(obj)] = obj
        elif state.status == DETACHED:
            self._attach(obj)
        elif state.status == DELETED:
            raise InvalidStateError(f"{obj!r}: a flush of this transaction deleted its row; it cannot be added back")
        else:
            state.marked = False  # add() of a marked object takes its delete back

    def _attach(self, obj):
        state = obj._state
        if state.row_gone:
            raise InvalidStateError(f"{obj!r}: its row was deleted, so it cannot be attached; "
                                    f"make a new object instead")
        holder = self.identity_map.get((state.mapping.table, state.key))
        if holder is not None:
            raise ConflictError(f"{obj!r}: {holder!r} already stands for that row in this session")
        state.session, state.status = self, PERSISTENT
        self.identity_map[state.mapping.table, state.key] = obj

    def delete(self, obj):
        state = obj._state
        if state.status == TRANSIENT:
            raise InvalidStateError(f"{obj!r} was never added: there is nothing to delete")
        if state.status == PENDING:
            self._forget(obj)  # the insert never happens
        elif state.status == DETACHED:
            self._attach(obj)
            state.marked = True
        elif state.status == PERSISTENT:
            state.marked = True

    def expunge(self, obj):
        if obj._state.session is not self:
            raise InvalidStateError(f"{obj!r} is not in this session")
        self._forget(obj)

    def expunge_all(self):
        for obj in self.new + list(self.identity_map.values()) + self._deleted_objects():
            self._forget(obj)

    def _forget(self, obj):
        state = obj._state
        self._pending.pop(id(obj), None)
        if self.identity_map.get((state.mapping.table, state.key)) is obj:
            del self.identity_map[state.mapping.table, state.key]
        state.status = TRANSIENT if state.status == PENDING else DETACHED
        state.session, state.marked = None, False

    def _deleted_objects(self):
        return [obj for obj in self._flushed_deletes if obj._state.status == DELETED and obj._state.session is self]

    # -- loading ---------------------------------------------------------------------------

    def get(self, cls, key):
        """The object for ``key``: from the identity map (no SQL), else after an autoflush from
        its row, else None."""
        key = tuple(key)
        table = cls.__mapping__.table
        if (table, key) in self.identity_map:
            return self.identity_map[table, key]
        self._refuse_if_failed("get()")
        if self.autoflush:
            self.flush()
            if (table, key) in self.identity_map:
                return self.identity_map[table, key]
        rows = self._select(cls.__mapping__, cls.__mapping__.key, key)
        return self._from_row(cls.__mapping__, rows[0]) if rows else None

    def query(self, cls, column, value):
        """Objects whose row holds ``value`` in ``column`` (None matches NULL)."""
        self._refuse_if_failed("query()")
        if self.autoflush:
            self.flush()
        mapping = cls.__mapping__
        rows = self._select(mapping, (column,), (mapping.to_db(column, value),))
        return [self._from_row(mapping, row) for row in rows]

    def _select(self, mapping, columns, values):
        where = " AND ".join(f'"{column}" IS ?' for column in columns)  # IS: None matches NULL
        names = ", ".join(f'"{column}"' for column in mapping.columns)
        cursor = self.connection.execute(f'SELECT {names} FROM "{mapping.table}" WHERE {where}', values)
        return [dict(zip(mapping.columns, row)) for row in cursor]

    def _from_row(self, mapping, row):
        """The held object for the row (only its expired fields filled: unflushed changes stay),
        or a new persistent one."""
        key = mapping.key_of(row)
        obj = self.identity_map.get((mapping.table, key))
        if obj is None:
            obj = mapping.cls.__new__(mapping.cls)
            obj._state = State(mapping)
            obj._state.session, obj._state.status, obj._state.key = self, PERSISTENT, key
            self.identity_map[mapping.table, key] = obj
        self._fill(obj._state, row, overwrite=False)
        return obj

    def _fill(self, state, row, overwrite):
        for column, raw in row.items():
            # Normalise through the type: JSON another writer spaced differently is no change.
            stored = state.mapping.to_db(column, state.mapping.from_db(column, raw))
            if overwrite or column not in state.snapshot:
                state.snapshot[column] = stored
            if overwrite or column not in state.values:
                state.values[column] = state.mapping.from_db(column, raw)

    def _reload(self, state, columns):
        """Load expired fields (columns=None), or overwrite ``columns`` with the row's values."""
        rows = self._select(state.mapping, state.mapping.key, state.key)
        if not rows:
            raise RowMissingError(f"{state.mapping.cls.__name__}{state.key}: its row is gone")
        if columns is None:
            self._fill(state, rows[0], overwrite=False)
        else:
            self._fill(state, {column: rows[0][column] for column in columns}, overwrite=True)

    def expire(self, obj, columns=None):
        """Forget the fields (all, or ``columns``) and their unflushed changes."""
        state = self._persistent(obj, "expire()")
        for column in columns if columns is not None else state.mapping.columns:
            state.values.pop(column, None)
            state.snapshot.pop(column, None)

    def expire_all(self):
        for obj in self.identity_map.values():
            self.expire(obj)

    def refresh(self, obj, columns=None):
        """Reload the fields (all, or ``columns``) from the row, discarding unflushed changes.
        No autoflush: refresh() exists to throw those changes away."""
        state = self._persistent(obj, "refresh()")
        self._reload(state, columns if columns is not None else state.mapping.columns)

    def _persistent(self, obj, operation):
        state = obj._state
        if state.status != PERSISTENT or state.session is not self:
            raise InvalidStateError(f"{operation} of {obj!r}: only a persistent object of this session has a row")
        return state

    # -- flush -----------------------------------------------------------------------------

    def flush(self):
        """Write every pending change: checked first, then all statements or none."""
        self._refuse_if_failed("flush()")
        inserts = self.new
        updates = [(obj, obj._state.changes()) for obj in self.identity_map.values() if not obj._state.marked]
        updates = [(obj, changes) for obj, changes in updates if changes]
        deletes = self.deleted
        if not (inserts or updates or deletes):
            return
        self._check(inserts, updates)
        if not self.connection.in_transaction:
            self.connection.execute("BEGIN")
        self.connection.execute("SAVEPOINT flush")
        try:
            keys = self._execute(self._plan(inserts, updates, deletes))
        except BaseException as error:
            if self.connection.in_transaction:  # some errors make SQLite roll back by itself
                self.connection.execute("ROLLBACK TO flush")
                self.connection.execute("RELEASE flush")
            self._failed = True
            if isinstance(error, (sqlite3.Error, FlushError)):
                raise FlushError(f"the flush failed and wrote nothing; roll back: {error}") from error
            raise
        self.connection.execute("RELEASE flush")
        self._apply(inserts, updates, deletes, keys)

    def _check(self, inserts, updates):
        """Refuse before any SQL what would fail anyway.  A key conflict or a NULL is the
        user's to fix, so the session stays usable; an object to insert with expired fields
        (its values are unknown) fails the flush, which then waits for rollback()."""
        claimed = {}
        for obj in inserts:
            state = obj._state
            missing = [column for column in state.mapping.columns
                       if column not in state.values and not (state.mapping.generated and column in state.mapping.key)]
            if missing:
                self._failed = True  # a failed flush, as if SQLite had refused the INSERT
                raise FlushError(f"{obj!r} has expired fields {missing} and no row to load them from; "
                                        f"assign them before the flush")
            key = state.mapping.key_of(state.values)
            if key is not None:
                holder = self.identity_map.get((state.mapping.table, key)) or claimed.get((state.mapping.table, key))
                if holder is not None:
                    raise ConflictError(f"{obj!r} claims key {key}, which {holder!r} holds or claims")
                claimed[state.mapping.table, key] = obj
        for obj in inserts + [obj for obj, _ in updates]:
            for column in obj._state.mapping.required:
                if column in obj._state.values and obj._state.values[column] is None:
                    raise InvalidValueError(f"{obj!r}: {column} is NOT NULL, and holds None; assign a value")

    def _plan(self, inserts, updates, deletes):
        """Statements ordered by table, as SQLAlchemy's unit of work does: per table a "save"
        (UPDATEs by key, then INSERTs in the order objects were added) and a "delete" (DELETEs by
        key, rows that reference rows of their own table first).  A parent's save runs before
        its children's; a table's save before its delete; children's actions before a parent's
        delete.  Actions run in waves; within a wave deletes first, then by table name."""
        saves, removes = {}, {}
        for obj, changes in sorted(updates, key=lambda pair: pair[0]._state.key):
            saves.setdefault(obj._state.mapping, []).append(("UPDATE", obj, changes))
        for obj in sorted(inserts, key=lambda obj: obj._state.order):
            saves.setdefault(obj._state.mapping, []).append(("INSERT", obj, None))
        for obj in _referencing_first(sorted(deletes, key=lambda obj: obj._state.key)):
            removes.setdefault(obj._state.mapping, []).append(("DELETE", obj, None))
        mappings = set(saves) | set(removes)
        after = {(kind, mapping): set() for mapping in mappings for kind in ("delete", "save")}
        for mapping in mappings:
            after["delete", mapping].add(("save", mapping))
            for parent in set(mapping.references.values()) - {mapping.table}:
                for other in mappings:
                    if other.table == parent:
                        after["save", mapping].add(("save", other))
                        after["delete", other] |= {("save", mapping), ("delete", mapping)}
        plan, done = [], set()
        while len(done) < len(after):
            wave = [action for action, needs in after.items() if action not in done and needs <= done]
            for kind, mapping in sorted(wave, key=lambda action: (action[0] != "delete", action[1].table)):
                plan += (saves if kind == "save" else removes).get(mapping, [])
            done |= set(wave)
        return plan

    def _execute(self, plan):
        """Run the statements; return the keys SQLite generated, by id(obj).  Objects are not
        touched here, so a failure leaves them as they were."""
        keys, inserted = {}, set()
        for verb, obj, changes in plan:
            state, mapping = obj._state, obj._state.mapping
            key_where = " AND ".join(f'"{column}" = ?' for column in mapping.key)
            if verb == "INSERT":
                row = {column: mapping.to_db(column, state.values[column]) for column in mapping.columns}
                if mapping.key_of(row) is None:
                    del row[mapping.key[0]]
                names = ", ".join(f'"{column}"' for column in row)
                marks = ", ".join("?" * len(row))
                cursor = self.connection.execute(f'INSERT INTO "{mapping.table}" ({names}) VALUES ({marks})',
                                                 tuple(row.values()))
                keys[id(obj)] = mapping.key_of(row) or (cursor.lastrowid,)
                inserted.add((mapping.table, keys[id(obj)]))
                continue
            if (mapping.table, state.key) in inserted:
                # SQLite handed a key out again (another connection deleted the row): this DELETE
                # would remove the row just inserted, not the one the object stood for.
                raise FlushError(f"{obj!r}: its row is gone and a new row now has its key")
            if verb == "UPDATE":
                assignments = ", ".join(f'"{column}" = ?' for column in changes)
                cursor = self.connection.execute(f'UPDATE "{mapping.table}" SET {assignments} WHERE {key_where}',
                                                 tuple(changes.values()) + state.key)
            else:
                cursor = self.connection.execute(f'DELETE FROM "{mapping.table}" WHERE {key_where}', state.key)
            if cursor.rowcount != 1:
                raise FlushError(f"{verb} of {obj!r} matched no row: another connection deleted it")
        return keys

    def _apply(self, inserts, updates, deletes, keys):
        """Every statement succeeded: now the objects follow."""
        for obj in inserts:
            state = obj._state
            state.key = keys[id(obj)]
            for column, value in zip(state.mapping.key, state.key):
                state.values[column] = value
            stale = self.identity_map.get((state.mapping.table, state.key))
            if stale is not None:  # its row was deleted by another connection, and the key reused
                self._forget(stale)
            del self._pending[id(obj)]
            state.status = PERSISTENT
            state.snapshot = {column: state.mapping.to_db(column, value) for column, value in state.values.items()}
            self.identity_map[state.mapping.table, state.key] = obj
            self._flushed_inserts.append(obj)
        for obj, changes in updates:
            obj._state.snapshot.update(changes)
        for obj in deletes:
            state = obj._state
            del self.identity_map[state.mapping.table, state.key]
            state.status, state.marked, state.row_gone = DELETED, False, True
            self._flushed_deletes.append(obj)

    def _refuse_if_failed(self, operation):
        if self._failed:
            raise PendingRollbackError(f"{operation}: a flush failed in this transaction; call rollback() first")

    # -- transaction -----------------------------------------------------------------------

    def commit(self):
        self._refuse_if_failed("commit()")
        self.flush()
        if self.connection.in_transaction:
            self.connection.execute("COMMIT")
        for obj in self._deleted_objects():
            obj._state.status, obj._state.session = DETACHED, None
        self._flushed_inserts, self._flushed_deletes = [], []

    def rollback(self):
        """Undo the transaction.  Objects are not restored but expired: pending objects, and
        those whose rows it inserted, become transient (keeping their values); objects whose row
        it deleted come back; every persistent object reloads on its next read."""
        if self.connection.in_transaction:
            self.connection.execute("ROLLBACK")
        for obj in self._deleted_objects():
            state = obj._state
            state.status, state.row_gone = PERSISTENT, False
            self.identity_map[state.mapping.table, state.key] = obj
        for obj in self._flushed_inserts:  # expunged since, or not: their rows never were
            state = obj._state
            if state.session is self:
                self._forget(obj)
            state.status, state.key, state.row_gone, state.snapshot = TRANSIENT, None, False, {}
        for obj in self.new:
            self._forget(obj)  # it was added in this transaction, which is gone
        for obj in self.identity_map.values():
            obj._state.marked = False
            self.expire(obj)
        self._flushed_inserts, self._flushed_deletes = [], []
        self._failed = False

    def close(self):
        """Roll back, then let go of every object."""
        self.rollback()
        self.expunge_all()


def _referencing_first(objects):
    """DELETEs in an order SQLite accepts within a table that references itself: a row goes
    only when no other row still to be deleted references it."""
    ordered, waiting = [], list(objects)
    while waiting:
        for obj in waiting:
            mapping = obj._state.mapping
            own = [column for column, table in mapping.references.items() if table == mapping.table]
            if not any(other._state.mapping is mapping and other is not obj
                       and any(other._state.snapshot.get(column) == obj._state.key[0] for column in own)
                       for other in waiting):
                break
        else:
            obj = waiting[0]  # a cycle: no order works, and SQLite will say so
        ordered.append(obj)
        waiting.remove(obj)
    return ordered
