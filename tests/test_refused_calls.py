"""A refused call changes nothing: every check runs before the session, an object or the database
changes, so the error leaves everything exactly as it was."""

import sqlite3

import pytest

import uow
from uow import Collection, Column, Entity, ObjectState, Reference, errors, state_of

from .helpers import in_other_thread


class RefusedBase(Entity, abstract=True):
    pass


class Customer(RefusedBase, table="refused_customers"):
    id: int = Column(primary_key=True)
    name: str
    orders = Collection("Purchase", "customer")


class Purchase(RefusedBase, table="refused_purchases"):
    id: int = Column(primary_key=True)
    customer_id: int | None = Column(references=Customer)
    customer = Reference("customer_id")
    total: int = 0


class Tag(RefusedBase, table="refused_tags"):
    code: str = Column(primary_key=True)
    weight: float = 0.0


def open_database(path):
    connection = uow.connect(path)
    uow.create_all(connection, RefusedBase)
    connection.execute("INSERT OR IGNORE INTO refused_customers (id, name) VALUES (1, 'ann'), (2, 'bob')")
    return connection


@pytest.fixture(params=["memory", "file"])
def path(request, tmp_path):
    return ":memory:" if request.param == "memory" else str(tmp_path / "refused.db")


@pytest.fixture
def connection(path):
    connection = open_database(path)
    yield connection
    connection.close()


@pytest.fixture
def session(connection):
    session = uow.Session(connection)
    yield session
    session.close()


def committed(connection, path, sql):
    """What a second connection sees (the same one for an in-memory database, outside any transaction)."""
    if path == ":memory:":
        assert not connection.in_transaction
        return connection.execute(sql).fetchall()
    check = sqlite3.connect(path)
    try:
        return check.execute(sql).fetchall()
    finally:
        check.close()


def no_sql(error_class, call):
    with uow.capture_sql() as statements, pytest.raises(error_class) as caught:
        call()
    assert statements == []
    return str(caught.value)


def test_adding_an_object_that_links_to_another_sessions_object_leaves_it_transient(session, path):
    connection = open_database(path)
    other = uow.Session(connection)
    theirs = other.get(Customer, 1)
    purchase = Purchase(customer=theirs)
    no_sql(errors.InvalidStateError, lambda: session.add(purchase))
    assert session.new == frozenset()
    assert state_of(purchase) is ObjectState.TRANSIENT
    session.commit()
    other.close()
    connection.close()


def test_add_all_with_one_non_entity_adds_none_of_them(session):
    first = Customer(name="cy")
    message = no_sql(errors.UnmappedClassError, lambda: session.add_all([first, "not an entity"]))
    assert message.startswith("add_all(): 'not an entity' is not an entity object")
    assert session.new == frozenset()
    assert state_of(first) is ObjectState.TRANSIENT


@pytest.mark.parametrize("call, error_class, message", [
    (lambda s: s.add_all(None), errors.ArgumentError, "add_all(): objects must be a list, got None"),
    (lambda s: s.add_all([Customer]), errors.UnmappedClassError, "add_all(): an instance of Customer is needed, not the class"),
    (lambda s: s.bulk_save_objects(None), errors.ArgumentError, "bulk_save_objects(): objects must be a list"),
    (lambda s: s.bulk_save_objects([Customer(name="x"), 5]), errors.UnmappedClassError, "bulk_save_objects(): 5 is not an entity object"),
    (lambda s: s.bulk_update_mappings(Customer, [None]), errors.ArgumentError, "bulk_update_mappings(): each row must be a dict of column values, got None"),
    (lambda s: s.bulk_insert_mappings(Customer, None), errors.ArgumentError, "bulk_insert_mappings(): mappings must be a list"),
    (lambda s: s.bulk_insert_mappings(Customer, [{"name": "x"}, 7]), errors.ArgumentError, "bulk_insert_mappings(): each row must be a dict"),
], ids=["add_all None", "add_all a class", "bulk_save_objects None", "bulk_save_objects an int",
        "bulk_update_mappings None row", "bulk_insert_mappings None", "bulk_insert_mappings an int row"])
def test_a_wrong_argument_to_a_many_objects_call_is_a_uow_error_before_sql(session, call, error_class, message):
    assert no_sql(error_class, lambda: call(session)).startswith(message)


def test_upsert_with_a_bad_value_refuses_before_flushing_pending_work(session, connection, path):
    pending = Customer(name="cy")
    session.add(pending)
    message = no_sql(errors.ColumnValueError, lambda: session.upsert(Tag(code="a", weight=float("nan"))))
    assert message.startswith("upsert(): Tag.weight = nan is NaN")
    assert session.new == {pending}
    assert committed(connection, path, "SELECT count(*) FROM refused_customers") == [(2,)]


def test_appending_from_another_thread_is_refused_and_changes_nothing(session):
    owner = session.get(Customer, 1)
    orders = owner.orders
    purchase = Purchase(total=3)
    error, thread = in_other_thread(lambda: orders.append(purchase))
    assert isinstance(error, errors.WrongThreadError)
    assert list(owner.orders) == []
    assert state_of(purchase) is ObjectState.TRANSIENT
    assert purchase.customer is None
    assert session.new == frozenset()


def test_setting_a_generated_key_to_none_is_refused_before_sql(session):
    customer = session.get(Customer, 1)
    customer.id = None
    message = no_sql(errors.ColumnValueError, session.flush)
    assert message == "cannot update Customer(id=1): Customer.id = None is None, but the column is NOT NULL"


def test_changing_a_key_to_one_another_object_holds_is_refused_before_sql(session, connection, path):
    ann, bob = session.get(Customer, 1), session.get(Customer, 2)
    ann.id = 2
    message = no_sql(errors.DuplicateIdentityError, session.flush)
    assert message.startswith("flush(): Customer(id=1) changes its key to Customer(2), which Customer(id=2")
    ann.id = 3  # a free key is fine
    session.commit()
    assert committed(connection, path, "SELECT id, name FROM refused_customers ORDER BY id") == [(2, "bob"), (3, "ann")]
