"""Every channel that binds a value (add+flush, the bulk writes, upsert(), get(), filter()) passes
it through one gate, so what SQLite would refuse or change is refused the same way everywhere,
with a ColumnValueError (IdentityError for a get() key) naming the attribute, before any SQL:
JSON holding a lone surrogate, values over the length limit once stored (text, blob, JSON,
Decimal), rows whose record is over the limit although each value fits, and datetimes that
their ISO text would not give back exactly."""

import datetime
import sqlite3
from decimal import Decimal

import pytest

import uow
from uow import Column, Entity, errors

LIMIT = 1000


class ChannelBase(Entity, abstract=True):
    pass


class Item(ChannelBase, table="channel_items"):
    id: int = Column(primary_key=True)
    name: str = ""
    data: dict | None = None
    amount: Decimal | None = None
    at: datetime.datetime | None = None
    blob: bytes | None = None


class Money(ChannelBase, table="channel_money"):
    amount: Decimal = Column(primary_key=True)


class Code(ChannelBase, table="channel_codes"):
    code: str = Column(primary_key=True)
    note: str = ""


@pytest.fixture(params=["memory", "file"])
def connection(request, tmp_path):
    path = ":memory:" if request.param == "memory" else str(tmp_path / "channels.db")
    connection = uow.connect(path)
    uow.create_all(connection, ChannelBase)
    connection.execute("INSERT INTO channel_items (id, name) VALUES (1, 'one')")
    connection.execute("INSERT INTO channel_codes (code, note) VALUES ('a', 'first')")
    connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, LIMIT)
    yield connection
    connection.close()


@pytest.fixture
def session(connection):
    session = uow.Session(connection)
    yield session
    session.close()


def refused_before_sql(error_class, call):
    """Run ``call``; it must raise ``error_class`` having sent no statement at all. Returns the message."""
    with uow.capture_sql() as statements, pytest.raises(error_class) as caught:
        call()
    assert statements == []
    return str(caught.value)


SURROGATE_VALUE = {"text": "a\ud800b"}
SURROGATE_KEY = {"a\udfffb": 1}


def channels(field, value):
    """Each way of handing ``value`` for Item.``field`` to the session."""
    def add_and_flush(session):
        session.add(Item(id=2, **{field: value}))
        session.flush()

    def set_and_flush(session):
        item = session.get(Item, 1)
        with uow.capture_sql() as statements:
            setattr(item, field, value)
            with pytest.raises(errors.ColumnValueError) as caught:
                session.flush()
        assert [s.sql for s in statements] == []
        raise caught.value

    return {
        "add+flush": add_and_flush,
        "bulk_insert_mappings": lambda session: session.bulk_insert_mappings(Item, [{"id": 2, field: value}]),
        "bulk_update_mappings": lambda session: session.bulk_update_mappings(Item, [{"id": 1, field: value}]),
        "bulk_save_objects": lambda session: session.bulk_save_objects([Item(id=2, **{field: value})]),
        "upsert": lambda session: session.upsert(Item(id=1, **{field: value})),
        "filter": lambda session: session.filter(Item, **{field: value}),
    }


CHANNELS = ["add+flush", "bulk_insert_mappings", "bulk_update_mappings", "bulk_save_objects", "upsert", "filter"]


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("value", [SURROGATE_VALUE, SURROGATE_KEY], ids=["as a value", "as a key"])
def test_json_with_a_lone_surrogate_is_refused_before_sql_on_every_channel(session, connection, channel, value):
    message = refused_before_sql(errors.ColumnValueError, lambda: channels("data", value)[channel](session))
    assert "Item.data = " in message and "lone surrogate" in message
    assert connection.execute("SELECT id, data FROM channel_items").fetchall() == [(1, None)]
    assert not connection.in_transaction


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("field, value", [
    ("name", "x" * (LIMIT + 1)),
    ("name", "é" * (LIMIT // 2 + 1)),
    ("blob", b"x" * (LIMIT + 1)),
    ("data", {"text": "x" * LIMIT}),
    ("amount", Decimal("1." + "1" * LIMIT)),
], ids=["text", "text in bytes", "blob", "JSON", "Decimal"])
def test_a_value_over_the_length_limit_once_stored_is_refused_before_sql_on_every_channel(
        session, connection, channel, field, value):
    message = refused_before_sql(errors.ColumnValueError, lambda: channels(field, value)[channel](session))
    assert f"Item.{field} is " in message and f"over this connection's limit of {LIMIT:,} (SQLITE_LIMIT_LENGTH)" in message
    assert connection.execute("SELECT count(*) FROM channel_items").fetchone() == (1,)


def test_a_get_key_over_the_length_limit_is_refused_before_sql(session):
    message = refused_before_sql(errors.IdentityError, lambda: session.get(Code, "x" * (LIMIT + 1)))
    assert message.startswith(f"get(): Code.code key value is {LIMIT + 1:,} bytes long, over this connection's limit")


@pytest.mark.parametrize("channel", ["add+flush", "bulk_insert_mappings", "bulk_save_objects", "upsert"])
def test_a_row_over_the_length_limit_is_refused_before_sql_although_each_value_fits(session, connection, channel):
    half = "x" * (LIMIT // 2 + 10)
    calls = {
        "add+flush": lambda: (session.add(Item(id=2, name=half, blob=half.encode())), session.flush()),
        "bulk_insert_mappings": lambda: session.bulk_insert_mappings(Item, [{"id": 2, "name": half, "blob": half.encode()}]),
        "bulk_save_objects": lambda: session.bulk_save_objects([Item(id=2, name=half, blob=half.encode())]),
        "upsert": lambda: session.upsert(Item(id=2, name=half, blob=half.encode())),
    }
    message = refused_before_sql(errors.ColumnValueError, calls[channel])
    assert "record" in message and f"over this connection's limit of {LIMIT:,}" in message
    assert connection.execute("SELECT count(*) FROM channel_items").fetchone() == (1,)


def test_a_row_just_under_the_limit_is_written(session, connection):
    # The size check is a floor: it never refuses a row SQLite takes.  This record is 998 bytes.
    session.add(Item(id=2, name="x" * 490, blob=b"y" * 490))
    session.commit()
    assert connection.execute("SELECT length(name), length(blob) FROM channel_items WHERE id = 2").fetchone() == (490, 490)


def test_a_signalling_nan_key_is_an_identity_error(session):
    # (It raised TypeError: cannot hash a signaling NaN value.)
    message = refused_before_sql(errors.IdentityError, lambda: session.get(Money, Decimal("sNaN")))
    assert message.startswith("Money.amount key value Decimal('sNaN'): is a Decimal NaN")


def test_filter_order_by_that_is_not_a_name_is_refused(session):
    message = refused_before_sql(errors.UnknownFieldError, lambda: session.filter(Item, order_by=123))
    assert message == "order_by: expected a field name of Item, an attribute such as Item.id.desc(), or a list of them, got 123"


HALF_SECOND = datetime.timezone(datetime.timedelta(microseconds=500000))
CET = datetime.timezone(datetime.timedelta(hours=1), "CET")


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("value, reason", [
    (datetime.datetime(2024, 1, 1, 12, tzinfo=HALF_SECOND), "has the UTC offset datetime.timedelta(microseconds=500000), which this Python reads back"),
    (datetime.datetime(2024, 1, 1, 12, tzinfo=CET), "has an offset named 'CET'"),
    (datetime.datetime(2024, 1, 1, 12, fold=1), "has fold=1"),
    (datetime.datetime(2024, 1, 1, 12, fold=1, tzinfo=datetime.timezone.utc), "has fold=1"),
], ids=["offset under a second", "named offset", "fold", "fold with offset"])
def test_a_datetime_its_text_would_not_give_back_is_refused_before_sql(session, channel, value, reason):
    if "reads back" in reason and datetime.datetime.fromisoformat(value.isoformat()) == value:
        pytest.skip("this Python reads the sub-second offset back exactly, so it is stored")
    message = refused_before_sql(errors.ColumnValueError, lambda: channels("at", value)[channel](session))
    assert f"Item.at = {value!r} {reason}" in message


@pytest.mark.parametrize("value", [
    datetime.datetime(2024, 1, 1, 12, tzinfo=datetime.timezone(datetime.timedelta(seconds=1))),
    datetime.datetime(2024, 1, 1, 12, tzinfo=datetime.timezone(-datetime.timedelta(hours=3, minutes=30, seconds=7))),
    datetime.datetime(2024, 1, 1, 12, 0, 0, 5, tzinfo=datetime.timezone.utc),
    datetime.datetime(2024, 1, 1, 12),
], ids=["one second", "minutes and seconds", "utc", "naive"])
def test_a_datetime_its_text_gives_back_round_trips_exactly_and_stays_clean(session, value):
    item = session.get(Item, 1)
    item.at = value
    session.commit()
    session.expunge_all()
    again = session.get(Item, 1)
    assert repr(again.at) == repr(value)
    assert session.dirty_fields(again) == []


# -- raw Python and sqlite3 errors that belong to uow ------------------------------------------


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), 2 ** 31, -1])
def test_a_busy_timeout_sqlite_cannot_take_is_a_transaction_error(seconds):
    connection = uow.connect()
    with pytest.raises(errors.TransactionError, match="busy_timeout must be a number of seconds"):
        uow.Session(connection, busy_timeout=seconds)
    connection.close()


@pytest.mark.parametrize("call", [
    lambda s: s.get(Code, "b"),
    lambda s: s.filter(Item, name="x"),
    lambda s: (s.add(Item(id=5)), s.flush()),
    lambda s: s.commit(),
], ids=["get", "filter", "flush", "commit"])
def test_a_connection_closed_underneath_the_session_is_a_uow_error_and_the_session_can_close(connection, call):
    session = uow.Session(connection)
    session.get(Item, 1)
    connection.close()
    with pytest.raises(errors.ConnectionClosedError, match="the sqlite3 connection under this session was closed"):
        call(session)
    session.close()
    with pytest.raises(errors.SessionClosedError):
        session.get(Item, 1)


@pytest.mark.parametrize("call", [
    lambda s: s.get(Item, 1),
    lambda s: s.filter(Item, name="one"),
], ids=["get", "filter"])
def test_a_mapped_column_the_table_lacks_is_a_mapping_error_naming_the_class(call):
    connection = uow.connect()
    connection.execute("CREATE TABLE channel_items (id INTEGER PRIMARY KEY, name TEXT)")  # made outside uow
    session = uow.Session(connection)
    with pytest.raises(errors.MappingError) as caught:
        call(session)
    assert str(caught.value).startswith("Item cannot be read from table 'channel_items': no such column")
    session.close()
    connection.close()


@pytest.mark.parametrize("expression, problem", [
    ("(", "is not an expression SQLite takes as a DEFAULT"),
    ("1), \"evil\" TEXT DEFAULT (2", "declares more than a default value"),
    ("random() + name", "is not an expression SQLite takes as a DEFAULT"),
    (42, "is not a string of SQL"),
], ids=["malformed", "a second column", "not constant", "not a string"])
def test_a_malformed_server_default_is_a_mapping_error_before_create_all_sends_anything(expression, problem):
    class Odd(Entity, abstract=True):
        pass

    class Thing(Odd, table="odd_things"):
        id: int = Column(primary_key=True)
        name: str = Column(server_default=expression)

    connection = uow.connect()
    with uow.capture_sql() as statements, pytest.raises(errors.MappingError) as caught:
        uow.create_all(connection, Odd)
    assert statements == []
    assert str(caught.value).startswith(f"Thing.name: server_default {expression!r} {problem}")
    assert connection.execute("SELECT name FROM sqlite_master").fetchall() == []
    connection.close()


def test_an_update_that_makes_the_row_too_long_with_the_columns_it_leaves_alone_is_refused_before_sql(
        session, connection):
    """SQLite rewrites the whole record: a text that fits beside the key alone but not beside the
    row's blob went to SQLite and failed there (the check measured only the columns set)."""
    item = session.get(Item, 1)
    item.blob = b"y" * (LIMIT // 2)
    session.commit()
    item.name = "x" * (LIMIT // 2)  # fits on its own and with the key, not with the blob
    message = refused_before_sql(errors.ColumnValueError, session.flush)
    assert message.startswith("cannot update Item(id=1): the row's channel_items record")
    assert f"over this connection's limit of {LIMIT:,}" in message


def test_an_upsert_whose_returned_row_would_be_too_long_is_refused_before_sql(session, connection):
    """upsert() reads the whole row back with RETURNING, and SQLite builds a record of it in which
    the INTEGER PRIMARY KEY takes bytes (in the table it takes none): a row that fits the table
    by a few bytes failed in SQLite with 'string or blob too big'."""
    message = refused_before_sql(errors.ColumnValueError, lambda: session.upsert(Item(id=300, name="x" * 991)))
    assert message.startswith("upsert(): the channel_items record of Item(id=300)")
    assert connection.execute("SELECT count(*) FROM channel_items").fetchone() == (1,)
