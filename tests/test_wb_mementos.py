"""uow.rollback's compact mementos: the fast paths of a first assignment and of add().

White-box tests (house rule 11): they read the undo scope a reader of ``uow/rollback.py`` would,
and check that a rollback through each compact form puts the object back exactly as a full
Memento would (values, status, key, snapshot, order in the session), read back from the database.
"""

import uow
from .models import User


def state(obj):
    return obj.__dict__[uow.STATE_ATTRIBUTE]


def scope_of(session):
    return session.undo.levels[-1].undo


def test_wb_a_first_assignment_to_a_clean_loaded_object_records_a_clean_memento(session, conn):
    conn.execute("INSERT INTO users (id, name, email, score) VALUES (1, 'ann', 'a@x', 1.5)")
    ann = session.get(User, 1)
    sequence = state(ann).sequence
    ann.name = "anne"
    memento = scope_of(session).mementos[state(ann)]
    assert memento == (state(ann).key, state(ann).committed, sequence)
    # A second change in the same scope records nothing more.
    ann.score = 2.0
    assert scope_of(session).mementos[state(ann)] is memento
    session.flush()  # the snapshot moves on; the clean memento still holds the old one
    session.rollback()
    assert (ann.name, ann.score) == ("ann", 1.5)
    assert state(ann).status is uow.ObjectState.PERSISTENT and state(ann).session is session
    assert state(ann).sequence == sequence
    assert session.get(User, 1) is ann
    assert conn.execute("SELECT name, score FROM users").fetchall() == [("ann", 1.5)]
    ann.name = "ann b"  # tracked again after the rollback: the change is written
    session.commit()
    assert conn.execute("SELECT name FROM users").fetchall() == [("ann b",)]


def test_wb_a_savepoint_rolled_back_through_a_clean_memento_keeps_the_outer_change(session, conn):
    conn.execute("INSERT INTO users (id, name, email, score) VALUES (1, 'ann', 'a@x', 1.5)")
    ann = session.get(User, 1)
    ann.name = "anne"
    outer = scope_of(session).mementos[state(ann)]
    nested = session.begin_nested()  # flushes first: ann is clean again, with "anne" in her snapshot
    ann.score = 3.0
    inner = scope_of(session).mementos[state(ann)]
    assert type(inner) is tuple and inner[1][1] == "anne"
    nested.rollback()  # the savepoint only
    assert (ann.name, ann.score) == ("anne", 1.5)
    assert scope_of(session).mementos[state(ann)] is outer
    session.commit()
    assert conn.execute("SELECT name, score FROM users").fetchall() == [("anne", 1.5)]


def test_wb_add_of_a_new_object_records_its_values_as_a_transient_memento(session, conn):
    bob = User(name="bob", email="b@x")
    session.add(bob)
    memento = scope_of(session).mementos[state(bob)]
    assert type(memento) is dict and memento["name"] == "bob"
    bob.name = "rob"
    session.flush()
    session.rollback()
    assert state(bob).status is uow.ObjectState.TRANSIENT and state(bob).session is None
    assert bob.name == "bob" and bob.id is None
    assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)
    session.add(bob)
    session.commit()
    assert conn.execute("SELECT name FROM users").fetchall() == [("bob",)]
