"""``with_for_update=True``: SQLAlchemy's row lock, as SQLite has it -- the database's write lock.

In a server database, ``SELECT ... FOR UPDATE`` locks the rows it reads until the transaction
ends, so that no other transaction changes them between this one's read and its write (the lost
update: two programs read a balance of 100, each takes 10 off, and both write 90).  SQLite has no
row locks.  Its one lock that keeps other connections from changing a row is the write lock,
which covers the whole database file: a connection holding it is the only one that can write
until it commits or rolls back.  (SQLAlchemy's SQLite dialect drops ``FOR UPDATE`` and locks
nothing; uow takes the write lock instead, which is stronger than a row lock, never weaker.)

So ``get(..., with_for_update=True)`` first makes the session's transaction hold the write lock:

* with no transaction begun, it begins one IMMEDIATE (or as ``begin_mode`` says, if EXCLUSIVE),
  waiting up to the busy timeout for another writer to finish;
* in a transaction begun DEFERRED, which holds no write lock until it first writes, it sends a
  write that changes nothing (an UPDATE of the class's table ``WHERE 0``).  That is honest about
  what was read before: in rollback-journal mode this transaction's read lock kept every other
  connection from committing since its first read, and in WAL mode SQLite refuses the write lock
  (SQLITE_BUSY_SNAPSHOT) to a transaction whose reads another connection's commit has made stale.

Then the row is read under the lock: an object the session holds with no unflushed change takes
the row's values (it may hold values from an earlier transaction, as ``expire_on_commit=False``
keeps them); one with unflushed changes keeps them, as in SQLAlchemy, unless
``populate_existing=True`` says to overwrite them.  Only ``True`` (and ``False`` or ``None``,
no lock) is accepted: SQLAlchemy's flags (``nowait``, ``read``, ``skip_locked``, ``of``) ask for
row-level behaviour SQLite cannot give, and are refused rather than ignored.
"""

import sqlite3
from typing import Any

from .errors import ArgumentError, DatabaseLockedError, TransactionError
from .executor import is_busy
from .identifiers import quote
from .mapper import mapper_of_class
from .states import PERSISTENT, STATE_ATTRIBUTE
from .tracking import changed_fields
from .valuechecks import shown


def get_for_update(session: Any, entity: Any, ident: object, with_for_update: object,
                   populate_existing: bool) -> Any:
    """``session.get(entity, ident, with_for_update=..., populate_existing=...)`` (see the module
    docstring); the caller checked the session."""
    mapper = mapper_of_class(entity, "get")
    if not wants_lock(with_for_update, "get"):
        if populate_existing:
            return session.loader.get_fresh(entity, ident)
        return session.loader.get(entity, ident)
    key = mapper.checked_key(ident)  # (a bad key is refused before the lock is taken)
    take_write_lock(session, mapper, "get")
    held = session.identity.get(mapper.cls, key)
    if held is not None and not populate_existing:
        # (A pending object has no row to read; an expired one is reloaded by get() anyway.)
        state = held.__dict__[STATE_ATTRIBUTE]
        populate_existing = (state.status is PERSISTENT and mapper.pk_names[0] in held.__dict__
                             and not changed_fields(state))
    if populate_existing:
        return session.loader.get_fresh(entity, ident)
    return session.loader.get(entity, ident)


def wants_lock(with_for_update: object, operation: str) -> bool:
    """True for ``with_for_update=True``, False for False or None; anything else is refused."""
    if with_for_update is True:
        return True
    if with_for_update is False or with_for_update is None:
        return False
    raise ArgumentError(
        f"{operation}(with_for_update=...) takes True (or False), got {shown(with_for_update)}: SQLite has no "
        f"row locks, so SQLAlchemy's flags (nowait, read, skip_locked, of) cannot be honoured; True takes the "
        f"database's write lock (BEGIN IMMEDIATE), which keeps every other connection from writing until commit. "
        f"For nowait, give the Session busy_timeout=0"
    )


def take_write_lock(session: Any, mapper: Any, operation: str) -> None:
    """Make the session's transaction hold SQLite's write lock, beginning it if none is open."""
    transaction = session.transaction
    called = f"{operation}(with_for_update=True)"
    read_only = transaction.read_only if transaction.active else transaction.default_read_only
    if read_only:
        raise TransactionError(
            f"{called}: the transaction is read-only (read_only=True), and the lock is SQLite's write lock; "
            f"begin a transaction that may write, or read without with_for_update"
        )
    try:
        if not transaction.active:
            transaction.check_autobegin(called)
            # IMMEDIATE unless begin_mode says otherwise; a DEFERRED begin_mode is met below.
            session.boundaries.begin_transaction(None, called, for_writing=True)
        else:
            # A write outside SQLite's transaction would lock nothing (it commits at once), and the
            # caller would believe the row is theirs: SQLite must still hold what the session began.
            session.guard.refuse_lost_transaction(called)
        if transaction.mode == "DEFERRED":
            # Any write statement takes the write lock when it starts; this one matches no row.
            key = quote(mapper.pk_names[0])
            session.executor.execute(f"UPDATE {mapper.quoted_table} SET {key} = {key} WHERE 0")
    except sqlite3.OperationalError as error:
        if not is_busy(error):
            raise
        raise DatabaseLockedError(
            f"{called}: SQLite's write lock could not be taken: {error} (another connection held it for longer "
            f"than the busy timeout, or, in WAL mode, committed since this transaction first read, which makes "
            f"what it read stale); nothing changed: rollback() and try again"
        ) from error
