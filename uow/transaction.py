"""The database side of a session's transaction: BEGIN, SAVEPOINTs, COMMIT and ROLLBACK.

uow sends every transaction statement itself (see ``executor``).  The design is peewee's, nearly
as is: depth 0 is ``BEGIN`` / ``COMMIT`` / ``ROLLBACK``; each level below is a
``SAVEPOINT`` / ``RELEASE`` / ``ROLLBACK TO`` with a name uow generates (``uow_sp_1``, ...).
A savepoint is only ever opened inside a BEGIN: SQLite would otherwise start a transaction for
it that its RELEASE commits, and an outer rollback could no longer undo it.

The transaction is a small state machine with its moves declared in ``MOVES``::

    IDLE --begin--> ACTIVE --commit/rollback--> IDLE
                    ACTIVE --a flush fails--> FAILED --rollback--> IDLE
    any --close--> CLOSED

An operation that does not fit the current state raises an error that says which operation,
which state, and what to do.  The memory side (putting objects back on rollback) is the
session's job, through the undo log; this module only keeps the database in step.
"""

import enum

from .errors import PendingRollbackError, SessionClosedError, TransactionError

BEGIN_MODES = ("DEFERRED", "IMMEDIATE", "EXCLUSIVE")


class TransactionState(enum.Enum):
    IDLE = "idle"
    ACTIVE = "active"
    FAILED = "failed"
    CLOSED = "closed"


MOVES = {
    TransactionState.IDLE: {TransactionState.ACTIVE, TransactionState.CLOSED},
    TransactionState.ACTIVE: {TransactionState.IDLE, TransactionState.FAILED, TransactionState.CLOSED},
    TransactionState.FAILED: {TransactionState.IDLE, TransactionState.CLOSED},
    TransactionState.CLOSED: set(),
}


class NestedTransaction:
    """A savepoint, returned by ``session.begin_nested()``.

    Use it as a context manager (released on success, rolled back on error) or call
    :meth:`commit` / :meth:`rollback` yourself.  Rolling back puts the database *and* every
    object the session touched since the savepoint back as they were when it began.
    """

    def __init__(self, session, name, depth):
        self.session = session
        self.name = name
        self.depth = depth
        self.is_active = True

    def commit(self):
        """RELEASE the savepoint: its work becomes part of the enclosing transaction."""
        self.session._end_nested(self, commit=True)

    def rollback(self):
        """ROLLBACK TO the savepoint and restore the session as it was when the savepoint began."""
        self.session._end_nested(self, commit=False)

    def __enter__(self):
        return self

    def __exit__(self, error_type, error, traceback):
        if not self.is_active:
            return False
        if error_type is None:
            self.commit()
        else:
            self.rollback()
        return False

    def __repr__(self):
        status = "active" if self.is_active else "ended"
        return f"<NestedTransaction {self.name} depth={self.depth} {status}>"


class Transaction:
    """The state of the session's database transaction and its stack of savepoints."""

    def __init__(self, executor):
        self.executor = executor
        self.state = TransactionState.IDLE
        self.mode = None
        self.savepoints = []
        self.failure = None
        self._savepoint_counter = 0

    def _move(self, new_state, operation):
        if new_state not in MOVES[self.state]:
            raise TransactionError(f"{operation}() is not allowed while the transaction is {self.state.value}")
        self.state = new_state

    def check_usable(self, operation):
        """Raise the error that explains why ``operation`` cannot run now, if it cannot."""
        if self.state is TransactionState.CLOSED:
            raise SessionClosedError(f"{operation}(): this session was closed; create a new Session")
        if self.state is TransactionState.FAILED:
            raise PendingRollbackError(
                f"{operation}(): a previous flush failed ({self.failure}); the database and the objects are "
                f"as they were before that flush. Call session.rollback() to start over "
                f"(or fix the cause and retry after rollback())",
                original=self.failure,
            )

    @property
    def active(self):
        return self.state is TransactionState.ACTIVE

    def begin(self, mode="DEFERRED"):
        """Send BEGIN; ``mode`` is one of SQLite's DEFERRED, IMMEDIATE, EXCLUSIVE."""
        mode = mode.upper()
        if mode not in BEGIN_MODES:
            raise TransactionError(f"begin mode {mode!r} is not one of SQLite's {', '.join(BEGIN_MODES)}")
        if self.state is TransactionState.ACTIVE:
            raise TransactionError(
                "begin(): a transaction is already in progress; commit() or rollback() it first, "
                "or use begin_nested() for a savepoint inside it"
            )
        self.check_usable("begin")
        if self.executor.in_transaction:
            raise TransactionError(
                "begin(): the connection already has a transaction open that this session did not begin "
                "(another Session, or code using the connection directly); finish it first — "
                "one session per connection at a time"
            )
        self.executor.execute(f"BEGIN {mode}")
        self._move(TransactionState.ACTIVE, "begin")
        self.mode = mode

    def open_savepoint(self, session):
        self._savepoint_counter += 1
        name = f"uow_sp_{self._savepoint_counter}"
        self.executor.execute(f'SAVEPOINT "{name}"')
        nested = NestedTransaction(session, name, len(self.savepoints) + 1)
        self.savepoints.append(nested)
        return nested

    def check_innermost(self, nested, operation):
        if not nested.is_active:
            raise TransactionError(f"{operation}(): {nested!r} has already ended")
        if not self.savepoints or self.savepoints[-1] is not nested:
            raise TransactionError(
                f"{operation}(): {nested!r} is not the innermost savepoint; end "
                f"{self.savepoints[-1]!r} first"
            )

    def release_savepoint(self, nested):
        self.executor.execute(f'RELEASE "{nested.name}"')
        self.savepoints.pop()
        nested.is_active = False

    def rollback_to_savepoint(self, nested):
        if self.executor.in_transaction:
            self.executor.execute(f'ROLLBACK TO "{nested.name}"')
            self.executor.execute(f'RELEASE "{nested.name}"')
        self.savepoints.pop()
        nested.is_active = False

    def commit(self):
        """Send COMMIT.  If SQLite refuses (a lock, a deferred constraint), the transaction stays open."""
        self.executor.execute("COMMIT")
        self._end()

    def rollback(self):
        """Send ROLLBACK unless SQLite already rolled back by itself (an interrupt, a full disk)."""
        if self.executor.in_transaction:
            self.executor.execute("ROLLBACK")
        self._end()

    def fail(self, error):
        """A flush failed: refuse everything but rollback() until it is called."""
        self.failure = error
        if self.state is TransactionState.ACTIVE:
            self._move(TransactionState.FAILED, "flush")

    def close(self):
        if self.executor.in_transaction:
            self.executor.execute("ROLLBACK")
        self._end()
        self.state = TransactionState.CLOSED

    def _end(self):
        for nested in self.savepoints:
            nested.is_active = False
        self.savepoints = []
        self.failure = None
        self.mode = None
        if self.state is not TransactionState.CLOSED:
            self.state = TransactionState.IDLE
