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

The log does not know what a copy contains: the session gives it a ``capture`` function and
restores copies itself, because only the session knows which of its collections an object was in.
"""


class UndoLog:
    """A stack of scopes, each ``{state: memento}`` recorded at first touch."""

    def __init__(self, capture):
        self._capture = capture
        self.scopes = [{}]

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
        """Remember a given memento (for objects whose "before" is not their current look)."""
        scope = self.scopes[-1]
        if state.undo_scope is not scope:
            scope[state] = memento
            state.undo_scope = scope

    def push(self):
        """Open a scope for a savepoint."""
        self.scopes.append({})

    def release(self):
        """Fold the innermost scope into its parent: a released savepoint's work joins the transaction."""
        child = self.scopes.pop()
        parent = self.scopes[-1]
        for state, memento in child.items():
            if state not in parent:
                parent[state] = memento
            state.undo_scope = parent

    def pop(self):
        """Remove the innermost scope and return its mementos, for the caller to restore."""
        scope = self.scopes.pop() if len(self.scopes) > 1 else self._reset_root()
        parent = self.scopes[-1]
        for state in scope:
            state.undo_scope = parent if state in parent else None
        return scope

    def _reset_root(self):
        scope = self.scopes[0]
        self.scopes[0] = {}
        return scope

    def forget(self):
        """Commit: nothing before this point can be rolled back to any more."""
        for scope in self.scopes:
            scope.clear()
        self.scopes = [{}]

    def __len__(self):
        return sum(map(len, self.scopes))
