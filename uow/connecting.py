"""Opening a sqlite3 connection the way uow needs it: ``uow.connect()``.

* ``isolation_level=None`` (and, on Python 3.12+, an explicit
  ``autocommit=LEGACY_TRANSACTION_CONTROL`` so a future default cannot change it): the driver
  never sends BEGIN or COMMIT by itself, so the transaction is uow's (see ``executor``).
* Foreign keys on, and read back: the pragma is silently ignored inside a transaction, so it must
  be set here, before uow ever sends BEGIN.
* On 3.12+, double-quoted strings off in DML: a typo in a column name fails instead of becoming a
  string literal.
* A journal mode on request (WAL or a rollback journal), read back, because SQLite answers a mode
  it cannot honour with the mode it kept rather than an error.
"""

import os
import sqlite3
import sys
from typing import Any

from . import arguments
from .errors import ArgumentError, UowError


# The journal modes connect() accepts: the rollback-journal family (DELETE is SQLite's default for a
# new file; TRUNCATE and PERSIST differ only in how the journal file is disposed of) and WAL.
# MEMORY and OFF are refused: a crash in the middle of a commit could leave the file corrupt, and
# uow promises that a commit is all or nothing.
JOURNAL_MODES = ("delete", "truncate", "persist", "wal")


def connect(database: str | os.PathLike[str] = ":memory:", *, timeout: float = 5.0,
            uri: bool = False, journal_mode: str | None = None) -> sqlite3.Connection:
    """Open a sqlite3 connection the way uow needs it.

    ``database`` is a file path or ``":memory:"``.  ``timeout`` is how long a statement waits for
    another connection's lock before failing with "database is locked" (SQLite's busy timeout).
    Foreign keys are switched on and read back: the pragma is silently ignored inside a
    transaction, so this must happen here, before uow ever sends BEGIN.

    ``journal_mode="wal"`` switches the file to write-ahead logging (it stays so: the mode is
    kept in the file), where readers never block a writer and a writer never blocks readers;
    ``"delete"`` (also ``"truncate"``, ``"persist"``) to a rollback journal, where a session
    that has only read still blocks every other connection's commit until it ends.  None (the
    default) leaves the file's mode as it is.  The mode is read back, so a file that cannot
    change mode (an in-memory database has no journal file; WAL needs shared memory, which a
    network file system may lack) is an error here rather than a surprise later.
    """
    arguments.path(database, "connect")
    arguments.seconds(timeout, "connect", "timeout")
    if journal_mode is not None and (not isinstance(journal_mode, str) or journal_mode.lower() not in JOURNAL_MODES):
        raise ArgumentError(
            f"connect(): journal_mode must be one of {', '.join(map(repr, JOURNAL_MODES))} or None (leave the "
            f"file's mode), got {journal_mode!r}; MEMORY and OFF are refused, as a crash during a commit "
            f"could corrupt the file"
        )
    options: dict[str, Any] = {"timeout": timeout, "isolation_level": None, "uri": uri}
    if sys.version_info >= (3, 12):
        options["autocommit"] = sqlite3.LEGACY_TRANSACTION_CONTROL
    connection = sqlite3.connect(database, **options)
    connection.execute("PRAGMA foreign_keys = ON")
    if connection.execute("PRAGMA foreign_keys").fetchone() != (1,):  # no row: a build without them
        connection.close()
        raise UowError(f"could not enable foreign keys on {database!r}; this SQLite build may lack them")
    if sys.version_info >= (3, 12):
        # A double-quoted name that matches no column is otherwise read as a string literal, so a
        # typo in a column name would match no rows instead of failing.
        connection.setconfig(sqlite3.SQLITE_DBCONFIG_DQS_DML, False)
    if journal_mode is not None:
        _set_journal_mode(connection, database, journal_mode.lower())
    return connection


def _set_journal_mode(connection: sqlite3.Connection, database: object, wanted: str) -> None:
    """Switch ``connection``'s file to the journal mode ``wanted`` and check that it took.

    The pragma answers with the mode in force, which is not an error when it differs: SQLite
    keeps "memory" for an in-memory database, and keeps the old mode when another connection
    holds the file (leaving WAL needs the only connection).
    """
    try:
        found = connection.execute(f"PRAGMA journal_mode = {wanted}").fetchone()[0]
    except sqlite3.OperationalError as error:  # "database is locked": another connection is writing
        connection.close()
        raise UowError(f"connect(): could not set journal_mode={wanted!r} on {database!r}: {error}") from None
    if found.lower() != wanted:
        connection.close()
        why = ("an in-memory database keeps its journal in memory and has no file to log to; use a file path"
               if found.lower() == "memory" else
               "SQLite kept the file's mode (leaving WAL needs the only connection to the file; WAL needs "
               "shared memory, which network file systems may lack)")
        raise UowError(f"connect(): journal_mode={wanted!r} on {database!r} gave {found!r}: {why}")
