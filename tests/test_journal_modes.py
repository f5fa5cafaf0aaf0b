"""Two sessions on one file, in the rollback-journal mode and in WAL (``uow.connect(journal_mode=)``).

In rollback-journal mode a session that has only read holds SQLite's SHARED lock until its
transaction ends, and that blocks every other connection's COMMIT; in WAL readers and one writer
go side by side, each reader keeping the snapshot its transaction began with.  The connections
use ``timeout=0``, so a lock shows at once as "database is locked" instead of as a wait.
"""

import sqlite3

import pytest

import uow
from uow import errors

from .models import ALL_MODELS, User

MODES = ["delete", "wal"]


def make_file(tmp_path, journal_mode):
    path = str(tmp_path / f"{journal_mode}.db")
    connection = uow.connect(path, journal_mode=journal_mode)
    uow.create_all(connection, ALL_MODELS)
    session = uow.Session(connection)
    session.add(User(name="ann"))
    session.commit()
    session.close()
    connection.close()
    return path


def committed_names(path):
    """What a second, plain connection reads: only what was committed."""
    connection = sqlite3.connect(path)
    try:
        return [name for (name,) in connection.execute("SELECT name FROM users ORDER BY id")]
    finally:
        connection.close()


def session_on(path):
    return uow.Session(uow.connect(path, timeout=0))


@pytest.mark.parametrize("journal_mode", MODES)
def test_connect_sets_the_journal_mode_and_the_file_keeps_it(tmp_path, journal_mode):
    path = make_file(tmp_path, journal_mode)
    plain = sqlite3.connect(path)
    assert plain.execute("PRAGMA journal_mode").fetchone() == (journal_mode,)
    plain.close()


def test_connect_turns_a_wal_file_back_to_a_rollback_journal(tmp_path):
    path = make_file(tmp_path, "wal")
    uow.connect(path, journal_mode="DELETE").close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_connect_without_journal_mode_leaves_the_files_mode(tmp_path):
    path = make_file(tmp_path, "wal")
    assert uow.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.parametrize("journal_mode", ["memory", "off", "WAL2", "", 42, True])
def test_connect_refuses_a_journal_mode_that_is_not_atomic_or_not_sqlites(tmp_path, journal_mode):
    path = tmp_path / "never.db"
    with pytest.raises(errors.ArgumentError, match="journal_mode must be one of"):
        uow.connect(str(path), journal_mode=journal_mode)
    assert not path.exists()  # refused before the file was opened


def test_wal_on_an_in_memory_database_is_an_error_not_a_silent_memory_journal():
    with pytest.raises(errors.UowError, match="in-memory database.*use a file path"):
        uow.connect(":memory:", journal_mode="wal")


def test_leaving_wal_while_another_connection_holds_the_file_is_an_error(tmp_path):
    path = make_file(tmp_path, "wal")
    holder = uow.connect(path)
    holder.execute("BEGIN")
    holder.execute("SELECT * FROM users").fetchall()
    with pytest.raises(errors.UowError, match="journal_mode='delete'"):
        uow.connect(path, journal_mode="delete", timeout=0)
    holder.execute("ROLLBACK")
    holder.close()


def test_rollback_journal_a_session_that_only_read_blocks_the_others_commit(tmp_path):
    path = make_file(tmp_path, "delete")
    reader = session_on(path)
    writer = session_on(path)
    assert reader.get_one(User, 1).name == "ann"  # the reader's transaction holds SHARED
    writer.get_one(User, 1).name = "bob"
    with pytest.raises(errors.TransactionError, match="database is locked; the transaction is still open"):
        writer.commit()
    assert reader.scalar("SELECT name FROM users WHERE id = 1") == "ann"
    reader.commit()  # the reader's transaction ends, and with it its lock
    writer.commit()  # the same commit, retried
    assert committed_names(path) == ["bob"]


def test_wal_a_session_that_only_read_does_not_block_the_others_commit_and_keeps_its_snapshot(tmp_path):
    path = make_file(tmp_path, "wal")
    reader = session_on(path)
    writer = session_on(path)
    assert reader.get_one(User, 1).name == "ann"
    writer.get_one(User, 1).name = "bob"
    writer.commit()
    assert committed_names(path) == ["bob"]
    # The reader's transaction still reads the database as it was when it began ...
    assert reader.scalar("SELECT name FROM users WHERE id = 1") == "ann"
    reader.commit()
    # ... and the next one sees the commit.
    assert reader.scalar("SELECT name FROM users WHERE id = 1") == "bob"


def test_wal_a_write_on_a_snapshot_older_than_anothers_commit_is_refused_not_lost(tmp_path):
    """The lost update WAL could cause: the reader's snapshot predates the commit, so SQLite
    refuses its write (SQLITE_BUSY_SNAPSHOT); rolling back and doing the work again succeeds."""
    path = make_file(tmp_path, "wal")
    first = session_on(path)
    second = session_on(path)
    first_user = first.get_one(User, 1)
    second.get_one(User, 1).name = "bob"
    second.commit()
    first_user.name = "carl"
    with pytest.raises(errors.FlushError, match="database is locked") as refused:
        first.commit()
    # sqlite3 says "database is locked", but no connection holds a lock: the message says what
    # really happened (SQLITE_BUSY_SNAPSHOT) and what to do, not to wait for a lock.
    message = str(refused.value)
    assert "holds the write lock" not in message
    assert "SQLITE_BUSY_SNAPSHOT" in message and "no connection holds a lock" in message
    assert "older than another connection's commit" in message and "roll back" in message
    assert committed_names(path) == ["bob"]
    first.rollback()
    first.get_one(User, 1).name = "carl"
    first.commit()
    assert committed_names(path) == ["carl"]


def test_wal_a_write_while_another_connection_holds_the_write_lock_says_so(tmp_path):
    """The plain lock, beside the stale snapshot above: the other connection has written but not
    committed, so this transaction's snapshot is current and the lock is what refuses the write."""
    path = make_file(tmp_path, "wal")
    reader = session_on(path)
    writer = sqlite3.connect(path, isolation_level=None)
    reader_user = reader.get_one(User, 1)  # BEGIN DEFERRED and a read
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE users SET name = 'dan' WHERE id = 1")
    reader_user.name = "carl"
    with pytest.raises(errors.FlushError, match="database is locked") as refused:
        reader.flush()
    message = str(refused.value)
    assert "another connection holds the write lock" in message and "SQLITE_BUSY_SNAPSHOT" not in message
    reader.rollback()
    writer.execute("ROLLBACK")
    writer.close()
    reader.get_one(User, 1).name = "carl"
    reader.commit()
    assert committed_names(path) == ["carl"]


def test_wal_raw_sql_and_upsert_on_a_stale_snapshot_say_what_happened(tmp_path):
    """The same refusal met outside the flush: execute() passes sqlite3's error on with a note,
    upsert() wraps it in a FlushError; both say it is a stale snapshot, not a lock."""
    path = make_file(tmp_path, "wal")
    first = session_on(path)
    second = session_on(path)
    first.get_one(User, 1)
    second.get_one(User, 1).name = "bob"
    second.commit()
    with pytest.raises(sqlite3.OperationalError) as raw:
        first.execute("UPDATE users SET name = 'carl' WHERE id = 1")
    assert any("SQLITE_BUSY_SNAPSHOT" in note for note in raw.value.__notes__)
    first.rollback()
    assert first.scalar("SELECT name FROM users WHERE id = 1") == "bob"  # a new read, a new snapshot
    second.get_one(User, 1).name = "eve"
    second.commit()
    with pytest.raises(errors.FlushError, match="upsert.*SQLITE_BUSY_SNAPSHOT.*roll back"):
        first.upsert(User(id=1, name="carl"))
    first.rollback()
    assert committed_names(path) == ["eve"]


@pytest.mark.parametrize("journal_mode", MODES)
def test_two_sessions_take_turns_reading_and_writing_one_file(tmp_path, journal_mode):
    path = make_file(tmp_path, journal_mode)
    one = session_on(path)
    two = session_on(path)
    one.get_one(User, 1).name = "bob"
    one.add(User(name="dan"))
    one.commit()
    assert [user.name for user in two.all(User)] == ["bob", "dan"]
    two.delete(two.get_one(User, 2))
    two.get_one(User, 1).name = "eve"
    two.commit()
    one.expire_all()
    assert [user.name for user in one.all(User)] == ["eve"]
    one.commit()
    assert committed_names(path) == ["eve"]
