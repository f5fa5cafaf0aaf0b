"""Object states (transient, pending, persistent, deleted, detached) through every transition,
object_session, the new/dirty/deleted sets, the identity map view, identity keys, expunge,
close, reset and stats()."""

import gc

import pytest

import uow
from uow import ObjectState, errors, object_session, state_of
from uow import states
from uow.states import STATE_ATTRIBUTE

from .models import Country, Pair, User

TRANSIENT = ObjectState.TRANSIENT
PENDING = ObjectState.PENDING
PERSISTENT = ObjectState.PERSISTENT
DELETED = ObjectState.DELETED
DETACHED = ObjectState.DETACHED


def test_the_whole_life_of_an_object(session):
    user = User(name="ann")
    assert (state_of(user), object_session(user)) == (TRANSIENT, None)
    session.add(user)
    assert (state_of(user), object_session(user)) == (PENDING, session)
    assert session.new == {user}
    session.flush()
    assert (state_of(user), object_session(user)) == (PERSISTENT, session)
    assert session.new == frozenset()
    session.delete(user)
    assert (state_of(user), object_session(user)) == (PERSISTENT, session)
    assert session.deleted == {user}
    session.flush()
    assert (state_of(user), object_session(user)) == (DELETED, session)
    assert session.deleted == frozenset()
    session.commit()
    assert (state_of(user), object_session(user)) == (DETACHED, None)
    assert user not in session


def test_delete_of_a_pending_object_makes_it_transient(session):
    user = User(name="ann")
    session.add(user)
    session.delete(user)
    assert (state_of(user), object_session(user)) == (TRANSIENT, None)
    assert session.new == frozenset()


def test_expunge_of_a_pending_object_makes_it_transient(session):
    user = User(name="ann")
    session.add(user)
    session.expunge(user)
    assert (state_of(user), object_session(user)) == (TRANSIENT, None)


def test_expunge_of_a_persistent_object_makes_it_detached(session):
    user = User(name="ann")
    session.add(user)
    session.commit()
    session.expunge(user)
    assert (state_of(user), object_session(user)) == (DETACHED, None)
    assert (User, (user.id,)) not in session.identity_map
    assert user.name == "ann"  # its values stay readable


def test_add_of_a_detached_object_makes_it_persistent_again(session, conn):
    user = User(name="ann")
    session.add(user)
    session.commit()
    session.expunge(user)
    session.add(user)
    assert (state_of(user), object_session(user)) == (PERSISTENT, session)
    assert session.identity_map[(User, (user.id,))] is user
    user.name = "bob"
    session.commit()
    assert conn.execute("SELECT name FROM users").fetchall() == [("bob",)]


def test_a_detached_object_can_join_another_session(conn):
    first = uow.Session(conn)
    user = User(name="ann")
    first.add(user)
    first.commit()
    first.close()
    assert state_of(user) is DETACHED
    second = uow.Session(conn)
    second.add(user)
    assert object_session(user) is second
    user.name = "bob"
    second.commit()
    assert conn.execute("SELECT name FROM users").fetchall() == [("bob",)]
    second.close()


def test_delete_of_a_detached_object_reattaches_and_marks_it(session, conn):
    user = User(name="ann")
    session.add(user)
    session.commit()
    session.expunge(user)
    session.delete(user)
    assert state_of(user) is PERSISTENT
    assert session.deleted == {user}
    session.commit()
    assert state_of(user) is DETACHED
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0


def test_add_of_an_object_whose_row_was_deleted_in_this_transaction_is_refused(session):
    user = User(name="ann")
    session.add(user)
    session.flush()
    session.delete(user)
    session.flush()
    with pytest.raises(errors.InvalidStateError, match="User"):
        session.add(user)
    assert state_of(user) is DELETED


def _deleted_and_committed(session):
    user = User(name="ann")
    session.add(user)
    session.commit()
    session.delete(user)
    session.commit()
    return user


@pytest.mark.parametrize("operation", ["add", "delete", "update", "save_or_update"])
def test_an_object_whose_row_was_deleted_and_committed_cannot_be_attached_again(session, operation):
    """SQLAlchemy's rule (Storm re-inserts): the object mirrors a row that is gone, so attaching
    it would make a persistent object without a row; merge() writes a copy as a new row."""
    user = _deleted_and_committed(session)
    with uow.capture_sql() as statements, pytest.raises(errors.InvalidStateError) as caught:
        getattr(session, operation)(user)
    assert str(caught.value) == (
        f"{operation}(): the row of {user!r} was deleted and the delete committed, so the object has no row "
        f"to be attached to; merge() it to write a copy as a new row, or add a new object")
    assert statements == []
    assert (state_of(user), object_session(user)) == (DETACHED, None)
    assert session.get(User, user.id) is None


def test_wb_the_fact_that_a_row_is_gone_leaves_with_its_object(session):
    """A committed delete files the object, by id, in states._rows_deleted: the entry leaves when the
    object is freed (its id may then be given to a new object, which must not inherit the fact)."""
    user = _deleted_and_committed(session)
    key = id(user)
    assert user.__dict__[STATE_ATTRIBUTE].row_deleted
    assert states._rows_deleted[key]() is user
    del user
    gc.collect()  # (an object and its state record point at each other: the cyclic collector frees them)
    assert key not in states._rows_deleted


def test_an_object_whose_deleted_row_was_expunged_and_committed_cannot_be_attached_again(session):
    user = User(name="ann")
    session.add(user)
    session.commit()
    session.delete(user)
    session.flush()
    session.expunge(user)
    session.commit()
    with pytest.raises(errors.InvalidStateError, match="was deleted and the delete committed"):
        session.add(user)


def test_an_object_whose_row_was_deleted_is_written_again_by_merge(session, file_session, other):
    user = _deleted_and_committed(file_session)
    copy = file_session.merge(user)
    assert copy is not user and state_of(copy) is PENDING
    file_session.commit()
    assert other.execute("SELECT id, name FROM users").fetchall() == [(user.id, "ann")]
    assert state_of(user) is DETACHED


def test_merge_without_loading_refuses_an_object_whose_row_was_deleted(session):
    user = _deleted_and_committed(session)
    with uow.capture_sql() as statements, pytest.raises(errors.InvalidStateError, match="describes no existing row"):
        session.merge(user, load=False)
    assert statements == []
    assert len(session.identity_map) == 0


def test_a_rolled_back_delete_leaves_an_object_that_can_be_attached_again(session, conn):
    user = User(name="ann")
    session.add(user)
    session.commit()
    session.delete(user)
    session.flush()
    session.rollback()
    session.expunge(user)
    session.add(user)
    assert state_of(user) is PERSISTENT
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 1


def test_expunge_all_detaches_everything(session):
    kept = User(name="ann")
    session.add(kept)
    session.commit()
    new = User(name="bob")
    session.add(new)
    marked = Country(code="fr", name="France")
    session.add(marked)
    session.flush()
    session.delete(marked)
    session.expunge_all()
    assert [state_of(o) for o in (kept, new, marked)] == [DETACHED, DETACHED, DETACHED]
    assert [object_session(o) for o in (kept, new, marked)] == [None, None, None]
    assert len(session.identity_map) == 0
    assert session.new == session.dirty == session.deleted == frozenset()


def test_close_detaches_everything_and_refuses_further_use(session, conn):
    user = User(name="ann")
    session.add(user)
    session.commit()
    session.close()
    assert (state_of(user), object_session(user)) == (DETACHED, None)
    assert not conn.in_transaction
    for call in (lambda: session.add(User(name="x")), lambda: session.get(User, 1), session.flush,
                 session.commit, lambda: session.all(User), lambda: session.filter(User, name="x"),
                 lambda: session.delete(user), session.begin_nested, session.expire_all,
                 session.expunge_all, session.rollback):
        with pytest.raises(errors.SessionClosedError):
            call()
    session.close()  # closing twice is fine


def test_close_rolls_back_what_was_not_committed(session, conn):
    session.add(User(name="ann"))
    session.flush()
    session.close()
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0


def test_reset_detaches_everything_and_keeps_the_session_usable(session, conn):
    user = User(name="ann")
    session.add(user)
    session.commit()
    pending = User(name="bob")
    session.add(pending)
    session.reset()
    assert state_of(user) is DETACHED
    assert state_of(pending) is TRANSIENT
    assert len(session.identity_map) == 0
    again = session.get(User, user.id)
    assert again is not user and again.name == "ann"


def test_new_dirty_deleted_sets(session):
    a, b, c = User(name="a"), User(name="b"), User(name="c")
    session.add_all([a, b, c])
    assert session.new == {a, b, c}
    assert isinstance(session.new, frozenset)
    session.flush()
    assert session.new == session.dirty == session.deleted == frozenset()
    a.name = "A"
    b.name = "b"  # the same value: not dirty
    session.delete(c)
    d = User(name="d")
    session.add(d)
    assert session.new == {d}
    assert session.dirty == {a}
    assert session.deleted == {c}
    assert isinstance(session.dirty, frozenset) and isinstance(session.deleted, frozenset)
    c.name = "C"  # an object marked for deletion is not counted as dirty
    assert session.dirty == {a}


def test_identity_map_is_a_read_only_view(session):
    user = User(name="ann")
    session.add(user)
    session.flush()
    view = session.identity_map
    assert dict(view) == {(User, (user.id,)): user}
    with pytest.raises(TypeError):
        view[(User, (99,))] = user
    with pytest.raises(TypeError):
        del view[(User, (user.id,))]
    other = User(name="bob")
    session.add(other)
    session.flush()
    assert (User, (other.id,)) in view  # a live view


def test_identity_key_forms(session):
    assert uow.identity_key(User, 5) == (User, (5,))
    assert uow.identity_key(User, (5,)) == (User, (5,))
    assert uow.identity_key(User, {"id": 5}) == (User, (5,))
    assert uow.identity_key(Pair, (1, "x")) == (Pair, (1, "x"))
    assert uow.identity_key(Pair, {"b": "x", "a": 1}) == (Pair, (1, "x"))
    assert session.identity_key(User, 5) == (User, (5,))
    assert session.identity_key(Pair, {"a": 1, "b": "x"}) == (Pair, (1, "x"))
    country = Country(code="fr", name="France")
    assert uow.identity_key(instance=country) == (Country, ("fr",))
    session.add(country)
    session.flush()
    assert uow.identity_key(instance=country) == (Country, ("fr",))
    assert session.identity_key(instance=country) == (Country, ("fr",))
    user = User(name="ann")
    session.add(user)
    session.flush()
    assert uow.identity_key(instance=user) == (User, (user.id,))
    assert session.identity_map[uow.identity_key(instance=user)] is user


def test_stats_counts_objects_per_state_and_the_work_done(session):
    assert session.stats().statements == 0
    assert session.stats().flushes == 0
    a, b = User(name="a"), User(name="b")
    session.add_all([a, b])
    stats = session.stats()
    assert (stats.pending, stats.persistent, stats.deleted) == (2, 0, 0)
    session.flush()
    stats = session.stats()
    assert (stats.pending, stats.persistent, stats.deleted, stats.flushes) == (0, 2, 0, 1)
    assert stats.statements > 0
    session.delete(a)
    assert session.stats().marked_for_deletion == 1
    with uow.capture_sql() as statements:
        session.flush()
    stats = session.stats()
    assert (stats.pending, stats.persistent, stats.deleted, stats.flushes) == (0, 1, 1, 2)
    assert stats.marked_for_deletion == 0
    before = stats.statements
    session.get(User, b.id)  # an identity-map hit: no statement
    assert session.stats().statements == before
    assert len(statements) == 3  # SAVEPOINT, DELETE, RELEASE


def test_states_after_rollback(session):
    kept = User(name="kept")
    session.add(kept)
    session.commit()
    new = User(name="new")
    session.add(new)
    session.flush()
    session.delete(kept)
    session.flush()
    assert (state_of(new), state_of(kept)) == (PERSISTENT, DELETED)
    session.rollback()
    assert (state_of(new), object_session(new)) == (TRANSIENT, None)
    assert (state_of(kept), object_session(kept)) == (PERSISTENT, session)


def test_repr_shows_the_state(session):
    country = Country(code="fr", name="France")
    session.add(country)
    assert repr(country) == "Country(code='fr', name='France')<pending>"
    session.flush()
    assert repr(country) == "Country(code='fr', name='France')<persistent>"


def test_attributes_of_an_expired_detached_object_cannot_be_loaded(session):
    user = User(name="ann")
    session.add(user)
    session.commit()
    session.expire(user, ["name"])
    session.expunge(user)
    with pytest.raises(errors.DetachedInstanceError, match="User.name"):
        user.name


def test_expunge_of_an_object_marked_for_deletion_cancels_the_delete(session, conn):
    user = User(name="ann")
    session.add(user)
    session.commit()
    session.delete(user)
    session.expunge(user)
    assert state_of(user) is DETACHED
    assert session.deleted == frozenset()
    session.commit()
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 1


def test_wb_a_move_the_lifecycle_table_does_not_allow_is_refused_naming_the_call_the_object_and_both_states(session):
    user = User(name="ann")
    session.add(user)
    state = user.__dict__[STATE_ATTRIBUTE]
    with pytest.raises(errors.InvalidStateError) as caught:
        state.move(DELETED, "flush")
    assert str(caught.value) == "flush() cannot move User(new #1) from pending to deleted"
    assert state_of(user) is PENDING


@pytest.mark.parametrize("thing", [42, "ann", object()], ids=["int", "str", "object"])
def test_state_of_something_that_is_not_an_entity_object_is_refused(thing):
    with pytest.raises(uow.errors.UnmappedClassError) as raised:
        uow.state_of(thing)
    assert str(raised.value) == (f"state_of(): {thing!r} is not an entity object; entity classes are declared as "
                                 f"class Name(uow.Entity, table='...')")
