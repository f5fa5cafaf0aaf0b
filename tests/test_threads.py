"""A session belongs to the thread that created it: every call from another thread raises
WrongThreadError naming both threads, before it touches the connection or any object."""

import sqlite3
import threading

import pytest

import uow
from uow import Column, Entity, Session, errors

from .helpers import in_other_thread
from .models import ALL_MODELS, Country, User
from .seeded import seeded_fixtures


class ThreadBase(Entity, abstract=True):
    pass


class Archived(ThreadBase, table="archived", database="archive"):
    id: int = Column(primary_key=True)
    text: str


def _create(connection):
    uow.create_all(connection, ALL_MODELS)
    connection.execute("INSERT INTO users (id, name, score) VALUES (1, 'ann', 0.0)")
    connection.execute("INSERT INTO countries (code, name) VALUES ('fr', 'France'), ('it', 'Italy')")


template, path, *_ = seeded_fixtures(_create, "threads")  # only the file fixtures: sessions are made here


@pytest.fixture
def world(path, tmp_path):
    """A session (created in this thread) holding a changed object and a pending one, plus a
    detached object from an earlier session."""
    connection = uow.connect(path)
    earlier = Session(connection)
    detached = earlier.get(Country, "it")
    earlier.commit()
    earlier.close()
    session = Session(connection)
    ann = session.get(User, 1)
    ann.name = "owner's change"
    pending = User(name="pending")
    session.add(pending)
    yield {"session": session, "ann": ann, "pending": pending, "detached": detached,
           "archive": str(tmp_path / "archive.db")}
    session.close()
    connection.close()


CALLS = {
    "get (held)": lambda w: w["session"].get(User, 1),
    "get (miss)": lambda w: w["session"].get(User, 99),
    "add": lambda w: w["session"].add(User(name="from the other thread")),
    "flush": lambda w: w["session"].flush(),
    "commit": lambda w: w["session"].commit(),
    "rollback": lambda w: w["session"].rollback(),
    "set attribute": lambda w: setattr(w["ann"], "name", "other thread"),
    "set attribute of a pending object": lambda w: setattr(w["pending"], "name", "other thread"),
    "delete": lambda w: w["session"].delete(w["ann"]),
    "all": lambda w: w["session"].all(User),
    "merge": lambda w: w["session"].merge(Country(code="fr", name="x")),
    "merge(load=False)": lambda w: w["session"].merge(Country(code="fr", name="x"), load=False),
    "upsert": lambda w: w["session"].upsert(Country(code="de", name="Germany")),
    "update": lambda w: w["session"].update(w["detached"]),
    "save_or_update": lambda w: w["session"].save_or_update(w["detached"]),
    "mark_dirty": lambda w: w["session"].mark_dirty(w["ann"]),
    "bulk_insert_mappings": lambda w: w["session"].bulk_insert_mappings(Country, [{"code": "de", "name": "G"}]),
    "bulk_update_mappings": lambda w: w["session"].bulk_update_mappings(Country, [{"code": "fr", "name": "F"}]),
    "bulk_save_objects": lambda w: w["session"].bulk_save_objects([Country(code="de", name="G")]),
    "execute": lambda w: w["session"].execute("SELECT 1"),
    "scalar": lambda w: w["session"].scalar("SELECT 1"),
    "scalars": lambda w: w["session"].scalars("SELECT 1"),
    "connection": lambda w: w["session"].connection(),
    "bind_mapper": lambda w: w["session"].bind_mapper(Archived, w["archive"]),
    "bind_table": lambda w: w["session"].bind_table("archived", w["archive"], registry=ThreadBase.__registry__),
    "get_bind": lambda w: w["session"].get_bind(User),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_a_call_from_another_thread_raises_wrong_thread_error_naming_both_threads(world, name):
    owner = threading.get_ident()
    error, caller = in_other_thread(lambda: CALLS[name](world))
    assert isinstance(error, errors.WrongThreadError), f"{name}: {error!r}"
    assert str(owner) in str(error) and str(caller) in str(error), str(error)


def test_calls_from_another_thread_change_nothing(world, path):
    session, ann, pending = world["session"], world["ann"], world["pending"]
    for name, call in CALLS.items():
        in_other_thread(lambda: call(world))
    assert ann.name == "owner's change"
    assert pending.name == "pending"
    assert session.new == {pending}
    assert session.dirty == {ann}
    assert session.deleted == frozenset()
    session.commit()
    other = sqlite3.connect(path)
    try:
        assert other.execute("SELECT name FROM users ORDER BY id").fetchall() == [("owner's change",), ("pending",)]
        assert other.execute("SELECT code, name FROM countries ORDER BY code").fetchall() == [
            ("fr", "France"), ("it", "Italy")]
    finally:
        other.close()


def test_a_session_belongs_to_the_thread_that_created_it_not_the_first_caller(path):
    """Created in a worker thread: the worker may use it; the main thread may not."""
    made = threading.Event()
    finished = threading.Event()
    shared = {}

    def worker():
        connection = uow.connect(path)
        session = Session(connection)
        shared["session"], shared["thread"] = session, threading.get_ident()
        user = session.get(User, 1)
        shared["user"] = user
        made.set()
        finished.wait(10)
        try:
            user.name = "worker's change"
            session.commit()
            shared["committed"] = True
        finally:
            session.close()
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert made.wait(10)
        session, user = shared["session"], shared["user"]
        errors_seen = []
        for call in (lambda: session.get(User, 1), lambda: session.add(User(name="main")),
                     session.flush, session.commit, lambda: setattr(user, "name", "main's change")):
            with pytest.raises(errors.WrongThreadError) as raised:
                call()
            errors_seen.append(str(raised.value))
        assert all(str(shared["thread"]) in message and str(threading.get_ident()) in message
                   for message in errors_seen)
        assert user.name == "ann"
    finally:
        finished.set()
        thread.join()
    assert shared.get("committed")
    other = sqlite3.connect(path)
    try:
        assert other.execute("SELECT name FROM users").fetchall() == [("worker's change",)]
    finally:
        other.close()
