"""When SQLite ends the session's transaction by itself (a trigger's RAISE(ROLLBACK), a full disk),
every path that writes notices it, fails the session until rollback(), and says what really
happened; and an exception arriving just after COMMIT, RELEASE or ROLLBACK ran leaves the session
following what SQLite did."""

import sqlite3

import pytest

import uow
from uow import errors

from .models import User

LOST = "SQLite rolled back the whole transaction, so earlier flushes are undone too"


def names(other):
    return [row[0] for row in other.execute("SELECT name FROM users ORDER BY id")]


@pytest.fixture
def trap(file_conn):
    """Inserting a user called 'bad' makes SQLite roll back the whole transaction."""
    file_conn.execute("CREATE TRIGGER users_no_bad BEFORE INSERT ON users WHEN NEW.name = 'bad' "
                      "BEGIN SELECT RAISE(ROLLBACK, 'no bad users'); END")
    return file_conn


WRITES = {
    "upsert": lambda session: session.upsert(User(id=50, name="bad", score=0.0)),
    "flush": lambda session: (session.add(User(name="bad")), session.flush()),
    "bulk_insert_mappings": lambda session: session.bulk_insert_mappings(User, [{"name": "bad"}]),
    "bulk_save_objects": lambda session: session.bulk_save_objects([User(name="bad")]),
    "dry_run": lambda session: (session.add(User(name="bad")), session.dry_run()),
    "execute": lambda session: session.execute("INSERT INTO users (name, score) VALUES ('bad', 0)"),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_every_write_notices_that_sqlite_ended_the_transaction(trap, other, write):
    """Issue 10.3: upsert() raised a raw sqlite3.IntegrityError and left the session 'active'; its
    next flush then ran outside any transaction (committed at its RELEASE) and rollback() left a
    committed object transient with no key."""
    session = uow.Session(trap)
    ann = User(name="ann")
    session.add(ann)
    session.flush()
    with pytest.raises((errors.UowError, sqlite3.IntegrityError)) as raised:
        WRITES[write](session)
    if write == "execute":  # the user's own SQL keeps sqlite3's error, with a note
        assert isinstance(raised.value, sqlite3.IntegrityError)
    else:
        assert isinstance(raised.value, errors.FlushError)
    assert "no bad users" in str(raised.value)
    assert not trap.in_transaction and not session.is_active
    with pytest.raises(errors.PendingRollbackError) as refused:
        session.add(User(name="bob"))
        session.flush()
    assert LOST in str(refused.value)
    assert names(other) == []
    session.rollback()
    assert uow.state_of(ann) is uow.ObjectState.TRANSIENT and ann.id is None
    session.add(ann)
    session.commit()
    assert names(other) == ["ann"]
    session.close()


def test_upsert_that_sqlite_refuses_is_a_flush_error_naming_the_object(file_session, other):
    file_session.add(User(name="ann", email="ann@example.org"))
    file_session.flush()
    with pytest.raises(errors.FlushError) as raised:
        file_session.upsert(User(id=9, name="copy", email="ann@example.org", score=0.0))
    assert str(raised.value).startswith("upsert() of User(id=9) failed: UNIQUE constraint failed: users.email")
    assert isinstance(raised.value.__cause__, sqlite3.IntegrityError)
    assert file_session.is_active  # SQLite kept the transaction: the statement alone failed
    file_session.commit()
    assert names(other) == ["ann"]


def test_a_session_whose_transaction_sqlite_ended_unseen_refuses_to_write(file_session, other):
    """However SQLite's transaction ended (here through the raw connection), a flush must not run
    outside it: its RELEASE would commit at once."""
    file_session.add(User(name="ann"))
    file_session.flush()
    file_session.connection().execute("ROLLBACK")
    file_session.add(User(name="bob"))
    with uow.capture_sql() as statements:
        with pytest.raises(errors.PendingRollbackError) as raised:
            file_session.flush()
    assert statements == []
    assert "SQLite has no transaction open although this session began one" in str(raised.value)
    assert names(other) == []
    file_session.rollback()
    assert file_session.new == frozenset()


def test_a_full_disk_at_a_second_flush_says_the_first_flush_is_undone_too(tmp_path):
    """'A refused call must change nothing': SQLite rolled back the whole transaction, earlier
    flush included, yet PendingRollbackError said the database and the objects were as they were
    before the failed flush."""
    path = str(tmp_path / "small.db")
    connection = uow.connect(path)
    uow.create_all(connection, [User])
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.execute(f"PRAGMA max_page_count = {pages + 3}")
    session = uow.Session(connection)
    first = User(name="first")
    session.add(first)
    session.flush()
    session.add_all([User(name="x" * 2000) for _ in range(50)])
    with pytest.raises(errors.FlushError, match="database or disk is full"):
        session.flush()
    assert not connection.in_transaction
    with pytest.raises(errors.PendingRollbackError) as raised:
        session.get(User, 1)
    message = str(raised.value)
    assert "as they were before that flush" not in message
    assert LOST in message
    session.rollback()
    assert uow.state_of(first) is uow.ObjectState.TRANSIENT and first.id is None
    other = sqlite3.connect(path)
    assert other.execute("SELECT count(*) FROM users").fetchone() == (0,)
    other.close()
    session.close()
    connection.close()


# -- an exception arriving just after COMMIT, RELEASE or ROLLBACK ran --------------------------

class InterruptsAfter(sqlite3.Connection):
    """A real sqlite3 connection that raises KeyboardInterrupt once, just after running the first
    statement that starts with ``after`` (as Ctrl-C arriving when the statement has returned)."""

    after = None

    def execute(self, sql, *args):
        cursor = super().execute(sql, *args)
        if self.after is not None and sql.startswith(self.after):
            self.after = None
            raise KeyboardInterrupt(f"just after {sql}")
        return cursor


@pytest.fixture
def interrupting(db_path):
    connection = sqlite3.connect(db_path, isolation_level=None, factory=InterruptsAfter)
    connection.execute("PRAGMA foreign_keys = ON")
    yield connection
    connection.close()


def test_an_interrupt_just_after_commit_leaves_the_objects_committed(interrupting, other):
    """Issue 10.5: the session believed the transaction still open, and the rollback() that
    ``with Session`` then ran reverted the objects and took the new one's key although its row
    was committed."""
    ann = User(name="ann")
    with pytest.raises(KeyboardInterrupt):
        with uow.Session(interrupting) as session:
            session.add(ann)
            interrupting.after = "COMMIT"
    assert names(other) == ["ann"]
    assert uow.state_of(ann) is uow.ObjectState.DETACHED and ann.id == 1 and ann.name == "ann"


def test_after_an_interrupted_commit_the_session_goes_on_from_what_was_committed(interrupting, other):
    session = uow.Session(interrupting)
    ann = User(name="ann")
    session.add(ann)
    interrupting.after = "COMMIT"
    with pytest.raises(KeyboardInterrupt):
        session.commit()
    assert not session.in_transaction() and session.is_active
    session.rollback()  # nothing to undo: the work was committed
    assert uow.state_of(ann) is uow.ObjectState.PERSISTENT and ann.id == 1
    ann.name = "annie"
    session.commit()
    assert names(other) == ["annie"]
    session.close()


def test_wb_an_interrupt_in_the_bookkeeping_after_commit_still_forgets_the_committed_work(file_session, other):
    session = file_session
    ann = User(name="ann")
    session.add(ann)
    forget = session.undo.forget

    def interrupted(levels):
        session.undo.forget = forget
        raise KeyboardInterrupt("in the bookkeeping after COMMIT")

    session.undo.forget = interrupted
    with pytest.raises(KeyboardInterrupt):
        session.commit()
    session.rollback()
    assert uow.state_of(ann) is uow.ObjectState.PERSISTENT and ann.id == 1
    assert names(other) == ["ann"]


def test_an_interrupt_just_after_release_leaves_the_savepoint_released(interrupting, other):
    session = uow.Session(interrupting)
    session.begin()
    ann = User(name="ann")
    with pytest.raises(KeyboardInterrupt):
        with session.begin_nested() as nested:
            session.add(ann)
            interrupting.after = 'RELEASE "uow_sp'
    assert not nested.is_active and not session.in_nested_transaction()
    assert uow.state_of(ann) is uow.ObjectState.PERSISTENT  # its work joined the transaction
    session.rollback()  # and an outer rollback still undoes it
    assert uow.state_of(ann) is uow.ObjectState.TRANSIENT and ann.id is None
    session.add(ann)
    session.commit()
    assert names(other) == ["ann"]
    session.close()


def test_an_interrupt_just_after_rollback_to_leaves_the_savepoint_rolled_back(interrupting, other):
    session = uow.Session(interrupting)
    ann = User(name="ann")
    session.add(ann)
    nested = session.begin_nested()
    bob = User(name="bob")
    session.add(bob)
    session.flush()
    interrupting.after = "ROLLBACK TO"
    with pytest.raises(KeyboardInterrupt):
        nested.rollback()
    assert not nested.is_active and not session.in_nested_transaction()
    assert uow.state_of(bob) is uow.ObjectState.TRANSIENT and bob.id is None
    session.commit()
    assert names(other) == ["ann"]
    session.close()


def test_an_interrupt_just_after_rollback_leaves_the_objects_rolled_back(interrupting, other):
    session = uow.Session(interrupting)
    ann = User(name="ann")
    session.add(ann)
    session.flush()

    interrupting.after = "ROLLBACK"
    with pytest.raises(KeyboardInterrupt):
        session.rollback()
    assert not session.in_transaction()
    assert uow.state_of(ann) is uow.ObjectState.TRANSIENT and ann.id is None
    session.add(User(name="bob"))
    session.commit()
    assert names(other) == ["bob"]
    session.close()


def test_commit_after_the_transaction_ended_behind_the_session_says_so_instead_of_committing(file_session, other):
    """The raw connection committed: COMMIT would fail with 'no transaction is active' and the
    session claimed SQLite had rolled back; it now says what it knows and refuses until rollback()."""
    ann = User(name="ann")
    file_session.add(ann)
    file_session.flush()
    file_session.connection().execute("COMMIT")
    with uow.capture_sql() as statements:
        with pytest.raises(errors.PendingRollbackError) as raised:
            file_session.commit()
    assert statements == []
    assert str(raised.value).startswith(
        "commit(): a previous commit failed (SQLite has no transaction open although this session began one: "
        "SQLite rolled it back by itself, or the connection was used directly)")
    assert names(other) == ["ann"]


STAYED = "its statements had all run when the error arrived, so the transaction holds them"


def test_an_interrupt_just_after_a_bulk_writes_release_fails_the_session_and_rollback_undoes_it(interrupting, other):
    """The bulk write's own savepoint was released when the interrupt arrived: rolling back to it
    raised 'no such savepoint' instead, and the session went on unaware of the rows."""
    session = uow.Session(interrupting)
    interrupting.after = 'RELEASE "uow_bulk"'
    with pytest.raises(KeyboardInterrupt):
        session.bulk_insert_mappings(User, [{"name": "ann"}, {"name": "bob"}])
    with pytest.raises(errors.PendingRollbackError) as raised:
        session.commit()
    assert STAYED in str(raised.value)
    session.rollback()
    session.commit()
    assert names(other) == []
    session.close()


@pytest.mark.parametrize("write", ["flush", "bulk_save_objects"])
def test_an_interrupt_just_after_a_flushs_release_says_its_statements_stayed(interrupting, other, write):
    """After the flush's final RELEASE the statements are in the transaction: the refusal said 'the
    database and the objects are as they were before that flush' (a flush), or there was none and
    commit() committed rows whose objects never got their keys (bulk_save_objects)."""
    session = uow.Session(interrupting)
    ann = User(name="ann")
    interrupting.after = 'RELEASE "uow_flush"'
    with pytest.raises(KeyboardInterrupt):
        if write == "flush":
            session.add(ann)
            session.flush()
        else:
            session.bulk_save_objects([ann])
    with pytest.raises(errors.PendingRollbackError) as raised:
        session.commit()
    assert STAYED in str(raised.value)
    assert names(other) == []
    session.rollback()
    assert ann.id is None
    session.close()


def test_a_savepoint_block_rolls_back_while_a_returning_statement_is_still_being_read(file_session, other):
    """SQLite refuses RELEASE while a write statement is unfinished; the ROLLBACK TO before it has
    undone the work, so the block's rollback completes instead of raising 'SQL statements in
    progress' in place of the block's own error."""
    session = file_session
    session.begin()
    ann = User(name="ann")
    with pytest.raises(KeyError):
        with session.begin_nested():
            session.add(ann)
            session.flush()
            cursor = session.execute("INSERT INTO users (name, score) VALUES ('x', 0), ('y', 0) RETURNING id")
            cursor.fetchone()
            raise KeyError("the block's own error")
    cursor.close()
    assert not session.in_nested_transaction() and session.is_active
    assert uow.state_of(ann) is uow.ObjectState.TRANSIENT
    with session.begin_nested():
        session.add(User(name="bob"))
    session.commit()
    assert names(other) == ["bob"]


class CommitRollsBack(sqlite3.Connection):
    """A real sqlite3 connection whose COMMIT fails the way an I/O error can make it fail: SQLite
    rolls the transaction back and reports the error."""

    def execute(self, sql, *args):
        if sql == "COMMIT":
            super().execute("ROLLBACK")
            raise sqlite3.OperationalError("disk I/O error")
        return super().execute(sql, *args)


def test_a_commit_that_sqlite_rolled_back_fails_the_session_until_rollback(db_path, other):
    """The session stayed usable: get() handed out the new object for a row that no longer existed."""
    connection = sqlite3.connect(db_path, isolation_level=None, factory=CommitRollsBack)
    session = uow.Session(connection)
    ann = User(name="ann")
    session.add(ann)
    with pytest.raises(errors.TransactionError, match="the transaction is gone: SQLite rolled it back"):
        session.commit()
    assert not session.is_active
    with pytest.raises(errors.PendingRollbackError) as raised:
        session.get(User, ann.id)
    assert LOST in str(raised.value)
    session.rollback()
    assert uow.state_of(ann) is uow.ObjectState.TRANSIENT and ann.id is None
    assert names(other) == []
    session.close()
    connection.close()


def test_begin_nested_after_the_transaction_ended_behind_the_session_refuses_to_open_a_savepoint(file_session, other):
    """With nothing to flush, begin_nested() sent SAVEPOINT outside any transaction: SQLite began
    one for it, whose RELEASE committed the savepoint's writes at once, and rollback() could not
    take them back."""
    file_session.add(User(name="ann"))
    file_session.flush()
    connection = file_session.connection()
    connection.execute("ROLLBACK")
    with uow.capture_sql() as statements:
        with pytest.raises(errors.PendingRollbackError) as raised:
            file_session.begin_nested()
    assert statements == []
    assert str(raised.value).startswith("begin_nested(): a previous begin_nested failed (SQLite has no transaction open")
    assert not connection.in_transaction
    file_session.rollback()
    assert names(other) == []


def test_releasing_a_savepoint_after_the_transaction_ended_behind_the_session_says_so(file_session, other):
    """With nothing to flush, the savepoint's commit() sent RELEASE, which SQLite refused with a
    bare 'no such savepoint', and the session stayed active as if its transaction were open."""
    file_session.add(User(name="ann"))
    nested = file_session.begin_nested()
    file_session.connection().execute("ROLLBACK")
    with uow.capture_sql() as statements:
        with pytest.raises(errors.PendingRollbackError) as raised:
            nested.commit()
    assert statements == []
    assert "SQLite has no transaction open although this session began one" in str(raised.value)
    assert not file_session.is_active
    file_session.rollback()
    assert names(other) == []
