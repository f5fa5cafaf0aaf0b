"""The transaction accessors of the seeds' session surface: get_transaction, get_nested_transaction,
is_active, in_transaction, in_nested_transaction."""

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
    session.begin()
    assert session.get_transaction() is session.transaction
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
