"""Pairs of key values that Python calls equal but SQLite stores differently (and the reverse).

Class of defect searched for: **an identity key that is not what the database compares**.  The
identity map keys objects by Python ``==`` and ``hash``; SQLite finds rows by the stored value.
Where the two disagree -- ``Decimal("1.0")`` and ``Decimal("1.00")``, one instant at two UTC
offsets, ``Decimal("0")`` and ``Decimal("-0")`` -- one object stands for two rows: ``get()``
returns the wrong one, ``filter()`` returns one object twice and hides a row, and an UPDATE
lands on the wrong row.  Where Python tells apart values stored the same, two objects claim one
row.

For every key-capable column type (int, float, str, bytes, bool, date, datetime, Decimal) a pair
``(a, b)`` is drawn -- from a written-down table of the known traps, and by Hypothesis for the
large spaces (decimals with trailing zeros, exponents and signed zeros; one instant at two
offsets).  Two objects keyed ``a`` and ``b`` are added and committed.  The outcome must be one of:

* **refused**: a uow error (before any SQL, or a FlushError), and nothing changed;
* **two identities, two rows**: a second connection sees both rows; ``get``, ``filter``,
  an update and a delete each reach exactly the row of the key given, in the same session and in
  a fresh one;
* **one identity** (``DuplicateIdentityError`` for the second object): allowed only when SQLite
  really stores both as one row -- the row committed for ``a`` is found when looked up by ``b``.

Heavier run by hand (20 times the Hypothesis examples)::

    UOW_RELIABILITY_HEAVY=1 PYTHONPATH=$PWD python -m pytest -q -p no:cacheprovider \\
        tests/reliability/test_key_pairs.py
"""

import collections
import datetime
import decimal
import sqlite3
import unicodedata

import pytest
from hypothesis import given, strategies as st

import uow
from uow import Column, Entity
from uow.errors import DuplicateIdentityError, UowError

from .harness import hypothesis_settings

D = decimal.Decimal
UTC = datetime.timezone.utc


def tz(**offset):
    return datetime.timezone(datetime.timedelta(**offset))


NOON = datetime.datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

# (column type, a, b): a == b in Python but the stored forms may differ (or, for the str and
# date rows, the reverse: unequal in Python, so they must be two rows or refused).
KNOWN_PAIRS = [
    (int, 1, True),
    (int, 0, False),
    (int, 1, 1.0),
    (float, 1.0, 1),
    (float, 0.0, -0.0),
    (float, 2.0 ** 53, 2 ** 53),
    (bool, True, 1),
    (str, "\u00e9", unicodedata.normalize("NFD", "\u00e9")),  # unequal in Python and in SQLite
    (str, "a", "A"),
    (bytes, b"k", bytearray(b"k")),
    (bytes, b"k", memoryview(b"k")),
    (datetime.date, datetime.date(2024, 3, 1), datetime.datetime(2024, 3, 1)),
    (datetime.datetime, NOON, NOON.astimezone(tz(hours=1))),
    (datetime.datetime, NOON, NOON.astimezone(tz(hours=-5, minutes=-30))),
    (datetime.datetime, NOON, NOON.astimezone(tz(seconds=1))),
    (datetime.datetime, datetime.datetime(2024, 3, 1, 12), datetime.datetime(2024, 3, 1, 12, fold=1)),
    (datetime.datetime, datetime.datetime(2024, 3, 1, 12), datetime.datetime(2024, 3, 1, 12, 0, 0, 0)),
    (decimal.Decimal, D("1.0"), D("1.00")),
    (decimal.Decimal, D("1"), D("1.0")),
    (decimal.Decimal, D("100"), D("1E+2")),
    (decimal.Decimal, D("0"), D("-0")),
    (decimal.Decimal, D("0.0"), D("0E-5")),
    (decimal.Decimal, D("1"), 1),
]

TALLY = collections.Counter()  # (type, outcome) -> count, for the report
_CLASSES = {}


def keyed(python_type):
    """One entity per key type, in the module's own registry."""
    if python_type not in _CLASSES:
        base = type("PairsBase", (Entity,), {}, abstract=True)
        name = f"pairs_{python_type.__name__.lower()}"
        _CLASSES[python_type] = type(f"Keyed{python_type.__name__.capitalize()}", (base,), {
            "__annotations__": {"key": python_type, "label": str}, "key": Column(primary_key=True)}, table=name)
    return _CLASSES[python_type]


def raw_rows(path, cls):
    other = sqlite3.connect(path, isolation_level=None)
    try:
        return sorted(other.execute(f'SELECT "key", typeof("key"), "label" FROM "{cls.__mapper__.table}"').fetchall(),
                      key=repr)
    finally:
        other.close()


def same(value):
    return type(value), repr(value)


def check_pair(python_type, a, b, path):
    """Run the pair through a session and check one of the three allowed outcomes; return it."""
    cls = keyed(python_type)
    conn = uow.connect(path)
    conn.execute("PRAGMA synchronous = OFF")  # many small files; durability is not under test here
    try:
        uow.create_all(conn, [cls])
        session = uow.Session(conn)
        try:
            first = cls(key=a, label="a")
            session.add(first)
            session.commit()
        except UowError:
            session.rollback()
            assert raw_rows(path, cls) == [], "a refused key left a row behind"
            return "refused"
        try:
            second = cls(key=b, label="b")
            session.add(second)
        except DuplicateIdentityError:
            # One identity: correct only if SQLite stores b as the row a made.
            assert len(raw_rows(path, cls)) == 1
            reader = uow.Session(uow.connect(path))
            found = reader.get(cls, b)
            reader.connection().close()
            assert found is not None and found.label == "a", (
                f"{a!r} and {b!r} are one identity in the session, but SQLite stores them as different "
                f"keys: looking up {b!r} finds {found!r}")
            assert session.get(cls, b) is first
            return "one identity"
        except UowError:
            assert session.new == set(), "a refused add() left the object pending"
            session.rollback()
            assert [row[2] for row in raw_rows(path, cls)] == ["a"]
            return "refused"
        try:
            session.commit()
        except UowError as error:
            session.rollback()
            assert [row[2] for row in raw_rows(path, cls)] == ["a"], f"after {error!r} the database changed"
            # Refused at flush: acceptable only when it is not SQLite finding the two keys equal.
            assert "UNIQUE" not in str(error), (
                f"the session holds {a!r} and {b!r} as two identities, but SQLite stores them as one key: {error}")
            return "refused"

        rows = raw_rows(path, cls)
        assert sorted(row[2] for row in rows) == ["a", "b"], f"two identities but the database holds {rows}"
        for probe in (session, None):
            reader_conn = None
            if probe is None:
                reader_conn = uow.connect(path)
                probe = uow.Session(reader_conn)
            got_a, got_b = probe.get(cls, a), probe.get(cls, b)
            assert got_a is not None and got_b is not None and got_a is not got_b, (got_a, got_b)
            assert (got_a.label, got_b.label) == ("a", "b"), f"get() mixes up the rows: {got_a!r} {got_b!r}"
            assert same(got_a.key) == same(a) and same(got_b.key) == same(b), (got_a.key, got_b.key)
            by_filter = probe.filter(cls, key=a)
            assert [obj.label for obj in by_filter] == ["a"], f"filter(key={a!r}) returned {by_filter!r}"
            assert sorted(obj.label for obj in probe.all(cls)) == ["a", "b"]
            if reader_conn is not None:
                reader_conn.close()
        first.label = "a2"
        session.commit()
        assert sorted(row[2] for row in raw_rows(path, cls)) == ["a2", "b"], "the update hit the wrong row"
        session.delete(second)
        session.commit()
        assert [row[2] for row in raw_rows(path, cls)] == ["a2"], "the delete hit the wrong row"
        session.close()
        return "two rows"
    finally:
        conn.close()


@pytest.mark.parametrize("python_type, a, b", [pytest.param(*pair, id=f"{pair[0].__name__}-{pair[1]!r}-{pair[2]!r}")
                                               for pair in KNOWN_PAIRS])
def test_known_pair(python_type, a, b, tmp_path):
    TALLY[(python_type.__name__, check_pair(python_type, a, b, str(tmp_path / "pairs.db")))] += 1
    TALLY[(python_type.__name__, check_pair(python_type, b, a, str(tmp_path / "pairs-reversed.db")))] += 1


@st.composite
def decimal_twins(draw):
    """A decimal and an equal one written differently: more trailing zeros, another exponent or
    the other sign of zero."""
    digits = draw(st.integers(-10 ** 6, 10 ** 6))
    exponent = draw(st.integers(-6, 3))
    a = D(digits).scaleb(exponent)
    how = draw(st.sampled_from(["zeros", "exponent", "sign"]))
    if how == "zeros":
        b = a.quantize(D(1).scaleb(min(a.as_tuple().exponent, 0) - draw(st.integers(1, 4))))
    elif how == "exponent":
        b = D((a.as_tuple().sign, a.as_tuple().digits, a.as_tuple().exponent))
        b = D(f"{b.normalize():E}") if b else D("0E+2")
    else:
        b = a.copy_negate() if not a else a
    return a, b


@st.composite
def instant_twins(draw):
    """One instant at two UTC offsets (whole minutes, as real zones use)."""
    moment = draw(st.datetimes(min_value=datetime.datetime(1900, 1, 2), max_value=datetime.datetime(2200, 1, 1)))
    first, second = (draw(st.integers(-14 * 60, 14 * 60)) for _ in range(2))
    a = moment.replace(tzinfo=UTC).astimezone(tz(minutes=first))
    return a, a.astimezone(tz(minutes=second))


@hypothesis_settings({"dev": 30, "ci": 60, "thorough": 1000, "mutation": 10})
@given(pair=decimal_twins())
def test_decimal_twins(pair, tmp_path_factory):
    a, b = pair
    assert a == b
    TALLY[("Decimal", check_pair(decimal.Decimal, a, b, str(tmp_path_factory.mktemp("dec") / "p.db")))] += 1


@hypothesis_settings({"dev": 30, "ci": 60, "thorough": 1000, "mutation": 10})
@given(pair=instant_twins())
def test_instant_twins(pair, tmp_path_factory):
    a, b = pair
    assert a == b
    TALLY[("datetime", check_pair(datetime.datetime, a, b, str(tmp_path_factory.mktemp("dt") / "p.db")))] += 1
