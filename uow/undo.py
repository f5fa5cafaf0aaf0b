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
does, and the cheapest to undo): each scope has a start *epoch*, every loaded object remembers
the epoch it was loaded in, and rolling a scope back expires the objects loaded since its start.

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

    def __init__(self, capture):
        self._capture = capture
        self.scopes = [{}]
        self.epoch = next(_epochs)
        self.start_epochs = [self.epoch]

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
        self.scopes.append({})
        self._new_epoch()

    def _new_epoch(self):
        self.epoch = next(_epochs)
        self.start_epochs.append(self.epoch)

    def release(self):
        """Fold the innermost scope into its parent: a released savepoint's work joins the transaction."""
        child = self.scopes.pop()
        self.start_epochs.pop()
        parent = self.scopes[-1]
        for state, memento in child.items():
            if state not in parent:
                parent[state] = memento
            state.undo_scope = parent

    def pop(self):
        """Remove the innermost scope; return its mementos and its start epoch, for the caller to restore.

        Popping the root scope leaves a fresh, empty root scope behind.
        """
        start = self.start_epochs.pop()
        if len(self.scopes) > 1:
            scope = self.scopes.pop()
        else:
            scope = self.scopes[0]
            self.scopes[0] = {}
            self._new_epoch()
        parent = self.scopes[-1]
        for state in scope:
            state.undo_scope = parent if state in parent else None
        return scope, start

    def forget(self):
        """Commit: nothing before this point can be rolled back to any more."""
        # Objects still point at the old scopes through ``undo_scope``; emptying them lets the
        # mementos go now rather than when the last of those objects does.
        for scope in self.scopes:
            scope.clear()
        self.scopes = [{}]
        self.start_epochs = []
        self._new_epoch()
