"""What a rollback puts back: capturing objects into the undo log, and restoring them from it.

Part of the Session (assembled in ``session``).  ``undo`` keeps the mementos; this module knows
what a memento holds — an object's state, key, snapshot, values and which of the session's
collections it was in — and how to put all of that back.

The rule, in the same words as the README: rolling back a scope (the transaction since the last
commit, or a savepoint) puts every object the session touched in it back to exactly the state
and values it had when the scope began, with no SQL; objects first *loaded* in the scope after
its first write are expired instead, since their values may include what the rollback undid
(objects read before anything was written keep their values: the database goes back to exactly
what they read); loaded collections are dropped and reload on next access when the rollback
undid a write or put back an object of their class, and otherwise stay; an object whose row a
failed flush found changed or deleted by another session (StaleDataError) is expired, so that a
retry reads the row as it is now; and an object that has since moved to another session is
that session's business.
"""

from .errors import StaleDataError
from .mapping import NOT_LOADED
from .states import STATE_ATTRIBUTE, ObjectState

PERSISTENT = ObjectState.PERSISTENT


class Memento:
    """How one object looked at the start of an undo scope (see ``undo``).

    ``values`` is a copy of the instance dict, or None when the snapshot (``committed``) holds
    exactly the object's column values.  The status says whether the object was pending or
    had its row deleted; the flags say what the status cannot: whether it was marked for
    deletion, and whether it was a change-tracking candidate.
    """

    __slots__ = ("status", "session", "key", "committed", "sequence", "values", "marked", "candidate")

    def __init__(self, status, session, key, committed, sequence, values, marked=False, candidate=False):
        self.status = status
        self.session = session
        self.key = key
        self.committed = committed
        self.sequence = sequence
        self.values = values
        self.marked = marked
        self.candidate = candidate


def _values_of_snapshot(mapper, committed):
    """The column values a snapshot describes (JSON text parsed; expired columns left out).

    Cached references are not in a snapshot: they are dropped, and reload by key when read.
    """
    values = {}
    for column, value in zip(mapper.columns, committed):
        if value is NOT_LOADED:
            continue
        if column.type.mutable and isinstance(value, str):
            value = column.type.from_db(value)
        values[column.name] = value
    return values


def _expire(state):
    """Forget every column and cached reference of an object; they reload when next read."""
    values = state.obj.__dict__
    for name in state.mapper.restorable_names:
        values.pop(name, None)
    state.committed = (NOT_LOADED,) * len(state.mapper.columns)


class RollbackMixin:
    """The Session's undo-log capture and restore (see the module docstring)."""

    def _capture(self, state):
        if state.session is None:
            # Joining this session now: its values as they are now are what a rollback restores,
            # JSON values included (a detached object's snapshot may predate changes made to them).
            return Memento(state.status, None, state.key, state.committed, state.sequence,
                           state.mapper.copy_values(state.obj.__dict__))
        candidate = state in self.tracker.candidates
        cached = state.obj.__dict__
        if state.status is PERSISTENT and not candidate and state.committed is not None and \
                not any(reference.name in cached for reference in state.mapper.references):
            # Nothing was assigned since the last flush or load: the snapshot holds exactly the
            # object's column values (an expired column is absent from both), so the memento
            # need not copy them.  This is the common case of a first assignment in a scope.
            # (A cached reference is not in the snapshot: an object holding one is copied, so
            # that the rollback gives back the very object it referenced.)
            values = None
        else:
            values = state.mapper.copy_values(state.obj.__dict__, state.committed)
        return Memento(
            state.status, state.session, state.key, state.committed, state.sequence, values,
            marked=state in self._marked,
            candidate=candidate,
        )

    def _restore(self, scope, first_write):
        """Put every object of an undo scope back as its memento says, then expire the objects
        loaded since the scope's first write (their values may include what the rollback undid;
        ``first_write`` is None when nothing was written, and then no load is expired).

        An object that has since moved to another session is that session's now: it is left alone.
        """
        scope = {state: memento for state, memento in scope.items()
                 if state.session is None or state.session is self}
        for state in scope:
            self._unindex(state)
        for state, memento in scope.items():
            values = state.obj.__dict__
            saved = memento.values if memento.values is not None else _values_of_snapshot(state.mapper, memento.committed)
            for name in state.mapper.restorable_names:
                values.pop(name, None)
                if name in saved:
                    values[name] = saved[name]
            state.status = memento.status
            state.session = memento.session
            state.row_deleted = False  # an object whose row is known gone never enters a scope (add() refuses it)
            state.key = memento.key
            state.committed = memento.committed
            state.sequence = memento.sequence
        detached_copies = []
        for state, memento in scope.items():
            if memento.session is not self:
                continue
            if memento.status is ObjectState.PENDING:
                self._pending[state] = None
            elif memento.status is PERSISTENT:
                held = self.identity.get(state.key)
                if held is not None and held is not state.obj:
                    # Two copies of one row: one expunged, the same row loaded again, both in the
                    # rolled-back scope.  The copy that entered the session first wins (it is the one
                    # held at the start of the scope, if either was); the other is detached.
                    held_state = held.__dict__[STATE_ATTRIBUTE]
                    if held_state.sequence < state.sequence:
                        self._detach_copy(state)
                        detached_copies.append(state)
                        continue
                    self._detach_copy(held_state)
                    detached_copies.append(held_state)
                self.identity.add(state.key, state.obj)
                if state.mapper.json_columns:
                    self.tracker.watch(state)
                if memento.marked:
                    self._marked[state] = None
                if memento.candidate:
                    self.tracker.note_assignment(state)
            elif memento.status is ObjectState.DELETED:
                self._deleted_rows[state] = None
        # Keep pending and marked objects in session order, which flushes rely on.
        if scope:
            self._pending = dict(sorted(self._pending.items(), key=lambda item: item[0].sequence))
            self._marked = dict(sorted(self._marked.items(), key=lambda item: item[0].sequence))
        # Objects loaded after the scope's first write may hold values the rollback undid: they
        # are expired, held or (a copy that lost its row to the one held first) detached alike.
        held = [obj.__dict__[STATE_ATTRIBUTE] for obj in self.identity.values()] + detached_copies
        if first_write is not None:
            for state in held:
                if state.loaded_epoch >= first_write:
                    _expire(state)
        # Loaded collections are views of other objects' references.  A rollback that undid a
        # write, or put back an object of the collection's class, may have changed them: they are
        # dropped, and reload (through the identity map) when next read.  Otherwise they stay,
        # as cached references do.
        changed_classes = None if first_write is not None else {state.mapper.cls for state in scope}
        for state in held + list(self._pending):
            values = state.obj.__dict__
            for collection in state.mapper.collections:
                if changed_classes is None or collection.target in changed_classes:
                    values.pop(collection.name, None)
        # A JSON value changed in place touched nothing the undo log could see; its snapshot
        # (JSON text) is what the object held when the scope began, so put that back.  (Objects
        # whose DELETE was flushed are not watched: their mementos hold their values.)
        for state in self.tracker.watched:
            if state in scope or state.committed is None:
                continue
            values = state.obj.__dict__
            for column in state.mapper.json_columns:
                text = state.committed[column.index]
                if isinstance(text, str) and column.type.to_db(values.get(column.name)) != text:
                    values[column.name] = column.type.from_db(text)

    def _remember_deleted_json(self):
        """A savepoint begins: remember what objects whose DELETE was flushed hold, JSON values
        copied, so that rolling the savepoint back restores what they held at its start.

        The snapshot cannot tell: a deleted object may have been assigned before or after its
        DELETE, and nothing writes that (a persistent object's snapshot is exact, because the
        savepoint flushed first).
        """
        for state in self._deleted_rows:
            if state.mapper.json_columns:
                memento = Memento(state.status, state.session, state.key, state.committed, state.sequence,
                                  state.mapper.copy_values(state.obj.__dict__))
                self.undo.record_memento(state, memento)

    def _expire_stale(self, failure):
        """After a flush found that another session changed or deleted a row first
        (StaleDataError), the object it names still holds the old row, version included, and
        the natural retry would fail the same way: it is expired, so that it reloads the row's
        current values and version when next read (or get() finds the row gone)."""
        if not isinstance(failure, StaleDataError) or failure.obj is None:
            return
        state = failure.obj.__dict__.get(STATE_ATTRIBUTE)
        if state is None or state.session is not self or state.status is not PERSISTENT:
            return
        # No memento: a later rollback must not bring the stale values back.
        _expire(state)
        self.tracker.clean(state)

    def _detach_copy(self, state):
        self.identity.discard(state.key, state.obj)
        self._marked.pop(state, None)
        self._deleted_rows.pop(state, None)
        self.tracker.forget(state)
        state.move(ObjectState.DETACHED, "rollback")
        state.session = None
