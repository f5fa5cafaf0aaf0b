"""The objects a program holds for a transaction or a savepoint: each ends once, also as a ``with`` block.

``session.begin()`` returns a :class:`SessionTransaction`; ``begin_nested()`` and
``savepoint(name)`` a :class:`NestedTransaction`; ``uow.transaction(connection)`` a
``DirectTransaction`` (``directtransaction``).  All follow :class:`Scope`'s rule for how a
``with`` block ends them.  They live apart from the stack that keeps the database and the undo
scopes in step (``transaction``) because the holder's side -- end it once, by commit or rollback,
and never end someone else's work -- is the same for every kind, and reads without the state
machine behind it.  Each object asks whoever opened it to do the ending.
"""

from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, Self

from .errors import TransactionError
from .executor import Savepoint


class Scope:
    """What ``begin()`` and ``begin_nested()`` return: one transaction or savepoint, which ends once.

    As a context manager it ends *this* scope with the block: committed (released) on success,
    rolled back on an exception, which propagates; if the commit fails, the scope is rolled back
    and the commit's error propagates, so a block never leaves its scope open.  A scope ended
    inside the block is left alone; the session stays open (``with Session(...)`` closes one).
    """

    is_active = True
    # How each kind of scope ends (the session's commit and rollback, or RELEASE and ROLLBACK TO):
    commit: Callable[[], None]
    rollback: Callable[[], None]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, error_type: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> Literal[False]:
        if not self.is_active:
            return False
        if error_type is not None:
            self.rollback()
            return False
        try:
            self.commit()
        except BaseException:
            if self.is_active:
                self.rollback()
            raise
        return False


class SessionTransaction(Scope):
    """The session's transaction, returned by ``session.begin()`` and ``session.get_transaction()``.

    ::

        with session.begin():
            session.add(user)       # COMMIT when the block ends, ROLLBACK if it raises
        session.get(User, 1)        # the session is still open

    :meth:`commit` and :meth:`rollback` are the session's (its public methods); the object only
    remembers which transaction it stands for, so that ending it twice, or after the session moved
    on to the next transaction, does nothing rather than ending someone else's work.
    """

    def __init__(self, session: Any) -> None:
        self.session = session
        self.is_active = True

    def commit(self) -> None:
        """Flush and COMMIT this transaction (session.commit())."""
        self._check_current("commit")
        self.session.commit()

    def rollback(self) -> None:
        """ROLLBACK this transaction and restore the objects (session.rollback())."""
        self._check_current("rollback")
        self.session.rollback()

    def _check_current(self, operation):
        if not self.is_active:
            raise TransactionError(f"{operation}(): {self!r} has already ended")

    def __repr__(self):
        return f"<SessionTransaction {'active' if self.is_active else 'ended'}>"


class NestedTransaction(Scope):
    """A savepoint, returned by ``session.begin_nested()``: one level of the stack.

    Use it as a context manager (released on success, rolled back on error; see ``Scope``) or
    call :meth:`commit` / :meth:`rollback` yourself.  Rolling back puts the database *and* every
    object the session touched since the savepoint back as they were when it began.

    ``end`` is the one thing it asks of the session that opened it: ``end(nested, commit)``
    releases it (``commit=True``) or rolls it back, with the flush, the events and the objects
    that go with that.
    """

    def __init__(self, savepoint: Savepoint, depth: int, undo: Any,
                 end: Callable[["NestedTransaction", bool], None]) -> None:
        self.savepoint = savepoint
        self.name = savepoint.name
        self.depth = depth
        self.undo = undo  # this level's undo scope
        self.is_active = True
        self._end = end

    def commit(self) -> None:
        """RELEASE the savepoint: its work becomes part of the enclosing transaction."""
        self._end(self, True)

    def rollback(self) -> None:
        """ROLLBACK TO the savepoint and restore the session as it was when the savepoint began."""
        self._end(self, False)

    def __repr__(self):
        status = "active" if self.is_active else "ended"
        return f"<NestedTransaction {self.name} depth={self.depth} {status}>"
