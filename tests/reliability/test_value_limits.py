"""Values at every length and type limit, through every channel that binds them.

Class of defect searched for: **a value that reaches SQLite unchecked** -- and then comes back
changed (NaN as NULL, a sub-second UTC offset as UTC, ``fold=1`` as ``fold=0``), or fails inside
sqlite3 with a raw ``DataError`` / ``UnicodeEncodeError`` / ``OverflowError`` after BEGIN, or is
refused only after some state changed.  One channel checking a value proves nothing about the
others: add+flush and the bulk writes refused an over-long text while ``get()``, ``filter()`` and
``upsert()`` sent it.  (``select().where()`` is a channel too: ``== v`` and ``in_([v])``.)

Values: for each column type uow stores (int, float, str, bytes, bool, date, datetime, Decimal,
JSON dict and list, UUID, an enum.Enum class, and a user's CustomType: Fraction as text), the edges -- 64-bit bounds and one past them, NaN, infinities, -0.0, the
largest and smallest doubles, the empty string and blob, NUL, a lone surrogate, astral
characters, text and blobs of exactly SQLite's length limit and one byte over (the limit is
lowered with ``Connection.setlimit(SQLITE_LIMIT_LENGTH, ...)``, which Python 3.11 provides, so
the edge is cheap to reach), decimals with huge exponents or many digits, datetimes at the
ends of the range, with sub-second and named offsets and ``fold=1``, JSON with surrogates,
NaN, deep nesting and big integers -- plus values of the wrong type.  Hypothesis then draws
further values of each type.

Channels: ``add`` + commit, assignment to a persistent object + commit, ``bulk_insert_mappings``,
``bulk_update_mappings``, ``bulk_save_objects``, ``upsert`` (new row and existing row), ``get``
(as a key), ``filter`` and ``select().where()`` (as a value to compare).

Each (value, channel) must either be stored and read back *exactly* (same type and repr, read
by a fresh session on a second connection), or be refused with a uow error before any SQL runs,
with the session and the database unchanged.  ``get`` and ``filter`` must find the row a value
was stored in, or refuse a value no row can hold (or find nothing).  One exception, by necessity:
``bulk_update_mappings`` does not know the columns a row's mapping leaves out, so a record that
only they make too long is refused by SQLite (a FlushError, nothing changed).

Heavier run by hand (20 times the Hypothesis examples)::

    UOW_RELIABILITY_HEAVY=1 PYTHONPATH=$PWD python -m pytest -q -p no:cacheprovider \\
        tests/reliability/test_value_limits.py
"""

import collections
import datetime
import decimal
import enum
import fractions
import math
import sqlite3
import uuid

import pytest
from hypothesis import given, strategies as st

import uow
from uow import Column, Entity
from uow.errors import UowError

from .harness import hypothesis_settings, session_snapshot, sqlite_cause

D = decimal.Decimal
LIMIT = 1000  # SQLITE_LIMIT_LENGTH on the test connections, in bytes


class Tone(enum.Enum):
    """An enum whose values are not text (stored by name) and with an alias."""

    LOW = (1, "low")
    HIGH = 2.5
    LOUD = 2.5  # an alias of HIGH: the same member, stored as 'HIGH'


class FractionType(uow.CustomType):
    """A user's column type: a Fraction stored as the text 'numerator/denominator'."""

    python_type = fractions.Fraction
    stored_type = str

    def to_stored(self, value):
        return f"{value.numerator}/{value.denominator}"

    def from_stored(self, stored):
        return fractions.Fraction(stored)


CUSTOM = {fractions.Fraction: FractionType()}
TYPES = [int, float, str, bytes, bool, datetime.date, datetime.datetime, decimal.Decimal, dict, list, uuid.UUID, Tone,
         fractions.Fraction]
KEY_TYPES = [int, float, str, bytes, bool, datetime.date, datetime.datetime, decimal.Decimal, uuid.UUID, Tone,
             fractions.Fraction]


def _classes():
    base = type("LimitsBase", (Entity,), {}, abstract=True)
    holders, keyed = {}, {}
    for python_type in TYPES:
        name = python_type.__name__.lower()
        holders[python_type] = type(f"Holds{name.capitalize()}", (base,), {
            "__annotations__": {"id": int, "value": python_type | None}, "id": Column(primary_key=True),
            "value": Column(type=CUSTOM.get(python_type))}, table=f"limits_{name}")
    for python_type in KEY_TYPES:
        name = python_type.__name__.lower()
        keyed[python_type] = type(f"Keyed{name.capitalize()}", (base,), {
            "__annotations__": {"key": python_type, "label": str},
            "key": Column(primary_key=True, type=CUSTOM.get(python_type))},
            table=f"limits_key_{name}")
    return holders, keyed


HOLDERS, KEYED = _classes()
ORDINARY = {int: 7, float: 7.5, str: "seven", bytes: b"seven", bool: False, datetime.date: datetime.date(2007, 7, 7),
            datetime.datetime: datetime.datetime(2007, 7, 7, 7, 7), decimal.Decimal: D("7.7"), dict: {"n": 7},
            list: [7], uuid.UUID: uuid.UUID(int=7), Tone: Tone.LOW, fractions.Fraction: fractions.Fraction(7, 3)}


def _deep(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


UTC = datetime.timezone.utc
EDGES = {
    int: [2 ** 63 - 1, -2 ** 63, 2 ** 63, -2 ** 63 - 1, 2 ** 100, 0, True, 1.0, "1", None],
    float: [math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1.7976931348623157e308, 2 ** 53, 2 ** 53 + 1,
            2 ** 64, D("1.5"), "1.5"],
    str: ["", "\x00", "a\x00b", "\ud800", "x\udfffy", "\U0001f600", "x" * LIMIT, "x" * (LIMIT + 1),
          "\u00e9" * (LIMIT // 2), "\u00e9" * (LIMIT // 2 + 1), b"bytes", 1, "x" * (LIMIT - 4), "x" * (LIMIT - 3)],
    bytes: [b"", b"\x00", b"\xff" * LIMIT, b"\xff" * (LIMIT + 1), bytearray(b"ba"), memoryview(b"mv"), "text",
            b"\xff" * (LIMIT - 4)],
    bool: [True, False, 1, 0, None],
    datetime.date: [datetime.date.min, datetime.date.max, datetime.datetime(2020, 1, 1), "2020-01-01"],
    datetime.datetime: [
        datetime.datetime.min, datetime.datetime.max, datetime.datetime(2020, 1, 1, 0, 0, 0, 1),
        datetime.datetime.max.replace(tzinfo=UTC), datetime.datetime.min.replace(tzinfo=UTC),
        datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(microseconds=1))),
        datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(seconds=1, microseconds=5))),
        datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=1), "CET")),
        datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=23, minutes=59))),
        datetime.datetime(2020, 11, 1, 1, 30, fold=1), datetime.date(2020, 1, 1)],
    decimal.Decimal: [D("NaN"), D("sNaN"), D("Infinity"), D("-Infinity"), D("-0"), D("1E+999999"), D("1E-999999"),
                      D("9" * (LIMIT - 1)), D("9" * (LIMIT + 1)), D("1.000000000000000000000000001"), 1, 1.5],
    dict: [{}, {"k": "\ud800"}, {"\ud800": 1}, {"n": math.nan}, {"n": math.inf}, {"big": 2 ** 70}, {"k": "x" * LIMIT},
           {"k": (1, 2)}, {1: "int key"}, {"deep": _deep(50)}, {"deeper": _deep(5000)}, {"s": {1, 2}}, {"-0": -0.0}],
    list: [[], ["\ud800"], [math.nan], [2 ** 70], ["x" * LIMIT], _deep(5000), [D("1.1")], [b"b"], (1, 2)],
    uuid.UUID: [uuid.UUID(int=0), uuid.UUID(int=2 ** 128 - 1), uuid.UUID("{12345678-1234-5678-1234-567812345678}"),
                "12345678-1234-5678-1234-567812345678", uuid.UUID(int=1).bytes, uuid.UUID(int=1).int, None],
    Tone: [Tone.LOW, Tone.HIGH, Tone.LOUD, "LOW", 2.5, (1, "low"), None],
    fractions.Fraction: [fractions.Fraction(0), fractions.Fraction(-1, 3), fractions.Fraction(2, 4),
                         fractions.Fraction(10 ** (LIMIT // 2), 3), fractions.Fraction(10 ** (LIMIT - 3), 1),
                         fractions.Fraction(10 ** LIMIT, 1), 0.5, 1, "1/3", D("0.5"), None],
}

CHANNELS = ["add", "assign", "bulk_insert", "bulk_update", "bulk_save", "upsert_new", "upsert_existing",
            "get", "filter", "select"]
TALLY = collections.Counter()  # (channel, outcome) -> count, for the report


def same(value):
    """Equal only for values of one type that print the same (1 and True, 0.0 and -0.0 differ).

    A value nested deeper than Python's recursion limit cannot be printed, nor read back from
    JSON: it compares equal to nothing but itself, so only a refusal passes for it.
    """
    try:
        return type(value), repr(value)
    except RecursionError:
        return type(value), id(value)


def label(value):
    try:
        shown = repr(value)
    except RecursionError:
        return f"{type(value).__name__}-nested-too-deep"
    return shown if len(shown) < 40 else f"{shown[:30]}..."


def _open(path):
    conn = uow.connect(path)
    conn.execute("PRAGMA synchronous = OFF")  # many small files; durability is not under test here
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, LIMIT)
    return conn


def _raw_rows(path, table):
    other = sqlite3.connect(path, isolation_level=None)
    try:
        return other.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()
    finally:
        other.close()


def _fresh_value(path, cls, key_name, key, column):
    """The value a fresh session on another connection reads for the row ``key``."""
    conn = _open(path)
    try:
        found = uow.Session(conn).filter(cls, **{key_name: key})
        assert len(found) == 1, f"{cls.__name__} {key_name}={key!r}: {found!r}"
        return getattr(found[0], column)
    finally:
        conn.close()


def read_back(python_type, value):
    """What reading ``value`` back must give: the value itself, except that an int stored in a
    float column comes back as the float it equals (columntypes documents that policy)."""
    if python_type is float and type(value) is int:
        return float(value)
    return value


def _equal(a, b):
    """Snapshot comparison that survives values which cannot be compared (sNaN) or printed."""
    try:
        return a == b
    except (decimal.InvalidOperation, RecursionError):
        return same(a) == same(b)


class Refused(Exception):
    """The step raised a uow error (checked: no SQL, nothing changed)."""


def step(session, path, tables, objects, action, measurable=True):
    """Run one user-level call; a uow error must come before any SQL and change nothing.

    ``measurable=False`` (bulk_update_mappings): the call cannot know the row's other columns, so
    a record that only they make too long is refused by SQLite itself -- accepted as a FlushError
    whose cause is SQLITE_TOOBIG, with session and database unchanged.
    """
    before = session_snapshot(session, objects)
    rows = {table: _raw_rows(path, table) for table in tables}
    with uow.capture_sql() as statements:
        try:
            return action()
        except UowError as error:
            refused = error
        except Exception as error:  # the defect this test exists to find
            raise AssertionError(f"raw {type(error).__name__}: {error}") from error
    cause = sqlite_cause(refused)
    unmeasurable = not measurable and cause is not None and cause.sqlite_errorname == "SQLITE_TOOBIG"
    assert unmeasurable or [statement.sql for statement in statements] == [], (
        f"refused with {type(refused).__name__} after SQL ran: {[s.sql for s in statements]}")
    assert _equal(session_snapshot(session, objects), before), f"refused ({refused}) but the session changed"
    assert {table: _raw_rows(path, table) for table in tables} == rows, f"refused ({refused}) but the database changed"
    raise Refused(str(refused))


def through_channel(python_type, value, channel, path):
    """Send ``value`` through ``channel``; return 'stored', 'refused' or 'not found'."""
    holder, keyed = HOLDERS[python_type], KEYED.get(python_type)
    if channel in ("get",) and keyed is None:
        return None
    conn = _open(path)
    try:
        uow.create_all(conn, [holder] + ([keyed] if keyed else []))
        session = uow.Session(conn)
        existing = holder(id=1, value=ORDINARY[python_type])
        session.add(existing)
        session.commit()
        tables = [holder.__mapper__.table] + ([keyed.__mapper__.table] if keyed else [])
        objects = [existing]

        def act(action):
            return step(session, path, tables, objects, action, measurable=channel != "bulk_update")

        try:
            if channel == "add":
                new = holder(id=2, value=value)
                objects.append(new)
                act(lambda: session.add(new))
                act(session.commit)
                stored_at = 2
            elif channel == "assign":
                def assign():
                    existing.value = value
                act(assign)
                act(session.commit)
                stored_at = 1
            elif channel == "bulk_insert":
                act(lambda: session.bulk_insert_mappings(holder, [{"id": 2, "value": value}, {"id": 3, "value": None}]))
                act(session.commit)
                stored_at = 2
            elif channel == "bulk_update":
                act(lambda: session.bulk_update_mappings(holder, [{"id": 1, "value": value}]))
                act(session.commit)
                stored_at = 1
            elif channel == "bulk_save":
                new = holder(id=2, value=value)
                objects.append(new)
                act(lambda: session.bulk_save_objects([new]))
                act(session.commit)
                stored_at = 2
            elif channel in ("upsert_new", "upsert_existing"):
                stored_at = 2 if channel == "upsert_new" else 1
                incoming = holder(id=stored_at, value=value)
                objects.append(incoming)
                held = act(lambda: session.upsert(incoming))
                act(session.commit)
                assert same(held.value) == same(read_back(python_type, value)), (
                    f"upsert() left the object with {held.value!r}")
            elif channel == "get":
                return _get_channel(python_type, keyed, value, path, session, act)
            else:
                return _filter_channel(python_type, holder, value, path, session, act, channel)
        except Refused:
            return "refused"
        found = _fresh_value(path, holder, "id", stored_at, "value")
        assert same(found) == same(read_back(python_type, value)), (
            f"stored {value!r} through {channel}, read back {found!r}")
        return "stored"
    finally:
        conn.close()


def _get_channel(python_type, keyed, value, path, session, act):
    """get(Keyed, value): finds the row stored under ``value`` (when add could store it), exactly.
    (A None key is not stored: add() generates one; get(Keyed, None) must be refused.)"""
    stored = False
    if value is not None:
        try:
            act(lambda: session.add(keyed(key=value, label="by value")))
            act(session.commit)
            stored = True
        except Refused:
            pass
    reader_conn = _open(path)
    try:
        reader = uow.Session(reader_conn)
        try:
            found = step(reader, path, [keyed.__mapper__.table], [], lambda: reader.get(keyed, value))
        except Refused:
            assert not stored, f"get() refused {value!r}, a key add() stored"
            return "refused"
        if not stored:
            assert found is None, f"get({value!r}) found {found!r} although no row holds that key"
            return "not found"
        assert found is not None and found.label == "by value", f"get({value!r}) returned {found!r}"
        assert same(found.key) == same(read_back(python_type, value)), f"get({value!r}) returned the key as {found.key!r}"
        return "stored"
    finally:
        reader_conn.close()


def _filter_channel(python_type, holder, value, path, session, act, channel="filter"):
    """filter(Holder, value=v), or select(Holder).where(Holder.value == v) and (v not None)
    ``Holder.value.in_([v])``: exactly the row stored with ``v`` (when add could store it)."""
    try:
        act(lambda: session.add(holder(id=2, value=value)))
        act(session.commit)
        stored = True
    except Refused:
        stored = False
    reader_conn = _open(path)
    try:
        reader = uow.Session(reader_conn)
        if channel == "filter":
            finders = {"filter()": lambda: reader.filter(holder, value=value)}
        else:
            finders = {"where(==)": lambda: reader.select(holder).where(holder.value == value).all()}
            if value is not None:  # (in_() refuses None: NULL is in no list)
                finders["where(in_)"] = lambda: reader.select(holder).where(holder.value.in_([value])).all()
        # Row 1 holds the ordinary value; it matches too when the value is that one.
        expected = [1] if same(read_back(python_type, value)) == same(ORDINARY[python_type]) else []
        expected += [2] if stored else []
        outcome = "stored" if stored else "not found"
        for said, find in finders.items():
            try:
                found = step(reader, path, [holder.__mapper__.table], [], find)
            except Refused:
                assert not stored, f"{said} refused {value!r}, a value add() stored"
                outcome = "refused"
                continue
            assert [obj.id for obj in found] == expected, f"{said} with {value!r} returned {found!r}"
        return outcome
    finally:
        reader_conn.close()


def _edge_cases():
    for python_type, values in EDGES.items():
        for index, value in enumerate(values):
            for channel in CHANNELS:
                if channel == "get" and python_type not in KEY_TYPES:
                    continue
                shown = f"{label(value)}#{index}"
                yield pytest.param(python_type, value, channel, id=f"{python_type.__name__}-{shown}-{channel}")


def test_the_length_limit_is_reachable():
    """Python 3.11's Connection.setlimit lowers SQLITE_LIMIT_LENGTH, and uow reads it per connection."""
    conn = _open(":memory:")
    assert conn.getlimit(sqlite3.SQLITE_LIMIT_LENGTH) == LIMIT
    conn.close()


@pytest.mark.parametrize("python_type, value, channel", list(_edge_cases()))
def test_edge_value_through_channel(python_type, value, channel, tmp_path):
    outcome = through_channel(python_type, value, channel, str(tmp_path / "limits.db"))
    TALLY[(channel, outcome)] += 1


def _json_values():
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text())
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                          st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                        max_leaves=8)


VALUES = {
    int: st.integers(-2 ** 65, 2 ** 65),
    float: st.one_of(st.floats(), st.integers(-2 ** 64, 2 ** 64)),
    str: st.one_of(st.text(), st.text(min_size=LIMIT - 3, max_size=LIMIT + 3)),
    bytes: st.one_of(st.binary(), st.binary(min_size=LIMIT - 3, max_size=LIMIT + 3)),
    bool: st.booleans(),
    datetime.date: st.dates(),
    datetime.datetime: st.datetimes(timezones=st.one_of(
        st.none(), st.timedeltas(min_value=datetime.timedelta(hours=-23), max_value=datetime.timedelta(hours=23)).map(
            datetime.timezone)), allow_imaginary=False),
    decimal.Decimal: st.decimals(allow_nan=True, allow_infinity=True),
    dict: st.dictionaries(st.text(max_size=5), _json_values(), max_size=3),
    list: st.lists(_json_values(), max_size=3),
    uuid.UUID: st.uuids(),
    Tone: st.sampled_from(list(Tone.__members__.values())),
    fractions.Fraction: st.fractions(),
}


@st.composite
def typed_values(draw):
    python_type = draw(st.sampled_from(TYPES))
    channel = draw(st.sampled_from([c for c in CHANNELS if c != "get" or python_type in KEY_TYPES]))
    return python_type, draw(VALUES[python_type]), channel


@hypothesis_settings({"dev": 60, "ci": 150, "thorough": 3000, "mutation": 20})
@given(case=typed_values())
def test_drawn_value_through_channel(case, tmp_path_factory):
    python_type, value, channel = case
    outcome = through_channel(python_type, value, channel, str(tmp_path_factory.mktemp("v") / "limits.db"))
    TALLY[(channel, outcome)] += 1
