"""``Session(..., weak_identity_map=True)``: an object the program no longer references leaves the
identity map, unless it has work still to do (pending, changed, marked for deletion, in an open
transaction's undo log, or with a JSON column); the default map keeps every object.

The garbage collector is run by hand (``gc.collect()``): an object and its state record point at
each other, so it is the cyclic collector that frees them.
"""

import gc
import sqlite3

import pytest

import uow
from uow import Column, Entity

from .helpers import sql_of


class Base(Entity, abstract=True):
    pass


class Reading(Base, table="readings"):
    id: int = Column(primary_key=True)
    value: float


class Sheet(Base, table="sheets"):
    id: int = Column(primary_key=True)
    tags: list = Column(default_factory=list)


class Box(Base, table="boxes"):
    id: int = Column(primary_key=True)
    items: uow.Collection["Item"] = uow.Collection("Item", "box")


class Item(Base, table="items"):
    id: int = Column(primary_key=True)
    box_id: int | None = Column(references=Box, default=None)
    box: uow.Reference[Box] = uow.Reference("box_id")


MODELS = [Reading, Sheet, Box, Item]


@pytest.fixture(params=["memory", "file"])
def where(request, tmp_path):
    return ":memory:" if request.param == "memory" else str(tmp_path / "weak.db")


@pytest.fixture
def conn(where):
    connection = uow.connect(where)
    uow.create_all(connection, MODELS)
    session = uow.Session(connection)
    session.add_all([Reading(id=i, value=i / 2) for i in range(1, 11)])
    session.add_all([Sheet(id=1, tags=["a"]), Box(id=1), Item(id=1, box_id=1), Item(id=2, box_id=1)])
    session.commit()
    session.close()
    yield connection
    connection.close()


def committed(conn, where, sql):
    """Read through a second connection for a file (only committed data), the same one in memory."""
    reader = conn if where == ":memory:" else sqlite3.connect(where)
    return reader.execute(sql).fetchall()


def held_keys(session):
    gc.collect()
    return sorted(key[1] for key in session.identity_map)


def test_the_default_map_keeps_every_object_loaded(conn):
    session = uow.Session(conn)
    session.all(Reading)
    assert len(held_keys(session)) == 10


def test_objects_nobody_references_leave_the_weak_map_and_referenced_ones_stay(conn):
    session = uow.Session(conn, weak_identity_map=True)
    readings = session.all(Reading)
    kept = readings[2]
    del readings
    assert held_keys(session) == [(3,)]
    with uow.capture_sql() as statements:
        assert session.get(Reading, 3) is kept  # still the one object for its row, no SQL
    assert statements == []
    with uow.capture_sql() as statements:
        again = session.get(Reading, 4)  # it left: loaded again
    assert again.value == 2.0 and len(sql_of(statements)) == 1


def test_a_changed_object_stays_until_its_change_is_flushed_and_committed(conn, where):
    session = uow.Session(conn, weak_identity_map=True)
    session.get_one(Reading, 5).value = 99.0
    assert held_keys(session) == [(5,)]
    session.flush()
    assert held_keys(session) == [(5,)]  # the open transaction's undo log may need to put it back
    session.commit()
    assert held_keys(session) == []
    assert committed(conn, where, "SELECT value FROM readings WHERE id = 5") == [(99.0,)]


def test_a_rollback_puts_back_a_changed_object_the_program_dropped(conn):
    session = uow.Session(conn, weak_identity_map=True)
    session.get_one(Reading, 5).value = 99.0
    session.flush()
    gc.collect()
    session.rollback()
    assert session.get_one(Reading, 5).value == 2.5


def test_pending_and_deleted_objects_stay_until_written(conn, where):
    session = uow.Session(conn, weak_identity_map=True)
    session.delete(session.get_one(Reading, 1))
    session.add(Reading(id=11, value=5.5))
    gc.collect()
    assert len(session.new) == 1 and len(session.deleted) == 1
    session.commit()
    assert committed(conn, where, "SELECT id FROM readings WHERE id IN (1, 11)") == [(11,)]
    assert held_keys(session) == []


def test_an_object_with_a_json_column_stays_so_a_change_in_place_is_not_lost(conn, where):
    session = uow.Session(conn, weak_identity_map=True)
    tags = session.get_one(Sheet, 1).tags
    assert held_keys(session) == [(1,)]
    tags.append("b")  # through the list alone: only the held object can show the change
    session.commit()
    assert committed(conn, where, "SELECT tags FROM sheets") == [('["a","b"]',)]


def test_objects_reachable_from_a_referenced_object_stay(conn):
    session = uow.Session(conn, weak_identity_map=True)
    box = session.get_one(Box, 1)
    assert [item.id for item in box.items] == [1, 2]
    assert held_keys(session) == [(1,), (1,), (2,)]
    assert session.get_one(Item, 1).box is box


def test_expire_all_refresh_and_close_work_after_objects_left(conn):
    session = uow.Session(conn, weak_identity_map=True)
    kept = session.all(Reading)[0]
    gc.collect()
    session.expire_all()
    assert kept.value == 0.5
    session.refresh(kept)
    assert session.stats().persistent == 1
    session.close()
    assert uow.state_of(kept) is uow.ObjectState.DETACHED
