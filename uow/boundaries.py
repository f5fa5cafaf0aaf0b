"""Transaction boundaries: what the session does when a transaction or savepoint begins or ends.

``transaction`` keeps the stack of levels on the connection (BEGIN at depth 0, SAVEPOINT
deeper) and the transaction's state; ``rollback`` puts objects back.  :class:`Boundaries` is the
session's part that ties them to the rest of the unit of work at each boundary:

* **begin** -- between the begin events (``observer``); a flush's BEGIN failing fails the flush;
* **begin_nested** -- flush first, so the savepoint's undo scope starts from everything done
  before it, then SAVEPOINT with a new undo scope;
* **commit** -- flush (again, while after_flush listeners keep staging work), COMMIT, then forget
  what the commit made final: deleted rows leave the session, undo scopes are dropped;
* **rollback** -- ROLLBACK, then the undo log puts every object back;
* **reset** and **close** -- rollback, then every object leaves the session.

The session's facade calls it (``begin``, ``commit``, ``rollback``, ...), and so do nested
transactions when they end (``end_nested``) and the parts that read or write when no
transaction is open yet (``begin_transaction``).
"""

import sqlite3

from .errors import FlushError, TransactionError
from .executor import is_busy
from .states import DETACHED
from .transaction import SAVEPOINT_LOST, TransactionState
from .transactionscopes import NestedTransaction

# How many times commit() flushes work that after_flush listeners keep staging before it gives up.
COMMIT_FLUSH_ROUNDS = 100


class Boundaries:
    """The session's part for begin, savepoints, commit, rollback, reset and close (see the module
    docstring).  ``session`` is the session whose parts it calls (its flusher, loader, undo log)."""

    def __init__(self, session):
        self.session = session  # for its options (expire_on_commit) and the parts made after this one
        self.transaction = session.transaction
        self.executor = session.executor
        self.guard = session.guard
        self.observer = session.observer
        self.registers = session.registers
        self.undo = session.undo

    def begin_transaction(self, mode, operation, for_writing=False, explicit=False, **options):
        """BEGIN, between the begin events: a read or write that finds no transaction open, or
        ``session.begin()`` (``explicit``: the one begin that autobegin=False allows).  ``operation``
        names the call that needs the transaction, for autobegin=False's refusal (``"get()"``)."""
        if not explicit:
            self.transaction.check_autobegin(operation)
        self.observer.refuse_in_before_begin()
        self.observer.around("begin", lambda: self.transaction.begin(mode, for_writing=for_writing, **options))

    def begin_for_flush(self):
        """Begin the transaction a flush writes in, when it found none open.

        A listener of the begin that raises aborts the flush cleanly: nothing was written (after
        ``after_begin`` the transaction stays open, as after ``begin()``).  A failure of BEGIN
        itself (a lock held past the busy timeout, an interrupt) is a failed flush, like a failure
        of any other statement of the flush.
        """
        transaction = self.transaction
        transaction.check_autobegin("flush()")  # (refused before the begin events: nothing happened yet)
        failed = []

        def begin():
            try:
                transaction.begin(None, for_writing=True)
            except sqlite3.Error as error:
                failed.append(True)
                mode = transaction.default_mode or "IMMEDIATE"
                hint = ""
                if is_busy(error):  # (BEGIN has no snapshot yet: never SQLITE_BUSY_SNAPSHOT)
                    hint = " (another connection held the write lock for longer than the busy timeout)"
                raise FlushError(f"BEGIN {mode} failed: {error}{hint}; nothing was written",
                                 statement=f"BEGIN {mode}") from error
            except BaseException:
                failed.append(True)
                raise

        try:
            self.observer.around("begin", begin)
        except BaseException as error:
            if failed:
                self.guard.fail(error)
            raise

    def begin_nested(self, name: str | None = None) -> NestedTransaction:
        """Open a savepoint (``session.begin_nested()``, ``session.savepoint(name)``); returns its
        NestedTransaction.  ``name`` was checked by the caller; None lets the transaction name it."""
        def open_savepoint():
            # Always, whatever autoflush says (as in SQLAlchemy): rolling back to the savepoint
            # restores objects from their snapshots, which must hold everything done before it.
            self.session.flusher.flush()
            if not self.transaction.active:
                self.begin_transaction(None, "savepoint()" if name is not None else "begin_nested()")
            # With nothing to flush, no flush has checked: a SAVEPOINT outside any transaction would
            # begin one that the savepoint's RELEASE commits at once.
            self.guard.refuse_lost_transaction("begin_nested")
            nested = self.transaction.open_savepoint(self.undo.new_scope(), self.end_nested, name)
            self.undo.remember_deleted_json()
            return nested

        return self.observer.around("savepoint", open_savepoint, result_name="savepoint")

    def end_nested(self, nested, commit):
        """What ``nested.commit()`` and ``nested.rollback()`` ask of the session (see NestedTransaction)."""
        self.observer.refuse_in_listener("commit" if commit else "rollback")
        self.transaction.check_innermost(nested, "commit" if commit else "rollback")
        if commit:
            self.guard.check("commit")

            def release():
                self.session.flusher.flush()
                self.guard.refuse_lost_transaction("release of a savepoint")  # (unchecked if nothing was flushed)
                try:
                    self.transaction.release_savepoint(nested)  # its undo scope joins the enclosing level's
                except TransactionError as lost:  # (the savepoint was ended behind the session's back)
                    self.guard.fail(lost, "release of a savepoint", aftermath=SAVEPOINT_LOST)
                    raise

            self.observer.around("release_savepoint", release, savepoint=nested)
        else:
            def roll_back_to():
                try:
                    self.transaction.rollback_to_savepoint(nested)
                except TransactionError as lost:  # (as for a release, above)
                    self.guard.fail(lost, "rollback of a savepoint", aftermath=SAVEPOINT_LOST)
                    raise
                finally:
                    # Rolled back, even if an exception arrived just after: the objects follow.
                    if not nested.is_active:
                        self.undo.roll_back_scope(nested.undo)
                if self.transaction.active:  # a failure inside the savepoint is undone with it
                    self.guard.usable_again()

            self.observer.around("rollback_to_savepoint", roll_back_to, savepoint=nested)

    def commit(self) -> None:
        """Flush, then COMMIT, between the commit events (``session.commit()``)."""
        self.observer.around("commit", self._commit)

    def _commit(self):
        flusher = self.session.flusher
        flusher.flush()
        levels = list(self.transaction.levels)  # what the COMMIT makes final
        rounds = 1
        registers = self.registers
        while registers.pending or registers.marked or registers.tracker.candidates:
            # after_flush listeners staged more work: the commit writes that too (as SQLAlchemy's does).
            if rounds == COMMIT_FLUSH_ROUNDS:
                raise TransactionError(
                    f"commit(): listeners staged new work after each of {rounds} flushes; nothing was committed. "
                    f"An after_flush listener that stages work must stop doing so at some point"
                )
            flusher.flush()
            rounds += 1
        if self.transaction.active:
            self.guard.refuse_lost_transaction("commit")
            self.release_open_savepoints()
            try:
                self.transaction.commit()
                self.forget_committed(levels)
            except BaseException as error:
                # The transaction moved to IDLE exactly when COMMIT ran: then the work is committed,
                # even if an exception arrived just after, and must not be rolled back in memory.
                if self.transaction.state is TransactionState.IDLE:
                    self.forget_committed(levels)
                elif not self.executor.in_transaction:
                    self.guard.fail(error, "commit")  # COMMIT failed and SQLite rolled back (an I/O error)
                raise
        else:
            self.forget_committed(levels)

    def release_open_savepoints(self):
        """Before COMMIT, RELEASE each savepoint still open, innermost first, as SQLAlchemy's commit()
        does: a savepoint that SQL sent on the connection directly released or rolled back past is
        then found before anything is made final (TransactionError, and the session refuses all but
        rollback()), where a bare COMMIT would make final whatever SQLite's version of its work was
        while the session held the objects as flushed.  The undo scopes fold into level 0 as they go,
        so a COMMIT that then fails leaves one level that rollback() restores whole."""
        levels = self.transaction.levels
        while len(levels) > 1:
            try:
                self.transaction.release_savepoint(levels[-1])
            except TransactionError as lost:
                self.guard.fail(lost, "commit", aftermath=SAVEPOINT_LOST)
                raise

    def forget_committed(self, levels):
        """What a COMMIT makes final; safe to run twice (an interrupt may stop it half way)."""
        deleted_rows = self.registers.deleted_rows
        # Each step is idempotent, so a second run redoes nothing harmful, and the register empties
        # once at the end.  (Taking next(iter()) and deleting it, one by one, made every next() skip
        # the slots deleted before it: a commit after n deletes cost n^2/2 steps.)
        for state in list(deleted_rows):
            if state.status is not DETACHED:
                state.move(DETACHED, "commit")
            state.session = None
            state.row_deleted = True
        deleted_rows.clear()
        self.undo.forget(levels)
        if self.session.expire_on_commit:
            self.session.expiry.expire_all()
            self.undo.forget(self.transaction.levels)

    def rollback(self) -> None:
        """ROLLBACK, between the rollback events, and every object back (``session.rollback()``)."""
        self.observer.around("rollback", self._rollback)

    def _rollback(self):
        failure = self.transaction.failure  # the rollback forgets it
        levels = list(self.transaction.levels)  # the rollback ends them all
        try:
            self.transaction.rollback()
        finally:
            # SQLite rolled back (even if an exception arrived just after ROLLBACK ran): the objects follow.
            if not self.executor.in_transaction:
                self.guard.usable_again()
                self.undo.roll_back(levels, failure)

    def detach_all(self):
        """After a rollback: every object leaves the session (``reset()``, ``close()``)."""
        registers = self.registers
        for state in registers.all_states():
            registers.unindex(state)
            registers.detach(state)
        self.undo.forget(self.transaction.levels)

    def invalidate(self) -> None:
        """``session.invalidate()``: roll the objects back in memory and detach them, close the
        session and then the connection, sending nothing on it (SQLite rolls back what it had open
        when the connection closes)."""
        levels = list(self.transaction.levels)
        failure = self.transaction.failure
        self.transaction.invalidate()
        self.guard.closed()
        try:
            self.undo.roll_back(levels, failure)
            self.detach_all()
        finally:
            self.executor.close()

    def close(self) -> None:
        """After reset(): refuse any further use."""
        self.transaction.close()
        self.guard.closed()
