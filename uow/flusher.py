"""The session's flushing part: when a flush happens, and the flush rehearsed without writing.

A :class:`~uow.flush.Flush` is one flush, and lives only while it runs.  What a session needs
*between* flushes is here: whether a query flushes first (autoflush, paused by ``with
session.no_autoflush:`` and never started while a flush is already running), the flush events
around each flush, the count of flushes that wrote, and the two ways to look at the next flush
without keeping it: :meth:`Flusher.plan` (the plan as data, no SQL) and :meth:`Flusher.dry_run`
(its statements, sent inside a savepoint that is always rolled back).  Keeping these apart from
``flush`` leaves that module the one pipeline a learner reads: collect, plan, write, apply.
"""

import contextlib

from .executor import Savepoint, Statements, capture_sql
from .flush import Flush
from .identity import collector_paused
from .planner import build_plan
from .writing import run_plan


class Flusher:
    """The session's flushing part: it starts each flush, and holds what lasts between flushes.
    Called by the Session's facade (flush, plan, dry_run), by every query (autoflush) and by the
    boundaries (the flush before a commit or a savepoint)."""

    def __init__(self, session):
        self.session = session  # the Session whose staged changes each flush writes
        self.paused = 0         # how many ``with session.no_autoflush:`` blocks are open
        self.running = False    # True while a flush writes and applies: a query then must not flush
        self.count = 0          # flushes that wrote something (session.stats())
        self.registers = session.registers  # what each flush writes: pending, marked
        self.guard = session.guard          # failing the session when a flush fails
        self.observer = session.observer    # the flush and begin events
        self.boundaries = session.boundaries  # the BEGIN a flush sends when no transaction is open

    @contextlib.contextmanager
    def no_autoflush(self):
        """Suspend autoflush inside the block (blocks nest)."""
        self.paused += 1
        try:
            yield self.session
        finally:
            self.paused -= 1

    def autoflush(self):
        """Flush before a query, so that it sees what is staged, unless autoflush is off or paused."""
        session = self.session
        # Not inside a listener: the operation that called it is flushing, or has flushed, or is
        # ending the transaction (see features.events); a query there must not start a flush of its own.
        if session.autoflush and not self.paused and not self.running and self.observer.listening is None:
            self.flush()

    def flush(self):
        """Write what is staged, between the before_flush and after_flush events."""
        registers = self.registers
        if not registers.has_work():
            return
        size = len(registers.pending) + len(registers.tracker.candidates) + len(registers.marked)
        with collector_paused(size):
            self.observer.around("flush", Flush(self.session, self).run)

    def plan(self):
        """The FlushPlan the next flush would run, without running anything."""
        flush = Flush(self.session, self)
        flush.collect()
        return build_plan(flush.inserts, flush.updates, flush.deletes, held_states=flush.held_states)

    def dry_run(self):
        """The statements the next flush would send: it runs inside a savepoint rolled back after."""
        session = self.session
        flush = Flush(session, self)
        if not flush.collect():
            return Statements()
        flush.plan_and_check()
        self.guard.refuse_lost_transaction("dry_run")
        began = not session.transaction.active
        if began:
            session.transaction.check_autobegin("dry_run()")
            session.transaction.begin(None, for_writing=True)
        session.undo.loading_epoch()  # writes before the dry run count; its own are undone below
        savepoint = Savepoint(session.executor, "uow_dry_run")  # always rolled back
        savepoint.open()
        try:
            with capture_sql() as statements:
                run_plan(session.executor, flush.plan, flush.bound)
        except BaseException as error:
            if not began:  # (one the dry run began itself is ended below, whatever SQLite did)
                self.guard.fail_if_transaction_lost(error, "dry_run()")
            raise
        finally:
            if session.executor.in_transaction:
                savepoint.roll_back()
                session.undo.writes_rolled_back()
            if began:
                session.transaction.rollback()
        return statements
