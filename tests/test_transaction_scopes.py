"""What begin() and begin_nested() return, and what a ``with`` block over them ends: that transaction
or savepoint, never the session.  What a savepoint block whose flush failed leaves behind."""

import pytest

import uow
from uow import errors

from .models import Order, User


def committed_users(other):
    return [row[0] for row in other.execute("SELECT name FROM users ORDER BY id")]


# -- with session.begin() ---------------------------------------------------------------------

def test_with_begin_commits_that_transaction_and_leaves_the_session_open(file_session, other):
    with file_session.begin() as transaction:
        file_session.add(User(name="ann"))
    assert isinstance(transaction, uow.SessionTransaction) and not transaction.is_active
    assert committed_users(other) == ["ann"]
    assert file_session.is_active and not file_session.in_transaction()
    with file_session.begin():  # and again: the session was not closed
        file_session.get(User, 1).name = "annie"
    assert committed_users(other) == ["annie"]


def test_with_begin_rolls_that_transaction_back_on_an_exception_and_reraises(file_session, other):
    user = User(name="ann")
    with pytest.raises(KeyError):
        with file_session.begin():
            file_session.add(user)
            file_session.flush()
            raise KeyError("boom")
    assert committed_users(other) == []
    assert uow.state_of(user) is uow.ObjectState.TRANSIENT and user.id is None
    assert file_session.is_active
    file_session.add(User(name="bob"))
    file_session.commit()
    assert committed_users(other) == ["bob"]


def test_a_commit_that_fails_at_the_end_of_a_with_begin_block_rolls_back_and_reraises(file_session, other):
    other.execute("INSERT INTO users (name, email, score) VALUES ('planted', 'taken@example.org', 0.0)")
    ann = User(name="ann")
    with pytest.raises(errors.FlushError):
        with file_session.begin():
            file_session.add(ann)
            file_session.add(User(name="clash", email="taken@example.org"))
    assert not file_session.in_transaction() and file_session.is_active
    assert uow.state_of(ann) is uow.ObjectState.TRANSIENT
    assert committed_users(other) == ["planted"]


def test_begin_returns_what_get_transaction_returns_and_it_ends_once(session):
    transaction = session.begin()
    assert session.get_transaction() is transaction and transaction.is_active
    assert repr(transaction) == "<SessionTransaction active>"
    transaction.commit()
    assert session.get_transaction() is None and repr(transaction) == "<SessionTransaction ended>"
    for end, name in ((transaction.commit, "commit"), (transaction.rollback, "rollback")):
        with pytest.raises(errors.TransactionError) as raised:
            end()
        assert str(raised.value) == f"{name}(): <SessionTransaction ended> has already ended"


def test_a_transaction_ended_inside_its_with_block_is_left_alone_at_the_end(file_session, other):
    """The block's transaction was committed inside it; a later read began the next transaction,
    which the block's end must not commit."""
    with file_session.begin():
        file_session.add(User(name="ann"))
        file_session.commit()
        file_session.get(User, 1).name = "changed, not committed"
        file_session.flush()
    assert file_session.in_transaction()
    assert committed_users(other) == ["ann"]
    file_session.rollback()


def test_with_session_keeps_its_own_meaning_commit_then_close(file_conn, other):
    with uow.Session(file_conn) as session:
        session.add(User(name="ann"))
    assert committed_users(other) == ["ann"]
    with pytest.raises(errors.SessionClosedError):
        session.get(User, 1)


# -- with session.begin_nested() --------------------------------------------------------------

def test_with_begin_nested_returns_the_savepoint_and_releases_it(session, conn):
    session.begin()
    with session.begin_nested() as nested:
        session.add(User(name="ann"))
    assert isinstance(nested, uow.NestedTransaction) and not nested.is_active
    assert session.in_transaction() and not session.in_nested_transaction()
    assert conn.execute("SELECT name FROM users").fetchall() == [("ann",)]


def test_a_savepoint_block_whose_release_fails_rolls_back_the_savepoint_and_the_transaction_goes_on(
        file_session, other):
    """Issue 9.11: the flush at the block's end fails.  The savepoint is rolled back (what was added in
    it is transient again, what was changed in it is as it was), the error propagates, and the
    enclosing transaction carries on: the next savepoint block works, and commit() keeps the work
    done before the savepoint."""
    ann = User(name="ann")
    file_session.add(ann)
    file_session.flush()
    bad = Order(user_id=42)  # no such user: the foreign key fails
    with pytest.raises(errors.FlushError):
        with file_session.begin_nested() as nested:
            ann.name = "changed in the savepoint"
            file_session.add(bad)
    assert not nested.is_active and not file_session.in_nested_transaction()
    assert file_session.is_active
    assert uow.state_of(bad) is uow.ObjectState.TRANSIENT and bad not in file_session.new
    assert ann.name == "ann" and file_session.dirty_fields(ann) == []
    with file_session.begin_nested():
        file_session.add(Order(user_id=ann.id))
    file_session.commit()
    assert committed_users(other) == ["ann"]
    assert other.execute("SELECT user_id FROM orders").fetchall() == [(ann.id,)]


def test_a_savepoint_whose_explicit_flush_failed_recovers_when_it_is_rolled_back(session, conn):
    """Without the ``with`` block: the failed flush refuses further work, and rolling back the
    savepoint it failed in (not only rollback() of everything) puts the session back to work."""
    kept = User(name="kept")
    session.add(kept)
    session.flush()
    nested = session.begin_nested()
    session.add(Order(user_id=42))
    with pytest.raises(errors.FlushError):
        session.flush()
    with pytest.raises(errors.PendingRollbackError):
        session.begin_nested()
    nested.rollback()
    assert session.is_active and session.new == frozenset()
    session.add(User(name="after"))
    session.commit()
    assert conn.execute("SELECT name FROM users ORDER BY id").fetchall() == [("kept",), ("after",)]


def test_a_savepoint_block_inside_a_with_begin_block(file_session, other):
    with file_session.begin():
        file_session.add(User(name="ann"))
        with pytest.raises(errors.FlushError):
            with file_session.begin_nested():
                file_session.add(Order(user_id=42))
        with file_session.begin_nested():
            file_session.add(User(name="bob"))
    assert committed_users(other) == ["ann", "bob"]
    assert other.execute("SELECT count(*) FROM orders").fetchone() == (0,)


# -- transaction statements through execute() -------------------------------------------------

@pytest.mark.parametrize("sql, verb, instead", [
    ("COMMIT", "COMMIT", "session.commit()"),
    ("  commit  ", "COMMIT", "session.commit()"),
    ("END TRANSACTION", "END", "session.commit()"),
    ("-- finish it\nCOMMIT", "COMMIT", "session.commit()"),
    ("/* done */ Commit", "COMMIT", "session.commit()"),
    ("; COMMIT", "COMMIT", "session.commit()"),
    ("ROLLBACK", "ROLLBACK", "session.rollback(), or rollback() on what begin_nested() returned"),
    ("rollback to uow_sp_1", "ROLLBACK", "session.rollback(), or rollback() on what begin_nested() returned"),
    ("BEGIN IMMEDIATE", "BEGIN", "session.begin()"),
    ("\n\tsavepoint mine", "SAVEPOINT", "session.begin_nested()"),
    ("RELEASE mine", "RELEASE", "commit() on what begin_nested() returned"),
])
def test_execute_refuses_transaction_statements_before_anything_runs(file_session, other, sql, verb, instead):
    """Issue 10.8: execute("COMMIT") used to commit behind the session's back; the session stayed
    'active', and a rollback() then reverted objects to values the database no longer held."""
    ann = User(name="ann")
    file_session.add(ann)
    file_session.flush()
    ann.name = "annie"
    with uow.capture_sql() as statements:
        with pytest.raises(errors.TransactionError) as raised:
            file_session.execute(sql)
    assert str(raised.value) == (
        f"execute(): {sql.strip()!r} is transaction control ({verb}); the session owns the transaction and keeps "
        f"its objects in step with it, so such statements cannot go through execute(): use {instead} instead")
    assert statements == []
    assert committed_users(other) == []
    assert file_session.is_active and file_session.in_transaction()
    file_session.commit()
    assert committed_users(other) == ["annie"]


def test_scalar_and_scalars_refuse_transaction_statements_too(session):
    for call in (session.scalar, session.scalars):
        with pytest.raises(errors.TransactionError, match=r"is transaction control \(COMMIT\)"):
            call("COMMIT")


def test_statements_that_only_mention_transaction_words_still_run(session):
    session.execute("CREATE TABLE commit_log (begin_at TEXT, rollback_count INTEGER)")
    session.execute("INSERT INTO commit_log VALUES ('now', 0)")
    assert session.scalars("/* COMMIT */ SELECT rollback_count FROM commit_log") == [0]
