"""The session's transaction accessors: get_transaction, get_nested_transaction, is_active,
in_transaction, in_nested_transaction."""

import sqlite3

import pytest

import uow
from uow import errors

from .models import ALL_MODELS, Country


@pytest.fixture
def session():
    connection = uow.connect(":memory:")
    uow.create_all(connection, ALL_MODELS)
    session = uow.Session(connection)
    yield session
    session.close()
    connection.close()


def test_no_transaction_before_the_first_database_operation(session):
    assert session.get_transaction() is None
    assert session.get_nested_transaction() is None
    assert not session.in_transaction()
    assert not session.in_nested_transaction()
    assert session.is_active


def test_savepoints_nest_and_the_innermost_is_reported(session):
    transaction = session.begin()
    assert session.get_transaction() is transaction and transaction.is_active
    outer = session.begin_nested()
    inner = session.begin_nested()
    assert session.get_nested_transaction() is inner
    assert session.in_nested_transaction()
    inner.rollback()
    assert session.get_nested_transaction() is outer
    outer.commit()
    assert session.get_nested_transaction() is None
    assert session.in_transaction()
    session.commit()
    assert session.get_transaction() is None


def test_a_failed_flush_makes_the_session_inactive_until_rollback(session):
    session.add(Country(code="fr", name="France"))
    session.commit()
    session.execute("INSERT INTO countries (code, name) VALUES ('de', 'planted')")
    session.add(Country(code="de", name="Germany"))
    with pytest.raises(errors.FlushError):
        session.flush()
    assert not session.is_active
    assert session.in_transaction()  # the failed transaction waits for rollback()
    session.rollback()
    assert session.is_active
    assert session.get_transaction() is None


def test_a_closed_session_is_not_active(session):
    session.close()
    assert not session.is_active


def test_a_savepoint_shows_whether_it_is_still_active(session):
    session.begin()
    outer = session.begin_nested()
    inner = session.begin_nested()
    assert (outer.is_active, repr(outer)) == (True, "<NestedTransaction uow_sp_1 depth=1 active>")
    inner.rollback()
    assert (inner.is_active, repr(inner)) == (False, "<NestedTransaction uow_sp_2 depth=2 ended>")
    outer.commit()
    assert (outer.is_active, repr(outer)) == (False, "<NestedTransaction uow_sp_1 depth=1 ended>")


def test_ending_a_savepoint_that_is_not_the_innermost_names_the_one_to_end_first(session):
    session.begin()
    outer = session.begin_nested()
    session.begin_nested()
    innermost = session.begin_nested()
    for end, operation in ((outer.commit, "commit"), (outer.rollback, "rollback")):
        with uow.capture_sql() as statements:
            with pytest.raises(errors.TransactionError) as raised:
                end()
        assert str(raised.value) == (
            f"{operation}(): <NestedTransaction uow_sp_1 depth=1 active> is not the innermost savepoint; "
            f"end <NestedTransaction uow_sp_3 depth=3 active> first")
        assert statements == []
    assert session.get_nested_transaction() is innermost and outer.is_active


def test_ending_a_savepoint_that_has_already_ended_says_so(session):
    session.begin()
    nested = session.begin_nested()
    nested.commit()
    for end, operation in ((nested.commit, "commit"), (nested.rollback, "rollback")):
        with uow.capture_sql() as statements:
            with pytest.raises(errors.TransactionError) as raised:
                end()
        assert str(raised.value) == f"{operation}(): <NestedTransaction uow_sp_1 depth=1 ended> has already ended"
        assert statements == []


@pytest.mark.parametrize("seconds", [-1, -0.5, "5", True])
def test_busy_timeout_must_be_a_number_of_seconds_not_below_zero(seconds):
    connection = uow.connect(":memory:")
    try:
        with uow.capture_sql() as statements:
            with pytest.raises(errors.TransactionError) as raised:
                uow.Session(connection, busy_timeout=seconds)
        assert str(raised.value) == f"busy_timeout must be a number of seconds >= 0, got {seconds!r}"
        assert statements == []
    finally:
        connection.close()


def test_busy_timeout_is_set_on_the_connection_in_milliseconds():
    connection = uow.connect(":memory:")
    try:
        with uow.capture_sql() as statements:
            uow.Session(connection, busy_timeout=0.25)
        assert [s.sql for s in statements] == ["PRAGMA busy_timeout = 250"]
        assert connection.execute("PRAGMA busy_timeout").fetchone()[0] == 250
    finally:
        connection.close()


def test_close_ends_a_transaction_that_an_after_rollback_listener_began(conn):
    """close() rolls back, then detaches; a listener that reads in between opens a new
    transaction, and close() must not leave it open on the connection."""
    session = uow.Session(conn)
    session.add(Country(code="fr", name="France"))
    session.flush()
    counts = []
    uow.listen(session, "after_rollback", lambda s, **info: counts.append(s.scalar("SELECT count(*) FROM countries")))
    with uow.capture_sql() as statements:
        session.close()
    assert counts == [0]
    assert [s.sql for s in statements] == [
        "ROLLBACK", "BEGIN DEFERRED", "SELECT count(*) FROM countries", "ROLLBACK"]
    assert not conn.in_transaction


def test_a_before_begin_listener_that_closes_the_session_is_refused_and_the_flush_sends_nothing(session):
    """A listener cannot end the session whose flush called it (see uow.events): the refusal names
    the call and the listener, the flush is aborted before any SQL, and the session stays usable."""
    session.add(Country(code="fr", name="France"))
    closing = lambda s, **info: s.close()  # noqa: E731
    uow.listen(session, "before_begin", closing)
    with uow.capture_sql() as statements:
        with pytest.raises(errors.TransactionError) as raised:
            session.flush()
    assert str(raised.value).startswith("close() was called from a before_begin listener, while beginning the "
                                        "transaction is in progress")
    assert statements == []
    assert session.is_active
    uow.remove_listener(session, "before_begin", closing)
    session.commit()


class RefusesCommit(sqlite3.Connection):
    """A real sqlite3 connection that refuses COMMIT while ``refusing`` is set, with an error raised
    by the driver rather than by SQLite (such errors carry no ``sqlite_errorname``)."""

    refusing = False

    def execute(self, sql, *args):
        if sql == "COMMIT" and self.refusing:
            raise sqlite3.ProgrammingError("COMMIT refused by the driver")
        return super().execute(sql, *args)


def test_wb_a_commit_refused_by_the_driver_leaves_the_transaction_open_for_a_retry():
    connection = sqlite3.connect(":memory:", isolation_level=None, factory=RefusesCommit)
    uow.create_all(connection, [Country])
    session = uow.Session(connection)
    session.add(Country(code="fr", name="France"))
    connection.refusing = True
    with pytest.raises(errors.TransactionError) as raised:
        session.commit()
    assert str(raised.value) == ("COMMIT failed: COMMIT refused by the driver; the transaction is still open: "
                                 "retry commit(), or rollback().")
    assert connection.in_transaction
    connection.refusing = False
    session.commit()
    assert not connection.in_transaction
    assert connection.execute("SELECT code, name FROM countries").fetchall() == [("fr", "France")]
    session.close()
    connection.close()


def test_an_error_in_a_transaction_block_whose_transaction_already_ended_still_propagates(session):
    """``with session.begin():`` never swallows the block's exception, also when the block ended its
    transaction itself (found by mutation testing)."""
    with pytest.raises(ValueError, match="from the block"):
        with session.begin() as transaction:
            transaction.commit()
            raise ValueError("from the block")
    with pytest.raises(ValueError, match="from the block"):
        with session.begin_nested() as savepoint:
            savepoint.rollback()
            raise ValueError("from the block")


def test_busy_timeout_of_zero_seconds_means_fail_at_once():
    connection = uow.connect(":memory:")
    try:
        uow.Session(connection, busy_timeout=0)
        assert connection.execute("PRAGMA busy_timeout").fetchone()[0] == 0
    finally:
        connection.close()
