"""Rows whose primary key holds NULL, in tables uow did not create.

SQLite accepts NULL in a key column that is not an INTEGER PRIMARY KEY.  Such a row has no
identity: an UPDATE or DELETE by key binds ``col = NULL`` and matches nothing.  Every load refuses
it with an IdentityError naming the table, the key and the column, and makes no object at all.
(get(), refresh() and merge() look rows up by a whole key, which ``=`` never matches with NULL,
so they cannot meet such a row; the loads below can.)
"""

import pytest

import uow
from uow import Collection, Column, Entity, Reference, Session, errors

from .helpers import sql_of


class NullKeyBase(Entity, abstract=True):
    pass


class Shelf(NullKeyBase, table="nk_shelves"):
    id: int = Column(primary_key=True)
    name: str
    slots = Collection("Slot", "shelf")


class Slot(NullKeyBase, table="nk_slots"):
    """A composite key: a shelf and a text label, which the table leaves nullable."""

    shelf_id: int = Column(primary_key=True, references=Shelf)
    label: str = Column(primary_key=True)
    shelf = Reference("shelf_id")
    note: str | None = None


class Code(NullKeyBase, table="nk_codes"):
    """A single text key, which the table leaves nullable."""

    code: str = Column(primary_key=True)
    meaning: str


DDL = """
CREATE TABLE nk_shelves (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE nk_slots (shelf_id INTEGER REFERENCES nk_shelves (id), label TEXT, note TEXT, PRIMARY KEY (shelf_id, label));
CREATE TABLE nk_codes (code TEXT PRIMARY KEY, meaning TEXT NOT NULL);
INSERT INTO nk_shelves (id, name) VALUES (1, 'top');
INSERT INTO nk_slots (shelf_id, label, note) VALUES (1, 'a', 'fine'), (1, NULL, 'no label');
INSERT INTO nk_codes (code, meaning) VALUES ('ok', 'fine'), (NULL, 'no code');
"""

SLOT_REFUSED = (r"table nk_slots holds a row whose primary key \(shelf_id, label\) has NULL in label "
                r"\(Slot\(shelf_id=1, label=None\)\).*declare label NOT NULL; nothing was loaded")
CODE_REFUSED = r"table nk_codes holds a row whose primary key \(code\) has NULL in code \(Code\(code=None\)\)"


@pytest.fixture(params=["memory", "file"])
def session(request, tmp_path):
    connection = uow.connect(":memory:" if request.param == "memory" else str(tmp_path / "null_keys.db"))
    connection.executescript(DDL)
    opened = Session(connection)
    yield opened
    opened.close()
    connection.close()


@pytest.mark.parametrize("load", [
    lambda s: s.filter(Slot, order_by="-label"),
    lambda s: s.all(Slot),
    lambda s: s.filter(Slot, note="no label"),
    lambda s: s.get(Shelf, 1).slots,
    lambda s: s.filter(Shelf, load=["slots"]),
    lambda s: s.load_related([s.get(Shelf, 1)], "slots"),
], ids=["filter", "all", "filter-by-column", "lazy-collection", "eager-collection", "load_related"])
def test_every_load_refuses_a_row_with_null_in_its_composite_key(session, load):
    with pytest.raises(errors.IdentityError, match=SLOT_REFUSED):
        load(session)
    # The load made no object, not even of the valid rows before the refused one.
    assert [key for key in session.identity_map if key[0] is Slot] == []
    assert session.is_active


def test_a_single_text_key_holding_null_is_refused_too(session):
    with pytest.raises(errors.IdentityError, match=CODE_REFUSED):
        session.all(Code)
    assert session.filter(Code, code="ok")[0].meaning == "fine"


def test_no_update_or_delete_is_ever_sent_for_such_a_row(session):
    """Before, the row loaded and its UPDATE matched nothing ("deleted outside this session")."""
    with uow.capture_sql() as statements:
        with pytest.raises(errors.IdentityError):
            for slot in session.filter(Slot, order_by="-label"):
                slot.note = "changed"
        session.commit()
    assert [sql for sql in sql_of(statements) if sql.startswith(("UPDATE", "DELETE"))] == []


def test_get_refuses_a_null_key_value_before_any_sql(session):
    with uow.capture_sql() as statements:
        with pytest.raises(errors.IdentityError, match="a primary key is never NULL"):
            session.get(Slot, (1, None))
    assert statements == []


def test_the_rows_themselves_are_left_alone(session):
    with pytest.raises(errors.IdentityError):
        session.all(Slot)
    session.commit()
    rows = session.connection().execute("SELECT shelf_id, label FROM nk_slots ORDER BY label").fetchall()
    assert rows == [(1, None), (1, "a")]


def test_wb_a_refused_load_leaves_held_objects_held(session):
    held = session.filter(Slot, label="a")[0]
    with pytest.raises(errors.IdentityError):
        session.all(Slot)
    assert session.identity_map[(Slot, (1, "a"))] is held
