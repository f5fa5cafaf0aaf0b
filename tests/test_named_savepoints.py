"""session.savepoint(name): a savepoint with the application's own name, in the SQL and the events.

Ormdantic writes ``async with session.savepoint("optional_flavor"):``; uow's savepoint is
``begin_nested()`` with a name, so everything begin_nested() promises (the objects rolled back
with the database, the failure inside it undone with it) holds for it too.  What the name adds is
checked here: it is what SQLite sees, what the events report, and a bad one is refused before the
flush that opening a savepoint does, with nothing sent.
"""

import pytest

import uow
from uow import ObjectState, errors, state_of

from .models import User


def sql_of(statements):
    return [statement.sql for statement in statements]


def test_the_name_is_in_the_sql_and_the_block_releases_it(session, conn):
    session.add(User(id=1, name="base"))
    session.flush()
    with uow.capture_sql() as statements:
        with session.savepoint("before_optional_work") as nested:
            session.add(User(id=2, name="trial"))
    assert nested.name == "before_optional_work" and not nested.is_active
    sent = sql_of(statements)
    assert sent[0] == 'SAVEPOINT "before_optional_work"'
    assert sent[-1] == 'RELEASE "before_optional_work"'
    session.commit()
    assert [row[0] for row in conn.execute("SELECT name FROM users ORDER BY id")] == ["base", "trial"]


def test_an_error_in_the_block_rolls_back_to_the_named_savepoint_database_and_objects(file_conn, other):
    session = uow.Session(file_conn)
    base = User(id=1, name="base")
    session.add(base)
    session.flush()
    with uow.capture_sql() as statements:
        with pytest.raises(RuntimeError, match="discard trial"):
            with session.savepoint("optional_flavor"):
                trial = User(id=2, name="trial")
                session.add(trial)
                base.name = "renamed in the savepoint"
                session.flush()
                raise RuntimeError("discard trial")
    assert 'ROLLBACK TO "optional_flavor"' in sql_of(statements)
    assert sql_of(statements)[-1] == 'RELEASE "optional_flavor"'
    assert base.name == "base" and uow.state_of(trial) is uow.ObjectState.TRANSIENT
    assert session.in_transaction() and not session.in_nested_transaction()
    session.commit()
    assert other.execute("SELECT id, name FROM users").fetchall() == [(1, "base")]


def test_the_events_report_the_name(session):
    seen = []

    def record(name):
        def listener(session, savepoint=None, **info):
            seen.append((name, savepoint.name if savepoint is not None else None))
        return listener

    for event in ("before_savepoint", "after_savepoint", "before_release_savepoint", "after_release_savepoint",
                  "before_rollback_to_savepoint", "after_rollback_to_savepoint"):
        uow.listen(session, event, record(event))
    with session.savepoint("kept"):
        pass
    with pytest.raises(KeyError):
        with session.savepoint("undone"):
            raise KeyError("x")
    assert seen == [
        ("before_savepoint", None), ("after_savepoint", "kept"),
        ("before_release_savepoint", "kept"), ("after_release_savepoint", "kept"),
        ("before_savepoint", None), ("after_savepoint", "undone"),
        ("before_rollback_to_savepoint", "undone"), ("after_rollback_to_savepoint", "undone"),
    ]


def test_named_and_unnamed_savepoints_nest(session):
    with uow.capture_sql() as statements:
        with session.savepoint("outer"):
            with session.begin_nested() as inner:
                with session.savepoint("innermost"):
                    assert session.get_nested_transaction().name == "innermost"
            assert inner.name.startswith("uow_sp_")
    assert [sql for sql in sql_of(statements) if "SAVEPOINT" in sql or "RELEASE" in sql] == [
        'SAVEPOINT "outer"', f'SAVEPOINT "{inner.name}"', 'SAVEPOINT "innermost"',
        'RELEASE "innermost"', f'RELEASE "{inner.name}"', 'RELEASE "outer"']


@pytest.mark.parametrize("name, says", [
    ("", "not a plain identifier"),
    ("two words", "not a plain identifier"),
    ('x"; DROP TABLE users; --', "not a plain identifier"),
    ("sqlite_mine", "'sqlite_'"),
    ("uow_sp_1", "'uow_'"),
    ("UOW_flush", "'uow_'"),
    (42, "42"),
    ("x" * 129, "longer than 128"),
])
def test_a_bad_name_is_refused_before_the_flush_and_sends_nothing(session, name, says):
    user = User(id=1, name="pending")
    session.add(user)
    with uow.capture_sql() as statements:
        with pytest.raises(errors.ArgumentError, match="savepoint") as refused:
            session.savepoint(name)
    assert says in str(refused.value)
    assert sql_of(statements) == []
    assert user in session.new  # the flush a savepoint begins with did not run


def test_a_name_already_open_is_refused_in_any_case(session):
    with session.savepoint("work"):
        with uow.capture_sql() as statements:
            with pytest.raises(errors.TransactionError, match="'WORK' is already open"):
                session.savepoint("WORK")
        assert sql_of(statements) == []
        assert session.get_nested_transaction().name == "work"
    with session.savepoint("work"):  # free again once released
        pass


def test_a_savepoint_cannot_be_opened_from_a_listener(session):
    def listener(session, **info):
        session.savepoint("from_listener")

    uow.listen(session, "before_flush", listener)
    session.add(User(id=1, name="a"))
    with pytest.raises(errors.TransactionError, match="savepoint\\(\\) was called from a before_flush listener"):
        session.flush()


@pytest.mark.parametrize("behind_its_back", ['RELEASE "work"', 'ROLLBACK TO "outer"'])
def test_a_savepoint_ended_inside_its_block_by_raw_sql_is_a_uow_error(session, conn, behind_its_back):
    """The block's end met sqlite3's raw 'no such savepoint'.  Which of the two happened (the work
    released into the outer level, or undone) the session cannot tell, so it says so by name and
    refuses everything but rollback(), as after a failed flush; rollback() puts all back."""
    with pytest.raises(errors.PendingRollbackError, match="released the savepoint or rolled back past it"):
        with session.savepoint("outer"):
            session.add(User(name="ann"))
            with pytest.raises(errors.TransactionError, match="NestedTransaction work"):
                with session.savepoint("work"):
                    bob = User(name="bob")
                    session.add(bob)
                    session.flush()
                    conn.execute(behind_its_back)
            assert not session.is_active  # failed: only rollback() now
    session.rollback()
    assert state_of(bob) is ObjectState.TRANSIENT
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0
    session.add(User(name="cy"))
    session.commit()
    assert [row[0] for row in conn.execute("SELECT name FROM users")] == ["cy"]
