"""The session's guard: is this call allowed now, and failing the session when a write went wrong.

Every public operation of a session first asks the guard (:meth:`Guard.check`): a session
belongs to the thread that made it, and after a failed write or close() it refuses everything but
rollback() (the transaction says why: ``transaction``).  Operations on one object ask whether it
belongs to this session (:meth:`Guard.own_state`, :meth:`Guard.persistent_state`).

When a write fails, the part that wrote asks the guard to fail the session (:meth:`Guard.fail`),
and before writing it asks whether SQLite still has the transaction this session began
(:meth:`Guard.refuse_lost_transaction`; ``with guard.writing(...)`` does both around a write
outside a flush).  The session, its parts and the features call it; it calls only the
transaction and the executor.
"""

import contextlib
import threading

from .errors import InvalidStateError, TransactionError, WrongThreadError
from .mapper import mapper_of_object
from .states import PERSISTENT, STATE_ATTRIBUTE, TRANSIENT
from .transaction import ENDED_UNSEEN, ROLLED_BACK, TransactionState

_get_ident = threading.get_ident


class Guard:
    """The checks every session operation makes, and the session's failed state (see the module
    docstring).  ``owner`` is the session whose objects :meth:`own_state` accepts."""

    def __init__(self, owner, transaction, executor):
        self.owner = owner
        self.transaction = transaction
        self.executor = executor
        self.owner_thread = _get_ident()  # the thread the session belongs to
        # The owner's thread id while the session is usable, None while it is failed or closed:
        # the hot paths (get, attribute set) decide "go on or explain the problem" with one comparison.
        self.ready_thread: int | None = self.owner_thread

    def check(self, operation):
        """Refuse ``operation`` from another thread, or while the session is failed or closed."""
        if _get_ident() != self.owner_thread:
            raise WrongThreadError(
                f"{operation}(): this session belongs to thread {self.owner_thread}, but was called from "
                f"thread {_get_ident()}; create one session per thread"
            )
        state = self.transaction.state
        if state is TransactionState.FAILED or state is TransactionState.CLOSED:
            self.transaction.check_usable(operation)

    def check_rollback(self):
        """rollback() is refused only from another thread or after close(): it is the way out of
        a failed session."""
        if _get_ident() != self.owner_thread:
            self.check("rollback")
        if self.transaction.state is TransactionState.CLOSED:
            self.transaction.check_usable("rollback")

    def own_state(self, obj, operation):
        """The state of ``obj``, which must belong to this session."""
        mapper_of_object(obj, operation)
        state = obj.__dict__.get(STATE_ATTRIBUTE)
        if state is None or state.session is not self.owner:
            status = TRANSIENT if state is None else state.status
            where = "another session" if state is not None and state.session is not None else "no session"
            raise InvalidStateError(
                f"{operation}(): {obj!r} is {status.value} and belongs to {where}; "
                f"it must be in this session (add() it first)"
            )
        return state

    def persistent_state(self, obj, operation):
        """The state of ``obj``, which must be persistent in this session."""
        state = self.own_state(obj, operation)
        if state.status is not PERSISTENT:
            raise InvalidStateError(
                f"{operation}(): {obj!r} is {state.status.value}; only persistent objects have a row to "
                f"{operation} from"
            )
        return state

    def hand_over(self, thread: int) -> None:
        """From now on the session belongs to ``thread``.  Only ``features.asyncio`` moves it: between
        calls an AsyncSession's objects belong to the event loop's thread, during one to its worker."""
        self.owner_thread = thread
        if self.ready_thread is not None:
            self.ready_thread = thread

    def usable_again(self):
        """A rollback (of the transaction, or of the savepoint a failure happened in) undid the
        failure: the fast paths may go on again."""
        self.ready_thread = self.owner_thread

    def closed(self):
        """The session was closed: every fast path now goes through :meth:`check`, which refuses."""
        self.ready_thread = None

    def fail(self, error, write="flush", aftermath=None):
        """A write failed: refuse everything but rollback() until it is called (see ``transaction``).

        The refusal says what SQLite did: whether it kept the transaction (only the failed write
        was undone) or ended the whole of it by itself, earlier flushes included; ``aftermath``
        says it when the caller knows better (the write's statements stayed).
        """
        if aftermath is None and not self.executor.in_transaction:
            aftermath = ROLLED_BACK
        self.transaction.fail(error, write, aftermath=aftermath)
        self.ready_thread = None

    def fail_if_transaction_lost(self, error, write):
        """The one check every path that writes makes when it fails.

        A failed upsert, bulk write, dry run or raw statement is undone by SQLite (or by its own
        savepoint) and the transaction goes on, unless SQLite rolled the whole transaction back by
        itself (a trigger's RAISE(ROLLBACK), a full disk, an interrupt): then objects flushed
        earlier hold rows that are gone, and a later write would run outside any transaction and
        be committed at once.  Only rollback() puts the session back in step, so the session
        refuses other work until it is called, as after a failed flush.
        """
        if self.transaction.active and not self.executor.in_transaction:
            self.fail(error, write)

    def refuse_lost_transaction(self, write):
        """Before writing: the transaction this session began must still be open in SQLite.

        SQLite can end it unseen (the raw connection, a statement whose error was caught by the
        caller).  Writing then would run outside any transaction, committed at once; the session
        fails instead, as if the write had failed, and nothing is sent.
        """
        if self.transaction.active and not self.executor.in_transaction:
            self.executor.check_open()  # a connection closed underneath has its own error
            self.transaction.fail(TransactionError(
                "SQLite has no transaction open although this session began one: SQLite rolled it back by "
                "itself, or the connection was used directly"), write, aftermath=ENDED_UNSEEN)
            self.ready_thread = None
            self.transaction.check_usable(write)

    @contextlib.contextmanager
    def writing(self, write):
        """Around a write outside a flush (upsert, bulk writes, raw SQL): refuse to write when the
        transaction is gone, and notice when the write made SQLite end it."""
        self.refuse_lost_transaction(write)
        try:
            yield
        except BaseException as error:
            self.fail_if_transaction_lost(error, write)
            raise
