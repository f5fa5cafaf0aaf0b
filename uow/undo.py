"""The undo log: how each object looked before it was first touched in a transaction or savepoint.

Rollback in uow restores objects exactly, without SQL.  The obvious way, copying every object
when a transaction begins, costs as much as everything the session holds; the undo log instead
copies an object the *first* time anything touches it in a scope (an assignment, add, delete,
a flush writing it, a load bringing it in).  Rolling back a scope puts those copies back;
committing forgets them.  Both cost as much as what was touched, nothing more.

Scopes nest like the transaction they shadow: the root scope runs from one commit (or the
session's creation) to the next, and each savepoint pushes a scope of its own.  Releasing a
savepoint folds its copies into the enclosing scope, keeping the enclosing scope's older copy
where both have one, so that an outer rollback still goes back to the outer starting point.

Objects *loaded* inside a scope get no copy at all (a load is the commonest thing a session
does, and the cheapest to undo): every loaded object remembers the *epoch* it was loaded in.
A rollback need only expire what it could have made wrong.  An object read before anything was
written in the scope holds values the rollback does not change (the database goes back to
exactly what was read), so it keeps them, also when close() detaches it; an object read after
the scope's first write may hold what the rollback undid, so it is expired.  Each scope
therefore records the epoch of its first write (``write_epochs``), and rolling it back expires
the objects loaded at or after that epoch.

A write is anything that changed a row through the session's connection, whoever sent it (a
flush, a bulk write, an upsert, raw SQL): the log compares SQLite's count of changed rows
(``total_changes``) with the count it last saw, and opens a new epoch when it grew.  It looks
when an object is loaded and when a scope begins or ends, which is all the rule needs, since only
the epochs of loads are ever compared.  A write counts for the scope it was made in and every
scope around it; a savepoint rollback undoes its writes, so they stop counting for the enclosing
scopes (so do the session's own short savepoints: a dry run, a failed bulk write).  merge(load=False) counts as a write: its values come from the caller, not the row.

The log does not know what a copy contains: the session gives it a ``capture`` function and
restores copies itself, because only the session knows which of its collections an object was in.
"""

import itertools

# Epochs come from one counter shared by every session: an object can be loaded by one session
# and attached to another, and its load epoch must still compare correctly with the scopes of
# the session that holds it now.
_epochs = itertools.count(1)


class UndoLog:
    """A stack of scopes, each ``{state: memento}`` recorded at first touch."""

    def __init__(self, capture, rows_written):
        self._capture = capture
        self._rows_written = rows_written  # the connection's count of changed rows (total_changes)
        self.scopes = [{}]
        self.epoch = next(_epochs)
        self.start_epochs = [self.epoch]
        self.write_epochs = [None]
        self._rows_seen = rows_written()

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
        """Something the rollback cannot vouch for entered the scope: a write, or values that did
        not come from the database (merge(load=False)).  Objects loaded from now on are expired
        by a rollback of this scope or of any scope around it."""
        self.epoch = next(_epochs)
        self.write_epochs = [self.epoch if first is None else first for first in self.write_epochs]

    @property
    def depth(self):
        """0 for the root scope, 1 inside one savepoint, and so on."""
        return len(self.scopes) - 1

    def record(self, state):
        """Remember how ``state`` looks now, unless it was already remembered in this scope."""
        scope = self.scopes[-1]
        if state.undo_scope is not scope:
            scope[state] = self._capture(state)
            state.undo_scope = scope

    def record_memento(self, state, memento):
        """Remember a memento the caller built itself, unless one was already remembered in this scope.

        add() builds a transient object's memento from its values alone, more cheaply than ``capture``.
        """
        scope = self.scopes[-1]
        if state.undo_scope is not scope:
            scope[state] = memento
            state.undo_scope = scope

    def push(self):
        """Open a scope for a savepoint."""
        self.loading_epoch()  # writes before the savepoint belong to the enclosing scopes
        self.scopes.append({})
        self.write_epochs.append(None)
        self._new_epoch()

    def _new_epoch(self):
        self.epoch = next(_epochs)
        self.start_epochs.append(self.epoch)

    def release(self):
        """Fold the innermost scope into its parent: a released savepoint's work joins the transaction."""
        self.loading_epoch()  # the savepoint's writes count for the enclosing scopes too
        child = self.scopes.pop()
        self.start_epochs.pop()
        self.write_epochs.pop()
        parent = self.scopes[-1]
        for state, memento in child.items():
            if state not in parent:
                parent[state] = memento
            state.undo_scope = parent

    def pop(self):
        """Remove the innermost scope, which the database has just rolled back; return its
        mementos and the epoch of its first write (None: nothing was written in it), for the
        caller to restore.

        Popping the root scope leaves a fresh, empty root scope behind.
        """
        self.loading_epoch()
        start = self.start_epochs.pop()
        first_write = self.write_epochs.pop()
        # Writes made in this scope are undone: they no longer count for the enclosing scopes.
        self.write_epochs = [None if first is not None and first >= start else first for first in self.write_epochs]
        if len(self.scopes) > 1:
            scope = self.scopes.pop()
        else:
            scope = self.scopes[0]
            self.scopes[0] = {}
            self.write_epochs = [None]
            self._new_epoch()
        # An object is remembered as recorded in the innermost scope left that holds its memento:
        # an older scope's memento must never be overwritten (an object added before two
        # savepoints and touched only in the inner one took the inner scope's copy as its state at
        # the transaction's start, so a rollback kept it persistent with no row).
        for state in scope:
            state.undo_scope = next((held for held in reversed(self.scopes) if state in held), None)
        return scope, first_write

    def forget(self):
        """Commit: nothing before this point can be rolled back to any more."""
        # Objects still point at the old scopes through ``undo_scope``; emptying them lets the
        # mementos go now rather than when the last of those objects does.
        for scope in self.scopes:
            scope.clear()
        self.scopes = [{}]
        self.start_epochs = []
        self.write_epochs = [None]
        self._rows_seen = self._rows_written()
        self._new_epoch()
