"""Values: every supported type comes back exactly as it was stored, and values that SQLite would
reject or silently change are refused before any SQL runs."""

import datetime
import re
import zoneinfo
from decimal import Decimal

import pytest

import uow
from uow import Column, Entity, ObjectState, Session, capture_sql, errors, state_of

from .helpers import same
from .models import Sample

UTC = datetime.timezone.utc
PLUS_0530 = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
MINUS_0330 = datetime.timezone(-datetime.timedelta(hours=3, minutes=30))

# (field, value, how a second plain sqlite3 connection sees the stored value)
ROUND_TRIPS = [
    ("i", 0, 0),
    ("i", -1, -1),
    ("i", 2 ** 63 - 1, 2 ** 63 - 1),
    ("i", -(2 ** 63), -(2 ** 63)),
    ("f", 0.1, 0.1),
    ("f", float("inf"), float("inf")),
    ("f", float("-inf"), float("-inf")),
    ("f", 1.7976931348623157e308, 1.7976931348623157e308),
    ("f", 5e-324, 5e-324),
    ("s", "", ""),
    ("s", "a\x00b", "a\x00b"),
    ("s", "naïve ☃ 😀", "naïve ☃ 😀"),
    ("s", "'; drop table samples; --", "'; drop table samples; --"),
    ("s", "123", "123"),
    ("b", b"", b""),
    ("b", b"a\x00b", b"a\x00b"),
    ("b", bytes(range(256)), bytes(range(256))),
    ("flag", True, 1),
    ("flag", False, 0),
    ("d", datetime.date(2024, 2, 29), "2024-02-29"),
    ("d", datetime.date(1, 1, 1), "0001-01-01"),
    ("d", datetime.date(9999, 12, 31), "9999-12-31"),
    ("dt", datetime.datetime(2024, 1, 2, 3, 4, 5, 123456), "2024-01-02T03:04:05.123456"),
    ("dt", datetime.datetime(2024, 1, 2, 3, 4, 5, 1), "2024-01-02T03:04:05.000001"),
    ("dt", datetime.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
    ("dt", datetime.datetime(2024, 1, 2, 3, 4, 5, 600, tzinfo=PLUS_0530), "2024-01-02T03:04:05.000600+05:30"),
    ("dt", datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=MINUS_0330), "2024-01-02T03:04:05-03:30"),
    ("dt", datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05+00:00"),
    ("dec", Decimal("1.10"), "1.10"),
    ("dec", Decimal("-0"), "-0"),
    ("dec", Decimal("0.000"), "0.000"),
    ("dec", Decimal("1E+3"), "1E+3"),
    ("dec", Decimal("-1E-30"), "-1E-30"),
    ("dec", Decimal("123456789012345678901234567890.123456789"), "123456789012345678901234567890.123456789"),
    ("dec", Decimal("Infinity"), "Infinity"),
]

def case_id(field, value):
    """A test id that names the value and survives a round trip through the command line.

    Plain ASCII with no addresses or escapes, so a node id printed by one pytest run selects the
    same test in the next (mutmut re-runs tests by id; a repr with a backslash or "0x..." does not
    match itself there).
    """
    shown = type(value).__name__ if isinstance(value, memoryview) else ascii(value)
    return f"{field}=" + re.sub(r"[^A-Za-z0-9.+-]+", "_", shown).strip("_")[:40]


ROUND_TRIP_IDS = [case_id(field, value) for field, value, _ in ROUND_TRIPS]


def optional_twin(field):
    return "o" + field


@pytest.mark.parametrize("nullable", [False, True], ids=["notnull", "nullable"])
@pytest.mark.parametrize("field, value, stored", ROUND_TRIPS, ids=ROUND_TRIP_IDS)
def test_value_round_trips_through_a_fresh_session(conn, field, value, stored, nullable):
    if nullable:
        field = optional_twin(field)
    writer = uow.Session(conn)
    sample = Sample(**{field: value})
    writer.add(sample)
    writer.commit()
    assert same(getattr(sample, field)) == same(value)
    reader = uow.Session(conn)
    loaded = reader.get(Sample, sample.id)
    assert loaded is not sample
    assert same(getattr(loaded, field)) == same(value)
    assert reader.is_modified(loaded) is False
    assert reader.filter(Sample, **{field: value}) == [loaded]
    reader.close()
    writer.close()


@pytest.mark.parametrize("field, value, stored", ROUND_TRIPS, ids=ROUND_TRIP_IDS)
def test_value_round_trips_through_an_update_read_from_a_second_connection(file_session, db_path, other,
                                                                          field, value, stored):
    sample = Sample()
    file_session.add(sample)
    file_session.commit()
    setattr(sample, field, value)
    file_session.commit()
    raw = other.execute(f'SELECT "{field}" FROM samples WHERE id = ?', (sample.id,)).fetchone()[0]
    assert same(raw) == same(stored)
    second = uow.connect(db_path)
    reader = uow.Session(second)
    loaded = reader.get(Sample, sample.id)
    assert same(getattr(loaded, field)) == same(value)
    reader.close()
    second.close()


def test_every_value_round_trips_in_one_batch(file_session, db_path):
    samples = [Sample(**{field: value}) for field, value, _ in ROUND_TRIPS]
    file_session.add_all(samples)
    file_session.commit()
    second = uow.connect(db_path)
    reader = uow.Session(second)
    for (field, value, _), sample in zip(ROUND_TRIPS, samples):
        assert same(getattr(reader.get(Sample, sample.id), field)) == same(value)
    reader.close()
    second.close()


def test_none_round_trips_in_every_nullable_column(conn):
    writer = uow.Session(conn)
    sample = Sample(oi=1, of=1.0, os="x", ob=b"x", oflag=True, od=datetime.date.today(),
                    odt=datetime.datetime(2020, 1, 1), odec=Decimal("1"))
    writer.add(sample)
    writer.commit()
    for field in ("oi", "of", "os", "ob", "oflag", "od", "odt", "odec"):
        setattr(sample, field, None)
    writer.commit()
    reader = uow.Session(conn)
    loaded = reader.get(Sample, sample.id)
    assert [getattr(loaded, f) for f in ("oi", "of", "os", "ob", "oflag", "od", "odt", "odec")] == [None] * 8
    reader.close()
    writer.close()


def test_an_exact_int_is_accepted_for_a_float_column_and_reads_back_as_float(conn):
    writer = uow.Session(conn)
    sample = Sample(f=5)
    writer.add(sample)
    writer.commit()
    reader = uow.Session(conn)
    assert same(reader.get(Sample, sample.id).f) == same(5.0)
    reader.close()
    writer.close()


# -- values refused before any SQL ---------------------------------------------------------

class CustomZone(datetime.tzinfo):
    def utcoffset(self, dt):
        return datetime.timedelta(hours=1)

    def dst(self, dt):
        return datetime.timedelta(0)

    def tzname(self, dt):
        return "CUSTOM"


BAD_VALUES = [
    ("f", -0.0),  # SQLite's REAL storage keeps no sign on zero: it would come back as 0.0
    ("of", -0.0),
    ("f", float("nan")),
    ("of", float("nan")),
    ("f", -float("nan")),
    ("i", 2 ** 63),
    ("i", -(2 ** 63) - 1),
    ("oi", 2 ** 64),
    ("i", "1"),
    ("i", True),
    ("oi", False),
    ("i", 1.0),
    ("i", Decimal("1")),
    ("flag", 1),
    ("flag", 0),
    ("oflag", 1),
    ("flag", "true"),
    ("b", bytearray(b"x")),
    ("b", memoryview(b"x")),
    ("ob", "x"),
    ("d", datetime.datetime(2020, 1, 1)),
    ("od", "2020-01-01"),
    ("dt", datetime.datetime(2020, 1, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))),
    ("odt", datetime.datetime(2020, 6, 1, tzinfo=zoneinfo.ZoneInfo("UTC"))),
    ("dt", datetime.datetime(2020, 1, 1, tzinfo=CustomZone())),
    ("dt", datetime.date(2020, 1, 1)),
    ("s", "\ud800"),
    ("os", "a\udfffb"),
    ("s", b"x"),
    ("s", 123),
    ("dec", Decimal("NaN")),
    ("odec", Decimal("sNaN")),
    ("dec", Decimal("sNaN")),  # over a Decimal: comparing with it raised InvalidOperation in the tracker
    ("dec", 1.1),
    ("dec", "1.10"),
    ("f", 2 ** 53 + 1),
    ("f", 2 ** 1024),
    ("f", "1.0"),
    ("i", None),
    ("f", None),
    ("s", None),
    ("b", None),
    ("flag", None),
    ("d", None),
    ("dt", None),
    ("dec", None),
]

BAD_IDS = [case_id(field, value) for field, value in BAD_VALUES]


def picture(session):
    """Everything observable about a session, to compare before and after a refused flush."""
    return (session.new, session.dirty, session.deleted, dict(session.identity_map), session.stats(),
            session.in_transaction())


def assert_names_the_value(error, field, value):
    message = str(error)
    assert "Sample" in message
    assert f"Sample.{field}" in message
    assert repr(value)[:20] in message


@pytest.mark.parametrize("field, value", BAD_VALUES, ids=BAD_IDS)
def test_bad_value_in_a_new_object_is_refused_before_any_sql(session, field, value):
    good = Sample()
    bad = Sample(**{field: value})
    session.add_all([good, bad])
    before = picture(session)
    with uow.capture_sql() as statements, pytest.raises(errors.ColumnValueError) as caught:
        session.flush()
    assert statements == []
    assert picture(session) == before
    assert state_of(good) is state_of(bad) is ObjectState.PENDING
    assert good.id is None
    assert_names_the_value(caught.value, field, value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("field, value", BAD_VALUES, ids=BAD_IDS)
def test_bad_value_assigned_to_a_loaded_object_is_refused_before_any_sql(session, conn, field, value):
    sample = Sample()
    session.add(sample)
    session.commit()
    session.get(Sample, 99)  # a transaction is open: a refused flush must not touch it either
    loaded_value = getattr(sample, field)
    setattr(sample, field, value)
    before = picture(session)
    with uow.capture_sql() as statements, pytest.raises(errors.ColumnValueError) as caught:
        session.flush()
    assert statements == []
    assert picture(session) == before
    assert session.dirty_fields(sample) == [field]
    assert session.original_value(sample, field) == loaded_value
    assert_names_the_value(caught.value, field, value)
    assert conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 1


def test_after_a_refused_value_the_session_goes_on_once_the_value_is_fixed(session, conn):
    sample = Sample(f=float("nan"))
    session.add(sample)
    with pytest.raises(errors.ColumnValueError):
        session.flush()
    sample.f = 1.5
    session.commit()
    assert conn.execute("SELECT f FROM samples").fetchall() == [(1.5,)]


def test_a_bad_value_deep_in_a_large_batch_is_found_and_named(session):
    samples = [Sample(i=n) for n in range(1000)]
    samples[637].s = "bad \ud800 text"
    session.add_all(samples)
    with uow.capture_sql() as statements, pytest.raises(errors.ColumnValueError) as caught:
        session.flush()
    assert statements == []
    assert "Sample.s" in str(caught.value)
    assert repr("bad \ud800 text") in str(caught.value)


def test_autoflush_refuses_a_bad_value_before_the_query_runs(session):
    session.add(Sample(f=float("nan")))
    with uow.capture_sql() as statements, pytest.raises(errors.ColumnValueError):
        session.all(Sample)
    assert statements == []


QUERY_BAD_VALUES = [("i", True), ("f", float("nan")), ("i", 2 ** 63), ("flag", 1), ("s", "\ud800"),
                    ("dec", Decimal("NaN")), ("d", datetime.datetime(2020, 1, 1))]


@pytest.mark.parametrize("field, value", QUERY_BAD_VALUES, ids=[case_id(*case) for case in QUERY_BAD_VALUES])
def test_bad_values_in_a_query_are_refused_before_any_sql(session, field, value):
    with uow.capture_sql() as statements, pytest.raises(errors.ColumnValueError) as caught:
        session.filter(Sample, **{field: value})
    assert statements == []
    assert f"Sample.{field}" in str(caught.value)


def test_true_does_not_find_the_row_with_one_and_one_does_not_find_true(session):
    session.add_all([Sample(i=1, flag=False), Sample(i=2, flag=True)])
    session.flush()
    with pytest.raises(errors.ColumnValueError):
        session.filter(Sample, i=True)
    assert [s.i for s in session.filter(Sample, flag=True)] == [2]


# -- what a refusal says -------------------------------------------------------------------

# (field, value, the reason the error gives after "Sample.<field> = <value!r>")
REASONS = [
    ("b", bytearray(b"x"), "expected bytes, got bytearray"),
    ("d", datetime.datetime(2020, 1, 1), "expected date, got datetime"),
    ("dt", datetime.date(2020, 1, 1), "expected datetime, got date"),
    ("dt", datetime.datetime(2020, 1, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
     "has a tzinfo other than a fixed datetime.timezone offset; convert it with .astimezone(timezone.utc)"),
    ("i", 2 ** 63, "is outside SQLite's 64-bit integer range"),
    ("f", float("nan"), "is NaN, which SQLite silently stores as NULL"),
    ("f", -0.0, "is -0.0, which SQLite stores as 0.0, losing the sign; use 0.0"),
    ("f", 2 ** 53 + 1, "cannot be stored exactly as a REAL (a double)"),
    ("f", 2 ** 1024, "cannot be stored exactly as a REAL (a double)"),  # too big for a double at all
    ("f", 2 ** 63, "is an int beyond 64 bits; write it as float(9223372036854775808)"),
    ("dec", Decimal("NaN"),
     "is a Decimal NaN, which never equals itself, so no change could ever be detected"),
]


@pytest.mark.parametrize("field, value, reason", REASONS, ids=[case_id(field, value) for field, value, _ in REASONS])
def test_a_refused_value_error_says_why(session, field, value, reason):
    session.add(Sample(**{field: value}))
    with pytest.raises(errors.ColumnValueError) as caught:
        session.flush()
    assert str(caught.value) == f"cannot insert Sample(new #1): Sample.{field} = {value!r} {reason}"


# (field, a value just inside what can be stored, a similar value just outside it)
EDGES = [
    ("i", -(2 ** 63), 2 ** 63),
    ("f", -(2 ** 63), 2 ** 53 + 1),  # -2**63 is an int a double holds exactly
    ("dt", datetime.datetime(2020, 1, 1, tzinfo=UTC), datetime.datetime(2020, 1, 1, tzinfo=zoneinfo.ZoneInfo("UTC"))),
]


@pytest.mark.parametrize("field, good, bad", EDGES, ids=[case_id(field, good) for field, good, _ in EDGES])
def test_a_value_at_the_edge_is_accepted_and_the_one_past_it_is_named(session, conn, field, good, bad):
    session.add_all([Sample(**{field: good}), Sample(**{field: bad})])
    with pytest.raises(errors.ColumnValueError) as caught:
        session.flush()
    assert str(caught.value).startswith(f"cannot insert Sample(new #2): Sample.{field} = {bad!r} ")
    session.rollback()
    session.add(Sample(**{field: good}))
    session.commit()
    reader = uow.Session(conn)
    assert same(getattr(reader.all(Sample)[0], field)) == same(float(good) if field == "f" else good)
    reader.close()


@pytest.mark.parametrize("key, message", [
    (True, "Keyed.key key value True: expected int, got bool"),
    (1.0, "Keyed.key key value 1.0: expected int, got float"),
    (bytearray(b"1"), "Keyed.key key value bytearray(b'1'): expected int, got bytearray"),
])
def test_add_refuses_a_key_of_the_wrong_type_before_it_meets_the_identity_map(key, message):
    """add(Keyed(key=True)) next to a held Keyed(key=1) said DuplicateIdentityError (True hashes
    like 1), and a bytearray key raised a raw TypeError (unhashable)."""
    class KeyedBase(Entity, abstract=True):
        pass

    class Keyed(KeyedBase, table="keyed_add"):
        key: int = Column(primary_key=True)
        label: str

    connection = uow.connect()
    uow.create_all(connection, [Keyed])
    session = Session(connection)
    session.add(Keyed(key=1, label="one"))
    session.flush()
    wrong = Keyed(key=key, label="wrong")
    with capture_sql() as statements:
        with pytest.raises(errors.IdentityError) as caught:
            session.add(wrong)
    assert str(caught.value) == message
    assert statements == [] and uow.state_of(wrong) is uow.ObjectState.TRANSIENT and session.new == set()
