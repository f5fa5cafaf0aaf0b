"""UUID and enum columns (also as keys), and a column type of the user's own (``uow.CustomType``).

Each is held to the promise of the built-in types: a value is stored and read back exactly (read
by a fresh session, on a second connection for a file), or refused with a uow error before any SQL.
"""

import dataclasses
import datetime
import decimal
import enum
import sqlite3
import uuid

import pytest

import uow
from uow import Column, Entity, errors

from .helpers import folded, same


class Base(Entity, abstract=True):
    pass


class Color(enum.Enum):
    RED = 1
    GREEN = (2, "two")   # a value that is not text: the name is what is stored
    VERDANT = (2, "two")  # an alias of GREEN


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


class PointType(uow.CustomType):
    python_type = Point
    stored_type = str

    def to_stored(self, value):
        return f"{value.x},{value.y}"

    def from_stored(self, stored):
        x, y = stored.split(",")
        return Point(int(x), int(y))


class Thing(Base, table="things"):
    id: uuid.UUID = Column(primary_key=True)
    color: Color
    size: Size | None = None
    at: Point | None = Column(type=PointType())


class Paint(Base, table="paints"):
    """An enum as the primary key, and a UUID foreign key."""

    color: Color = Column(primary_key=True)
    thing_id: uuid.UUID | None = Column(references=Thing, default=None)


class Spot(Base, table="spots"):
    """A custom type as the primary key."""

    where: Point = Column(primary_key=True, type=PointType())
    label: str


class Mark(Base, table="marks"):
    """A foreign key to a custom-type key, declared with another instance of the same type."""

    id: int = Column(primary_key=True)
    spot: Point = Column(references=Spot, type=PointType())


MODELS = [Thing, Paint, Spot, Mark]
ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


@pytest.fixture(params=["memory", "file"])
def where(request, tmp_path):
    return ":memory:" if request.param == "memory" else str(tmp_path / "types.db")


class Database:
    """One database and the way to read it back: a second connection for a file, a fresh session
    on the same connection for an in-memory one."""

    def __init__(self, where):
        self.where = where
        self.conn = uow.connect(where)
        uow.create_all(self.conn, MODELS)

    def session(self):
        return uow.Session(self.conn)

    def fresh(self):
        return uow.Session(self.conn if self.where == ":memory:" else uow.connect(self.where))

    def raw(self, sql):
        conn = self.conn if self.where == ":memory:" else sqlite3.connect(self.where)
        return conn.execute(sql).fetchall()


@pytest.fixture
def db(where):
    database = Database(where)
    yield database
    database.conn.close()


def test_uuid_key_and_enum_are_stored_as_text_and_read_back_exactly(db):
    session = db.session()
    session.add(Thing(id=ID, color=Color.VERDANT, size=Size.LARGE, at=Point(3, -4)))
    session.commit()
    assert db.raw("SELECT id, color, size, at FROM things") == [
        ("12345678-1234-5678-1234-567812345678", "GREEN", "LARGE", "3,-4")]
    thing = db.fresh().get_one(Thing, ID)
    assert same(thing.id) == same(ID)
    assert thing.color is Color.GREEN
    assert thing.size is Size.LARGE
    assert thing.at == Point(3, -4)


def test_the_declared_sql_types_are_text_and_keep_their_affinity():
    sql = uow.create_table_sql(Thing)
    assert '"id" TEXT NOT NULL' in sql and '"color" TEXT NOT NULL' in sql and '"at" TEXT' in sql


def test_uuid_and_enum_keys_go_through_the_identity_map(db):
    session = db.session()
    thing = Thing(id=ID, color=Color.RED)
    session.add_all([thing, Paint(color=Color.GREEN, thing_id=ID)])
    session.commit()
    assert session.get(Thing, ID) is thing
    assert uow.identity_key(Paint, Color.GREEN) == (Paint, ("GREEN",))
    other = db.fresh()
    paint = other.get_one(Paint, Color.VERDANT)  # an alias finds its member's row
    assert paint is other.get(Paint, Color.GREEN)
    assert other.get(Thing, ID) is other.get(Thing, uuid.UUID(str(ID)))
    assert repr(paint) .startswith("Paint(color=<Color.GREEN")


@pytest.mark.parametrize("ident, shown", [(str(ID), "expected UUID, got str"), (ID.int, "expected UUID, got int")])
def test_get_refuses_a_uuid_key_given_as_text_or_int(db, ident, shown):
    with uow.capture_sql() as statements:
        with pytest.raises(errors.IdentityError, match=shown):
            db.session().get(Thing, ident)
    assert statements == []


def test_a_uuid_foreign_key_orders_the_flush_and_reads_back(db):
    session = db.session()
    thing = Thing(id=ID, color=Color.RED)
    session.add(Paint(color=Color.RED, thing_id=ID))
    session.add(thing)
    with uow.capture_sql() as statements:
        session.commit()
    tables = [sql.split()[2] for sql, _ in folded(statements) if sql.startswith("INSERT")]
    assert tables == ['"things"', '"paints"']
    assert db.fresh().get_one(Paint, Color.RED).thing_id == ID


@pytest.mark.parametrize("value, reason", [
    ("RED", "expected Color, got str"),
    (1, "expected Color, got int"),
    (Size.SMALL, "expected Color, got Size"),
])
def test_an_enum_column_takes_only_its_own_members(db, value, reason):
    session = db.session()
    session.add(Thing(id=ID, color=value))
    with uow.capture_sql() as statements:
        with pytest.raises(errors.ColumnValueError, match=f"Thing.color = .* {reason}"):
            session.flush()
    assert statements == []


def test_an_int_enum_column_refuses_a_plain_int_that_would_come_back_as_a_member(db):
    session = db.session()
    session.add(Thing(id=ID, color=Color.RED, size=2))
    with pytest.raises(errors.ColumnValueError, match="Thing.size = 2 expected Size, got int"):
        session.flush()


def test_a_stored_name_the_enum_no_longer_has_is_a_clear_error_on_load(db):
    db.conn.execute("INSERT INTO things (id, color) VALUES (?, 'BLUE')", (str(ID),))
    with pytest.raises(errors.ColumnValueError, match=r"'BLUE' is not a member of Color \(RED, GREEN, VERDANT\)"):
        db.session().get(Thing, ID)


@pytest.mark.parametrize("column, stored, message", [
    ("color", "BLUE", r"'BLUE' is not a member of Color"),
    # PointType.from_stored's own ValueError escaped raw, naming neither the type, the column nor the row.
    ("at", "3;4", r"'3;4' is not one PointType can read: from_stored raised ValueError"),
])
def test_a_row_its_types_cannot_read_fails_the_whole_load_naming_attribute_and_row(db, column, stored, message):
    """The rows before the unreadable one were made into objects and stayed in the identity map
    (and, for a CustomType, its conversion's own error escaped raw): a load that fails must leave
    the session as it was, and say which attribute of which row it could not read."""
    first = uuid.UUID(int=1)
    db.conn.execute("INSERT INTO things (id, color, at) VALUES (?, 'RED', '1,2')", (str(first),))
    db.conn.execute(f"INSERT INTO things (id, color, at) VALUES (?, ?, ?)",
                    (str(ID), stored if column == "color" else "RED", stored if column == "at" else None))
    session = db.session()
    for load in (lambda: session.select(Thing).all(), lambda: session.all(Thing),
                 lambda: session.filter(Thing, order_by="id")):
        with pytest.raises(errors.ColumnValueError, match=message) as caught:
            load()
        assert f"Thing.{column} of the row Thing(id='{ID}')" in str(caught.value)
        assert "nothing was loaded" in str(caught.value)
        assert dict(session.identity_map) == {}
    assert session.get(Thing, first).at == Point(1, 2)  # the readable row still loads on its own
    db.conn.execute("DELETE FROM things WHERE id = ?", (str(ID),))
    held = session.get(Thing, first)
    db.conn.execute(f"UPDATE things SET {column} = ? WHERE id = ?", (stored, str(first)))
    for read in (lambda: session.refresh(held), lambda: (session.expire(held), getattr(held, column))):
        with pytest.raises(errors.ColumnValueError, match=message) as caught:
            read()
        assert f"Thing.{column} of the row Thing(id=" in str(caught.value) and str(first) in str(caught.value)
        if "at" in held.__dict__:  # after refresh(): as it was, not half refreshed
            assert held.__dict__["at"] == Point(1, 2) and held.__dict__["color"] is Color.RED


@pytest.mark.parametrize("annotation, stored", [
    (decimal.Decimal, "abc"), (datetime.date, "2020-13-45"), (datetime.datetime, "nope"), (uuid.UUID, "xyz"),
    (dict, "{bad"), (list, "[1,"),
])
def test_a_stored_text_a_built_in_type_cannot_read_is_a_clear_error_in_every_read(where, annotation, stored):
    """Decimal('abc') raised decimal.InvalidOperation, date.fromisoformat a ValueError, json a
    JSONDecodeError, raw, from every load of a row another program wrote."""
    cls = type(f"Holds{annotation.__name__.capitalize()}", (Base,), {
        "__annotations__": {"id": int, "value": annotation | None}, "id": Column(primary_key=True),
        "value": None}, table=f"unreadable_{annotation.__name__.lower()}")
    conn = uow.connect(where)
    try:
        if annotation is uuid.UUID:  # create_all's CHECK refuses the text: a table another program made
            conn.execute(f"CREATE TABLE {cls.__mapper__.table} (id INTEGER PRIMARY KEY, value TEXT)")
        else:
            uow.create_all(conn, [cls])
        conn.execute(f"INSERT INTO {cls.__mapper__.table} (id, value) VALUES (1, NULL)")
        session = uow.Session(conn)
        held = session.get(cls, 1)
        conn.execute(f"UPDATE {cls.__mapper__.table} SET value = ?", (stored,))
        for read in (lambda: session.select(cls).all(), lambda: session.refresh(held),
                     lambda: (session.expire(held), held.value)):
            with pytest.raises(errors.ColumnValueError, match=rf"{cls.__name__}.value of the row {cls.__name__}\(id=1\)"):
                read()
    finally:
        conn.close()


def test_an_unchanged_custom_value_assigned_again_writes_nothing(db):
    session = db.session()
    session.add(Thing(id=ID, color=Color.RED, at=Point(1, 2)))
    session.commit()
    thing = db.fresh().get_one(Thing, ID)
    thing.at = Point(1, 2)
    thing.color = Color.RED
    assert uow.object_session(thing).dirty == frozenset()


def test_a_custom_type_as_primary_key_and_foreign_key(db):
    session = db.session()
    spot = Spot(where=Point(0, 0), label="origin")
    session.add_all([Mark(spot=Point(0, 0)), spot])
    session.commit()
    other = db.fresh()
    assert other.get_one(Spot, Point(0, 0)).label == "origin"
    assert other.get_one(Mark, 1).spot == Point(0, 0)
    assert uow.identity_key(Spot, Point(0, 0)) == (Spot, ("0,0",))
    assert repr(other.get_one(Spot, Point(0, 0))).startswith("Spot(where=Point(x=0, y=0)")


class Rounded(uow.CustomType):
    """A lossy type: it keeps one decimal place, so most floats would not come back."""

    python_type = complex
    stored_type = str

    def to_stored(self, value):
        return f"{value.real:.1f},{value.imag:.1f}"

    def from_stored(self, stored):
        real, imag = stored.split(",")
        return complex(float(real), float(imag))


class WrongStored(uow.CustomType):
    python_type = complex
    stored_type = float

    def to_stored(self, value):
        return value.real if value.imag else str(value)  # a str for a real number: not the declared type

    def from_stored(self, stored):
        return complex(stored)


class Numbers(Base, table="numbers"):
    id: int = Column(primary_key=True)
    rounded: complex | None = Column(type=Rounded(), default=None)
    real: complex | None = Column(type=WrongStored(), default=None)


@pytest.mark.parametrize("field, value, reason", [
    ("rounded", 1.25 + 0j, r"would not come back the same: Rounded stores it as '1.2,0.0', which reads back as \(1.2\+0j\)"),
    ("rounded", 1.5, "expected complex, got float"),
    ("real", 1 + 0j, "was turned by WrongStored.to_stored into '\\(1\\+0j\\)', a str, not the declared stored_type float"),
    ("real", complex(float("nan"), 1), "has the stored form nan, which is NaN"),
    ("real", 1 + 1j, "would not come back the same"),
])
def test_a_custom_value_that_would_not_round_trip_is_refused_before_sql(where, field, value, reason):
    conn = uow.connect(where)
    uow.create_all(conn, [Numbers])
    session = uow.Session(conn)
    session.add(Numbers(**{field: value}))
    with uow.capture_sql() as statements:
        with pytest.raises(errors.ColumnValueError, match=f"Numbers.{field} = .*{reason}"):
            session.commit()
    assert statements == []
    assert conn.execute("SELECT count(*) FROM numbers").fetchone() == (0,)


def test_a_custom_value_that_does_round_trip_is_stored(where):
    conn = uow.connect(where)
    uow.create_all(conn, [Numbers])
    session = uow.Session(conn)
    session.add(Numbers(rounded=1.5 - 2j))
    session.commit()
    assert conn.execute("SELECT rounded FROM numbers").fetchall() == [("1.5,-2.0",)]
    assert uow.Session(conn).get_one(Numbers, 1).rounded == 1.5 - 2j


def test_a_custom_to_stored_that_raises_is_a_refusal_naming_the_type(db):
    class Failing(PointType):
        def to_stored(self, value):
            raise OverflowError("too far")

    class Far(Base, table="far"):
        id: int = Column(primary_key=True)
        at: Point = Column(type=Failing())

    uow.create_all(db.conn, [Far])
    session = db.session()
    session.add(Far(at=Point(1, 1)))
    with pytest.raises(errors.ColumnValueError, match="Far.at = .* Failing.to_stored raised OverflowError: too far"):
        session.flush()


def declare(annotation, column):
    return type("Bad", (Base,), {"__annotations__": {"id": int, "value": annotation},
                                 "id": Column(primary_key=True), "value": column}, table="bad")


class NoStoredType(uow.CustomType):
    python_type = Point

    def to_stored(self, value):
        return 0

    def from_stored(self, stored):
        return Point(0, 0)


class ForInt(PointType):
    python_type = int


class NoConversions(uow.CustomType):
    python_type = Point
    stored_type = str


class NoSuperInit(PointType):
    def __init__(self):
        pass


class Flags(enum.Flag):
    A = 1
    B = 2


@pytest.mark.parametrize("annotation, column, message", [
    (Point, Column(), "Bad.value: uow cannot store values of type .*Point.*give Column\\(type=...\\) a uow.CustomType"),
    (Point, Column(type=str), "Column\\(type=...\\) takes an instance of a uow.CustomType subclass"),
    (Point, Column(type=PointType), "Column\\(type=...\\) takes an instance"),
    (Point, Column(type=NoStoredType()), "NoStoredType.stored_type must be one of int, float, str, bytes"),
    (int, Column(type=ForInt()), "ForInt.python_type is int, which uow already stores"),
    (Point, Column(type=NoConversions()), "NoConversions must define both to_stored"),
    (Point, Column(type=NoSuperInit()), "NoSuperInit.__init__ must call super\\(\\).__init__\\(\\)"),
    (str, Column(type=PointType()), "Bad.value is annotated <class 'str'>, but PointType\\(\\) stores Point"),
    (Point, Column(type=PointType(), default=Point(1, 2.5)), "default Point\\(x=1, y=2.5\\) cannot be read back"),
    (Flags, Column(), "Flags is an enum.Flag"),
])
def test_declaring_a_column_type_wrongly_is_a_mapping_error(annotation, column, message):
    with pytest.raises(errors.MappingError, match=message):
        declare(annotation, column)


def test_a_foreign_key_between_different_custom_types_is_refused():
    class OtherPoint(PointType):
        pass

    with pytest.raises(errors.MappingError, match="the types must match"):
        bad = type("BadMark", (Base,), {"__annotations__": {"id": int, "spot": Point}, "id": Column(primary_key=True),
                                        "spot": Column(references=Spot, type=OtherPoint())}, table="bad_marks")
        bad.__mapper__.configure()


def test_calling_a_conversion_a_custom_type_left_out_is_a_mapping_error_naming_the_type():
    """Declaring a column of such a type is refused (above); calling the missing conversion by hand
    says the same, in a uow error rather than Python's NotImplementedError."""
    incomplete = NoConversions()
    with pytest.raises(errors.MappingError, match=r"NoConversions must define to_stored\(self, value\)"):
        incomplete.to_stored(1)
    with pytest.raises(errors.MappingError, match=r"NoConversions must define from_stored\(self, stored\)"):
        incomplete.from_stored(1)
