"""Exact rollback: the undo log, and how a rollback puts objects back from it, without SQL.

The rule, in the same words as the README: rolling back a level of the transaction (the
transaction since the last commit, or a savepoint) puts every object the session touched in it
back to exactly the state and values it had when the level began; objects first *loaded* in it
after its first write are expired instead, since their values may include what the rollback
undid (objects read before anything was written keep their values: the database goes back to
exactly what they read); loaded collections are dropped and reload on next access when the
rollback undid a write or put back an object of their class that the level changed, and
otherwise stay (an object made transient again keeps its own); an object whose row a failed
flush found changed or deleted by another session (StaleDataError) is expired, so that a retry
reads the row as it is now; and an object since moved to another session is that session's.

**Mementos at first touch.**  Copying every object when a transaction begins would cost as much
as everything the session holds.  Instead, each level of the transaction stack (see
``transaction``: level 0 runs from one commit to the next, each savepoint is a level) owns an
:class:`UndoScope`, and an object is copied into the innermost level's scope the *first* time
anything touches it there (an assignment, add, delete, a flush writing it).  Rolling back a level
puts those copies back; releasing a savepoint folds its copies into the enclosing level's scope,
keeping the older copy where both have one; committing forgets them.  Each costs as much as what
was touched, nothing more.

**Epochs for loads.**  Objects *loaded* get no copy (a load is the commonest thing a session does,
and the cheapest to undo): each remembers the *epoch* it was loaded in.  The log keeps the epochs
of the writes still in effect (``writes``); a scope's first write is the first of them at or after
the epoch the scope began in, and rolling a scope back expires the objects loaded at or after it.
A write is anything that changed a row through the session's connection, whoever sent it (a
flush, a bulk write, an upsert, raw SQL): the log compares SQLite's count of changed rows
(``total_changes``) with the count it last saw, when an object is loaded and when a level begins
or ends, which is all the rule needs.  A rolled-back savepoint's writes stop counting (so do the
session's own short savepoints: a dry run, a failed bulk write).  merge(load=False) counts as a
write: its values come from the caller, not the row.
"""

import itertools

from .errors import StaleDataError
from .mementos import Memento, expanded, memento_of
from .sentinels import NOT_LOADED
from .states import DELETED, DETACHED, PENDING, PERSISTENT, STATE_ATTRIBUTE, TRANSIENT, in_entry_order

# Epochs come from one counter shared by every session: an object can be loaded by one session
# and attached to another, and its load epoch must still compare correctly with the scopes of
# the session that holds it now.
_epochs = itertools.count(1)


class UndoScope:
    """The undo scope of one level of the transaction stack: ``{state: Memento}`` recorded at first
    touch, and ``start``, the epoch the level began in (0 for level 0: since the last commit).

    Whether an object was recorded in a scope is ``state in mementos``, asked before each record
    (the object keeps no pointer to its scope: that slot cost every loaded object 8 bytes)."""

    __slots__ = ("mementos", "start")

    def __init__(self, start=0):
        self.mementos = {}
        self.start = start

    def absorb(self, child):
        """A released savepoint's scope joins this one; where both hold a memento, this (older)
        one is kept, so that rolling this level back still goes back to where it began."""
        mementos = self.mementos
        for state, memento in child.mementos.items():
            if state not in mementos:
                mementos[state] = memento


class UndoLog:
    """The session's part that records mementos and puts them back (see the module docstring).

    ``levels`` is the transaction stack (``Transaction.levels``); mementos go to its innermost level.
    """

    def __init__(self, session, levels):
        self.session = session
        self.registers = session.registers
        self.tracker = session.tracker
        # Whether an object recorded was a change-tracking candidate, or marked for deletion: the
        # memento says what its status cannot.
        self.candidates = session.tracker.candidates
        self.marked = session.registers.marked
        self.levels = levels
        self._rows_written = session.executor.rows_written  # total_changes of the connection
        self._rows_seen = self._rows_written()
        self.epoch = next(_epochs)
        self.writes = []  # the epochs of the writes not rolled back, oldest first

    # -- recording -------------------------------------------------------------------------

    def record(self, state):
        """Remember how ``state`` looks now, unless the innermost scope already remembers it.

        The fast path: the first touch of a *clean* loaded object in a scope -- the commonest
        thing recorded, by an assignment or a delete() -- is remembered as a clean memento, the
        tuple ``(key, committed, sequence)`` (see ``mementos.expanded``), built here without a
        call: a persistent object of this session with a snapshot, of a class without References
        (a cached reference is not in the snapshot), neither a change-tracking candidate nor marked
        for deletion, so that its snapshot holds exactly its column values.  Any other object
        takes the general path, ``mementos.memento_of``.
        """
        mementos = self.levels[-1].undo.mementos
        if state not in mementos:
            if state.status is PERSISTENT and state.session is self.session and state.committed is not None \
                    and not state.mapper.references and state not in self.candidates \
                    and state not in self.marked:
                mementos[state] = (state.key, state.committed, state.sequence)
            else:
                mementos[state] = memento_of(state, self.session, self.candidates, self.marked)

    def record_all(self, states):
        """:meth:`record` each of ``states``, in one call (a flush applies a batch of thousands)."""
        mementos = self.levels[-1].undo.mementos
        session, candidates, marked = self.session, self.candidates, self.marked
        for state in states:
            if state not in mementos:
                mementos[state] = memento_of(state, session, candidates, marked)

    def record_memento(self, state, memento):
        """record() with a memento the caller built itself (add() builds a transient object's from
        its values alone, more cheaply than ``mementos.memento_of``)."""
        mementos = self.levels[-1].undo.mementos
        if state not in mementos:
            mementos[state] = memento

    def record_transient(self, state, values):
        """record() of an object in no session (add() of a new object), whose memento is just a
        copy of its values: kept as the dict itself, a compact memento (see ``mementos.expanded``)."""
        mementos = self.levels[-1].undo.mementos
        if state not in mementos:
            mementos[state] = values

    # -- epochs ----------------------------------------------------------------------------

    def loading_epoch(self):
        """The epoch to stamp on objects loaded now (a new one if rows were written since the last look)."""
        written = self._rows_written()
        if written != self._rows_seen:
            self._rows_seen = written
            self.mark_written()
        return self.epoch

    def writes_rolled_back(self):
        """The rows written since the last look were rolled back to a savepoint of the session's
        own (a dry run, a failed bulk write): they do not count.  (Call loading_epoch() before
        that savepoint, so that the writes before it still do.)"""
        self._rows_seen = self._rows_written()

    def mark_written(self):
        """Something the rollback cannot vouch for entered the transaction: a write, or values that
        did not come from the database (merge(load=False)).  Objects loaded from now on are
        expired by a rollback of any level open now."""
        self.epoch = next(_epochs)
        self.writes.append(self.epoch)

    def new_scope(self):
        """The undo scope of a savepoint about to open (writes before it belong to the enclosing levels)."""
        self.loading_epoch()
        self.epoch = next(_epochs)
        return UndoScope(self.epoch)

    def remember_deleted_json(self):
        """A savepoint just opened: remember what objects whose DELETE was flushed hold, JSON values
        copied, so that rolling the savepoint back restores what they held at its start.

        The snapshot cannot tell: a deleted object may have been assigned before or after its
        DELETE, and nothing writes that (a persistent object's snapshot is exact, because the
        savepoint flushed first).
        """
        for state in self.registers.deleted_rows:
            if state.mapper.json_columns:
                self.record_memento(state, Memento(state.status, state.session, state.key, state.committed,
                                                   state.sequence, state.mapper.copy_values(state.obj.__dict__),
                                                   precaution=True))

    # -- ending levels ---------------------------------------------------------------------

    def forget(self, levels):
        """The transaction committed: nothing in ``levels`` (the stack as it was) can be rolled back to."""
        # (Emptying the old scopes lets the mementos go now, whoever still holds a scope.)
        for level in levels:
            level.undo.mementos.clear()
        self._start_afresh()

    def roll_back(self, levels, failure):
        """The database rolled the whole transaction back: put back every level of ``levels`` (the
        stack as it was), innermost first, then expire the object a StaleDataError named."""
        for level in reversed(levels):
            self.roll_back_scope(level.undo)
        self._start_afresh()
        self._expire_stale(failure)

    def _start_afresh(self):
        self.levels[0].undo = UndoScope()
        self.writes = []
        self._rows_seen = self._rows_written()
        self.epoch = next(_epochs)

    def roll_back_scope(self, scope):
        """The database rolled the level of ``scope`` back (it is off the stack): restore its objects."""
        self.loading_epoch()
        first_write = next((epoch for epoch in self.writes if epoch >= scope.start), None)
        # Writes made in this level are undone: they no longer count for the enclosing levels.
        self.writes = [epoch for epoch in self.writes if epoch < scope.start]
        self._restore(scope.mementos, first_write)

    # -- putting objects back --------------------------------------------------------------

    def _restore(self, mementos, first_write):
        """Put every object back as its memento says, then expire what the rollback may have made
        wrong: objects loaded since the scope's first write (``first_write``, None when nothing was
        written), and the loaded collections that may list the wrong objects now.

        An object that has since moved to another session is that session's now: it is left alone.
        """
        session = self.session
        mementos = {state: expanded(memento, session) for state, memento in mementos.items()
                    if state.session is None or state.session is session}
        # An object the scope did not change is no reason to drop collections (its memento may
        # be only a precaution: see remember_deleted_json).
        changed = {state.mapper.cls for state, memento in mementos.items()
                   if not memento.precaution or _differs(state, memento)}
        for state in mementos:
            self.registers.unindex(state)
        for state, memento in mementos.items():
            _put_back(state, memento)
        # Before _reenter: a copy of a row it detaches was the session's when changed in place.
        self._restore_json_changed_in_place(mementos)
        detached = self._reenter(mementos)
        held = [obj.__dict__[STATE_ATTRIBUTE] for obj in session.identity.values()] + detached
        if first_write is not None:
            for state in held:
                if state.loaded_epoch >= first_write:
                    _expire(state)
        # Loaded collections are views of other objects' references.  A rollback that undid a
        # write, or put back an object of the collection's class, may have changed them: they are
        # dropped, and reload (through the identity map) when next read.  Otherwise they stay,
        # as cached references do.
        changed_classes = None if first_write is not None else changed
        for state in held + list(self.registers.pending):
            values = state.obj.__dict__
            for collection in state.mapper.collections:
                if changed_classes is None or collection.target in changed_classes:
                    values.pop(collection.name, None)

    def _reenter(self, mementos):
        """Put each restored object back in the session's collections its memento names; return
        the copies detached because another copy of their row was held first."""
        session = self.session
        detached = []
        for state, memento in mementos.items():
            if memento.session is not session:
                continue
            if memento.status is PENDING:
                self.registers.pending[state] = None
            elif memento.status is PERSISTENT:
                held = session.identity.holder(state)
                if held is not None and held is not state.obj:
                    # Two copies of one row: one expunged, the same row loaded again, both in the
                    # rolled-back scope.  The copy that entered the session first wins (it is the one
                    # held at the start of the scope, if either was); the other is detached.
                    held_state = held.__dict__[STATE_ATTRIBUTE]
                    loser = state if held_state.sequence < state.sequence else held_state
                    self._detach_copy(loser)
                    detached.append(loser)
                    if loser is state:
                        continue
                self.registers.hold(state)
                if memento.marked:
                    self.registers.marked[state] = None
                if memento.candidate:
                    session.tracker.note_assignment(state)
            elif memento.status is DELETED:
                self.registers.deleted_rows[state] = None
        if mementos:  # pending and marked objects in session order, which flushes rely on
            _sort_by_sequence(self.registers.pending)
            _sort_by_sequence(self.registers.marked)
        return detached

    def _restore_json_changed_in_place(self, mementos):
        """A JSON value changed in place touched nothing the undo log could see; its snapshot (JSON
        text) is what the object held when the scope began, so that is put back.  (Objects whose
        DELETE was flushed are not watched: their mementos hold their values.)"""
        for state in self.session.tracker.watched:
            if state in mementos or state.committed is None:
                continue
            values = state.obj.__dict__
            for column in state.mapper.json_columns:
                text = state.committed[column.index]
                if isinstance(text, str) and column.type.to_db(values.get(column.name)) != text:
                    values[column.name] = column.type.from_db(text)

    def _expire_stale(self, failure):
        """After a flush found that another session changed or deleted a row first
        (StaleDataError), the object it names still holds the old row, version included, and
        the natural retry would fail the same way: it is expired, so that it reloads the row's
        current values and version when next read (or get() finds the row gone)."""
        if not isinstance(failure, StaleDataError) or failure.obj is None:
            return
        state = failure.obj.__dict__.get(STATE_ATTRIBUTE)
        if state is None or state.session is not self.session or state.status is not PERSISTENT:
            return
        # No memento: a later rollback must not bring the stale values back.
        _expire(state)
        self.session.tracker.clean(state)

    def _detach_copy(self, state):
        session = self.session
        session.identity.discard(state)
        self.registers.marked.pop(state, None)
        self.registers.causes.pop(state, None)
        self.registers.deleted_rows.pop(state, None)
        session.tracker.forget(state)
        state.move(DETACHED, "rollback")
        state.session = None


def _put_back(state, memento):
    """Give ``state`` the values, status, key and snapshot its memento holds."""
    values = state.obj.__dict__
    saved = memento.values if memento.values is not None else _values_of_snapshot(state.mapper, memento.committed)
    for name in state.mapper.restorable_names:
        values.pop(name, None)
        if name in saved:
            values[name] = saved[name]
    if memento.status is TRANSIENT:  # no row to reload it from: a collection a rollback dropped comes back
        for collection in state.mapper.collections:
            if collection.name not in values and collection.name in saved:
                values[collection.name] = saved[collection.name]
    state.status = memento.status
    state.session = memento.session
    state.row_deleted = False  # an object whose row is known gone never enters a scope (add() refuses it)
    state.key = memento.key
    state.committed = memento.committed
    state.sequence = memento.sequence


def _differs(state, memento):
    """Whether ``state`` is no longer as ``memento`` (one holding values) recorded it: status, key,
    or a value, JSON ones compared as the text they are written as (1 and True differ there)."""
    if state.status is not memento.status or state.key != memento.key:
        return True
    values = state.obj.__dict__
    saved = memento.values
    json_columns = {column.name: column for column in state.mapper.json_columns}
    for name in state.mapper.restorable_names:
        if (name in values) != (name in saved):
            return True
        if name not in values:
            continue
        mine, theirs = values[name], saved[name]
        column = json_columns.get(name)
        if column is not None:
            if column.type.to_db(mine) != column.type.to_db(theirs):
                return True
        elif mine is not theirs and (type(mine) is not type(theirs) or repr(mine) != repr(theirs)):
            return True
    return False


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


def _sort_by_sequence(table):
    """Reorder ``{state: ...}`` in place by the order the objects entered the session."""
    items = [(state, table[state]) for state in in_entry_order(table)]
    table.clear()
    table.update(items)
