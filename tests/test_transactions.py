"""commit, rollback (the database and the objects), the session as a context manager, and savepoints."""

import datetime
from decimal import Decimal

import pytest

import uow
from uow import Column, Entity, ObjectState, errors, object_session, state_of

from .helpers import same, sql_of
from .models import Country, Order, Sample, User
from .relationship_models import Player, Team

PERSISTENT = ObjectState.PERSISTENT
TRANSIENT = ObjectState.TRANSIENT


class TransactionsBase(Entity, abstract=True):
    pass


class Note(TransactionsBase, table="transactions_notes"):
    id: int = Column(primary_key=True)
    title: str = ""
    tags: list = Column(default_factory=list)


def rows(connection, table="users"):
    return connection.execute(f"SELECT id, name FROM {table} ORDER BY id").fetchall()


# -- commit --------------------------------------------------------------------------------

def test_commit_makes_the_work_visible_to_another_connection(file_session, other):
    user = User(name="ann")
    file_session.add(user)
    file_session.flush()
    assert rows(other) == []  # flushed, not committed
    with uow.capture_sql() as statements:
        file_session.commit()
    assert sql_of(statements) == ["COMMIT"]
    assert rows(other) == [(user.id, "ann")]
    assert not file_session.in_transaction()


def test_commit_flushes_first(file_session, other):
    file_session.add(User(name="ann"))
    file_session.commit()
    assert [name for _, name in rows(other)] == ["ann"]


def test_commit_of_an_update_and_a_delete(file_session, other):
    a, b = User(name="a"), User(name="b")
    file_session.add_all([a, b])
    file_session.commit()
    a.name = "A"
    file_session.delete(b)
    file_session.commit()
    assert rows(other) == [(a.id, "A")]


def test_commit_with_nothing_to_do_sends_nothing(session):
    with uow.capture_sql() as statements:
        session.commit()
    assert statements == []


def test_work_after_a_commit_is_a_new_transaction(file_session, other):
    user = User(name="ann")
    file_session.add(user)
    file_session.commit()
    user.name = "bob"
    with uow.capture_sql() as statements:
        file_session.flush()
    assert sql_of(statements)[0] == "BEGIN IMMEDIATE"
    file_session.rollback()
    assert rows(other) == [(user.id, "ann")]


# -- rollback ------------------------------------------------------------------------------

def test_rollback_restores_the_database_and_every_object_without_sql(file_session, other):
    session = file_session
    kept, marked, gone = User(name="kept", score=1.0), User(name="marked"), User(name="gone")
    session.add_all([kept, marked, gone])
    session.commit()

    kept.name = "changed"
    kept.score = 2.0
    session.flush()
    kept.email = "unflushed@x"
    session.delete(marked)
    session.delete(gone)
    session.flush()
    new = User(name="new", email="new@x")
    session.add(new)
    session.flush()
    newer = User(name="newer")
    session.add(newer)
    assert (state_of(gone), new.id is not None, new.joined) == (ObjectState.DELETED, True, "today")

    with uow.capture_sql() as statements:
        session.rollback()
    assert sql_of(statements) == ["ROLLBACK"]

    with uow.capture_sql() as statements:
        assert (kept.name, kept.score, kept.email) == ("kept", 1.0, None)
        assert (marked.name, gone.name) == ("marked", "gone")
        assert (new.id, new.name, new.email, new.joined) == (None, "new", "new@x", None)
        assert (newer.id, newer.name) == (None, "newer")
    assert statements == []
    assert [state_of(o) for o in (kept, marked, gone)] == [PERSISTENT] * 3
    assert [object_session(o) for o in (kept, marked, gone)] == [session] * 3
    assert [state_of(o) for o in (new, newer)] == [TRANSIENT] * 2
    assert [object_session(o) for o in (new, newer)] == [None, None]
    assert session.new == session.dirty == session.deleted == frozenset()
    assert set(session.identity_map.values()) == {kept, marked, gone}
    assert session.dirty_fields(kept) == []
    assert rows(other) == [(kept.id, "kept"), (marked.id, "marked"), (gone.id, "gone")]
    assert not session.in_transaction()


def test_a_rolled_back_pending_object_can_be_added_again(session, conn):
    user = User(name="ann")
    session.add(user)
    session.flush()
    first_id = user.id
    session.rollback()
    session.add(user)
    session.commit()
    assert rows(conn) == [(user.id, "ann")]
    assert user.id == first_id  # SQLite reuses the rolled-back rowid


def test_rollback_makes_new_objects_with_relationships_transient_again(session, conn):
    uow.create_all(conn, [Team, Player])
    team = Team(name="blues")
    player = Player(name="pat", team=team)
    session.add(team)  # brings the player in too
    session.flush()
    session.rollback()
    assert [state_of(o) for o in (team, player)] == [TRANSIENT, TRANSIENT]
    assert (team.id, player.id, player.team_id) == (None, None, None)
    assert player.team is team
    assert session.new == frozenset()
    session.add(team)
    assert session.new == {team, player}
    session.commit()
    assert rows(conn, "teams") == [(team.id, "blues")]
    assert rows(conn, "players") == [(player.id, "pat")]


def test_rollback_restores_values_exactly(session):
    sample = Sample(dec=Decimal("1.10"), dt=datetime.datetime(2024, 1, 1, 12, tzinfo=datetime.timezone.utc))
    session.add(sample)
    session.commit()
    sample.dec = Decimal("2.5")
    sample.dt = datetime.datetime(2025, 1, 1)
    session.flush()
    with uow.capture_sql() as statements:
        session.rollback()
        assert same(sample.dec) == same(Decimal("1.10"))
        assert same(sample.dt) == same(datetime.datetime(2024, 1, 1, 12, tzinfo=datetime.timezone.utc))
    assert sql_of(statements) == ["ROLLBACK"]


def test_rollback_discards_unflushed_changes_with_no_sql(session):
    user = User(name="ann")
    session.add(user)
    session.commit()
    user.name = "bob"
    with uow.capture_sql() as statements:
        session.rollback()
        assert user.name == "ann"
    assert statements == []
    assert session.dirty == frozenset()


def test_rollback_restores_an_object_changed_several_times(session):
    user = User(name="a0")
    session.add(user)
    session.commit()
    for n in range(1, 4):
        user.name = f"a{n}"
        session.flush()
    session.rollback()
    assert user.name == "a0"
    assert session.original_value(user, "name") == "a0"


def _write_something(session):
    """A flush that writes a row no test object is about: the transaction's first write."""
    session.add(Country(code="zz", name="Elsewhere"))
    session.flush()


def test_objects_first_loaded_after_the_transactions_first_write_reload_on_access(file_session, other):
    other.execute("INSERT INTO users (id, name, score) VALUES (10, 'ann', 0.0)")
    _write_something(file_session)
    user = file_session.get(User, 10)  # read after a write: it may see what the rollback undoes
    with uow.capture_sql() as statements:
        file_session.rollback()
    assert sql_of(statements) == ["ROLLBACK"]
    other.execute("UPDATE users SET name = 'written elsewhere' WHERE id = 10")
    assert state_of(user) is PERSISTENT
    with uow.capture_sql() as statements:
        assert user.name == "written elsewhere"
    assert any(s.startswith("SELECT") for s in sql_of(statements))
    assert file_session.get(User, 10) is user


def test_objects_read_before_any_write_keep_their_values_through_a_rollback(file_session, other):
    """The rollback puts the database back to exactly what they read: nothing of theirs is undone."""
    other.execute("INSERT INTO users (id, name, score) VALUES (10, 'ann', 0.0)")
    user = file_session.get(User, 10)
    user.name = "changed"  # assigned and written after it was read: the memento is what it read
    file_session.flush()
    with uow.capture_sql() as statements:
        file_session.rollback()
        assert user.name == "ann" and user.score == 0.0
    assert sql_of(statements) == ["ROLLBACK"]


def test_an_object_first_loaded_after_a_write_whose_row_is_gone(file_session, other):
    other.execute("INSERT INTO users (id, name, score) VALUES (10, 'ann', 0.0)")
    _write_something(file_session)
    user = file_session.get(User, 10)
    file_session.rollback()
    other.execute("DELETE FROM users")
    with pytest.raises(errors.ObjectDeletedError):
        user.name


def test_rollback_with_nothing_to_undo_sends_nothing(session):
    with uow.capture_sql() as statements:
        session.rollback()
    assert statements == []


def test_rollback_after_expunging_and_reloading_a_row(session):
    country = Country(code="fr", name="France")
    session.add(country)
    session.commit()
    session.expunge_all()
    reloaded = session.get(Country, "fr")
    session.rollback()  # must not fail
    held = [obj for key, obj in session.identity_map.items() if key == (Country, ("fr",))]
    # The object that entered the session first (and was held at the last commit) wins.
    assert held == [country]
    assert state_of(reloaded) is ObjectState.DETACHED
    assert session.get(Country, "fr").name == "France"
    # The copy was read before anything was written: it keeps what it read, detached.
    assert uow.loaded_values(reloaded) == {"code": "fr", "name": "France"}


def test_rollback_after_expunging_and_reloading_a_row_after_a_write(session):
    country = Country(code="fr", name="France")
    session.add(country)
    session.commit()
    session.expunge_all()
    _write_something(session)
    reloaded = session.get(Country, "fr")
    session.rollback()
    assert session.get(Country, "fr") is country
    # Loaded after the transaction's first write, the copy is expired (its values may be ones
    # the rollback undid); detached, it cannot reload.
    assert state_of(reloaded) is ObjectState.DETACHED
    assert uow.loaded_values(reloaded) == {}
    with pytest.raises(errors.DetachedInstanceError):
        reloaded.name


def test_a_copy_loaded_inside_a_savepoint_is_detached_and_expired_by_the_full_rollback(session):
    """The same rule whether the copy was loaded in the transaction or in a savepoint of it."""
    country = Country(code="fr", name="France")
    session.add(country)
    session.commit()
    session.expunge(country)
    session.begin_nested()
    _write_something(session)
    reloaded = session.get(Country, "fr")
    session.rollback()
    assert session.get(Country, "fr") is country
    assert (state_of(reloaded), uow.loaded_values(reloaded)) == (ObjectState.DETACHED, {})


def test_rollback_after_expunging_a_loaded_object(session, conn):
    """The expunged object held the key at the last commit, so rollback gives it back; the
    object that took the key since becomes transient again."""
    country = Country(code="fr", name="France")
    session.add(country)
    session.commit()
    loaded_again = session.get(Country, "fr")
    assert loaded_again is country
    session.expunge(country)
    newcomer = Country(code="fr", name="Other")
    session.add(newcomer)  # the key is free now
    session.rollback()
    assert (state_of(country), state_of(newcomer)) == (PERSISTENT, TRANSIENT)
    assert dict(session.identity_map) == {(Country, ("fr",)): country}
    assert session.new == frozenset()


def test_expire_on_commit_false_keeps_values_and_rollback_goes_back_to_them(session):
    user = User(name="ann")
    session.add(user)
    session.commit()
    user.name = "bob"
    session.commit()
    user.name = "cy"
    session.flush()
    session.rollback()
    assert user.name == "bob"


# -- the session as a context manager ------------------------------------------------------

def test_with_session_commits_on_success(file_conn, other):
    with uow.Session(file_conn) as session:
        session.add(User(name="ann"))
    assert [name for _, name in rows(other)] == ["ann"]
    assert not file_conn.in_transaction


def test_with_session_rolls_back_and_reraises_on_error(file_conn, other):
    user = User(name="ann")
    with pytest.raises(KeyError, match="boom"):
        with uow.Session(file_conn) as session:
            session.add(user)
            session.flush()
            raise KeyError("boom")
    assert rows(other) == []
    assert not file_conn.in_transaction
    assert state_of(user) is TRANSIENT
    assert user.id is None


def test_with_session_reraises_a_failing_commit(file_conn, other):
    with pytest.raises(errors.FlushError):
        with uow.Session(file_conn) as session:
            session.add(User(name="a", email="same@x"))
            session.add(User(name="b", email="same@x"))
    assert rows(other) == []
    assert not file_conn.in_transaction


# -- savepoints ----------------------------------------------------------------------------

def test_begin_nested_flushes_then_opens_a_savepoint(session):
    user = User(name="ann")
    session.add(user)
    with uow.capture_sql() as statements:
        nested = session.begin_nested()
    assert sql_of(statements)[-1] == f'SAVEPOINT "{nested.name}"'
    assert any(s.startswith("INSERT") for s in sql_of(statements))
    assert session.in_nested_transaction()
    with uow.capture_sql() as statements:
        nested.commit()
    assert [s for s in sql_of(statements) if s.startswith("RELEASE")] == [f'RELEASE "{nested.name}"']
    assert not session.in_nested_transaction()
    assert session.in_transaction()


def test_savepoint_rollback_restores_database_and_objects_as_at_the_savepoint(session, conn):
    a = User(name="a")
    session.add(a)
    session.commit()
    a.name = "a1"  # unflushed when the savepoint begins: begin_nested flushes it
    nested = session.begin_nested()
    a.name = "a2"
    b = User(name="b")
    session.add(b)
    session.flush()
    c = User(name="c")
    session.add(c)
    with uow.capture_sql() as statements:
        nested.rollback()
    assert sql_of(statements) == [f'ROLLBACK TO "{nested.name}"', f'RELEASE "{nested.name}"']
    with uow.capture_sql() as statements:
        assert a.name == "a1"
    assert statements == []
    assert (state_of(b), b.id, state_of(c)) == (TRANSIENT, None, TRANSIENT)
    assert session.new == frozenset()
    assert session.dirty_fields(a) == []
    assert rows(conn) == [(a.id, "a1")]
    assert session.in_transaction() and not session.in_nested_transaction()
    session.rollback()
    assert a.name == "a"
    assert rows(conn) == [(a.id, "a")]


def test_savepoint_rollback_brings_back_a_deleted_object(session, conn):
    a = User(name="a")
    session.add(a)
    session.commit()
    with pytest.raises(ZeroDivisionError):
        with session.begin_nested():
            session.delete(a)
            session.flush()
            assert state_of(a) is ObjectState.DELETED
            1 / 0
    assert state_of(a) is PERSISTENT
    assert session.get(User, a.id) is a
    assert rows(conn) == [(a.id, "a")]


def test_savepoint_as_context_manager_releases_on_success(session, conn):
    with session.begin_nested() as nested:
        session.add(User(name="inside"))
    assert not nested.is_active
    assert [name for _, name in rows(conn)] == ["inside"]
    session.commit()
    assert [name for _, name in rows(conn)] == ["inside"]


def test_savepoint_as_context_manager_rolls_back_on_error_and_reraises(session, conn):
    outside = User(name="outside")
    session.add(outside)
    with pytest.raises(ValueError, match="inner"):
        with session.begin_nested():
            inside = User(name="inside")
            session.add(inside)
            outside.name = "changed inside"
            session.flush()
            raise ValueError("inner")
    assert outside.name == "outside"
    assert state_of(inside) is TRANSIENT
    session.commit()
    assert [name for _, name in rows(conn)] == ["outside"]


def test_a_released_savepoint_is_undone_by_an_outer_rollback(file_session, other):
    before = User(name="before")
    file_session.add(before)
    file_session.commit()
    with file_session.begin_nested():
        inside = User(name="inside")
        file_session.add(inside)
        before.name = "changed"
    file_session.rollback()
    assert rows(other) == [(before.id, "before")]
    assert before.name == "before"
    assert state_of(inside) is TRANSIENT and inside.id is None
    file_session.commit()
    assert rows(other) == [(before.id, "before")]


def test_savepoints_two_deep(file_session, other):
    session = file_session
    outer = session.begin_nested()
    x = User(name="x")
    session.add(x)
    inner = session.begin_nested()
    assert inner.depth == outer.depth + 1
    assert inner.name != outer.name
    y = User(name="y")
    session.add(y)
    x.name = "x changed"
    session.flush()
    with pytest.raises(errors.TransactionError):
        outer.commit()  # not the innermost
    inner.rollback()
    assert (state_of(y), x.name, state_of(x)) == (TRANSIENT, "x", PERSISTENT)
    outer.commit()
    session.commit()
    assert [name for _, name in rows(other)] == ["x"]


def test_savepoints_three_deep_released_inside_then_rolled_back_outside(file_session, other):
    session = file_session
    kept = User(name="kept")
    session.add(kept)
    level1 = session.begin_nested()
    a = User(name="a")
    session.add(a)
    level2 = session.begin_nested()
    b = User(name="b")
    session.add(b)
    kept.name = "kept 2"
    level3 = session.begin_nested()
    c = User(name="c")
    session.add(c)
    kept.name = "kept 3"
    level3.commit()
    level2.commit()
    level1.rollback()
    assert [state_of(o) for o in (a, b, c)] == [TRANSIENT] * 3
    assert kept.name == "kept"
    session.commit()
    assert [name for _, name in rows(other)] == ["kept"]


def test_an_object_added_before_two_savepoints_rolled_back_is_transient_again_after_the_full_rollback(file_session, other):
    """Touched only in the inner savepoint, then again after both rolled back: the transaction's
    own copy (transient, as added) must survive, not the inner savepoint's (persistent)."""
    session = file_session
    user = User(name="a")
    session.add(user)
    outer = session.begin_nested()  # flushes: the row exists from here
    inner = session.begin_nested()
    session.delete(user)
    inner.rollback()
    outer.rollback()
    session.delete(user)
    session.rollback()
    assert (state_of(user), object_session(user)) == (TRANSIENT, None)
    assert dict(session.identity_map) == {}
    assert rows(other) == []


def test_a_change_after_a_released_savepoint_is_undone_back_to_the_start_of_the_transaction(file_session, other):
    user = User(name="a")
    file_session.add(user)
    file_session.commit()
    with file_session.begin_nested():
        user.name = "b"
    user.name = "c"
    file_session.rollback()
    assert user.name == "a"
    assert rows(other) == [(user.id, "a")]


def test_a_change_after_a_savepoint_rollback_is_undone_back_to_the_start_of_the_transaction(file_session, other):
    user = User(name="a")
    file_session.add(user)
    file_session.commit()
    user.name = "b"
    nested = file_session.begin_nested()
    user.name = "c"
    nested.rollback()
    assert user.name == "b"
    user.name = "d"
    file_session.rollback()
    assert user.name == "a"
    assert rows(other) == [(user.id, "a")]


def test_begin_nested_flushes_even_without_autoflush(conn):
    """As in SQLAlchemy: a savepoint rollback puts objects back from their snapshots, so the
    snapshots must hold everything done before the savepoint."""
    session = uow.Session(conn, autoflush=False)
    a, b, c = User(name="a"), User(name="b"), User(name="c")
    session.add_all([a, b, c])
    session.commit()
    session.delete(b)
    x = User(name="x")
    session.add(x)
    with uow.capture_sql() as statements:
        nested = session.begin_nested()
    assert [sql.split(" (")[0] for sql in sql_of(statements) if sql.startswith(("INSERT", "DELETE", "SAVEPOINT"))] == [
        'SAVEPOINT "uow_flush"', 'INSERT INTO "users"', 'DELETE FROM "users" WHERE "users"."id" = ?',
        'SAVEPOINT "uow_sp_1"']
    assert (session.new, session.deleted) == (frozenset(), frozenset())
    a.name = "a changed"
    session.delete(c)
    z = User(name="z")
    session.add(z)
    nested.rollback()
    assert (a.name, state_of(c), state_of(z)) == ("a", PERSISTENT, TRANSIENT)
    assert (state_of(x), state_of(b)) == (PERSISTENT, ObjectState.DELETED)
    session.commit()
    assert rows(conn) == [(a.id, "a"), (c.id, "c"), (x.id, "x")]
    session.close()


def test_without_autoflush_a_savepoint_rollback_undoes_an_in_place_change_made_inside_it(conn):
    uow.create_all(conn, [Note])
    session = uow.Session(conn, autoflush=False)
    note = Note(title="first", tags=["a"])
    session.add(note)
    session.commit()
    note.title = "before"
    note.tags.append("before")  # in place, unseen by the session: begin_nested flushes it anyway
    nested = session.begin_nested()
    note.tags.append("inside")
    note.title = "inside"
    nested.rollback()
    assert (note.title, note.tags) == ("before", ["a", "before"])
    assert session.dirty_fields(note) == []
    session.commit()
    assert conn.execute("SELECT title, tags FROM transactions_notes").fetchall() == [("before", '["a","before"]')]
    session.close()


def test_an_ended_savepoint_cannot_be_ended_again(session):
    nested = session.begin_nested()
    nested.commit()
    with pytest.raises(errors.TransactionError):
        nested.commit()
    with pytest.raises(errors.TransactionError):
        nested.rollback()


def test_a_savepoint_cannot_be_released_after_a_failed_flush(session):
    nested = session.begin_nested()
    session.add(Order(user_id=42))  # no such user
    with pytest.raises(errors.FlushError) as failed:
        session.flush()
    with pytest.raises(errors.PendingRollbackError) as caught:
        nested.commit()
    assert str(caught.value).startswith(f"commit(): a previous flush failed ({failed.value}); ")
    session.rollback()
    assert session.is_active


def test_an_outer_rollback_ends_open_savepoints(session, conn):
    nested = session.begin_nested()
    session.add(User(name="x"))
    session.flush()
    session.rollback()
    assert not nested.is_active
    assert not session.in_nested_transaction()
    assert rows(conn) == []


def test_objects_first_loaded_inside_a_rolled_back_savepoint_reload_on_access(file_session, other):
    other.execute("INSERT INTO users (id, name, score) VALUES (10, 'ann', 0.0)")
    file_session.get(User, 99)  # begin the transaction
    nested = file_session.begin_nested()
    _write_something(file_session)
    user = file_session.get(User, 10)
    user.name = "changed"
    file_session.flush()
    nested.rollback()
    with uow.capture_sql() as statements:
        assert user.name == "ann"
    assert any(s.startswith("SELECT") for s in sql_of(statements))


def test_a_savepoint_rollback_keeps_objects_read_before_its_first_write(file_session, other):
    other.execute("INSERT INTO users (id, name, score) VALUES (10, 'ann', 0.0)")
    _write_something(file_session)  # a write before the savepoint does not count for it
    nested = file_session.begin_nested()
    user = file_session.get(User, 10)
    user.name = "changed"
    file_session.flush()
    nested.rollback()
    with uow.capture_sql() as statements:
        assert user.name == "ann"
    assert statements == []
    file_session.rollback()  # but it does for the transaction: now the object is expired
    assert uow.loaded_values(user) == {}


def test_rollback_after_a_key_was_deleted_and_reused(session, conn):
    old = Country(code="fr", name="Old")
    session.add(old)
    session.commit()
    session.delete(old)
    session.flush()
    new = Country(code="fr", name="New")
    session.add(new)
    session.flush()
    session.rollback()
    assert (state_of(old), state_of(new)) == (PERSISTENT, TRANSIENT)
    assert session.get(Country, "fr") is old
    assert old.name == "Old"
    assert conn.execute("SELECT code, name FROM countries").fetchall() == [("fr", "Old")]


def test_savepoint_rollback_of_a_key_change(session, conn):
    country = Country(code="aa", name="A")
    session.add(country)
    session.commit()
    with pytest.raises(RuntimeError):
        with session.begin_nested():
            country.code = "zz"
            session.flush()
            assert session.identity_map.get((Country, ("zz",))) is country
            raise RuntimeError
    assert country.code == "aa"
    assert dict(session.identity_map) == {(Country, ("aa",)): country}
    assert conn.execute("SELECT code FROM countries").fetchall() == [("aa",)]


@pytest.mark.parametrize("end", ["rollback", "close", "reset"])
def test_ending_a_session_leaves_alone_an_object_that_moved_to_another_session(conn, end):
    first, second = uow.Session(conn), uow.Session(conn)
    country = Country(code="fr", name="France")
    first.add(country)
    first.commit()
    first.expunge(country)
    second.add(country)
    getattr(first, end)()
    assert object_session(country) is second
    assert state_of(country) is PERSISTENT
    assert (Country, ("fr",)) not in first.identity_map
    assert second.identity_map[(Country, ("fr",))] is country
    country.name = "République"
    assert end == "close" or first.dirty == frozenset()
    assert second.dirty == {country}
    second.commit()
    assert conn.execute("SELECT name FROM countries").fetchall() == [("République",)]
    second.close()
    if end != "close":
        first.close()


@pytest.mark.parametrize("end", ["rollback", "close", "reset"])
def test_ending_a_session_leaves_alone_a_new_object_that_moved_to_another_session(conn, end):
    first, second = uow.Session(conn), uow.Session(conn)
    country = Country(code="fr", name="France")
    first.add(country)
    first.expunge(country)
    second.add(country)
    getattr(first, end)()
    assert (state_of(country), object_session(country)) == (ObjectState.PENDING, second)
    assert second.new == {country}
    second.commit()
    assert conn.execute("SELECT name FROM countries").fetchall() == [("France",)]
    assert (state_of(country), object_session(country)) == (PERSISTENT, second)
    second.close()
    if end != "close":
        first.close()


def test_rollback_of_a_re_added_detached_object_keeps_json_changes_made_while_detached(conn):
    """Its snapshot is from the session it left; its values when added are what rollback restores."""
    uow.create_all(conn, [Note])
    first = uow.Session(conn)
    note = Note(title="first", tags=["a"])
    first.add(note)
    first.commit()
    first.close()
    note.tags.append("while detached")
    second = uow.Session(conn)
    second.add(note)
    note.title = "changed"
    note.tags.append("in the session")
    second.rollback()
    assert (note.title, note.tags) == ("first", ["a", "while detached"])
    second.close()


def test_a_write_the_session_did_not_plan_counts_too(file_session, other):
    """Raw SQL on the session's connection is a write like a flush: what is read after it expires."""
    other.execute("INSERT INTO users (id, name, score) VALUES (10, 'ann', 0.0)")
    file_session.connection().execute("UPDATE users SET name = 'uncommitted' WHERE id = 10")
    user = file_session.get(User, 10)
    assert user.name == "uncommitted"
    file_session.rollback()
    assert uow.loaded_values(user) == {}
    assert user.name == "ann"


def test_a_dry_run_is_no_write_for_the_rollback_rule(file_session, other):
    """A dry run's statements are rolled back at once: what is read after it keeps its values."""
    other.execute("INSERT INTO users (id, name, score) VALUES (10, 'ann', 0.0)")
    file_session.add(Country(code="zz", name="Elsewhere"))
    assert "INSERT" in [s.sql.split()[0] for s in file_session.dry_run()]
    with file_session.no_autoflush:  # (an autoflush would write the country: a real write)
        user = file_session.get(User, 10)
    file_session.rollback()
    assert uow.loaded_values(user)["name"] == "ann"


def test_a_failed_bulk_write_is_no_write_for_the_rollback_rule(file_session, other):
    """Its rows are rolled back to its own savepoint at once, and the session goes on."""
    other.execute("INSERT INTO users (id, name, score) VALUES (10, 'ann', 0.0)")
    with pytest.raises(errors.FlushError):
        file_session.bulk_insert_mappings(User, [{"id": 11, "name": "new", "score": 0.0},
                                                 {"id": 10, "name": "duplicate", "score": 0.0}])
    user = file_session.get(User, 10)
    file_session.rollback()
    assert uow.loaded_values(user)["name"] == "ann"
