"""Names SQLite gives a meaning of its own are refused when a class is declared, and uow's own SQL
never depends on a name a table could take for one of its columns."""

import sqlite3

import pytest

import uow
from uow import Column, Entity, errors


class SpecialBase(Entity, abstract=True):
    pass


def declare(column_name, table="special_things"):
    namespace = {"__annotations__": {"id": int, column_name: int, "name": str}, "id": Column(primary_key=True)}
    return type("Thing", (SpecialBase,), namespace, table=table)


@pytest.mark.parametrize("name", ["rowid", "ROWID", "RowId", "oid", "OID", "_rowid_", "_ROWID_"])
def test_a_column_named_like_the_rowid_is_refused_naming_class_and_attribute(name):
    with pytest.raises(errors.MappingError) as caught:
        declare(name)
    assert str(caught.value).startswith(f"Thing.{name}: {name!r} is one of SQLite's names for the row's rowid")


@pytest.mark.parametrize("table", ["excluded", "EXCLUDED", "Excluded"])
def test_a_table_named_excluded_is_refused_because_upsert_could_not_reach_it(table):
    with pytest.raises(errors.MappingError) as caught:
        declare("size", table=table)
    assert str(caught.value).startswith(f"table name of Thing: {table!r} is the name SQLite gives the row")


@pytest.mark.parametrize("table", ["sqlite_things", "SQLITE_things"])
def test_a_table_with_sqlites_reserved_prefix_is_refused(table):
    with pytest.raises(errors.MappingError, match="starts with 'sqlite_'"):
        declare("size", table=table)


class Gadget(SpecialBase, table="gadgets"):
    id: int = Column(primary_key=True)
    name: str


@pytest.fixture(params=["memory", "file"])
def gadget_conn(request, tmp_path):
    """A table made outside uow that has a column of its own called rowid, which uow does not map."""
    path = ":memory:" if request.param == "memory" else str(tmp_path / "gadgets.db")
    connection = uow.connect(path)
    connection.execute('CREATE TABLE gadgets (id INTEGER PRIMARY KEY, name TEXT NOT NULL, rowid INTEGER DEFAULT 0)')
    connection.execute("INSERT INTO gadgets (id, name, rowid) VALUES (1, 'old', 9)")
    yield connection, path
    connection.close()


def test_generated_keys_are_read_back_without_naming_the_rowid(gadget_conn):
    # (Reading back through max(rowid) / ORDER BY rowid read the table's own column: the flush
    # failed, or with other values in it handed the objects each other's keys.)
    connection, path = gadget_conn
    session = uow.Session(connection)
    gadgets = [Gadget(name=name) for name in ("a", "b", "c")]
    session.add_all(gadgets)
    session.commit()
    assert [(g.id, g.name) for g in gadgets] == [(2, "a"), (3, "b"), (4, "c")]
    rows = connection.execute("SELECT id, name FROM gadgets ORDER BY id").fetchall()
    assert rows == [(1, "old"), (2, "a"), (3, "b"), (4, "c")]
    gadgets[0].name = "A"
    session.commit()
    if path != ":memory:":
        other = sqlite3.connect(path)
        assert other.execute("SELECT id, name FROM gadgets ORDER BY id").fetchall() == \
            [(1, "old"), (2, "A"), (3, "b"), (4, "c")]
        other.close()
    session.close()


@pytest.mark.parametrize("name", ["limit", "order_by", "load", "entity"])
def test_a_column_named_like_a_filter_parameter_is_refused(name):
    """filter(Thing, limit=3) means LIMIT 3: a column called limit was silently never filtered on
    (filter returned the first rows instead of the matching ones)."""
    with pytest.raises(errors.MappingError) as caught:
        declare(name)
    assert str(caught.value) == (
        f"Thing.{name}: {name!r} is a parameter of session.filter() (entity, limit, load, order_by), so "
        f"filter(Thing, {name}=...) could not mean this column. Rename the attribute")


def test_wb_the_refused_filter_names_are_filters_own_parameters():
    import inspect

    from uow.identifiers import FILTER_OPTIONS

    parameters = inspect.signature(uow.Session.filter).parameters
    named = {name for name, parameter in parameters.items()
             if name != "self" and parameter.kind is not inspect.Parameter.VAR_KEYWORD}
    assert FILTER_OPTIONS == named
