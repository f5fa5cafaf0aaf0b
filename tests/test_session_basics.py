"""The session's everyday calls: add, add_all, delete, get, get_one, all, filter, and the identity map."""

import pytest

import uow
from uow import Collection, Column, Entity, ForeignKey, Reference, errors
from uow.identity import IdentityMap
from uow.states import PERSISTENT, InstanceState

from .helpers import folded, sql_of
from .models import Country, Order, Pair, User


class BasicsBase(Entity, abstract=True):
    pass


class Shelf(BasicsBase, table="basics_shelves"):
    """A composite key that books reference."""

    room: str = Column(primary_key=True)
    number: int = Column(primary_key=True)
    books = Collection("Book", "shelf")


class Book(BasicsBase, table="basics_books", foreign_keys=[ForeignKey(("room", "number"), Shelf)]):
    id: int = Column(primary_key=True)
    title: str
    room: str
    number: int
    shelf = Reference(("room", "number"))


SELECT_USER = ('SELECT "users"."id", "users"."name", "users"."email", "users"."score", "users"."joined" '
               'FROM "users" WHERE "users"."id" = ?')


@pytest.fixture
def people(conn):
    """Three committed users (ids 1, 2, 3), written with plain SQL."""
    conn.executemany("INSERT INTO users (id, name, email, score) VALUES (?, ?, ?, ?)", [
        (1, "ann", "ann@x", 3.0),
        (2, "bob", None, 1.0),
        (3, "cy", "cy@x", 2.0),
    ])
    return conn


def test_add_then_flush_inserts(session, conn):
    user = User(name="ann", email="a@x", score=1.5)
    session.add(user)
    assert user in session
    with uow.capture_sql() as statements:
        session.flush()
    assert ('INSERT INTO "users" ("name", "email", "score") VALUES (?, ?, ?) RETURNING "id", "joined"',
            ("ann", "a@x", 1.5)) in folded(statements)
    assert conn.execute("SELECT id, name, email, score, joined FROM users").fetchall() == [
        (user.id, "ann", "a@x", 1.5, "today")
    ]


def test_add_twice_is_harmless(session):
    user = User(name="ann")
    session.add(user)
    session.add(user)
    assert session.new == {user}
    session.flush()
    session.add(user)
    assert session.new == frozenset()


def test_add_all_keeps_the_order(session, conn):
    session.add_all([User(name="c"), User(name="a"), User(name="b")])
    session.flush()
    assert conn.execute("SELECT name FROM users ORDER BY id").fetchall() == [("c",), ("a",), ("b",)]


def test_delete_then_flush_deletes(session, people):
    user = session.get(User, 2)
    session.delete(user)
    with uow.capture_sql() as statements:
        session.flush()
    assert folded(statements) == [
        ('SAVEPOINT "uow_flush"', ()),
        ('DELETE FROM "users" WHERE "users"."id" = ?', [(2,)]),
        ('RELEASE "uow_flush"', ()),
    ]
    assert people.execute("SELECT id FROM users ORDER BY id").fetchall() == [(1,), (3,)]


def test_get_loads_by_primary_key_with_one_select(session, people):
    with uow.capture_sql() as statements:
        user = session.get(User, 2)
    assert folded(statements) == [("BEGIN DEFERRED", ()), (SELECT_USER, (2,))]
    assert (user.id, user.name, user.email, user.score, user.joined) == (2, "bob", None, 1.0, "today")


def test_get_of_a_missing_row_is_none(session, people):
    assert session.get(User, 42) is None


def test_a_second_get_is_an_identity_map_hit_that_runs_no_sql(session, people):
    user = session.get(User, 1)
    with uow.capture_sql() as statements:
        again = session.get(User, 1)
        by_tuple = session.get(User, (1,))
        by_dict = session.get(User, {"id": 1})
    assert statements == []
    assert again is user and by_tuple is user and by_dict is user


def test_get_of_a_just_added_object_with_a_natural_key_runs_no_sql(session):
    country = Country(code="fr", name="France")
    session.add(country)
    session.flush()
    with uow.capture_sql() as statements:
        assert session.get(Country, "fr") is country
    assert statements == []


def test_get_by_composite_key_as_tuple_and_as_dict(session, conn):
    conn.execute("INSERT INTO pairs (a, b, label) VALUES (1, 'x', 'one'), (1, 'y', 'two')")
    pair = session.get(Pair, (1, "y"))
    assert pair.label == "two"
    with uow.capture_sql() as statements:
        assert session.get(Pair, {"a": 1, "b": "y"}) is pair
    assert statements == []
    with uow.capture_sql() as statements:
        other = session.get(Pair, {"b": "x", "a": 1})
    assert other.label == "one"
    assert folded(statements) == [(
        'SELECT "pairs"."a", "pairs"."b", "pairs"."label" FROM "pairs" WHERE "pairs"."a" = ? AND "pairs"."b" = ?',
        (1, "x"),
    )]


def test_get_one_returns_the_object(session, people):
    assert session.get_one(User, 3).name == "cy"


def test_get_one_of_a_missing_row_raises_not_found(session, people):
    with pytest.raises(errors.NotFoundError) as caught:
        session.get_one(User, 42)
    assert "User" in str(caught.value) and "42" in str(caught.value)
    assert isinstance(caught.value, LookupError)


def test_get_one_of_a_missing_composite_key_names_the_key(session):
    with pytest.raises(errors.NotFoundError) as caught:
        session.get_one(Pair, (1, "x"))
    assert str(caught.value) == "get_one(): no Pair(1, 'x') in the database"


def test_all_returns_every_row_ordered_by_key(session, people):
    with uow.capture_sql() as statements:
        users = session.all(User)
    assert [u.id for u in users] == [1, 2, 3]
    assert folded(statements)[-1] == (
        'SELECT "users"."id", "users"."name", "users"."email", "users"."score", "users"."joined" '
        'FROM "users" ORDER BY "users"."id"', ())


def test_every_loaded_row_goes_through_the_identity_map(session, people):
    first = session.get(User, 2)
    everyone = session.all(User)
    assert everyone[1] is first
    assert session.filter(User, name="bob")[0] is first
    assert session.all(User) == everyone
    assert all(a is b for a, b in zip(session.all(User), everyone))
    assert len(session.identity_map) == 3


def test_filter_by_equality(session, people):
    with uow.capture_sql() as statements:
        found = session.filter(User, name="cy", score=2.0)
    assert [u.id for u in found] == [3]
    assert folded(statements)[-1] == (
        'SELECT "users"."id", "users"."name", "users"."email", "users"."score", "users"."joined" '
        'FROM "users" WHERE "users"."name" = ? AND "users"."score" = ? ORDER BY "users"."id"', ("cy", 2.0))


def test_filter_by_none_matches_null(session, people):
    with uow.capture_sql() as statements:
        found = session.filter(User, email=None)
    assert [u.id for u in found] == [2]
    assert 'WHERE "users"."email" IS NULL' in statements[-1].sql


def test_filter_matching_nothing(session, people):
    assert session.filter(User, name="nobody") == []


def test_filter_order_by_ascending_and_descending(session, people):
    assert [u.name for u in session.filter(User, order_by="score")] == ["bob", "cy", "ann"]
    with uow.capture_sql() as statements:
        assert [u.name for u in session.filter(User, order_by="-score")] == ["ann", "cy", "bob"]
    assert statements[-1].sql.endswith('ORDER BY "users"."score" DESC')
    assert [u.name for u in session.filter(User, order_by=["-name"])] == ["cy", "bob", "ann"]
    assert [u.name for u in session.filter(User, order_by=User.score)] == ["bob", "cy", "ann"]


def test_filter_order_by_several_fields(session, people):
    people.execute("INSERT INTO users (id, name, score) VALUES (4, 'ann', 0.5)")
    assert [u.id for u in session.filter(User, order_by=["name", "-score"])] == [1, 4, 2, 3]


def test_filter_limit(session, people):
    with uow.capture_sql() as statements:
        found = session.filter(User, order_by="-id", limit=2)
    assert [u.id for u in found] == [3, 2]
    assert folded(statements)[-1][0].endswith('ORDER BY "users"."id" DESC LIMIT ?')
    assert folded(statements)[-1][1] == (2,)
    assert session.filter(User, limit=0) == []


def test_loading_never_overwrites_unflushed_changes(conn, people):
    session = uow.Session(conn, autoflush=False)
    user = session.get(User, 1)
    user.name = "changed"
    with uow.capture_sql() as statements:
        again = session.filter(User, name="ann")
    assert not any(s.startswith(("INSERT", "UPDATE")) for s in sql_of(statements))
    assert again == [user]
    assert user.name == "changed"
    assert session.all(User)[0].name == "changed"
    assert session.dirty_fields(user) == ["name"]
    session.close()


def test_delete_pending_object_cancels_its_insert(session, conn):
    user = User(name="ann")
    session.add(user)
    session.delete(user)
    assert user not in session
    with uow.capture_sql() as statements:
        session.flush()
    assert statements == []
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0


def test_delete_of_a_loaded_object_is_visible_after_flush(session, people):
    user = session.get(User, 1)
    session.delete(user)
    session.flush()
    assert session.get(User, 1) is None
    assert [u.id for u in session.all(User)] == [2, 3]


def test_add_of_an_object_marked_for_deletion_takes_the_delete_back_and_its_change_is_written(file_session, other):
    """As in SQLAlchemy and Storm: add() after delete(), before the flush, keeps the row."""
    other.execute("INSERT INTO users (id, name, score) VALUES (20, 'old', 0.0)")
    user = file_session.get(User, 20)
    user.name = "new"
    file_session.delete(user)
    file_session.add(user)
    assert file_session.deleted == frozenset()
    assert file_session.dirty == {user}
    with uow.capture_sql() as statements:
        file_session.flush()
    assert [sql for sql in sql_of(statements) if not sql.startswith(("SAVEPOINT", "RELEASE", "BEGIN"))] == [
        'UPDATE "users" SET "name" = ? WHERE "users"."id" = ?']
    file_session.commit()
    assert other.execute("SELECT id, name FROM users").fetchall() == [(20, "new")]
    assert uow.state_of(user) is uow.ObjectState.PERSISTENT


def test_wb_the_identity_map_refuses_a_second_object_for_a_held_key():
    held, twin = Pair(a=1, b="x", label="held"), Pair(a=1, b="x", label="twin")
    held_state, twin_state = (InstanceState(obj, Pair.__mapper__, PERSISTENT, None, key=(1, "x")) for obj in (held, twin))
    identity = IdentityMap()
    identity.add(held_state)
    identity.add(held_state)  # the same object again is fine
    with pytest.raises(errors.DuplicateIdentityError) as caught:
        identity.add(twin_state)
    assert str(caught.value).startswith(
        f"{held!r} already holds the identity Pair(1, 'x') in this session, so {twin!r} cannot; ")
    assert identity.classes == {Pair: {(1, "x"): held}}  # a dict per class, a composite key a tuple


def test_objects_of_different_classes_with_the_same_key_are_different_rows(session, people):
    people.execute("INSERT INTO orders (id, user_id, total) VALUES (1, 1, '9.99')")
    user = session.get(User, 1)
    order = session.get(Order, 1)
    assert user is not order
    assert session.identity_map[(User, (1,))] is user
    assert session.identity_map[(Order, (1,))] is order


def test_contains(session, people):
    user = session.get(User, 1)
    assert user in session
    assert User(name="x") not in session


def test_a_deleted_natural_key_may_be_used_by_a_new_object_after_flush(session, conn):
    old = Country(code="fr", name="Old")
    session.add(old)
    session.commit()
    session.delete(old)
    session.flush()
    new = Country(code="fr", name="New")
    session.add(new)
    session.commit()
    assert conn.execute("SELECT code, name FROM countries").fetchall() == [("fr", "New")]
    assert session.get(Country, "fr") is new
    assert uow.state_of(old) is uow.ObjectState.DETACHED


@pytest.fixture
def shelves(conn):
    """Three shelves with a composite key, and three books on two of them."""
    uow.create_all(conn, [Shelf, Book])
    conn.execute("INSERT INTO basics_shelves (room, number) VALUES ('hall', 1), ('hall', 2), ('attic', 1)")
    conn.execute("INSERT INTO basics_books (title, room, number) VALUES ('A', 'hall', 2), ('B', 'attic', 1), "
                 "('C', 'hall', 2)")
    return conn


def test_loading_related_objects_up_front_by_a_composite_key(session, shelves):
    with uow.capture_sql() as statements:
        found = session.all(Shelf, load=["books"])
        books = [(shelf.room, shelf.number, [book.title for book in shelf.books]) for shelf in found]
    assert books == [("attic", 1, ["B"]), ("hall", 1, []), ("hall", 2, ["A", "C"])]
    assert folded(statements)[-1] == (
        'SELECT "basics_books"."id", "basics_books"."title", "basics_books"."room", "basics_books"."number" '
        'FROM "basics_books" WHERE ("basics_books"."room", "basics_books"."number") IN (VALUES (?, ?), (?, ?), '
        '(?, ?)) ORDER BY "basics_books"."id"', ("attic", 1, "hall", 1, "hall", 2))


def test_references_loaded_up_front_stay_usable_after_the_session_closes(shelves):
    with uow.Session(shelves) as session:
        with uow.capture_sql() as statements:
            books = session.all(Book, load=["shelf"])
        assert folded(statements)[-1] == (
            'SELECT "basics_shelves"."room", "basics_shelves"."number" FROM "basics_shelves" '
            'WHERE ("basics_shelves"."room", "basics_shelves"."number") IN (VALUES (?, ?), (?, ?)) '
            'ORDER BY "basics_shelves"."room", "basics_shelves"."number"', ("attic", 1, "hall", 2))
    assert uow.state_of(books[0]) is uow.ObjectState.DETACHED
    assert [(book.title, book.shelf.room, book.shelf.number) for book in books] == [
        ("A", "hall", 2), ("B", "attic", 1), ("C", "hall", 2)]
    assert books[0].shelf is books[2].shelf


# -- what close() leaves on objects that were only read ---------------------------------------

def test_an_object_only_read_keeps_its_values_after_close(conn, people):
    """close() rolls back, but nothing was written: the object holds what the database holds."""
    session = uow.Session(conn)
    user = session.get(User, 1)
    session.close()
    with uow.capture_sql() as statements:
        assert user.name == "ann" and user.email == "ann@x"
    assert statements == []
    assert uow.state_of(user) is uow.ObjectState.DETACHED


def test_collections_loaded_before_a_commit_survive_close_as_references_do(shelves):
    session = uow.Session(shelves)
    shelf = session.get(Shelf, ("hall", 2))
    books = shelf.books
    session.commit()
    session.close()
    assert shelf.books is books
    assert [(book.title, book.shelf is shelf) for book in shelf.books] == [("A", True), ("C", True)]


def test_collections_read_in_a_transaction_that_wrote_nothing_survive_close(shelves):
    session = uow.Session(shelves)
    shelves_read = session.all(Shelf, load=["books"])
    session.close()
    assert [[book.title for book in shelf.books] for shelf in shelves_read] == [["B"], [], ["A", "C"]]


def test_close_after_a_write_expires_what_was_read_after_it_and_drops_collections(shelves):
    session = uow.Session(shelves)
    before = session.get(Shelf, ("attic", 1))
    before.books
    session.add(Book(title="D", room="hall", number=1))
    session.flush()  # the transaction's first write
    after = session.get(Book, 1)
    session.close()
    assert (before.room, before.number) == ("attic", 1)  # read before the write: kept
    with pytest.raises(errors.DetachedInstanceError, match="Shelf.books"):
        before.books  # it might have held the book the rollback removed
    with pytest.raises(errors.DetachedInstanceError, match="Book.title"):
        after.title  # read after the write: it may hold what the rollback undid


def test_a_change_to_an_object_of_the_collections_class_drops_the_collection_at_close(shelves):
    session = uow.Session(shelves)
    shelf = session.get(Shelf, ("hall", 2))
    moved = shelf.books[0]
    moved.shelf = session.get(Shelf, ("hall", 1))  # not flushed: the rollback puts it back
    session.close()
    assert (moved.room, moved.number) == ("hall", 2)
    with pytest.raises(errors.DetachedInstanceError, match="Shelf.books"):
        shelf.books
