"""A transaction on a connection without a session: ``with uow.transaction(connection):``.

Code that works on the connection itself (raw SQL, a migration, a report) still wants uow's
transaction rules: uow sends BEGIN and COMMIT itself, the options are the session's and are
refused the same way when SQLite cannot honour them, ``read_only`` is enforced by SQLite
(``PRAGMA query_only`` for the length of the transaction), and savepoints inside carry the
program's own names::

    with uow.transaction(connection, "IMMEDIATE") as tx:       # BEGIN IMMEDIATE
        connection.execute("INSERT INTO flavors VALUES ('vanilla')")
        with tx.savepoint("before_optional_work"):              # SAVEPOINT "before_optional_work"
            connection.execute("INSERT INTO flavors VALUES ('trial')")
    # COMMIT here; ROLLBACK if the block raised (and ROLLBACK TO the savepoint if its block raised)

It keeps no objects, so there is nothing to put back in memory: a rollback is the database's
alone.  A session's transaction and a direct one cannot share a connection at the same time:
each refuses to BEGIN while the other has a transaction open there.
"""

import contextlib
import sqlite3
from collections.abc import Iterator

from . import arguments
from .errors import ArgumentError, TransactionError
from .executor import Executor, Savepoint
from .transactionscopes import Scope
from .transactionrules import check_mode, check_unsupported, commit_failed, enter_read_only, leave_read_only


def transaction(connection: sqlite3.Connection, mode: str | None = None, *, read_only: bool = False,
                isolation_level: str | None = None, deferrable: bool | None = None) -> "DirectTransaction":
    """BEGIN a transaction on ``connection`` (opened with :func:`uow.connect`) and return it.

    Use it as a context manager (COMMIT when the block ends, ROLLBACK if it raises), or call
    ``commit()`` / ``rollback()`` yourself.  ``mode`` is SQLite's DEFERRED (the default),
    IMMEDIATE or EXCLUSIVE; ``read_only`` makes SQLite refuse every write until the transaction
    ends; ``isolation_level`` and ``deferrable`` are refused unless SQLite can honour them, as a
    Session's are.  Everything is checked before BEGIN is sent.
    """
    if not isinstance(connection, sqlite3.Connection):
        raise ArgumentError(f"transaction(): needs a sqlite3.Connection (open one with uow.connect()), "
                            f"got {connection!r}")
    mode = "DEFERRED" if mode is None else check_mode(mode)
    check_unsupported(isolation_level, deferrable)
    executor = Executor(connection)
    if executor.in_transaction:
        raise TransactionError(
            "transaction(): the connection already has a transaction open (a Session's, or one begun on the "
            "connection directly); finish it first, or use tx.savepoint(name) inside the transaction you hold"
        )
    try:
        executor.execute(f"BEGIN {mode}")
        query_only_before = enter_read_only(executor) if read_only else None
    except BaseException:
        if executor.in_transaction:  # BEGIN ran, then something failed (or Ctrl-C): nothing is left open
            executor.execute("ROLLBACK")
        raise
    return DirectTransaction(executor, mode, query_only_before)


class _EndedInside(Exception):
    """Internal: the transaction was ended by its own commit() or rollback() inside a savepoint's block."""


class DirectTransaction(Scope):
    """A transaction begun with :func:`transaction`; it ends once (see ``transactionscopes.Scope``)."""

    def __init__(self, executor: Executor, mode: str, query_only_before: int | None) -> None:
        self.executor = executor
        self.mode = mode
        self.read_only = query_only_before is not None
        self.is_active = True
        self._query_only_before = query_only_before
        self._open_savepoints: list[str] = []  # names, innermost last

    def commit(self) -> None:
        """COMMIT.  If SQLite refuses (a lock, a deferred constraint), the transaction stays open."""
        self._check_active("commit")
        try:
            self.executor.execute("COMMIT")
        except sqlite3.Error as error:
            if not self.executor.in_transaction:
                self._end()
            raise commit_failed(error, self.executor, "nothing was committed") from error
        self._end()

    def rollback(self) -> None:
        """ROLLBACK: the database is as it was at BEGIN (nothing to send if it already ended there)."""
        if not self.is_active:
            raise TransactionError(f"rollback(): {self!r} has already ended")
        try:
            if self.executor.in_transaction:
                self.executor.execute("ROLLBACK")
        finally:
            if not self.executor.in_transaction:
                self._end()

    @contextlib.contextmanager
    def savepoint(self, name: str) -> Iterator[Savepoint]:
        """``with tx.savepoint("name"):`` -- SAVEPOINT "name"; RELEASE when the block ends, ROLLBACK TO
        (and RELEASE) if it raises, which propagates.  The name is checked as a session's is."""
        name = arguments.savepoint_name(name, "savepoint")
        self._check_active("savepoint")
        if name.lower() in self._open_savepoints:
            raise TransactionError(f"savepoint(): a savepoint named {name!r} is already open; give the inner one "
                                   f"another name")
        self._open_savepoints.append(name.lower())
        try:
            with Savepoint(self.executor, name) as savepoint:
                yield savepoint
                if not self.is_active:
                    # tx.commit() or tx.rollback() inside the block ended the savepoint with the
                    # transaction: the block's end has nothing left to release (see Scope's rule).
                    raise _EndedInside
                if not self.executor.in_transaction:
                    self._end()
                    raise TransactionError(
                        f"savepoint({name!r}): the transaction ended inside the savepoint's block, without uow: "
                        f"COMMIT or ROLLBACK was sent on the connection directly, or SQLite rolled it back after "
                        f"an error; nothing was released, and what the block wrote is as that left it")
        except _EndedInside:
            pass  # (the savepoint's own exit saw no transaction, so it sent nothing)
        except sqlite3.OperationalError as error:
            if not str(error).startswith("no such savepoint"):
                raise
            raise TransactionError(
                f"savepoint({name!r}): the savepoint was no longer open when its block ended: it was released "
                f"or rolled back past by SQL sent on the connection directly; the transaction is still open"
            ) from error
        finally:
            self._open_savepoints.pop()

    def _check_active(self, operation: str) -> None:
        if not self.is_active:
            raise TransactionError(f"{operation}(): {self!r} has already ended")
        if not self.executor.in_transaction:
            # Ended on the connection itself (or by SQLite, after an error): a SAVEPOINT now would begin a
            # transaction of its own, and its RELEASE would commit at once.
            self._end()
            raise TransactionError(
                f"{operation}(): the transaction is no longer open on the connection: it was ended there directly "
                f"(COMMIT or ROLLBACK sent without uow), or SQLite rolled it back after an error; begin a new one"
            )

    def _end(self) -> None:
        self.is_active = False
        if self._query_only_before is not None:
            leave_read_only(self.executor, self._query_only_before)
            self._query_only_before = None

    def __repr__(self) -> str:
        status = "active" if self.is_active else "ended"
        return f"<DirectTransaction {self.mode}{' read-only' if self.read_only else ''} {status}>"
