"""Key values that Python calls equal but SQLite stores differently are two rows, so two identities.

``Decimal("1.0") == Decimal("1.00")`` and one instant written at two UTC offsets are equal in
Python, but they are stored as different texts, and SQLite compares the texts.  The identity map
must agree with the database: get(), filter() and every edit reach the row that holds exactly
the value given."""

import datetime
import sqlite3
from decimal import Decimal

import pytest

import uow
from uow import Collection, Column, Entity, Reference, errors

UTC = datetime.timezone.utc
PLUS_ONE = datetime.timezone(datetime.timedelta(hours=1))


class KeyBase(Entity, abstract=True):
    pass


class Price(KeyBase, table="prices"):
    amount: Decimal = Column(primary_key=True)
    label: str
    tags = Collection("Tag", "price")


class Tag(KeyBase, table="price_tags"):
    id: int = Column(primary_key=True)
    price_amount: Decimal = Column(references=Price)
    price = Reference("price_amount")
    text: str


class Slot(KeyBase, table="slots"):
    at: datetime.datetime = Column(primary_key=True)
    room: str = Column(primary_key=True)
    label: str


class Measure(KeyBase, table="measures"):
    value: float = Column(primary_key=True)
    label: str


ONE = Decimal("1.0")
ONE_AGAIN = Decimal("1.00")
NOON_UTC = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOON_UTC_AT_PLUS_ONE = datetime.datetime(2024, 5, 1, 13, 0, tzinfo=PLUS_ONE)  # the same instant


@pytest.fixture(params=["memory", "file"])
def path(request, tmp_path):
    path = ":memory:" if request.param == "memory" else str(tmp_path / "keys.db")
    return path


@pytest.fixture
def session(path):
    connection = uow.connect(path)
    uow.create_all(connection, KeyBase)
    # Written with plain SQL, as uow stores them (uow's own inserts are tested below).
    connection.execute("INSERT INTO prices VALUES ('1.0', 'one point zero'), ('1.00', 'one point zero zero')")
    connection.execute("INSERT INTO slots VALUES ('2024-05-01T12:00:00+00:00', 'a', 'utc'), "
                       "('2024-05-01T13:00:00+01:00', 'a', '+01')")
    session = uow.Session(connection)
    yield session
    session.close()
    connection.close()


def rows(session, sql):
    return session.connection().execute(sql).fetchall()


def test_python_equal_keys_stored_differently_are_two_identities():
    assert ONE == ONE_AGAIN and NOON_UTC == NOON_UTC_AT_PLUS_ONE
    assert uow.identity_key(Price, ONE) != uow.identity_key(Price, ONE_AGAIN)
    assert uow.identity_key(Slot, (NOON_UTC, "a")) != uow.identity_key(Slot, (NOON_UTC_AT_PLUS_ONE, "a"))
    # Equal values stored alike stay one identity: 1 and 1.0 in a REAL key are the same stored double.
    assert uow.identity_key(Measure, 1) == uow.identity_key(Measure, 1.0)


def test_get_returns_the_row_holding_exactly_that_value(session):
    first = session.get(Price, ONE)
    second = session.get(Price, ONE_AGAIN)
    assert first is not second
    assert (first.label, repr(first.amount)) == ("one point zero", "Decimal('1.0')")
    assert (second.label, repr(second.amount)) == ("one point zero zero", "Decimal('1.00')")
    utc = session.get(Slot, (NOON_UTC, "a"))
    plus_one = session.get(Slot, (NOON_UTC_AT_PLUS_ONE, "a"))
    assert (utc.label, plus_one.label) == ("utc", "+01")
    assert session.get(Price, ONE) is first  # from the identity map now


def test_filter_returns_each_row_once_as_its_own_object(session):
    prices = session.all(Price)
    assert len(prices) == 2 and prices[0] is not prices[1]
    assert sorted(p.label for p in prices) == ["one point zero", "one point zero zero"]
    assert [p.label for p in session.filter(Price, amount=ONE_AGAIN)] == ["one point zero zero"]
    slots = session.filter(Slot, room="a")
    assert sorted(s.label for s in slots) == ["+01", "utc"]
    assert slots[0] is not slots[1]


def test_an_update_reaches_the_row_of_its_own_object(session, path):
    session.get(Price, ONE)  # held first: a lookup by Python equality would hand it out again
    second = session.get(Price, ONE_AGAIN)
    second.label = "changed"
    session.commit()
    assert sorted(rows(session, "SELECT amount, label FROM prices")) == [("1.0", "one point zero"), ("1.00", "changed")]
    if path != ":memory:":
        other = sqlite3.connect(path)
        assert sorted(other.execute("SELECT amount, label FROM prices").fetchall()) == \
            [("1.0", "one point zero"), ("1.00", "changed")]
        other.close()


def test_a_delete_removes_the_row_of_its_own_object(session):
    session.get(Slot, (NOON_UTC, "a"))  # held first: a lookup by Python equality would hand it out again
    session.delete(session.get(Slot, (NOON_UTC_AT_PLUS_ONE, "a")))
    session.commit()
    assert rows(session, "SELECT at, label FROM slots") == [("2024-05-01T12:00:00+00:00", "utc")]
    assert session.get(Slot, (NOON_UTC, "a")).label == "utc"


def test_a_new_object_may_take_a_key_equal_in_python_to_a_held_one(session):
    session.get(Price, ONE)
    session.add_all([Price(amount=Decimal("1.000"), label="three zeros"), Price(amount=Decimal("1"), label="one")])
    session.commit()
    assert sorted(rows(session, "SELECT amount FROM prices")) == [("1",), ("1.0",), ("1.00",), ("1.000",)]
    with pytest.raises(errors.DuplicateIdentityError):
        session.add(Price(amount=Decimal("1.0"), label="a copy"))


def test_children_follow_the_parent_stored_exactly(session):
    first, second = session.get(Price, ONE), session.get(Price, ONE_AGAIN)
    session.add(Tag(price=second, text="for 1.00"))
    session.commit()
    session.expunge_all()
    first, second = session.get(Price, ONE), session.get(Price, ONE_AGAIN)
    assert [t.text for t in second.tags] == ["for 1.00"]
    assert first.tags == []
    assert second.tags[0].price is second


def test_messages_show_the_key_as_the_user_wrote_it(session):
    held = session.get(Price, ONE)
    with pytest.raises(errors.DuplicateIdentityError) as caught:
        session.add(Price(amount=Decimal("1.0"), label="copy"))
    assert "Price(Decimal('1.0'))" in str(caught.value)
    session.expire(held)
    assert "amount=Decimal('1.0')" in repr(held)
