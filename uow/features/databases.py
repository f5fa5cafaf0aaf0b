"""The session's connection: raw SQL, and several SQLite files attached to one connection.

:class:`Databases` is a feature part the session composes (``features``).

**Raw SQL.**  ``execute``, ``scalar`` and ``scalars`` run a statement on the session's own
connection, inside its transaction, after an autoflush, so the statement sees everything the
session has staged.  Raw SQL bypasses the unit of work: rows it changes are not reflected in
objects the session holds until you ``refresh`` or ``expire`` them.  ``connection()`` hands out
the sqlite3 connection itself, with the session's transaction begun.

**Several databases, one transaction.**  An entity can live in another SQLite file attached to
the session's connection::

    class LogEntry(Entity, table="log", database="archive"):
        ...

    session.bind_mapper(LogEntry, "archive.db")      # ATTACH DATABASE 'archive.db' AS "archive"
    session.get_bind(LogEntry)                       # '/path/to/archive.db'

Its SQL then always names the database (``"archive"."log"``), and one COMMIT covers every
attached file: SQLite commits a transaction across attached databases atomically (in rollback
journal mode; in WAL mode, or with an in-memory main database, each file is atomic on its own,
and a crash during the COMMIT can leave some files with the transaction and others without:
SQLite's documented limit).  uow cannot make such a commit atomic, and refusing it would make
WAL unusable with attached files, so it is a warned choice: a session that attached a file checks
at each commit that wrote something, and when the files cannot be committed as one it commits
anyway and issues a ``UowWarning`` that names the files and their journal modes (make the warning
an error to refuse such commits: the check runs after the flush and before COMMIT, so the
transaction is then left open, for rollback()).
``bind_table`` does the same by table name, and ``Session(conn, binds={LogEntry: "archive.db"})``
binds each class's file as the session is made.  SQLite cannot ATTACH inside a transaction, so bind
before the first query, or after a commit.  ``bind_mapper``, ``bind_table`` and ``get_bind`` are
SQLAlchemy's names, adapted to SQLite, where every "bind" is a file on one connection.
"""

import re
import sqlite3
from collections.abc import Mapping

from .. import arguments
from ..errors import ArgumentError, TransactionError, UowError, warn
from ..executor import lock_hint
from ..entity import Entity
from ..identifiers import check_identifier, quote
from ..mapper import mapper_of_class

# What SQLite skips before a statement's first word: whitespace, comments and empty statements.
_LEADING = re.compile(r"(?:\s+|;|--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$))*", re.DOTALL)
_WORD = re.compile(r"[A-Za-z]+")

# The statements that begin or end a transaction or savepoint, and what to use instead.
_TRANSACTION_CONTROL = {
    "BEGIN": "session.begin()",
    "COMMIT": "session.commit()",
    "END": "session.commit()",
    "ROLLBACK": "session.rollback(), or rollback() on what begin_nested() returned",
    "SAVEPOINT": "session.begin_nested()",
    "RELEASE": "commit() on what begin_nested() returned",
}


class Databases:
    """The session's raw-SQL and attached-database part (see the module docstring)."""

    def __init__(self, session):
        self.session = session
        self.guard = session.guard
        self.boundaries = session.boundaries
        self.attached_any = False  # attach() (or a raw ATTACH) ran: commits check atomicity

    def check_atomic_commit(self):
        """Before COMMIT (after the flush): warn when the transaction wrote and the files attached to
        the connection cannot be committed as one (WAL, or an in-memory main database)."""
        session = self.session
        session.undo.loading_epoch()  # (brings its count of the transaction's writes up to date)
        if not self.attached_any or not session.transaction.active or not session.undo.writes:
            return
        # (Only files on disk: what a crash could leave half committed.  An in-memory main database
        # has no super-journal to tie the files together.)
        attached = self._attached()
        files = {name: path for name, path in attached.items() if name != "temp" and path}
        if len(files) < 2:
            return
        modes = {name: str(session.executor.fetchall(f"PRAGMA {quote(name)}.journal_mode")[0][0]).lower()
                 for name in files}
        if attached.get("main") and "wal" not in modes.values():
            return
        described = ", ".join(f"{name} ({files[name]}, {modes[name]})" for name in files)
        warn(f"commit(): this transaction wrote while several databases are attached -- {described} -- and SQLite "
             f"commits them atomically only in rollback-journal mode with a main database on file: each file "
             f"commits on its own, and a crash during the COMMIT can leave some with the transaction and others "
             f"without. Use journal_mode=DELETE (or TRUNCATE) on every file for one atomic commit")

    def execute(self, sql, params=()):
        """Run one SQL statement in the session's transaction (after an autoflush); return the cursor.

        Statements that begin or end a transaction or savepoint (BEGIN, COMMIT, END, ROLLBACK,
        SAVEPOINT, RELEASE) are refused before anything runs: the session owns the transaction, and
        one it did not see end would leave its objects out of step with the database.
        """
        session = self.session
        self.guard.check("execute")
        arguments.sql_text(sql, "execute")
        arguments.sql_params(params, "execute")
        _refuse_transaction_control(sql)
        session.flusher.autoflush()
        with self.guard.writing("execute"):
            if not session.transaction.active:
                self.boundaries.begin_transaction(None, "execute()")
            try:
                return session.executor.execute(sql, params)
            except sqlite3.Error as error:
                if not session.executor.in_transaction:
                    error.add_note("uow: SQLite rolled back the session's whole transaction with this statement; "
                                   "the session refuses other work until rollback()")
                if lock_hint(error):  # sqlite3's text is "database is locked" whatever the cause
                    error.add_note(f"uow: {lock_hint(error).removeprefix(' -- ')}")
                raise

    def scalar(self, sql, params=()):
        """The first column of the first row of a query, or None when it returns no row."""
        row = self.execute(sql, params).fetchone()
        return row[0] if row is not None else None

    def scalars(self, sql, params=()):
        """The first column of every row of a query, as a list."""
        return [row[0] for row in self.execute(sql, params).fetchall()]

    def connection(self):
        """The session's sqlite3 connection, with its transaction begun (after an autoflush).

        Do not commit or roll back on it directly: use the session, which keeps objects in step.
        """
        session = self.session
        self.guard.check("connection")
        session.flusher.autoflush()
        if not session.transaction.active:
            self.boundaries.begin_transaction(None, "connection()")
        return session.executor.connection

    def attach(self, name, path):
        """ATTACH the SQLite file ``path`` to the connection as database ``name``."""
        self.guard.check("attach")
        check_identifier(name, "attach(): database name")  # quote() relies on it
        arguments.path(path, "attach")
        if self.session.transaction.active:
            raise TransactionError(
                f"attach({name!r}): SQLite cannot attach a database inside a transaction; "
                f"commit() or rollback() first, or attach before the first query"
            )
        attached = self._attached()
        if name in attached:
            # SQLite lists an in-memory database's file as "".
            wanted = "" if str(path) == ":memory:" else str(path)
            if attached[name] != wanted:
                held = attached[name] or ":memory:"
                raise UowError(f"attach(): database {name!r} is already attached to {held!r}; "
                               f"give this one another name, or detach it first")
            return
        self.attached_any = True
        try:
            self.session.executor.execute(f"ATTACH DATABASE ? AS {quote(name)}", (str(path),))
        except sqlite3.OperationalError as error:  # a directory, a missing folder, no permission, too many
            raise UowError(f"attach({name!r}): SQLite cannot attach {str(path)!r} ({error}); check that the "
                           f"path names a file SQLite can open or create") from error
        self.session.executor.execute(f"PRAGMA {quote(name)}.foreign_keys")

    def bind_mapper(self, entity, path):
        """Attach the file that holds ``entity``'s table, under the database name the class declares."""
        self.guard.check("bind_mapper")
        mapper = mapper_of_class(entity, "bind_mapper")
        self.attach(attachable(mapper, f"bind_mapper({mapper.cls.__name__})"), path)

    def bind_table(self, table, path, registry=None):
        """bind_mapper() for the entity whose table is ``table`` (looked up in ``registry``, default Entity's)."""
        self.guard.check("bind_table")
        self.bind_mapper(entity_of_table(table, registry, f"bind_table({table!r})"), path)

    def bind_all(self, binds):
        """``Session(binds={Class: path})``: bind_mapper() for each.

        Every entry is checked before the first ATTACH, so a bad one attaches nothing; an ATTACH that
        fails part way (a file SQLite cannot open, two paths for one database) detaches again what
        this call attached, so the connection is left as it was."""
        if not isinstance(binds, Mapping):
            raise ArgumentError(f"Session(binds=...) must be a dict of {{entity class: path}}, "
                                f"got {type(binds).__name__}")
        planned = []
        for entity, path in binds.items():
            if isinstance(entity, str):  # which registry's table would be a guess: the class says it
                raise ArgumentError(f"Session(binds=...): the keys are entity classes, got the string {entity!r}; "
                                    f"use the class, or session.bind_table({entity!r}, path, registry=...)")
            mapper = mapper_of_class(entity, "Session(binds=...)")
            label = f"Session(binds={{{mapper.cls.__name__}: ...}})"
            planned.append((attachable(mapper, label), arguments.path(path, "Session(binds=...)")))
        before = set(self._attached())
        try:
            for name, path in planned:
                self.attach(name, path)
        except BaseException:
            for name in set(self._attached()) - before:
                self.session.executor.execute(f"DETACH DATABASE {quote(name)}")
            raise

    def get_bind(self, entity):
        """The path of the file that holds ``entity``'s table ('' for an in-memory database)."""
        self.guard.check("get_bind")
        mapper = mapper_of_class(entity, "get_bind")
        attached = self._attached()
        if mapper.database not in attached:
            raise UowError(f"get_bind({mapper.cls.__name__}): database {mapper.database!r} is not attached; "
                           f"call bind_mapper() first")
        return attached[mapper.database]

    def _attached(self):
        return {row[1]: row[2] for row in self.session.executor.fetchall("PRAGMA database_list")}


def attachable(mapper, label):
    """The database name ``mapper``'s class declares, which must not be the connection's main one."""
    if mapper.database == "main":
        raise UowError(
            f"{label}: the class lives in the connection's main database; "
            f"declare class {mapper.cls.__name__}(Entity, table=..., database='name') to put it elsewhere"
        )
    return mapper.database


def entity_of_table(table, registry, label):
    """The entity class whose table is ``table``, in ``registry`` (default Entity's)."""
    for cls in (registry or Entity.__registry__).classes.values():
        if cls.__mapper__.table == table:
            return cls
    raise UowError(f"{label}: no entity declares that table")


def _refuse_transaction_control(sql):
    word = _WORD.match(sql, _LEADING.match(sql).end())  # type: ignore[union-attr]  # (...)* always matches
    verb = word.group().upper() if word is not None else None
    if verb in _TRANSACTION_CONTROL:
        raise TransactionError(
            f"execute(): {sql.strip()!r} is transaction control ({verb}); the session owns the transaction and "
            f"keeps its objects in step with it, so such statements cannot go through execute(): use "
            f"{_TRANSACTION_CONTROL[verb]} instead"
        )
