"""uow.transaction(connection): a transaction used directly on a connection, without a session.

Ormdantic's ``async with db.transaction(read_only=...)``: uow sends BEGIN / COMMIT / ROLLBACK
itself, with the session's options and the session's refusals of what SQLite cannot honour, and
savepoints inside carry the program's names.  Claims about commits are read back from a second
connection.
"""

import sqlite3

import pytest

import uow
from uow import errors

from .models import User


def sql_of(statements):
    return [statement.sql for statement in statements]


def names(connection):
    return [row[0] for row in connection.execute("SELECT name FROM users ORDER BY id")]


INSERT = "INSERT INTO users (id, name, score) VALUES (?, ?, 0)"


def test_the_block_commits_what_it_wrote(file_conn, other):
    with uow.capture_sql() as statements:
        with uow.transaction(file_conn) as tx:
            file_conn.execute(INSERT, (1, "ann"))
            assert file_conn.in_transaction and names(other) == []
    assert sql_of(statements) == ["BEGIN DEFERRED", "COMMIT"]  # the INSERT was the program's own
    assert not tx.is_active and not file_conn.in_transaction
    assert names(other) == ["ann"]


def test_an_error_in_the_block_rolls_back_and_propagates(conn):
    with uow.capture_sql() as statements:
        with pytest.raises(KeyError):
            with uow.transaction(conn):
                conn.execute(INSERT, (1, "ann"))
                raise KeyError("no")
    assert sql_of(statements) == ["BEGIN DEFERRED", "ROLLBACK"]
    assert names(conn) == [] and not conn.in_transaction


def test_the_mode_is_sqlites_in_any_case(conn):
    with uow.capture_sql() as statements:
        with uow.transaction(conn, "immediate") as tx:
            assert repr(tx) == "<DirectTransaction IMMEDIATE active>"
        with uow.transaction(conn, mode="EXCLUSIVE"):
            pass
    assert sql_of(statements) == ["BEGIN IMMEDIATE", "COMMIT", "BEGIN EXCLUSIVE", "COMMIT"]


def test_read_only_is_enforced_by_sqlite_and_ends_with_the_transaction(conn):
    conn.execute(INSERT, (1, "ann"))
    with uow.capture_sql() as statements:
        with uow.transaction(conn, read_only=True) as tx:
            assert names(conn) == ["ann"]
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                conn.execute(INSERT, (2, "bob"))
    assert tx.read_only
    assert sql_of(statements) == ["BEGIN DEFERRED", "PRAGMA query_only", "PRAGMA query_only = 1", "COMMIT",
                                  "PRAGMA query_only = 0"]
    conn.execute(INSERT, (2, "bob"))  # writable again once it ended
    assert names(conn) == ["ann", "bob"]


@pytest.mark.parametrize("options, says", [
    ({"isolation_level": "READ COMMITTED"}, "SERIALIZABLE"),
    ({"deferrable": True}, "DEFERRABLE"),
    ({"mode": "SOMETIMES"}, "'SOMETIMES'"),
    ({"mode": 42}, "42"),
])
def test_options_sqlite_cannot_honour_are_refused_before_begin(conn, options, says):
    with uow.capture_sql() as statements:
        with pytest.raises(errors.TransactionError, match=says):
            uow.transaction(conn, **options)
    assert sql_of(statements) == [] and not conn.in_transaction


def test_serializable_is_accepted_as_the_session_accepts_it(conn):
    with uow.transaction(conn, isolation_level="serializable"):
        conn.execute(INSERT, (1, "ann"))
    assert names(conn) == ["ann"]


def test_a_connection_that_manages_transactions_itself_is_refused():
    connection = sqlite3.connect(":memory:")  # isolation_level "": the driver would BEGIN on its own
    try:
        with pytest.raises(errors.UowError, match="isolation_level"):
            uow.transaction(connection)
        with pytest.raises(errors.ArgumentError, match="':memory:'"):
            uow.transaction(":memory:")  # type: ignore[arg-type]
    finally:
        connection.close()


def test_it_and_a_session_refuse_to_begin_over_each_others_transaction(conn):
    session = uow.Session(conn)
    session.add(User(id=1, name="ann"))
    session.flush()
    with uow.capture_sql() as statements:
        with pytest.raises(errors.TransactionError, match="already has a transaction open"):
            uow.transaction(conn)
    assert sql_of(statements) == []
    session.commit()
    with uow.transaction(conn):
        session.add(User(id=2, name="bob"))
        with pytest.raises(errors.TransactionError, match="did not begin"):
            session.flush()
    session.close()


def test_savepoints_carry_their_names_and_undo_only_their_block(file_conn, other):
    with uow.capture_sql() as statements:
        with uow.transaction(file_conn) as tx:
            file_conn.execute(INSERT, (1, "base"))
            with pytest.raises(RuntimeError):
                with tx.savepoint("before_optional_work"):
                    file_conn.execute(INSERT, (2, "trial"))
                    raise RuntimeError("discard trial")
            with tx.savepoint("kept"):
                file_conn.execute(INSERT, (3, "kept"))
    assert [sql for sql in sql_of(statements) if not sql.startswith("INSERT")] == [
        "BEGIN DEFERRED", 'SAVEPOINT "before_optional_work"', 'ROLLBACK TO "before_optional_work"',
        'RELEASE "before_optional_work"', 'SAVEPOINT "kept"', 'RELEASE "kept"', "COMMIT"]
    assert names(other) == ["base", "kept"]


@pytest.mark.parametrize("name", ["", "two words", "uow_sp_1", "sqlite_x", None])
def test_a_bad_savepoint_name_is_refused_and_sends_nothing(conn, name):
    with uow.transaction(conn) as tx:
        with uow.capture_sql() as statements:
            with pytest.raises(errors.ArgumentError, match="savepoint"):
                with tx.savepoint(name):
                    pass
        assert sql_of(statements) == []


def test_a_savepoint_name_already_open_is_refused(conn):
    with uow.transaction(conn) as tx:
        with tx.savepoint("work"):
            with pytest.raises(errors.TransactionError, match="'Work' is already open"):
                with tx.savepoint("Work"):
                    pass
        with tx.savepoint("work"):
            pass


@pytest.mark.parametrize("ending", ["COMMIT", "ROLLBACK"])
def test_after_the_connection_ended_it_directly_nothing_more_is_sent(file_conn, other, ending):
    tx = uow.transaction(file_conn)
    file_conn.execute(INSERT, (1, "ann"))
    file_conn.execute(ending)  # behind uow's back
    with uow.capture_sql() as statements:
        with pytest.raises(errors.TransactionError, match="no longer open"):
            with tx.savepoint("late"):  # a SAVEPOINT now would begin a transaction its RELEASE commits
                file_conn.execute(INSERT, (2, "late"))
        with pytest.raises(errors.TransactionError, match="already ended"):
            tx.commit()
    assert sql_of(statements) == [] and not file_conn.in_transaction
    assert names(other) == (["ann"] if ending == "COMMIT" else [])


def test_a_commit_refused_for_a_lock_leaves_the_transaction_open(db_path):
    writer = uow.connect(db_path, timeout=0)
    reader = uow.connect(db_path, timeout=0)
    try:
        tx = uow.transaction(writer)
        writer.execute(INSERT, (1, "ann"))
        reader.execute("BEGIN")
        reader.execute("SELECT * FROM users").fetchall()  # a SHARED lock: COMMIT cannot get EXCLUSIVE
        with pytest.raises(errors.TransactionError, match="still open.*lock"):
            tx.commit()
        assert tx.is_active and writer.in_transaction
        reader.execute("COMMIT")
        tx.commit()
        assert names(reader) == ["ann"]
    finally:
        writer.close()
        reader.close()


def test_ending_it_yourself_inside_the_block_is_final(conn):
    with uow.transaction(conn) as tx:
        conn.execute(INSERT, (1, "ann"))
        tx.rollback()
        with pytest.raises(errors.TransactionError, match="already ended"):
            tx.rollback()
    assert names(conn) == [] and not conn.in_transaction


@pytest.mark.parametrize("ending", ["commit", "rollback"])
def test_ending_it_yourself_inside_a_savepoints_block_ends_the_savepoint_with_it(file_conn, other, ending):
    """The savepoint's block then sent RELEASE of a savepoint that was gone: sqlite3's raw 'no such
    savepoint'.  As a Scope ended inside its block, the transaction (and the savepoint with it) is
    left as its own commit() or rollback() left it."""
    with uow.capture_sql() as statements:
        with uow.transaction(file_conn) as tx:
            with tx.savepoint("work"):
                file_conn.execute(INSERT, (1, "ann"))
                getattr(tx, ending)()
    assert sql_of(statements)[-1] == ending.upper() and 'RELEASE "work"' not in sql_of(statements)
    assert names(other) == (["ann"] if ending == "commit" else []) and not file_conn.in_transaction


@pytest.mark.parametrize("behind_its_back", ["COMMIT", "ROLLBACK", 'RELEASE "work"', 'ROLLBACK TO "outer"'])
def test_a_savepoint_ended_inside_its_block_by_raw_sql_is_a_transaction_error(file_conn, other, behind_its_back):
    """Each raised sqlite3's raw OperationalError ('no such savepoint') from the block's RELEASE."""
    with pytest.raises(errors.TransactionError, match="savepoint\\('work'\\): the") as caught:
        with uow.transaction(file_conn) as tx:
            with tx.savepoint("outer"):
                file_conn.execute(INSERT, (1, "ann"))
                with tx.savepoint("work"):
                    file_conn.execute(INSERT, (2, "bob"))
                    file_conn.execute(behind_its_back)
    said = str(caught.value)
    assert ("transaction ended inside" in said) == (behind_its_back in ("COMMIT", "ROLLBACK")), said
    assert not file_conn.in_transaction  # the outer block rolled back what was left, or nothing was left
    assert names(other) == (["ann", "bob"] if behind_its_back == "COMMIT" else [])
