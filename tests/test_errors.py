"""What goes wrong, and what uow promises when it does: a failed flush leaves the database and the
session exactly as before it; misuse raises a named uow error that says what and where."""

import sqlite3
import threading
from decimal import Decimal

import pytest

import uow
from uow import Column, Entity, ObjectState, Reference, errors, object_session, state_of

from .helpers import sql_of
from .models import Country, Order, Pair, PairNote, User


class NotMapped:
    pass


USER_FIELDS = ("id", "name", "email", "score", "joined")


class ErrorsBase(Entity, abstract=True):
    pass


class Owner(ErrorsBase, table="errors_owners"):
    id: int = Column(primary_key=True)
    name: str


class Pet(ErrorsBase, table="errors_pets"):
    """A NOT NULL foreign key that a Reference fills, and another required field."""

    id: int = Column(primary_key=True)
    owner_id: int = Column(references="Owner")
    owner = Reference("owner_id")
    name: str


def session_picture(session, objects):
    """Everything observable about a session and some User objects (compared before and after a failure)."""
    per_object = []
    for obj in objects:
        values = {k: v for k, v in vars(obj).items() if not k.startswith("_")}
        owner = object_session(obj)
        tracked = owner is session and state_of(obj) is ObjectState.PERSISTENT
        per_object.append((
            state_of(obj), owner, values,
            session.dirty_fields(obj) if tracked else None,
            {name: session.original_value(obj, name) for name in USER_FIELDS} if tracked else None,
        ))
    return (session.new, session.dirty, session.deleted, dict(session.identity_map), per_object)


def database_picture(connection):
    return (
        connection.execute("SELECT * FROM users ORDER BY id").fetchall(),
        connection.execute("SELECT * FROM orders ORDER BY id").fetchall(),
        connection.execute("SELECT * FROM countries ORDER BY code").fetchall(),
    )


# -- a flush that fails --------------------------------------------------------------------

@pytest.fixture
def busy_session(file_session):
    """A session with committed rows, a flush already done in the open transaction, and
    unflushed work of every kind: an update, two inserts (the second breaks UNIQUE), a delete."""
    session = file_session
    a = User(name="a", email="a@x")
    b = User(name="b")
    session.add_all([a, b])
    session.commit()
    earlier = User(name="earlier")
    session.add(earlier)
    session.flush()
    a.name = "A"
    c = User(name="c", email="c@x")
    d = User(name="d", email="a@x")  # the same email as a
    session.add_all([c, d])
    session.delete(b)
    return session, dict(a=a, b=b, c=c, d=d, earlier=earlier)


def test_a_unique_violation_raises_flush_error_naming_statement_and_object(busy_session):
    session, objects = busy_session
    with pytest.raises(errors.FlushError) as caught:
        session.flush()
    error = caught.value
    assert error.obj is objects["d"]
    assert error.statement.startswith('INSERT INTO "users"')
    assert isinstance(error.__cause__, sqlite3.IntegrityError)
    assert "UNIQUE" in str(error)
    assert "User" in str(error)
    assert isinstance(error, errors.UowError)


def test_a_failed_flush_leaves_the_session_exactly_as_before(busy_session):
    session, objects = busy_session
    everything = list(objects.values())
    before = session_picture(session, everything)
    with pytest.raises(errors.FlushError):
        session.flush()
    assert session_picture(session, everything) == before
    assert objects["c"].id is None and objects["d"].id is None
    assert objects["a"].name == "A"
    assert session.original_value(objects["a"], "name") == "a"


def test_a_failed_flush_leaves_the_database_exactly_as_before(busy_session, file_conn, other):
    session, objects = busy_session
    before = database_picture(file_conn)
    committed = database_picture(other)
    with pytest.raises(errors.FlushError):
        session.flush()
    assert database_picture(file_conn) == before  # the earlier flush of this transaction is still there
    assert database_picture(other) == committed
    assert file_conn.in_transaction


def test_after_a_failed_flush_the_session_refuses_work_until_rollback(busy_session, other):
    session, objects = busy_session
    with pytest.raises(errors.FlushError) as caught:
        session.flush()
    for call in (session.flush, session.commit, lambda: session.get(User, 1), lambda: session.get(User, 999),
                 lambda: session.all(User), lambda: session.filter(User, name="a"),
                 lambda: session.add(User(name="x")), lambda: session.delete(objects["a"]),
                 session.begin_nested):
        with uow.capture_sql() as statements, pytest.raises(errors.PendingRollbackError) as refused:
            call()
        assert statements == []
        assert refused.value.original is caught.value
        assert "rollback" in str(refused.value)
    session.rollback()
    assert session.in_transaction() is False
    assert [state_of(objects[n]) for n in "abcd"] == [ObjectState.PERSISTENT, ObjectState.PERSISTENT,
                                                      ObjectState.TRANSIENT, ObjectState.TRANSIENT]
    assert state_of(objects["earlier"]) is ObjectState.TRANSIENT
    assert objects["a"].name == "a"
    assert [row[1] for row in other.execute("SELECT * FROM users ORDER BY id")] == ["a", "b"]
    # and the work can be done again, fixed
    objects["d"].email = "d@x"
    session.add_all([objects["c"], objects["d"]])
    session.commit()
    assert sorted(row[0] for row in other.execute("SELECT name FROM users")) == ["a", "b", "c", "d"]


def test_a_foreign_key_violation_raises_flush_error(session, conn):
    order = Order(user_id=999, total=Decimal("1"))
    session.add(order)
    with pytest.raises(errors.FlushError) as caught:
        session.flush()
    assert caught.value.obj is order
    assert caught.value.statement.startswith('INSERT INTO "orders"')
    assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)
    assert "FOREIGN KEY" in str(caught.value)
    assert state_of(order) is ObjectState.PENDING and order.id is None
    assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 0


def test_a_foreign_key_violation_deep_in_a_batch_names_the_row(session, conn):
    session.add(User(id=1, name="ann"))
    session.flush()
    orders = [Order(user_id=1) for _ in range(10)]
    orders[6].user_id = 2
    session.add_all(orders)
    with pytest.raises(errors.FlushError) as caught:
        session.flush()
    assert caught.value.obj is orders[6]
    assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 0
    assert all(o.id is None for o in orders)


def test_deleting_a_parent_whose_children_are_not_loaded_raises_flush_error(session, conn):
    user = User(id=1, name="ann")
    session.add(user)
    session.commit()
    conn.execute("INSERT INTO orders (id, user_id, total) VALUES (1, 1, '0')")  # unknown to the session
    session.delete(user)
    with pytest.raises(errors.FlushError) as caught:
        session.flush()
    assert caught.value.obj is user
    assert caught.value.statement.startswith('DELETE FROM "users"')
    assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)
    assert session.deleted == {user}
    assert state_of(user) is ObjectState.PERSISTENT
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 1


def test_a_flush_failing_at_its_last_statement_undoes_the_statements_before_it(session, conn):
    parent, other_user = User(id=1, name="parent"), User(id=2, name="other")
    session.add_all([parent, other_user])
    session.commit()
    conn.execute("INSERT INTO orders (id, user_id, total) VALUES (1, 1, '0')")  # unknown to the session
    other_user.name = "renamed"
    newcomer = User(name="newcomer")
    session.add(newcomer)
    session.delete(parent)
    everything = [parent, other_user, newcomer]
    before = session_picture(session, everything)
    database_before = database_picture(conn)
    with uow.capture_sql() as statements, pytest.raises(errors.FlushError) as caught:
        session.flush()
    assert [s for s in sql_of(statements) if s.startswith(("INSERT", "UPDATE"))]  # they did run
    assert caught.value.statement.startswith('DELETE FROM "users"')
    assert database_picture(conn) == database_before
    assert session_picture(session, everything) == before
    assert newcomer.id is None


def test_a_flush_failing_inside_a_savepoint_is_undone_by_rollback(file_session, other):
    session = file_session
    kept = User(name="kept", email="k@x")
    session.add(kept)
    session.commit()
    session.begin_nested()
    inside = User(name="inside")
    session.add(inside)
    session.flush()
    duplicate = User(name="dup", email="k@x")
    session.add(duplicate)
    with pytest.raises(errors.FlushError):
        session.flush()
    with pytest.raises(errors.PendingRollbackError):
        session.commit()
    session.rollback()
    assert [state_of(o) for o in (kept, inside, duplicate)] == [ObjectState.PERSISTENT, ObjectState.TRANSIENT,
                                                                ObjectState.TRANSIENT]
    assert not session.in_nested_transaction()
    session.commit()
    assert other.execute("SELECT name FROM users").fetchall() == [("kept",)]


def test_deleting_a_parent_whose_children_are_loaded_is_refused_before_any_sql(session, conn):
    user = User(id=1, name="ann")
    order = Order(id=1, user_id=1)
    session.add_all([user, order])
    session.commit()
    session.delete(user)
    with uow.capture_sql() as statements, pytest.raises(errors.UowError) as caught:
        session.flush()
    assert not any(s.startswith("DELETE") for s in sql_of(statements))
    assert "User(id=1)" in str(caught.value) and "Order(id=1)" in str(caught.value)
    assert session.deleted == {user}
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 1


def test_a_unique_violation_on_update(session, conn):
    a, b = User(name="a", email="a@x"), User(name="b", email="b@x")
    session.add_all([a, b])
    session.commit()
    b.email = "a@x"
    with pytest.raises(errors.FlushError) as caught:
        session.flush()
    assert caught.value.obj is b
    assert caught.value.statement.startswith('UPDATE "users"')
    assert session.dirty == {b}
    assert conn.execute("SELECT email FROM users ORDER BY id").fetchall() == [("a@x",), ("b@x",)]


def test_an_update_of_a_row_deleted_elsewhere_raises_flush_error(file_session, other):
    user = User(name="ann")
    file_session.add(user)
    file_session.commit()
    other.execute("DELETE FROM users")
    user.name = "bob"
    with pytest.raises(errors.FlushError) as caught:
        file_session.flush()
    assert caught.value.obj is user
    assert "User" in str(caught.value)
    assert caught.value.statement.startswith('UPDATE "users"')


def test_two_new_objects_with_one_natural_key_are_refused_before_any_sql(session):
    first, second = Country(code="fr", name="A"), Country(code="fr", name="B")
    session.add(first)
    with uow.capture_sql() as statements:
        with pytest.raises(errors.DuplicateIdentityError) as caught:
            session.add(second)  # refused here, or at the latest by the flush
            session.flush()
    assert statements == []
    assert "'fr'" in str(caught.value)
    assert state_of(first) is ObjectState.PENDING


# -- misuse --------------------------------------------------------------------------------

def test_every_error_is_a_uow_error():
    for name in dir(errors):
        value = getattr(errors, name)
        if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == errors.__name__ \
                and not issubclass(value, Warning):
            assert issubclass(value, errors.UowError), name


def test_the_uow_warning_is_a_user_warning_and_not_an_error():
    """Warnings are issued, never raised; except UowError must not catch one made an error."""
    assert issubclass(errors.UowWarning, UserWarning)
    assert not issubclass(errors.UowWarning, errors.UowError)


@pytest.mark.parametrize("call", [
    lambda s: s.add(NotMapped()),
    lambda s: s.add_all([NotMapped()]),
    lambda s: s.delete(NotMapped()),
    lambda s: s.get(NotMapped, 1),
    lambda s: s.get_one(NotMapped, 1),
    lambda s: s.filter(NotMapped),
    lambda s: s.all(NotMapped),
    lambda s: s.expunge(NotMapped()),
    lambda s: s.update(NotMapped()),
    lambda s: NotMapped() in s,
    lambda s: s.identity_key(NotMapped, 1),
    lambda s: uow.identity_key(NotMapped, 1),
    lambda s: uow.identity_key(instance=NotMapped()),
    lambda s: uow.object_session(NotMapped()),
    lambda s: uow.loaded_values(NotMapped()),
], ids=["add", "add_all", "delete", "get", "get_one", "filter", "all", "expunge", "update", "in",
        "Session.identity_key", "identity_key", "identity_key-instance", "object_session", "loaded_values"])
def test_objects_of_undeclared_classes_are_refused(session, call):
    with uow.capture_sql() as statements, pytest.raises(errors.UnmappedClassError) as caught:
        call(session)
    assert "NotMapped" in str(caught.value)
    assert statements == []


# Every public call that takes an entity object, given the class instead.
CLASS_INSTEAD_OF_AN_OBJECT = {
    "add": lambda s: s.add(User),
    "add_all": lambda s: s.add_all([User]),
    "delete": lambda s: s.delete(User),
    "merge": lambda s: s.merge(User),
    "expire": lambda s: s.expire(User),
    "refresh": lambda s: s.refresh(User),
    "expunge": lambda s: s.expunge(User),
    "__contains__": lambda s: User in s,
    "update": lambda s: s.update(User),
    "save_or_update": lambda s: s.save_or_update(User),
    "mark_dirty": lambda s: s.mark_dirty(User),
    "upsert": lambda s: s.upsert(User),
    "dirty_fields": lambda s: s.dirty_fields(User),
    "original_value": lambda s: s.original_value(User, "name"),
    "is_modified": lambda s: s.is_modified(User),
    "load_related": lambda s: s.load_related([User], "orders"),
    "bulk_save_objects": lambda s: s.bulk_save_objects([User]),
    "identity_key": lambda s: s.identity_key(instance=User),
    "state_of": lambda s: uow.state_of(User),
    "object_session": lambda s: uow.object_session(User),
    "loaded_values": lambda s: uow.loaded_values(User),
}


@pytest.mark.parametrize("operation", list(CLASS_INSTEAD_OF_AN_OBJECT))
def test_the_class_given_where_an_object_is_needed_is_refused_naming_the_call(session, operation):
    with uow.capture_sql() as statements, pytest.raises(errors.UnmappedClassError) as caught:
        CLASS_INSTEAD_OF_AN_OBJECT[operation](session)
    assert str(caught.value) == (f"{operation}(): an instance of User is needed, not the class; create one with "
                                 f"User(...), or load one with session.get(User, key)")
    assert isinstance(caught.value, TypeError)
    assert statements == []
    assert session.new == session.deleted == frozenset() and len(session.identity_map) == 0


def test_an_object_of_another_session_is_refused(conn):
    first, second = uow.Session(conn), uow.Session(conn)
    user = User(name="ann")
    first.add(user)
    for call in (second.add, second.delete, second.expunge, second.refresh, second.is_modified):
        with pytest.raises(errors.InvalidStateError, match="another session") as caught:
            call(user)
        assert str(caught.value).startswith(f"{call.__name__}(): {user!r} ")
    assert object_session(user) is first
    assert second.new == frozenset()
    first.close()
    second.close()


def test_a_second_object_with_a_held_key_is_refused_at_add(session, conn):
    conn.execute("INSERT INTO countries (code, name) VALUES ('fr', 'France')")
    held = session.get(Country, "fr")
    twin = Country(code="fr", name="Other")
    with pytest.raises(errors.DuplicateIdentityError) as caught:
        session.add(twin)
    assert str(caught.value) == (
        "add(): Country(code='fr', name='France')<persistent> already holds the identity Country('fr') in this "
        "session, so Country(code='fr', name='Other')<transient> cannot; change the new object's key, or use "
        "merge() to copy its values onto the held object")
    assert state_of(twin) is ObjectState.TRANSIENT
    assert session.identity_map[(Country, ("fr",))] is held
    assert session.new == frozenset()


def test_a_second_object_with_a_held_generated_key_is_refused_at_add(session):
    user = User(name="ann")
    session.add(user)
    session.flush()
    with pytest.raises(errors.DuplicateIdentityError, match="User"):
        session.add(User(id=user.id, name="twin"))


def test_deleting_a_transient_object_is_refused(session):
    user = User(name="ann")
    with pytest.raises(errors.InvalidStateError) as caught:
        session.delete(user)
    assert "transient" in str(caught.value)
    assert "User" in str(caught.value)


@pytest.mark.parametrize("entity, ident", [
    (User, (1, 2)),
    (User, ()),
    (User, "1"),
    (User, 1.5),
    (User, None),
    (User, True),
    (User, 1.0),
    (User, {"uid": 1}),
    (User, {"id": True}),
    (Pair, 1),
    (Pair, (1,)),
    (Pair, (1, 2)),
    (Pair, ("x", 1)),
    (Pair, {"a": 1}),
    (Pair, {"a": 1, "c": "x"}),
    (Country, 1),
    (Country, b"fr"),
], ids=repr)
def test_get_with_a_key_of_the_wrong_shape_or_type(session, entity, ident):
    with uow.capture_sql() as statements:
        for call in (session.get, session.get_one):
            with pytest.raises(errors.IdentityError) as caught:
                call(entity, ident)
            assert entity.__name__ in str(caught.value)
        with pytest.raises(errors.IdentityError):
            uow.identity_key(entity, ident)
    assert statements == []
    assert isinstance(caught.value, LookupError)


@pytest.mark.parametrize("entity, ident, reason", [
    (User, 2 ** 70, "is outside SQLite's 64-bit integer range"),
    (Country, "\ud800", "surrogate"),
], ids=["int beyond 64 bits", "lone surrogate"])
def test_get_with_a_key_sqlite_cannot_hold_is_refused_before_any_sql(session, entity, ident, reason):
    """A key of the right type can still be one no row can have: say so, rather than let sqlite3
    fail on it (OverflowError, UnicodeEncodeError)."""
    with uow.capture_sql() as statements:
        with pytest.raises(errors.IdentityError) as caught:
            session.get(entity, ident)
    assert statements == []
    assert f"{entity.__name__}." in str(caught.value) and reason in str(caught.value)


def test_true_and_one_point_oh_do_not_find_the_object_with_key_one(session):
    user = User(id=1, name="ann")
    session.add(user)
    session.flush()
    assert session.get(User, 1) is user
    for ident in (True, 1.0, (True,), {"id": 1.0}):
        with pytest.raises(errors.IdentityError):
            session.get(User, ident)


@pytest.mark.parametrize("call", [
    lambda s: s.filter(User, nmae="ann"),
    lambda s: s.filter(User, order_by="nmae"),
    lambda s: s.filter(User, order_by="-nmae"),
    lambda s: s.filter(User, order_by=["name", "nmae"]),
    lambda s: s.filter(User, order_by=Country.code),
], ids=["filter", "order_by", "order_by-desc", "order_by-list", "order_by-foreign-column"])
def test_unknown_fields_in_a_query(session, call):
    with uow.capture_sql() as statements, pytest.raises(errors.UnknownFieldError) as caught:
        call(session)
    assert statements == []
    assert "User" in str(caught.value)


def test_unknown_field_message_names_the_field_and_the_real_fields(session):
    with pytest.raises(errors.UnknownFieldError) as caught:
        session.filter(User, nmae="ann")
    assert "nmae" in str(caught.value)
    assert "name" in str(caught.value)
    assert isinstance(caught.value, AttributeError)


# -- constructing and declaring entities ----------------------------------------------------

def test_a_constructor_names_every_unknown_field_and_the_real_ones():
    with pytest.raises(errors.UnknownFieldError) as caught:
        User(nmae="ann", emial="a@x")
    assert str(caught.value) == "User() got unknown field(s) emial, nmae; its fields are id, name, email, score, joined"


def test_a_constructor_names_every_missing_field():
    with pytest.raises(errors.MissingFieldError) as caught:
        PairNote(text="note")
    assert str(caught.value) == "PairNote() needs a value for pair_a, pair_b (NOT NULL, with no default)"


def test_a_reference_given_to_the_constructor_does_not_excuse_a_missing_field():
    owner = Owner(name="ann")
    pet = Pet(owner=owner, name="rex")
    assert (pet.owner, pet.owner_id, pet.name) == (owner, None, "rex")
    for given in ({"owner": owner}, {"owner": None}, {}):
        with pytest.raises(errors.MissingFieldError) as caught:
            Pet(**given)
        assert str(caught.value) == "Pet() needs a value for name (NOT NULL, with no default)"


def test_an_abstract_base_may_annotate_private_attributes():
    """Names starting with '_' are never columns, so a base that annotates one declares no column."""

    class Audited(Entity, abstract=True):
        _audit_trail: list

    class Ledger(Audited, table="errors_ledgers"):
        id: int = Column(primary_key=True)
        amount: int = 0

    assert Ledger.__mapper__.column_names == ("id", "amount")


def test_a_closed_session_refuses_use(conn):
    session = uow.Session(conn)
    session.close()
    with pytest.raises(errors.SessionClosedError, match="closed"):
        session.add(User(name="ann"))
    with pytest.raises(errors.SessionClosedError):
        session.get(User, 1)
    session.close()


def in_other_thread(function):
    """Run function in another thread; return the exception it raised (or None)."""
    raised = []

    def run():
        try:
            function()
        except BaseException as error:
            raised.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return raised[0] if raised else None


def test_use_from_another_thread_is_refused(session):
    user = User(name="ann")
    session.add(user)
    session.flush()
    calls = {
        "add": lambda: session.add(User(name="x")),
        "get": lambda: session.get(User, user.id),
        "get miss": lambda: session.get(User, 999),
        "filter": lambda: session.filter(User),
        "flush": session.flush,
        "commit": session.commit,
        "rollback": session.rollback,
        "delete": lambda: session.delete(user),
        "expire": lambda: session.expire(user),
        "begin_nested": session.begin_nested,
    }
    owner = threading.get_ident()
    for name, call in calls.items():
        error = in_other_thread(call)
        assert isinstance(error, errors.WrongThreadError), name
        operation = name.split()[0]
        assert str(error).startswith(f"{operation}(): this session belongs to thread {owner}, but was called from thread ")
        assert str(error).endswith("; create one session per thread")
    assert session.new == frozenset() and session.deleted == frozenset()
    assert session.in_transaction()


def test_assigning_a_tracked_object_from_another_thread_is_refused(session):
    user = User(name="ann")
    session.add(user)
    session.flush()

    def assign():
        user.name = "bob"

    assert isinstance(in_other_thread(assign), errors.WrongThreadError)
    assert user.name == "ann"
    assert session.dirty == frozenset()


def test_deleting_a_tracked_attribute_is_refused(session):
    user = User(name="ann")
    session.add(user)
    with pytest.raises(errors.InvalidStateError, match="name"):
        del user.name
    assert user.name == "ann"


def test_deleting_an_attribute_that_is_not_a_column_is_allowed_in_every_state(session):
    user = User(name="ann")
    user.note = "transient"
    del user.note
    assert not hasattr(user, "note")
    session.add(user)
    session.flush()
    user.note = "persistent"
    del user.note
    assert not hasattr(user, "note")
    assert session.dirty == frozenset()
    session.expunge(user)
    user.note = "detached"
    del user.note
    assert not hasattr(user, "note")


def test_a_flush_error_message_names_the_statement(session):
    session.add(Order(user_id=42))
    with pytest.raises(errors.FlushError) as caught:
        session.flush()
    assert 'INSERT INTO "orders"' in str(caught.value)


def test_a_value_longer_than_sqlites_length_limit_is_refused_before_any_sql(session, conn):
    # an atomic failure that names the attribute
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1000)
    first = User(name="first")
    session.add(first)
    session.flush()
    long = User(name="x" * 2000)
    session.add(long)
    before = session_picture(session, [first, long])
    with uow.capture_sql() as statements, pytest.raises(errors.UowError) as caught:
        session.flush()
    assert "User.name" in str(caught.value)
    assert not any(s.startswith("INSERT") for s in sql_of(statements))
    assert session_picture(session, [first, long]) == before
    assert conn.execute("SELECT name FROM users").fetchall() == [("first",)]
    long.name = "short"
    session.commit()
    assert conn.execute("SELECT name FROM users ORDER BY id").fetchall() == [("first",), ("short",)]


@pytest.mark.parametrize("operation", ["refresh", "expire"])
@pytest.mark.parametrize("fields, message", [
    ("name", "fields must be a list of field names, not the string 'name'; write fields=['name']"),
    (5, "fields must be a list of User's field names, got 5"),
], ids=["string", "int"])
def test_refresh_and_expire_refuse_fields_that_are_not_a_list_of_names(session, operation, fields, message):
    user = User(name="ann")
    session.add(user)
    session.flush()
    with pytest.raises(errors.UnknownFieldError) as caught:
        getattr(session, operation)(user, fields)
    assert str(caught.value) == f"{operation}(): {message}"
    assert user.name == "ann" and session.dirty_fields(user) == []


def test_attach_refuses_a_database_name_that_is_not_a_plain_identifier(session):
    with uow.capture_sql() as statements, pytest.raises(errors.MappingError) as caught:
        session.attach('a"b', ":memory:")
    assert statements == []
    assert str(caught.value).startswith("attach(): database name 'a\"b' is not a plain identifier")


def test_refresh_of_no_fields_runs_no_sql(session):
    """fields=[] names nothing to reload (it used to send "SELECT  FROM", which SQLite rejects)."""
    user = User(name="ann")
    session.add(user)
    session.flush()
    user.name = "bob"
    with uow.capture_sql() as statements:
        session.refresh(user, [])
    assert statements == [] and user.name == "bob"
