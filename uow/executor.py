"""The one module that runs SQL: executing, counting and logging statements.

Every statement uow sends passes through :class:`Executor`, which is why three promises can be
kept in one place:

* **uow owns the transaction.**  ``connecting.connect`` opens sqlite3 so that the driver never
  sends BEGIN or COMMIT by itself (see there); uow sends BEGIN,
  SAVEPOINT, RELEASE, ROLLBACK TO, COMMIT and ROLLBACK as ordinary statements, and never calls
  ``connection.commit()``, ``rollback()``, ``executescript()`` or ``with connection:``.
* **Every statement is visible.**  Each one goes to the ``uow.sql`` logger with its parameters;
  :func:`capture_sql` collects them for tests and for the demo.
* **Values are always bound parameters.**  Identifiers are checked when classes are declared and
  quoted where SQL is written; nothing the user supplies is ever pasted into SQL text.
"""

import contextlib
import dataclasses
import logging
import sqlite3
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, Literal

from .errors import ConnectionClosedError, TransactionError, UowError, WrongThreadError

if sqlite3.sqlite_version_info < (3, 35, 0):
    raise ImportError(
        f"uow needs SQLite 3.35 or newer (for RETURNING); this Python is linked with {sqlite3.sqlite_version}"
    )

log = logging.getLogger("uow.sql")


@dataclasses.dataclass(frozen=True)
class Statement:
    """One statement as it was sent: its SQL, its parameters, and whether it was an executemany."""

    sql: str
    params: Any  # a sequence of values, or for an executemany an iterable of them
    many: bool = False

    def __str__(self) -> str:
        if self.many:
            rows = list(self.params)
            shown = f": {rows!r}" if len(rows) <= 3 else ""
            return f"{self.sql}  -- executemany x{len(rows)}{shown}"
        return f"{self.sql}  {tuple(self.params)!r}" if self.params else self.sql


class Statements(list[Statement]):
    """A list of :class:`Statement` that prints one numbered statement per line, as the SQL and
    its parameters (what ``dry_run()`` returns and ``capture_sql()`` collects)::

        1. SAVEPOINT "uow_flush"
        2. INSERT INTO "users" ("name") VALUES (?) RETURNING "id"  ('Ann',)
        3. RELEASE "uow_flush"

    It stays a list (``==`` a list of Statement, indexing, ``len``); only printing changes,
    because a list prints its items' reprs on one line.
    """

    def __str__(self) -> str:
        if not self:
            return "(no statements)"
        return "\n".join(f"{number}. {statement}" for number, statement in enumerate(self, 1))


class _Collector(logging.Handler):
    def __init__(self, statements: list[Statement]) -> None:
        super().__init__(logging.DEBUG)
        self.statements = statements

    def emit(self, record: logging.LogRecord) -> None:
        statement = getattr(record, "uow_statement", None)
        if statement is not None:
            self.statements.append(statement)


@contextlib.contextmanager
def capture_sql() -> Iterator[Statements]:
    """Collect every statement uow runs inside the block, as :class:`Statements` (a list of
    :class:`Statement` that prints one per line)::

        with capture_sql() as statements:
            session.flush()
        print(statements)
    """
    statements = Statements()
    handler = _Collector(statements)
    previous_level = log.level
    log.addHandler(handler)
    if not log.isEnabledFor(logging.DEBUG):
        log.setLevel(logging.DEBUG)
    try:
        yield statements
    finally:
        log.removeHandler(handler)
        log.setLevel(previous_level)


class Executor:
    """Runs statements on one connection and counts them."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        if not isinstance(connection, sqlite3.Connection):
            raise UowError(f"a Session needs a sqlite3.Connection (see uow.connect()), got {connection!r}")
        try:
            isolation_level = connection.isolation_level
        except sqlite3.ProgrammingError as error:
            _refuse_if_closed(error, "Session(): this sqlite3 connection was already closed (connection.close()), "
                                     "so nothing can be read or written through it; open a new one with "
                                     "uow.connect() and make the Session on that")
            raise
        if isolation_level is not None:
            raise UowError(
                "this sqlite3 connection manages transactions itself (isolation_level is "
                f"{isolation_level!r}); open it with uow.connect(), or with isolation_level=None"
            )
        self.connection = connection
        self.statement_count = 0
        self._cursor: sqlite3.Cursor | None = None

    def _log(self, sql: str, params: Any, many: bool) -> None:
        self.statement_count += 1
        if log.isEnabledFor(logging.DEBUG):
            statement = Statement(sql, params, many)
            log.debug("%s", statement, extra={"uow_statement": statement})

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        """Run one statement and return its cursor."""
        self._log(sql, params, False)
        try:
            self._cursor = self.connection.execute(sql, params)
        except sqlite3.ProgrammingError as error:
            _refuse_if_closed(error)
            raise
        return self._cursor

    def executemany(self, sql: str, rows: Iterable[Any]) -> sqlite3.Cursor:
        """Run one DML statement once per parameter row (never with RETURNING: the driver drops those rows)."""
        self._log(sql, rows, True)
        try:
            return self.connection.executemany(sql, rows)
        except sqlite3.ProgrammingError as error:
            _refuse_if_closed(error)
            raise

    def close(self) -> None:
        """Close the connection (``Session.invalidate``): SQLite rolls back the transaction it had open."""
        self._cursor = None
        self.connection.close()

    def set_busy_timeout(self, seconds: float) -> None:
        """How long a statement waits for another connection's lock before "database is locked"."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < 2 ** 31 / 1000:
            # (NaN fails the comparison too; SQLite takes milliseconds as a 32-bit int.)
            raise TransactionError(f"busy_timeout must be a number of seconds >= 0, got {seconds!r}")
        self.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")

    def fetchall(self, sql: str, params: Any = ()) -> list[Any]:
        return self.execute(sql, params).fetchall()

    def finish_statement(self) -> None:
        """Reset the last statement if it was left half-read (an exception between execute and fetch).

        SQLite refuses to RELEASE a savepoint while a write statement is still in progress.
        """
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None

    def rows_written(self) -> int | None:
        """How many rows INSERT, UPDATE and DELETE statements changed on this connection so far
        (SQLite's total_changes: whoever sent them, triggers included; never goes down)."""
        try:
            return self.connection.total_changes
        except sqlite3.ProgrammingError:
            # Closed underneath the session: nothing more can be written, and the count is gone.
            # None differs from every count, so a rollback treats the scope as written (the
            # cautious answer), and it lets rollback() and close() end the session.
            return None

    def variable_limit(self) -> int:
        """How many ``?`` one statement may bind; read each time, because it can be lowered with setlimit()."""
        return self._limit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)

    def length_limit(self) -> int:
        """The longest string or blob, in bytes, this connection accepts (it can be lowered with setlimit())."""
        return self._limit(sqlite3.SQLITE_LIMIT_LENGTH)

    def like_pattern_limit(self) -> int:
        """The longest LIKE pattern, in bytes, this connection matches (it can be lowered with setlimit())."""
        return self._limit(sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH)

    def _limit(self, category: int) -> int:
        try:
            return self.connection.getlimit(category)
        except sqlite3.ProgrammingError as error:
            _refuse_if_closed(error)
            raise

    def check_open(self) -> None:
        """Raise ConnectionClosedError if the connection was closed underneath the session."""
        try:
            self.connection.in_transaction
        except sqlite3.ProgrammingError as error:
            _refuse_if_closed(error)
            raise

    @property
    def in_transaction(self) -> bool:
        """SQLite's own answer; after an error it is the only one to trust (SQLite may have rolled back).

        A connection closed underneath the session holds no transaction: False, so that
        rollback() and close() can still put the session's objects back and end it.
        """
        try:
            return self.connection.in_transaction
        except sqlite3.ProgrammingError:
            return False


class Savepoint:
    """One SAVEPOINT: the one place uow sends SAVEPOINT, RELEASE and ROLLBACK TO.

    As a block, everything in it happens or nothing does (the flush, a bulk write)::

        savepoint = Savepoint(executor, "uow_bulk")
        with savepoint:                  # SAVEPOINT "uow_bulk"
            executor.executemany(...)    # an exception: ROLLBACK TO and RELEASE, then it propagates
                                         # none: RELEASE

    By hand for one that outlives a call (``session.begin_nested()``) or that is always undone (a
    dry run): :meth:`open`, then :meth:`release` or :meth:`roll_back`.  The caller opens it inside
    a BEGIN: outside one SQLite starts a transaction for it that its RELEASE commits at once.

    Three traps of the driver are handled here, once:

    * SQLite may have rolled the whole transaction back by itself (an interrupt, a full disk):
      there is then no savepoint to roll back to, and nothing left to undo.
    * ROLLBACK TO leaves the savepoint open; only RELEASE ends it, and SQLite refuses that while a
      statement is still being read ("SQL statements in progress").  The work is undone then, and
      the empty savepoint ends with the transaction around it.
    * An exception that is not SQLite's (Ctrl-C) can arrive after RELEASE or ROLLBACK TO ran: by
      hand, the statements are finished, so the savepoint is ended as SQLite then says; a block
      tries to roll back instead, and ``undone`` tells whether it could (False: RELEASE had run,
      so the block's statements stayed in the transaction).
    """

    def __init__(self, executor: Executor, name: str) -> None:
        self.executor = executor
        self.name = name
        self.quoted = f'"{name}"'
        self.undone = True  # after a failed block: whether its statements were undone

    def open(self) -> None:
        """SAVEPOINT: what follows can be undone alone.  If SQLite refuses, nothing was opened."""
        self.executor.execute(f"SAVEPOINT {self.quoted}")

    def release(self) -> None:
        """RELEASE: the work joins the enclosing transaction.  If SQLite refuses, it stays open."""
        sql = f"RELEASE {self.quoted}"
        try:
            self.executor.execute(sql)
        except sqlite3.Error:
            raise
        except BaseException:
            self._finish(sql)
            raise

    def roll_back(self) -> None:
        """ROLLBACK TO and RELEASE: undo everything since :meth:`open` and end the savepoint."""
        if not self.executor.in_transaction:
            return  # SQLite rolled the whole transaction back by itself: nothing is left to undo
        rollback_to = f"ROLLBACK TO {self.quoted}"
        release = f"RELEASE {self.quoted}"
        try:
            self.executor.execute(rollback_to)
        except sqlite3.Error:
            raise
        except BaseException:
            self._finish(rollback_to, release)
            raise
        try:
            self.executor.execute(release)
        except sqlite3.OperationalError:
            pass  # a statement still being read: the empty savepoint ends with the enclosing one
        except BaseException:
            self._finish(release)
            raise

    def _finish(self, *statements: str) -> None:
        """Run the statements an interrupted call was running; stop at the first that finds the
        savepoint gone (the interrupted run had got that far)."""
        for sql in statements:
            try:
                self.executor.execute(sql)
            except sqlite3.OperationalError:
                return

    def __enter__(self) -> "Savepoint":
        try:
            self.open()
        except sqlite3.Error:
            raise
        except BaseException:
            try:
                self.roll_back()  # an interrupt around SAVEPOINT: a block's savepoint never outlives it
            except sqlite3.Error:
                pass  # SAVEPOINT had not run
            raise
        return self

    def __exit__(self, error_type: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> Literal[False]:
        if error_type is None:
            try:
                self.executor.execute(f"RELEASE {self.quoted}")
                return False
            except BaseException:
                self._undo()  # RELEASE refused, or interrupted: undo the block if it is still there
                raise
        self._undo()
        return False

    def _undo(self) -> None:
        self.executor.finish_statement()  # a half-read statement would block the RELEASE
        try:
            self.roll_back()
        except sqlite3.Error:
            self.undone = False  # no such savepoint: RELEASE had run, the statements stayed


CLOSED_UNDER_SESSION = (
    "the sqlite3 connection under this session was closed outside uow (connection.close()), so "
    "nothing can be read or written through it, and whatever its open transaction held was rolled "
    "back by SQLite; rollback() or close() the session, then open a new connection and Session"
)


# -- what "database is locked" meant ----------------------------------------------------------
# sqlite3 gives several different refusals one text, "database is locked"; only SQLite's extended
# result code (``error.sqlite_errorcode``, Python 3.11+) tells them apart, and each asks the
# program for something different.  So a lock error is explained by its code, never by its text.
SQLITE_BUSY = 5  # the primary code: a lock this statement needs is held (the low byte of every BUSY_*)
SQLITE_BUSY_SNAPSHOT = 517  # WAL: this transaction's snapshot is older than another connection's commit

STALE_SNAPSHOT = (
    "SQLITE_BUSY_SNAPSHOT: no connection holds a lock; this transaction's snapshot of the WAL file is "
    "older than another connection's commit, so SQLite refuses to write on what it read (the write "
    "could undo that commit). Waiting or retrying "
    "the statement cannot help: roll back, then do the whole unit of work again (read, change, commit); a "
    "session with begin_mode='IMMEDIATE' takes the write lock before it reads, so its snapshot cannot go stale"
)


def is_busy(error: BaseException) -> bool:
    """Whether SQLite refused with SQLITE_BUSY or one of its extended codes ("database is locked")."""
    return getattr(error, "sqlite_errorcode", 0) & 0xFF == SQLITE_BUSY


def lock_hint(error: BaseException) -> str:
    """What a "database is locked" from a write really meant and what to do (``" -- ..."``), or ""."""
    if "statements in progress" in str(error):
        # SQLITE_BUSY from this very connection, not from another one (its extended code is plain
        # SQLITE_BUSY too: here only the text tells the case apart).
        return (" -- a statement on this connection is still being read (a cursor from session.connection() "
                "or execute() not read to the end); fetch its rows or close it first")
    if getattr(error, "sqlite_errorcode", 0) == SQLITE_BUSY_SNAPSHOT:
        return f" -- {STALE_SNAPSHOT}"
    if is_busy(error):
        return (" -- another connection holds the write lock. If this transaction began with a read "
                "(BEGIN DEFERRED), SQLite cannot wait for it: roll back and retry the whole unit of work, "
                "or open the session with begin_mode='IMMEDIATE'")
    return ""


def _refuse_if_other_thread(error: sqlite3.ProgrammingError) -> None:
    """Turn sqlite3's "objects created in a thread can only be used in that same thread" into the uow
    error that explains it (a Session taken out of an AsyncSession's worker with run_sync, for one)."""
    if "same thread" not in str(error):
        return
    raise WrongThreadError(
        "this session's connection was opened on another thread, and sqlite3 lets only that thread use it "
        "(an AsyncSession's connection belongs to its worker thread): call the AsyncSession's methods, or run "
        "the code inside await session.run_sync(...)") from error


def _refuse_if_closed(error: sqlite3.ProgrammingError, message: str = CLOSED_UNDER_SESSION) -> None:
    """Turn sqlite3's "Cannot operate on a closed database" into the uow error that explains it (and
    the error for a connection used from a thread other than its own, which arrives the same way)."""
    _refuse_if_other_thread(error)
    if "closed database" not in str(error):
        return
    raise ConnectionClosedError(message) from error
