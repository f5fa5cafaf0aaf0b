"""Transactions and savepoints: one stack of levels, each owning its undo scope.

uow sends every transaction statement itself (see ``executor``).  The design is peewee's, nearly
as is: ``Transaction.levels`` is the one stack.  Level 0 is the unit of work since the last
commit: ``BEGIN`` / ``COMMIT`` / ``ROLLBACK`` (its BEGIN may not have been sent yet).  Each deeper
level is a savepoint, a :class:`NestedTransaction` (``SAVEPOINT`` / ``RELEASE`` / ``ROLLBACK TO``,
sent by ``executor.Savepoint``, named ``uow_sp_1``, ... or as the user named it with
``session.savepoint(name)``), only ever opened inside a BEGIN: SQLite
would otherwise start a transaction for it that its RELEASE commits.  Every level owns its undo
scope (``level.undo``, see ``rollback``), so its database side and its memory side begin and end
together: releasing a savepoint folds its scope into the enclosing one; rolling it back hands its
scope to the session to restore.

The transaction is a small state machine with its moves declared in ``MOVES``::

    IDLE --begin--> ACTIVE --commit/rollback--> IDLE
    IDLE or ACTIVE --a flush fails--> FAILED --rollback--> IDLE
    FAILED --rollback of the savepoint the failure happened in--> ACTIVE
    any --close--> CLOSED

(A bulk write fails the transaction too, when SQLite rolled the whole of it back.)  Every move
goes through ``Transaction._move``, which refuses one the table does not list; an operation that
does not fit the current state raises an error that says which operation, which state, and what
to do.  Putting objects back is ``rollback``'s job; this module keeps the stack and the database
in step.  The objects a program holds for the transaction and its savepoints, and how a ``with``
block ends them, are ``transactionscopes``'.
"""

import enum
import sqlite3
from typing import Any

from .errors import PendingRollbackError, SessionClosedError, TransactionError
from .executor import Savepoint
from .rollback import UndoScope
from .transactionrules import check_mode, check_unsupported, commit_failed, enter_read_only, leave_read_only
# The objects a program holds for the transaction and each savepoint (importable from here too):
from .transactionscopes import NestedTransaction, SessionTransaction

# What a refusal after a failed write says it left, when that is more than the failed write undone.
ROLLED_BACK = ("SQLite rolled back the whole transaction, so earlier flushes are undone too (the objects "
               "still show them until rollback())")
ENDED_UNSEEN = ("it ended without this session (rolled back, or committed through the connection), so the work "
                "of earlier flushes is no longer in it; rollback() puts the objects back as they were at the "
                "last commit")
STATEMENTS_STAYED = ("its statements had all run when the error arrived, so the transaction holds them but the "
                     "objects do not (all) show them; rollback() undoes them")
SAVEPOINT_LOST = ("SQL sent on the connection directly had released the savepoint or rolled back past it, so "
                  "what the database holds is unknown to the session; rollback() puts the objects back as they "
                  "were at the last commit")


class TransactionState(enum.Enum):
    """Where the session's transaction is; ``MOVES`` lists the states each one can move to."""

    IDLE = "idle"
    ACTIVE = "active"
    FAILED = "failed"
    CLOSED = "closed"


MOVES = {
    TransactionState.IDLE: {TransactionState.ACTIVE, TransactionState.FAILED, TransactionState.CLOSED},
    TransactionState.ACTIVE: {TransactionState.IDLE, TransactionState.FAILED, TransactionState.CLOSED},
    # FAILED -> ACTIVE: rolling back the savepoint a flush failed in (see rollback_to_savepoint).
    TransactionState.FAILED: {TransactionState.IDLE, TransactionState.ACTIVE, TransactionState.CLOSED},
    TransactionState.CLOSED: set(),
}


class Level:
    """Level 0 of the stack: the unit of work since the last commit, and its undo scope."""

    def __init__(self, undo):
        self.undo = undo


class Transaction:
    """The state of the session's database transaction, and the stack of its levels."""

    def __init__(self, executor, session):
        self.executor = executor
        self.session = session
        self.state = TransactionState.IDLE
        self.scope: Any = None  # the SessionTransaction of the transaction begun, while it lasts
        # The one stack (a Level, then a NestedTransaction per savepoint); changed in place, never replaced:
        self.levels: list[Any] = [Level(UndoScope())]
        self.failure = None
        self.failed_write = None
        self.aftermath = None
        self._savepoint_counter = 0
        self.default_mode = None
        self.default_read_only = False
        self.autobegin = True  # (configure() sets the session's option)
        self.read_only = False
        self.mode = None  # the mode of the BEGIN sent last: DEFERRED holds no write lock until it writes
        self._query_only_before = None

    def configure(self, begin_mode=None, read_only=False, isolation_level=None, deferrable=None, autobegin=True):
        """Check and keep the session's transaction options (see Session)."""
        self.default_mode = check_mode(begin_mode) if begin_mode is not None else None
        check_unsupported(isolation_level, deferrable)
        self.default_read_only = bool(read_only)
        self.autobegin = bool(autobegin)

    def check_autobegin(self, operation):
        """Before a transaction begins by itself (a read, a flush): refused when autobegin is off."""
        if not self.autobegin:
            raise TransactionError(
                f"{operation}: this session was made with autobegin=False and no transaction is begun; "
                f"call session.begin() first (or use 'with session.begin():')"
            )

    def _move(self, new_state, operation):
        if new_state not in MOVES[self.state]:
            raise TransactionError(f"{operation}() is not allowed while the transaction is {self.state.value}")
        if self.state is TransactionState.IDLE and new_state is not TransactionState.CLOSED:
            self.scope = SessionTransaction(self.session)
        elif new_state is TransactionState.IDLE or new_state is TransactionState.CLOSED:
            if self.scope is not None:
                self.scope.is_active = False
                self.scope = None
        self.state = new_state

    def check_usable(self, operation):
        """Raise the error that explains why ``operation`` cannot run now, if it cannot."""
        if self.state is TransactionState.CLOSED:
            raise SessionClosedError(f"{operation}(): this session was closed; create a new Session")
        if self.state is TransactionState.FAILED:
            if self.aftermath:
                where = self.aftermath
            else:  # a flush, undone by its own savepoint
                where = "the database and the objects are as they were before that flush"
            raise PendingRollbackError(
                f"{operation}(): a previous {self.failed_write} failed ({self.failure}); {where}. "
                f"Call session.rollback() to start over (or fix the cause and retry after rollback())",
                original=self.failure,
            )

    @property
    def active(self):
        return self.state is TransactionState.ACTIVE

    def begin(self, mode=None, for_writing=False, read_only=None, isolation_level=None, deferrable=None):
        """Send BEGIN.

        The mode is, in order of precedence: ``mode``; the session's ``begin_mode``; IMMEDIATE
        when the transaction begins in order to write (a flush), because a DEFERRED transaction
        that read first cannot wait for the write lock and fails at once with "database is
        locked"; otherwise DEFERRED, which lets readers run side by side.
        """
        check_unsupported(isolation_level, deferrable)
        if mode is not None:
            mode = check_mode(mode)
        else:
            mode = self.default_mode or ("IMMEDIATE" if for_writing else "DEFERRED")
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
        read_only = self.default_read_only if read_only is None else bool(read_only)
        self.mode = mode
        try:
            self.executor.execute(f"BEGIN {mode}")
        finally:
            # Even if an exception arrives just after BEGIN ran, the state must say what SQLite says.
            if self.executor.in_transaction:
                self._move(TransactionState.ACTIVE, "begin")
        self.read_only = read_only
        if read_only:
            self._query_only_before = enter_read_only(self.executor)

    def open_savepoint(self, undo, end, name=None):
        """SAVEPOINT: push a level owning the undo scope ``undo``; ``end`` see NestedTransaction.
        ``name`` is the user's (``session.savepoint(name)``, checked); None names it uow_sp_N."""
        if name is None:
            self._savepoint_counter += 1
            name = f"uow_sp_{self._savepoint_counter}"
        savepoint = Savepoint(self.executor, name)
        savepoint.open()
        nested = NestedTransaction(savepoint, len(self.levels), undo, end)
        self.levels.append(nested)
        return nested

    def check_name_free(self, name, operation):
        """Refuse a savepoint name already open: SQLite would accept it, but its ROLLBACK TO could
        then reach only the newer of the two, which is rarely what the name's author meant."""
        for nested in self.levels[1:]:
            if nested.name.lower() == name.lower():
                raise TransactionError(
                    f"{operation}(): a savepoint named {name!r} is already open ({nested!r}); "
                    f"give the inner one another name"
                )

    def check_innermost(self, nested, operation):
        if not nested.is_active:
            raise TransactionError(f"{operation}(): {nested!r} has already ended")
        if self.levels[-1] is not nested:  # an active savepoint is always on the stack
            raise TransactionError(
                f"{operation}(): {nested!r} is not the innermost savepoint; end "
                f"{self.levels[-1]!r} first"
            )

    def release_savepoint(self, nested):
        """RELEASE: the level's work, and its undo scope, join the enclosing level."""
        self._end_level(nested, nested.savepoint.release, fold=True)

    def rollback_to_savepoint(self, nested):
        """ROLLBACK TO and RELEASE the savepoint and pop its level; the caller restores the objects
        from ``nested.undo`` once ``nested`` is no longer active.

        A write that failed inside the savepoint failed the transaction; rolling the savepoint back
        undoes everything done since it began, the failure included, so the transaction goes on
        (as in SQLAlchemy).  Not if SQLite ended the whole transaction itself: then only
        rollback() can put the session back in step.
        """
        self._end_level(nested, nested.savepoint.roll_back, fold=False)
        if self.state is TransactionState.FAILED and self.executor.in_transaction:
            self._move(TransactionState.ACTIVE, "rollback_to_savepoint")
            self.failure = None
            self.failed_write = None

    def _end_level(self, nested, send, fold):
        """Send the savepoint's RELEASE or ROLLBACK TO, then pop its level (``fold``: its undo scope
        joins the enclosing one).  If SQLite refuses, both stay; after another exception (Ctrl-C)
        around the statements, which Savepoint then finished, the level ends all the same."""
        try:
            send()
        except sqlite3.OperationalError as error:
            if not str(error).startswith("no such savepoint"):
                raise
            # Released, or rolled back past, by SQL sent on the connection directly: SQLite no longer
            # has the level.  It leaves the stack too, its undo scope joining the enclosing one, so
            # that the rollback the caller now demands restores everything done since the last commit.
            self._pop(nested, fold=True)
            raise TransactionError(
                f"{nested!r} was no longer open in SQLite when the session ended it: {SAVEPOINT_LOST}"
            ) from error
        except sqlite3.Error:
            raise
        except BaseException:
            self._pop(nested, fold)
            raise
        self._pop(nested, fold)

    def _pop(self, nested, fold):
        self.levels.pop()
        nested.is_active = False
        if fold:
            self.levels[-1].undo.absorb(nested.undo)

    def commit(self) -> None:
        """Send COMMIT.  If SQLite refuses (a lock, a deferred constraint), the transaction stays open.

        The state moves to IDLE exactly when COMMIT ran, even if an exception (Ctrl-C) arrived just
        after it: the session then forgets the committed work instead of rolling it back.
        """
        try:
            self.executor.execute("COMMIT")
        except sqlite3.Error as error:
            raise commit_failed(error, self.executor, "call rollback() to restore the objects") from error
        except BaseException:
            if not self.executor.in_transaction:  # it arrived once COMMIT had run
                self._end()
                self._move(TransactionState.IDLE, "commit")
            raise
        self._end()
        self._move(TransactionState.IDLE, "commit")

    def rollback(self) -> None:
        """Send ROLLBACK unless SQLite already rolled back by itself (an interrupt, a full disk).

        Even if an exception (Ctrl-C) arrives just after ROLLBACK ran, the state says what SQLite
        says; the caller checks ``executor.in_transaction`` the same way to restore its objects.
        """
        try:
            if self.executor.in_transaction:
                self.executor.execute("ROLLBACK")
        finally:
            if not self.executor.in_transaction:
                self._end()
                if self.state is not TransactionState.IDLE:  # rollback() with nothing begun is no move
                    self._move(TransactionState.IDLE, "rollback")

    def fail(self, error, write="flush", aftermath=None):
        """A write failed: refuse everything but rollback() until it is called.

        ``aftermath``: what the failure left, when it is more than "the failed write was undone"
        (SQLite ended the whole transaction, or the write's statements stayed in it).
        """
        self.failure = error
        self.failed_write = write
        self.aftermath = aftermath
        if self.state is not TransactionState.FAILED:
            self._move(TransactionState.FAILED, "flush")

    def invalidate(self) -> None:
        """CLOSED without any statement (``Session.invalidate``): the connection is not to be used again."""
        self.read_only = False
        self._query_only_before = None
        for nested in self.levels[1:]:
            nested.is_active = False
        del self.levels[1:]
        self.failure = None
        if self.state is not TransactionState.CLOSED:
            self._move(TransactionState.CLOSED, "invalidate")

    def close(self) -> None:
        if self.executor.in_transaction:
            self.executor.execute("ROLLBACK")
        self._end()
        self._move(TransactionState.CLOSED, "close")

    def _end(self):
        """Forget what belonged to the transaction that just ended (the caller moves the state); the
        undo scopes of its levels are the caller's to restore or forget (it took ``levels`` before)."""
        if self._query_only_before is not None:
            leave_read_only(self.executor, self._query_only_before)
            self._query_only_before = None
        self.read_only = False
        for nested in self.levels[1:]:
            nested.is_active = False
        del self.levels[1:]
        self.failure = None
