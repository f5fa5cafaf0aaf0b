"""Bringing outside objects into a session: merge, upsert, save_or_update, update, mark_dirty.

:class:`Merger` is a feature part the session composes (``features``).  It exists because objects often come
from somewhere else — another session, a cache, a web form — and the identity map allows only
one object per row:

* ``update(obj)`` / ``save_or_update(obj)`` attach *that* object (SQLAlchemy 0.3's names):
  a detached object becomes persistent again, and any changes made while it was detached are
  written by the next flush.  If another object already holds its identity, that is an error.
* ``merge(obj)`` never attaches the given object.  It copies its column values onto the
  session's object for the same row (loading it, or creating a pending one) and returns that;
  the merge cascade does the same along relationships, for what ``obj`` holds in memory.
  ``merge(obj, load=False)`` trusts the given values as the row's current state, with no SQL.
* ``upsert(obj)`` writes the row now with ``INSERT ... ON CONFLICT (key) DO UPDATE``, one
  statement, and keeps the identity map in step with what the database returned.
* ``mark_dirty(obj)`` tells the session an object changed in a way it cannot see, so the next
  flush writes all its columns.
"""

import sqlite3

from ..columntypes import from_db
from ..rowsize import oversized_row
from ..valuechecks import Refusal, bind_column
from ..executor import lock_hint
from ..entity import write_values
from ..errors import ColumnValueError, FlushError, InvalidStateError, StaleDataError, warn
from ..identifiers import quote
from ..mapper import mapper_of_object
from ..registers import MERGE
from ..sentinels import MISSING, NOT_LOADED
from ..collection import RelatedList
from ..states import DELETED, DETACHED, PENDING, STATE_ATTRIBUTE, TRANSIENT, InstanceState
from ..tracking import changed_fields


class Merger:
    """The session's part for objects that come from elsewhere (see the module docstring)."""

    def __init__(self, session):
        self.session = session
        self.registers = session.registers
        self.guard = session.guard
        self.observer = session.observer
        self.boundaries = session.boundaries

    def update(self, obj):
        """Attach a detached object: it becomes persistent, and its changes are flushed next time."""
        session = self.session
        self.guard.check("update")
        mapper_of_object(obj, "update")
        state = obj.__dict__.get(STATE_ATTRIBUTE)
        if state is None or state.status is not DETACHED:
            status = TRANSIENT if state is None else state.status
            raise InvalidStateError(
                f"update(): {obj!r} is {status.value}, not detached; use add() for a new object"
            )
        session.lifecycle.refuse_to_add(obj, "update")
        session.lifecycle.bring_in(obj)

    def save_or_update(self, obj):
        """add() a transient object, update() a detached one; objects already here are left alone."""
        session = self.session
        self.guard.check("save_or_update")
        session.lifecycle.refuse_to_add(obj, "save_or_update")
        session.lifecycle.bring_in(obj)

    def mark_dirty(self, obj):
        """Make the next flush write every column of ``obj`` (for changes uow cannot see)."""
        session = self.session
        self.guard.check("mark_dirty")
        state = self.guard.persistent_state(obj, "mark_dirty")
        session.undo.record(state)
        session.tracker.force(state)

    def merge(self, obj, *, load=True):
        """Copy ``obj``'s column values onto this session's object for the same row, and return it.

        The row's object is found in the identity map, or loaded (``load=True``), or created as a
        new pending object when the row does not exist.  ``obj`` itself is left as it was.  With
        ``load=False`` no SQL runs: the values are taken to be the row's current state, so the
        object returned is persistent and clean — use it to put objects from a cache into a session.

        **The merge cascade** (SQLAlchemy's default): along each relationship whose cascade names
        ``merge`` (the default of both kinds), what ``obj`` holds *in memory* is merged too, and
        the merged object then references or holds the merged copies: a cached reference is set to
        the merged target, a loaded collection is replaced by the merged items (children no longer
        in it are released, and deleted with delete-orphan, as an assignment of the list does).  A
        relationship ``obj`` has not loaded is left as the session's object has it.  Each object is
        merged once, also when the objects hold each other in a cycle.  A merge refused part way
        (a StaleDataError from a child's version) leaves what it merged before in the session;
        rollback() takes it back.

        Like every load, merge() autoflushes first, but only once, before anything is merged (as
        SQLAlchemy's does), so the objects it merges are flushed together, parents before children.
        An object the session has marked for deletion is not merged onto (InvalidStateError).

        Merging an object already in this session returns it unchanged; for a pending one that is
        rarely what was meant (merge is for objects from elsewhere; there is nothing to copy), so
        it also warns (``UowWarning``), as SQLAlchemy does.
        """
        session = self.session
        self.guard.check("merge")
        mapper_of_object(obj, "merge")
        state = obj.__dict__.get(STATE_ATTRIBUTE)
        if state is not None and state.session is session:
            if state.status is PENDING:
                warn(f"merge(): {obj!r} is already pending in this session; merge() returns it as it is, with "
                     f"nothing copied. merge() is for objects from elsewhere (another session, a cache); the "
                     f"object is already added")
            return obj  # (nothing to merge, so nothing to autoflush for)
        if load:
            session.flusher.autoflush()  # once, before anything is merged, as SQLAlchemy's merge does
        # Not again part way: a merged child would be flushed before the merged parent its
        # foreign key names exists (the cascade reaches the parent later), and fail.
        with session.flusher.no_autoflush():
            return self._merge(obj, load, {})

    def _merge(self, obj, load, merged, via=None):
        """merge() of one object, then its merge cascade; ``merged`` maps id(source) to its result;
        ``via`` is the relationship whose merge cascade reached ``obj`` (None: the user's merge())."""
        found = merged.get(id(obj))
        if found is not None:
            return found
        target = self._merge_one(obj, load, via)
        merged[id(obj)] = target
        if target is not obj:
            self._cascade(obj, target, load, merged)
        return target

    def _cascade(self, obj, target, load, merged):
        """The merge cascade from ``obj`` (merged onto ``target``): see :meth:`merge`."""
        mapper = type(obj).__mapper__
        values = obj.__dict__
        for reference in mapper.references:
            if "merge" in reference.cascade and reference.name in values:
                related = values[reference.name]
                setattr(target, reference.name,
                        None if related is None else self._merge(related, load, merged, reference))
        for collection in mapper.collections:
            held = values.get(collection.name)
            if held is None or "merge" not in collection.cascade:
                continue
            items = [self._merge(item, load, merged, collection) for item in list(held)]
            if not load and collection.name not in target.__dict__:
                # load=False trusts the values as the rows' state, with no SQL: the list is taken as
                # what the database holds, as the columns are (assigning it would load the old one).
                target.__dict__[collection.name] = RelatedList(target, collection, items)
            else:
                setattr(target, collection.name, items)

    def _merge_one(self, obj, load, via):
        """The merge of ``obj``'s columns (no cascade): the session's object for its row."""
        session = self.session
        mapper = mapper_of_object(obj, "merge")
        mapper.configure()
        source = mapper.copy_values(obj.__dict__)  # JSON values are copied, never shared
        state = obj.__dict__.get(STATE_ATTRIBUTE)
        if state is not None and state.session is session:
            return obj
        if state is not None and state.key is not None:
            key = state.key  # the key columns may be expired; the state remembers the key
            source.update(zip(mapper.pk_names, mapper.key_values(key)))
        else:
            key_values = tuple(source.get(name) for name in mapper.pk_names)
            key = None if None in key_values else mapper.checked_key(key_values)
        if not load:
            return self._merge_without_loading(obj, mapper, key, state, source)
        target = session.get(mapper.cls, mapper.key_values(key)) if key is not None else None
        if target is not None:
            self._refuse_doomed(target, obj)
        if target is None:
            target = mapper.cls.__new__(mapper.cls)
            write_values(target.__dict__, {name: source[name] for name in mapper.column_names if name in source})
            # add(), recording what made it (for explain(): not the user's add() of this object)
            session.lifecycle.refuse_to_add(target, "merge")
            session.lifecycle.bring_in(target, (MERGE, obj, via))
            return target
        version = mapper.version_column
        if version is not None and source.get(version.name) is not None:
            target_state = target.__dict__[STATE_ATTRIBUTE]
            if target_state.committed[version.index] is NOT_LOADED:
                session.loader.load_expired(target_state)  # expired: compare with the version its row holds
            held_version = target_state.committed[version.index]
            if source[version.name] != held_version:
                raise StaleDataError(
                    f"merge(): {obj!r} carries {version.qualified_name} = {source[version.name]}, but the row is at "
                    f"version {held_version}: it was changed since that object was read. Reload it and "
                    f"apply your change again",
                    obj=obj, expected=source[version.name], found=held_version,
                )
        for name in mapper.column_names:
            if name in source and name not in mapper.pk_names and (version is None or name != version.name):
                setattr(target, name, source[name])
        return target

    def _refuse_doomed(self, target, obj):
        """Refuse to copy ``obj`` onto ``target`` when the session will delete it at the next flush:
        the merged values would go with it, without a word."""
        if target.__dict__[STATE_ATTRIBUTE] in self.registers.marked:
            raise InvalidStateError(
                f"merge(): this session's object for the row of {obj!r} is {target!r}, which is marked for "
                f"deletion, so the next flush would delete the values merged onto it; flush() the delete first "
                f"(merge() then writes a new row), or rollback() to undo it")

    def _merge_without_loading(self, obj, mapper, key, state, source):
        if key is None:
            # Name the parts at fault: "no primary key" misled when a composite key was half set.
            missing = [column.qualified_name for column in mapper.primary_key if source.get(column.name) is None]
            raise InvalidStateError(
                f"merge(load=False): {obj!r} has no value for the primary key column(s) {', '.join(missing)}; "
                f"load=False needs the whole key of an existing row: set them, or merge() with loading "
                f"to insert a new row"
            )
        if state is not None and state.row_deleted:
            raise InvalidStateError(
                f"merge(load=False): the row of {obj!r} was deleted and the delete committed, so it describes "
                f"no existing row; merge() it with loading to write a copy as a new row"
            )
        if state is not None and state.committed is not None and changed_fields(state):
            raise InvalidStateError(
                f"merge(load=False): {obj!r} has unflushed changes ({', '.join(changed_fields(state))}); "
                f"load=False trusts the values as the row's current state, so they must be clean"
            )
        session = self.session
        held = session.identity.get(mapper.cls, key)
        values = {name: source[name] for name in mapper.column_names if name in source}
        if held is None:
            target = mapper.cls.__new__(mapper.cls)
            write_values(target.__dict__, values)
            # The values are the caller's, not the row's: a rollback expires the object.
            session.undo.mark_written()
            target_state = InstanceState(target, mapper, TRANSIENT, None, loaded_epoch=session.undo.epoch)
            target.__dict__[STATE_ATTRIBUTE] = target_state
            self.registers.make_persistent(target_state, key, mapper.snapshot_getter(target.__dict__), "merge")
            return target
        self._refuse_doomed(held, obj)
        held_state = held.__dict__[STATE_ATTRIBUTE]
        session.undo.record(held_state)
        held.__dict__.update(values)
        held_state.committed = mapper.snapshot_getter(held.__dict__)
        session.tracker.clean(held_state)
        return held

    def upsert(self, obj):
        """Insert the row, or update it if its key exists, in one statement; return the session's object.

        Pending changes are flushed first (so a lifecycle listener cannot call it, as it cannot
        call flush()).  ``obj`` must carry its primary key.  The object for that row in the
        identity map (``obj`` itself when nothing held the row) ends with the values the database
        returned, clean.  Entities with a version column are refused: an
        upsert cannot check the version it overwrites; use merge() and commit() instead.
        """
        session = self.session
        self.guard.check("upsert")
        self.observer.refuse_in_listener("upsert")  # it flushes first, and a listener cannot start a flush
        mapper = mapper_of_object(obj, "upsert")
        mapper.configure()
        if mapper.version_column is not None:
            raise InvalidStateError(
                f"upsert(): {mapper.cls.__name__} has a version column, and an upsert would overwrite the row "
                f"without checking it; use merge() and commit(), which do"
            )
        values = obj.__dict__
        state = values.get(STATE_ATTRIBUTE)
        if state is not None and state.session not in (None, session):
            raise InvalidStateError(f"upsert(): {obj!r} belongs to another session")
        if state is not None and state.session is session and state.key is not None and NOT_LOADED in state.committed:
            # Expired (after a rollback, say): its columns hold what its row holds; read them, rather
            # than upsert a key with nothing, or find no key at all.
            session.loader.load_expired(state)
        key_values = tuple(values.get(name) for name in mapper.pk_names)
        if None in key_values:
            raise InvalidStateError(
                f"upsert(): {obj!r} has no primary key value; an upsert needs the key it may collide on "
                f"(for a new row with a generated key, use add())"
            )
        if state is not None and state.session is session and (
                state.status is DELETED or state in self.registers.marked):
            raise InvalidStateError(
                f"upsert(): {obj!r} is deleted in this transaction; rollback() to bring it back, or upsert "
                f"a new object with its key"
            )
        key = mapper.checked_key(key_values)
        self._upsert_params(mapper, values)  # a value that cannot be stored is refused before the flush
        session.flusher.flush()
        # (Again after the flush, which may have filled in a pending object's SQL defaults.)
        names, params = self._upsert_params(mapper, values)
        table = mapper.quoted_table
        updates = [name for name in names if name not in mapper.pk_names]
        conflict = ", ".join(map(quote, mapper.pk_names))
        action = "NOTHING" if not updates else "UPDATE SET " + ", ".join(
            f"{quote(name)} = excluded.{quote(name)}" for name in updates)
        sql = (f"INSERT INTO {table} ({', '.join(map(quote, names))}) VALUES ({', '.join('?' * len(names))}) "
               f"ON CONFLICT ({conflict}) DO {action} RETURNING {', '.join(map(quote, mapper.column_names))}")
        with self.guard.writing("upsert"):
            if not session.transaction.active:
                self.boundaries.begin_transaction(None, "upsert()", for_writing=True)
            try:
                row = session.executor.execute(sql, params).fetchone()
            except sqlite3.Error as error:
                raise FlushError(f"upsert() of {mapper.describe(values)} failed: {error} (statement: {sql})"
                                 f"{lock_hint(error)}",
                                 statement=sql, obj=obj) from error
        if row is None:  # DO NOTHING on an existing row returns nothing: read it
            row = session.loader.select_by_key(mapper, mapper.key_params(key), "upsert()")[0]
        stored = {column.name: from_db(column.type, value) for column, value in zip(mapper.columns, row)}
        held = session.identity.get(mapper.cls, key)
        if held is None:
            # (An object of this session is held by now: the flush above made a pending one
            # persistent, and deleted ones were refused.)  A transient or detached object
            # becomes the row's object, with the values the database returned.
            if state is None:
                state = InstanceState(obj, mapper, TRANSIENT, None)
                values[STATE_ATTRIBUTE] = state
            session.undo.record(state)
            values.update(stored)
            self.registers.make_persistent(state, key, mapper.snapshot_getter(values), "upsert")
            return obj
        held_state = held.__dict__[STATE_ATTRIBUTE]
        session.undo.record(held_state)
        held.__dict__.update(stored)
        held_state.committed = mapper.snapshot_getter(held.__dict__)
        session.tracker.clean(held_state)
        return held

    def _upsert_params(self, mapper, values):
        """The columns an upsert writes (those the object holds) and their bound values, each
        checked as a flush checks it (``valuechecks.bind_column``), and the row's size."""
        names = [name for name in mapper.column_names if values.get(name, MISSING) is not MISSING]
        max_length = self.session.executor.length_limit()
        bound = []
        for name in names:
            column = mapper.column(name)
            try:
                bound.append(bind_column(column.type, [values[name]], column.nullable, max_length))
            except Refusal as refusal:
                raise ColumnValueError(
                    f"upsert(): {refusal.explain(column.qualified_name, values[name])}; nothing was written"
                ) from None
        # The upsert returns the whole row, and SQLite builds a record of it with its key stored.
        found = oversized_row(bound, max_length, integers=True)
        if found is not None:
            raise ColumnValueError(
                f"upsert(): the {mapper.table} record of {mapper.describe(values)} ({', '.join(names)}) takes at "
                f"least {found[1]:,} bytes, over this connection's limit of {max_length:,} (SQLITE_LIMIT_LENGTH), "
                f"although each value fits; store less in one row; nothing was written"
            )
        return names, [column[0] for column in bound]
