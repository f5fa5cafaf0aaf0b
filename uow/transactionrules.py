"""What a transaction may be asked for and what SQLite can honour; read-only; a refused COMMIT.

Both kinds of transaction use these: the session's (``transaction``) and one begun directly on a
connection (``directtransaction``), so that the same option is accepted, or refused with the same
words, whichever a program uses.  SQLite offers three ways to BEGIN and one isolation level;
anything else a program asks for is refused rather than silently ignored.
"""

import sqlite3

from .errors import TransactionError
from .executor import Executor, is_busy

BEGIN_MODES = ("DEFERRED", "IMMEDIATE", "EXCLUSIVE")

# SQLite transactions are serializable: writers are serialized by the database lock, and a reader
# sees one snapshot for the whole transaction.  Asking for anything weaker or stronger cannot be
# honoured, so it is refused instead of silently ignored.
ISOLATION_LEVELS = ("SERIALIZABLE",)


def commit_failed(error: sqlite3.Error, executor: Executor, after_rollback: str) -> TransactionError:
    """The error for a COMMIT SQLite refused: whether the transaction is still open, and why a lock."""
    still_open = "still open: retry commit(), or rollback()" if executor.in_transaction else \
        f"gone: SQLite rolled it back; {after_rollback}"
    hint = ""
    if is_busy(error):  # (COMMIT writes nothing new: a stale snapshot is refused at the write, never here)
        hint = (" Another connection holds a lock on the database (in rollback-journal mode an open "
                "read transaction blocks COMMIT; WAL mode lets readers and one writer coexist).")
    return TransactionError(f"COMMIT failed: {error}; the transaction is {still_open}.{hint}")


def enter_read_only(executor: Executor) -> int:
    """Make the transaction just begun read-only; returns what ``leave_read_only`` puts back.

    query_only can be switched inside a transaction (unlike foreign_keys); it is put back as it
    was when the transaction ends.
    """
    before = executor.fetchall("PRAGMA query_only")[0][0]
    executor.execute("PRAGMA query_only = 1")
    return int(before)


def leave_read_only(executor: Executor, before: int) -> None:
    """Put query_only back as it was before ``enter_read_only``."""
    executor.execute(f"PRAGMA query_only = {int(before)}")


def check_mode(mode: object) -> str:
    """SQLite's BEGIN mode, upper-cased (``"immediate"`` is accepted), or a TransactionError."""
    if not isinstance(mode, str) or mode.upper() not in BEGIN_MODES:
        raise TransactionError(f"begin mode {mode!r} is not one of SQLite's {', '.join(BEGIN_MODES)}")
    return mode.upper()


def check_unsupported(isolation_level: object, deferrable: object) -> None:
    """Refuse the options other databases honour and SQLite cannot (only SERIALIZABLE exists)."""
    if isolation_level is not None and str(isolation_level).upper() not in ISOLATION_LEVELS:
        raise TransactionError(
            f"isolation_level={isolation_level!r} cannot be honoured: SQLite transactions are always "
            f"SERIALIZABLE; pass isolation_level='SERIALIZABLE' or leave it out"
        )
    if deferrable is not None:
        raise TransactionError(
            f"deferrable={deferrable!r} cannot be honoured: SQLite has no DEFERRABLE transactions "
            f"(a PostgreSQL feature); leave it out"
        )
