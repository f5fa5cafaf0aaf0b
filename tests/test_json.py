"""JSON columns (``dict`` and ``list`` annotations): values come back identical, in-place changes
are found at flush without any assignment, rollback restores them, and values JSON would change
are refused before any SQL."""

import enum
import json
import sqlite3
import sys

import pytest

import uow
from uow import Column, Entity, Session, errors

from .helpers import folded
from .seeded import seeded_fixtures


class JsonBase(Entity, abstract=True):
    pass


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Doc(JsonBase, table="docs"):
    id: int = Column(primary_key=True)
    title: str = ""
    tags: list = Column(default_factory=list)
    meta: dict | None = None


UPDATE_TAGS = 'UPDATE "docs" SET "tags" = ? WHERE "docs"."id" = ?'
UPDATE_META = 'UPDATE "docs" SET "meta" = ? WHERE "docs"."id" = ?'


def _create(connection):
    uow.create_all(connection, [Doc])
    connection.execute("INSERT INTO docs (id, title, tags, meta) VALUES (1, 'one', ?, ?)",
                       ('["a"]', '{"k":1,"nested":{"x":[1]}}'))


template, path, conn, session, file_session, other = seeded_fixtures(_create, "json")


def stored(other, column, id=1):
    """The JSON text a committed row holds, read by the second connection."""
    return other.execute(f"SELECT {column} FROM docs WHERE id = ?", (id,)).fetchone()[0]


def writes(statements):
    return [(sql, params) for sql, params in folded(statements) if sql.startswith(("INSERT", "UPDATE", "DELETE"))]


# -- round trip -------------------------------------------------------------------------------

ROUND_TRIP = {
    "text": "é ✓ \U0001f600 \"quoted\"",
    "int": 2 ** 62,
    "negative": -3,
    "float": 1.0,
    "small": 1e-300,
    "flag": True,
    "off": False,
    "nothing": None,
    "list": [1, "1", 1.5, [], {}, [None, [True]]],
    "dict": {"": 0, "nested": {"deeper": {"x": [0.5]}}},
}


def test_values_come_back_identical_from_another_connection(path, file_session):
    file_session.add(Doc(id=2, tags=[ROUND_TRIP, [], "x"], meta=ROUND_TRIP))
    file_session.add(Doc(id=3, tags=[], meta={}))
    file_session.add(Doc(id=4, tags=[], meta=None))
    file_session.commit()
    connection = uow.connect(path)
    reader = Session(connection)
    try:
        two, three, four = reader.get(Doc, 2), reader.get(Doc, 3), reader.get(Doc, 4)
        assert two.meta == ROUND_TRIP and repr(two.meta) == repr(ROUND_TRIP)
        assert repr(two.tags) == repr([ROUND_TRIP, [], "x"])
        assert (three.tags, three.meta, four.meta) == ([], {}, None)
        assert type(three.meta) is dict
        raw = connection.execute("SELECT meta FROM docs WHERE id = 2").fetchone()[0]
        assert json.loads(raw) == ROUND_TRIP
    finally:
        reader.close()
        connection.close()


def test_a_loaded_json_value_is_parsed(session):
    doc = session.get(Doc, 1)
    assert doc.tags == ["a"]
    assert doc.meta == {"k": 1, "nested": {"x": [1]}}


def test_loaded_json_values_that_nobody_changes_cost_no_statement(session):
    session.get(Doc, 1)
    session.commit()
    with uow.capture_sql() as statements:
        session.flush()
        session.commit()
    assert writes(statements) == []
    assert session.dirty == frozenset()


# -- in-place changes -------------------------------------------------------------------------

def test_appending_to_a_list_is_a_change_found_at_flush(file_session, other):
    doc = file_session.get(Doc, 1)
    doc.tags.append("b")
    assert file_session.dirty == {doc}
    assert file_session.dirty_fields(doc) == ["tags"]
    assert file_session.is_modified(doc)
    assert file_session.original_value(doc, "tags") == ["a"]
    with uow.capture_sql() as statements:
        file_session.commit()
    assert writes(statements) == [(UPDATE_TAGS, [('["a","b"]', 1)])]
    assert file_session.dirty_fields(doc) == []
    assert file_session.original_value(doc, "tags") == ["a", "b"]
    assert stored(other, "tags") == '["a","b"]'


def test_setting_a_dict_item_is_a_change_found_at_flush(file_session, other):
    doc = file_session.get(Doc, 1)
    doc.meta["k"] = 2
    assert file_session.dirty_fields(doc) == ["meta"]
    assert file_session.original_value(doc, "meta") == {"k": 1, "nested": {"x": [1]}}
    with uow.capture_sql() as statements:
        file_session.commit()
    assert writes(statements) == [(UPDATE_META, [('{"k":2,"nested":{"x":[1]}}', 1)])]
    assert json.loads(stored(other, "meta")) == {"k": 2, "nested": {"x": [1]}}


def test_a_change_deep_inside_a_value_is_found(session):
    doc = session.get(Doc, 1)
    doc.meta["nested"]["x"].append(2)
    assert session.dirty_fields(doc) == ["meta"]
    assert session.original_value(doc, "meta") == {"k": 1, "nested": {"x": [1]}}
    with uow.capture_sql() as statements:
        session.flush()
    assert writes(statements) == [(UPDATE_META, [('{"k":1,"nested":{"x":[1,2]}}', 1)])]


def test_in_place_changes_are_found_after_insert_and_after_commit(file_session, other):
    doc = Doc(id=2, tags=["x"])
    file_session.add(doc)
    file_session.flush()
    doc.tags.append("after insert")
    with uow.capture_sql() as statements:
        file_session.commit()
    assert writes(statements) == [(UPDATE_TAGS, [('["x","after insert"]', 2)])]
    doc.tags.append("after commit")
    assert file_session.dirty == {doc}
    file_session.commit()
    assert stored(other, "tags", 2) == '["x","after insert","after commit"]'


def test_the_original_value_is_not_the_live_value(session):
    doc = session.get(Doc, 1)
    doc.tags.append("b")
    original = session.original_value(doc, "tags")
    original.append("changing the copy")
    assert session.original_value(doc, "tags") == ["a"]
    assert doc.tags == ["a", "b"]


def test_setting_back_an_equal_value_is_no_change(session):
    doc = session.get(Doc, 1)
    doc.tags = ["a"]
    doc.meta = {"k": 1, "nested": {"x": [1]}}
    assert session.dirty == frozenset()
    doc.tags.append("b")
    doc.tags.pop()
    doc.meta["k"] = 5
    doc.meta["k"] = 1
    assert session.dirty_fields(doc) == []
    with uow.capture_sql() as statements:
        session.flush()
    assert statements == []


def test_an_in_place_change_and_an_assignment_share_one_update(session):
    doc = session.get(Doc, 1)
    doc.tags.append("b")
    doc.title = "renamed"
    with uow.capture_sql() as statements:
        session.flush()
    assert writes(statements) == [('UPDATE "docs" SET "title" = ?, "tags" = ? WHERE "docs"."id" = ?',
                                   [("renamed", '["a","b"]', 1)])]


# -- rollback ---------------------------------------------------------------------------------

def test_rollback_restores_an_unflushed_in_place_change(session):
    doc = session.get(Doc, 1)
    session.commit()
    doc.tags.append("b")
    doc.meta["nested"]["x"].append(2)
    session.rollback()
    assert doc.tags == ["a"]
    assert doc.meta == {"k": 1, "nested": {"x": [1]}}
    assert session.dirty == frozenset()
    with uow.capture_sql() as statements:
        session.flush()
    assert statements == []


def test_rollback_restores_a_flushed_in_place_change_and_the_row(file_session, other):
    doc = file_session.get(Doc, 1)
    file_session.commit()
    doc.tags.append("b")
    file_session.flush()
    doc.tags.append("c")
    file_session.rollback()
    assert doc.tags == ["a"]
    assert file_session.dirty == frozenset()
    with uow.capture_sql() as statements:
        file_session.commit()
    assert writes(statements) == []
    assert stored(other, "tags") == '["a"]'


def test_an_object_whose_delete_was_flushed_is_no_longer_compared(file_session, other):
    """Its row is gone: a later assignment (or in-place change) is nothing for a flush to write.
    The tracker kept comparing its JSON columns at every flush, so it showed in session.dirty and
    the next flush sent an UPDATE that matched no row and failed."""
    doc = file_session.get(Doc, 1)
    file_session.delete(doc)
    file_session.flush()
    doc.title = "renamed"
    doc.tags.append("b")
    assert file_session.dirty == frozenset()
    with uow.capture_sql() as statements:
        file_session.commit()
    assert writes(statements) == []
    assert other.execute("SELECT COUNT(*) FROM docs").fetchone()[0] == 0


def test_an_object_that_took_over_a_row_is_compared_like_any_loaded_object(file_session, other):
    """A row switch (delete an object, add a new one with its key: one UPDATE) makes the new object
    persistent; its JSON columns must be watched from then on, as every other way in does.  The
    switch skipped that step, so an in-place change after it was never written (one "make
    persistent" for every path, Registers.make_persistent, is what keeps such a step from being
    left out)."""
    file_session.delete(file_session.get(Doc, 1))
    doc = Doc(id=1, title="new", tags=["n"])
    file_session.add(doc)
    file_session.flush()  # the row switch
    doc.tags.append("m")
    assert file_session.dirty == {doc}
    with uow.capture_sql() as statements:
        file_session.commit()
    assert writes(statements) == [(UPDATE_TAGS, [('["n","m"]', 1)])]
    assert json.loads(stored(other, "tags")) == ["n", "m"]


def test_a_savepoint_rollback_restores_an_in_place_change_of_an_object_whose_delete_was_flushed(session):
    doc = session.get(Doc, 1)
    session.delete(doc)
    savepoint = session.begin_nested()  # flushes the DELETE
    doc.tags.append("b")
    savepoint.rollback()
    assert doc.tags == ["a"]
    assert uow.state_of(doc) is uow.ObjectState.DELETED


def test_a_savepoint_rollback_keeps_what_an_object_was_deleted_with(session):
    doc = session.get(Doc, 1)
    doc.tags = ["z"]
    session.delete(doc)  # the assignment is never written: the row goes
    savepoint = session.begin_nested()
    savepoint.rollback()
    assert doc.tags == ["z"]


def test_a_savepoint_rollback_keeps_what_a_deleted_object_was_assigned_before_it(session):
    doc = session.get(Doc, 1)
    session.delete(doc)
    session.flush()
    doc.tags = ["z"]
    savepoint = session.begin_nested()
    savepoint.rollback()
    assert doc.tags == ["z"]


def test_a_deleted_object_brought_back_by_rollback_is_compared_again(session):
    doc = session.get(Doc, 1)
    session.commit()
    session.delete(doc)
    session.flush()
    session.rollback()
    doc.tags.append("b")
    assert session.dirty == frozenset({doc})


def test_rollback_restores_an_in_place_change_made_before_an_assignment(file_session):
    doc = file_session.get(Doc, 1)
    file_session.commit()
    doc.tags.append("b")
    doc.title = "renamed"
    file_session.rollback()
    assert (doc.title, doc.tags) == ("one", ["a"])
    assert file_session.dirty == frozenset()


def test_rollback_to_a_savepoint_restores_an_in_place_change(session):
    doc = session.get(Doc, 1)
    doc.tags.append("before")
    nested = session.begin_nested()  # autoflushes: "before" is written
    doc.tags.append("inside")
    doc.meta["k"] = "inside"
    nested.rollback()
    assert doc.tags == ["a", "before"]
    assert doc.meta == {"k": 1, "nested": {"x": [1]}}
    assert session.dirty_fields(doc) == []


def test_an_object_loaded_in_a_rolled_back_transaction_reloads_its_json(session):
    doc = session.get(Doc, 1)
    doc.tags.append("b")
    session.rollback()
    assert doc.tags == ["a"]


# -- values JSON would change -----------------------------------------------------------------

BAD_VALUES = {
    "tuple": lambda: {"t": (1, 2)},
    "int key": lambda: {1: "one"},
    "NaN": lambda: {"n": float("nan")},
    "infinity": lambda: {"n": float("inf")},
    "set": lambda: {"s": {1, 2}},
    "int subclass": lambda: {"level": Level.HIGH},  # JSON gives back the plain int 2
}


@pytest.mark.parametrize("kind", list(BAD_VALUES))
@pytest.mark.parametrize("how", ["insert", "assignment", "in place"])
def test_values_json_would_change_are_refused_before_any_sql(file_session, kind, how):
    session = file_session
    bad = BAD_VALUES[kind]()
    if how == "insert":
        doc = Doc(id=2, meta=bad)
        session.add(doc)
    else:
        doc = session.get(Doc, 1)
        if how == "assignment":
            doc.meta = bad
        else:
            doc.meta.update(bad)
    with uow.capture_sql() as statements:
        with pytest.raises(errors.ColumnValueError, match="Doc.meta"):
            session.flush()
    assert writes(statements) == []
    doc.meta = {"fixed": True}  # the session is still usable
    session.flush()
    assert session.execute("SELECT meta FROM docs WHERE id = ?", (doc.id,)).fetchone()[0] == '{"fixed":true}'


def test_a_tuple_as_a_list_value_is_refused(session):
    session.add(Doc(id=2, tags=(1, 2)))
    with uow.capture_sql() as statements:
        with pytest.raises(errors.ColumnValueError, match="expected list, got tuple"):
            session.flush()
    assert statements == []


def _nested_too_deeply():
    """A dict nested deeper than Python's recursion limit: it cannot be copied or written as JSON."""
    value = inner = {}
    for _ in range(sys.getrecursionlimit() * 2):
        inner["n"] = {}
        inner = inner["n"]
    return value


def test_add_all_refuses_a_value_too_deep_to_copy_before_adding_any_object(session):
    """add_all() adds every object or none: a JSON value that the undo log cannot copy is refused
    while the objects are checked, not after the objects before it were made pending."""
    first, second = Doc(id=2, meta={"n": 1}), Doc(id=3, meta=_nested_too_deeply())
    with pytest.raises(errors.ColumnValueError, match="Doc.meta: the value is nested too deeply"):
        session.add_all([first, second])
    assert first not in session and second not in session
    assert not session.new
    session.add(first)  # the session is still usable
    session.flush()
    assert session.execute("SELECT meta FROM docs WHERE id = 2").fetchone()[0] == '{"n":1}'


# -- declarations -----------------------------------------------------------------------------

@pytest.mark.parametrize("column", [
    lambda: Column(primary_key=True),
    lambda: Column(unique=True),
    lambda: Column(references=Doc),
], ids=["primary key", "unique", "foreign key"])
def test_a_json_column_cannot_be_a_key_unique_or_a_foreign_key(column):
    with pytest.raises(errors.MappingError, match="JSON"):
        class Bad(JsonBase, table="bad_json"):
            id: int = Column(primary_key=True)
            value: dict = column()


def test_a_json_key_column_alone_is_refused():
    with pytest.raises(errors.MappingError, match="JSON"):
        class BadKey(JsonBase, table="bad_json_key"):
            value: list = Column(primary_key=True)


def test_a_plain_mutable_default_is_not_shared_between_objects():
    """``tags: list = []`` must not give every object the same list (or must be refused)."""
    try:
        class Shared(JsonBase, table="shared_default"):
            id: int = Column(primary_key=True)
            tags: list = []
    except errors.MappingError:
        return
    first, second = Shared(), Shared()
    first.tags.append("only mine")
    assert second.tags == []


def test_a_json_column_of_a_class_declared_at_run_time_tracks_in_place_changes(conn):
    # Declared inside the test so that building its mapper is part of what the test runs.
    class Checklist(JsonBase, table="json_checklists"):
        id: int = Column(primary_key=True)
        name: str = ""
        items: list = Column(default_factory=list)

    uow.create_all(conn, [Checklist])
    session = Session(conn)
    checklist = Checklist(name="trip", items=["tent"])
    session.add(checklist)
    session.commit()
    checklist.items.append("stove")
    assert session.dirty_fields(checklist) == ["items"]
    with uow.capture_sql() as statements:
        session.commit()
    assert writes(statements) == [('UPDATE "json_checklists" SET "items" = ? WHERE "json_checklists"."id" = ?',
                                   [('["tent","stove"]', 1)])]
    session.close()


# -- values nested deeper than Python can encode ------------------------------------------------

def _nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


TOO_DEEP = _nested(5000)  # past the recursion limit: json.dumps, deepcopy and repr all give up


def test_a_json_value_nested_too_deeply_is_refused_by_add_naming_the_attribute(session):
    """add() copies a new object's JSON for the undo log: the copy raised a raw RecursionError."""
    doc = Doc(id=5, tags=TOO_DEEP)
    with uow.capture_sql() as statements, pytest.raises(errors.ColumnValueError) as caught:
        session.add(doc)
    assert str(caught.value) == ("Doc.tags: the value is nested too deeply to be copied or stored as JSON "
                                 "(Python gives up past its recursion limit); flatten it")
    assert statements == [] and session.new == set()


@pytest.mark.parametrize("channel", ["assign", "bulk_insert_mappings", "filter"])
def test_a_json_value_nested_too_deeply_is_refused_before_any_sql(session, channel):
    """The flush's, the bulk writes' and filter()'s value checks raised a raw RecursionError (from
    json.dumps, then from repr in the message)."""
    doc = session.get(Doc, 1)
    with uow.capture_sql() as statements, pytest.raises(errors.ColumnValueError) as caught:
        if channel == "assign":
            doc.tags = TOO_DEEP
            session.flush()
        elif channel == "bulk_insert_mappings":
            session.bulk_insert_mappings(Doc, [{"id": 7, "tags": TOO_DEEP}])
        else:
            session.filter(Doc, tags=TOO_DEEP)
    message = str(caught.value)
    assert "Doc.tags = <a list nested too deeply to print> is nested too deeply to be stored as JSON" in message
    assert statements == []


def test_a_refused_huge_value_is_shown_cut_short_in_the_message(session):
    doc = session.get(Doc, 1)
    doc.title = "x" * 100_000 + "\ud800"
    with pytest.raises(errors.ColumnValueError) as caught:
        session.flush()
    assert len(str(caught.value)) < 700
    assert "...(100,008 characters)..." in str(caught.value)  # the repr, quotes and escape included


def test_a_savepoint_rollback_keeps_the_json_value_of_an_object_it_did_not_touch(file_session, other):
    """A rollback puts back JSON values changed in place since the savepoint began; one that did
    not change stays the same object, so a reference the user holds still edits the object (found
    by mutation testing: replacing it by an equal copy lost the user's later changes)."""
    doc = file_session.get(Doc, 1)
    tags = doc.tags
    with file_session.begin_nested() as savepoint:
        file_session.add(Doc(id=5, tags=["x"]))
        file_session.flush()
        savepoint.rollback()
    assert doc.tags is tags
    tags.append("b")
    file_session.commit()
    assert stored(other, "tags") == '["a","b"]'


# -- a savepoint that changed nothing ---------------------------------------------------------

class JsonShelf(JsonBase, table="json_shelves"):
    id: int = Column(primary_key=True)
    cards = uow.Collection("JsonCard", "shelf")


class JsonCard(JsonBase, table="json_cards"):
    id: int = Column(primary_key=True)
    shelf_id: int | None = Column(references="JsonShelf")
    shelf = uow.Reference("shelf_id")
    data: dict | None = None


@pytest.mark.parametrize("where", ["memory", "file"])
def test_rolling_back_an_empty_savepoint_keeps_collections_of_the_class_of_a_deleted_object(where, tmp_path):
    """Opening a savepoint copies the JSON values of objects whose DELETE was flushed (nothing else
    says what they held); that precaution is no change, so rolling back a savepoint that changed
    nothing keeps loaded collections of their class, as it keeps every other (found by the
    conformance machine: a loaded collection was dropped that the oracle kept)."""
    path = ":memory:" if where == "memory" else str(tmp_path / "shelves.db")
    connection = uow.connect(path)
    uow.create_all(connection, [JsonShelf, JsonCard])
    session = Session(connection)
    session.add(JsonShelf(id=1))
    session.add_all([JsonCard(id=1, shelf_id=1, data={"n": 1}), JsonCard(id=2, shelf_id=1, data={"n": 2})])
    session.commit()
    gone = session.get(JsonCard, 2)
    session.delete(gone)
    session.flush()
    shelf = session.get(JsonShelf, 1)
    assert [card.id for card in shelf.cards] == [1]
    savepoint = session.begin_nested()
    savepoint.rollback()
    with uow.capture_sql() as statements:
        assert [card.id for card in shelf.cards] == [1]
    assert statements == []  # still loaded: not dropped and read again
    gone.data["n"] = 3  # what the deleted object holds when the next savepoint begins
    savepoint = session.begin_nested()
    gone.data["n"] = 4
    savepoint.rollback()
    assert gone.data == {"n": 3}  # the precaution still puts back what the savepoint changed
    session.commit()
    if where == "file":
        other = sqlite3.connect(path)
        assert other.execute("SELECT id FROM json_cards").fetchall() == [(1,)]
        other.close()
    else:
        assert connection.execute("SELECT id FROM json_cards").fetchall() == [(1,)]
    session.close()
    connection.close()


def test_a_copy_the_rollback_detaches_loses_its_in_place_change_too(session, conn):
    """A rollback puts back JSON values changed in place in the objects the session holds, also
    in a second copy of a row that the same rollback then detaches (the expunged copy comes back
    first): it was the session's when the change was made, and detached it must not keep a value
    no row ever held."""
    first = session.get(Doc, 1)
    session.commit()
    session.expunge(first)
    second = session.get(Doc, 1)
    assert second is not first
    second.meta["k"] = True
    second.tags.append("b")
    session.rollback()
    assert session.get(Doc, 1) is first
    assert second.meta == {"k": 1, "nested": {"x": [1]}} and repr(second.meta["k"]) == "1"
    assert second.tags == ["a"]
    assert stored(conn, "meta") == '{"k":1,"nested":{"x":[1]}}'
