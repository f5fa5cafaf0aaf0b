"""Relationships: Reference and Collection kept in step, foreign keys filled at flush, lazy and
eager loading, cascades, and natural keys that change under their children.

Every test runs on a real sqlite3 database, in memory and in a file, and asserts the statements a
flush sends (captured with ``uow.capture_sql``) and the rows that result, read back with raw SQL.
The models are in ``relationship_models``.
"""

import sqlite3

import pytest

import uow
from uow import ObjectState, Session, capture_sql, errors, state_of

from .helpers import folded
from .relationship_models import (
    Author,
    Book,
    City,
    Country,
    Message,
    Node,
    Order,
    Player,
    Team,
    User,
    database_fixtures,
    dml,
    writes,
)

SEED = """
INSERT INTO users (name, email) VALUES ('ann', 'a@x'), ('bob', 'b@x'), ('cy', 'c@x');
INSERT INTO orders (user_id, total) VALUES (1, 10), (1, 20), (2, 30);
INSERT INTO teams (name) VALUES ('reds');
INSERT INTO players (name, team_id) VALUES ('p1', 1), ('p2', 1), ('p3', NULL);
INSERT INTO authors (name) VALUES ('ada'), ('bo');
INSERT INTO books (title, author_id) VALUES ('b1', 1), ('b2', 1);
INSERT INTO countries (code, name) VALUES ('fr', 'France'), ('de', 'Germany');
INSERT INTO cities (name, country_code) VALUES ('Paris', 'fr'), ('Lyon', 'fr'), ('Berlin', 'de')
"""

SELECT_USER = 'SELECT "users"."id", "users"."name", "users"."email" FROM "users" WHERE "users"."id" = ?'
SELECT_ORDER = 'SELECT "orders"."id", "orders"."user_id", "orders"."total" FROM "orders" WHERE "orders"."id" = ?'
SELECT_ORDERS_OF = ('SELECT "orders"."id", "orders"."user_id", "orders"."total" FROM "orders" '
                    'WHERE "orders"."user_id" = ? ORDER BY "orders"."id"')
INSERT_USER = 'INSERT INTO "users" ("name", "email") VALUES (?, ?) RETURNING "id"'
INSERT_USERS = 'INSERT INTO "users" ("name", "email") VALUES (?, ?)'
INSERT_ORDER = 'INSERT INTO "orders" ("user_id", "total") VALUES (?, ?) RETURNING "id"'
INSERT_ORDERS = 'INSERT INTO "orders" ("user_id", "total") VALUES (?, ?)'
UPDATE_ORDER_USER = 'UPDATE "orders" SET "user_id" = ? WHERE "orders"."id" = ?'
DELETE_ORDERS = 'DELETE FROM "orders" WHERE "orders"."id" = ?'
DELETE_USERS = 'DELETE FROM "users" WHERE "users"."id" = ?'


db, session = database_fixtures(SEED, "relationships")


def same_objects(left, right):
    """Lists holding the very same objects, in the same order (entities compare by identity anyway,
    but this makes the intent plain)."""
    return len(left) == len(right) and all(a is b for a, b in zip(left, right))


# -- kept in step in memory -----------------------------------------------------------------------

class TestTransientObjectsKeptInStep:
    def test_setting_a_reference_puts_the_child_in_the_parents_collection(self):
        ann = User(name="ann")
        order = Order(total=5)
        order.user = ann
        assert same_objects(ann.orders, [order])
        assert order.user is ann
        assert order.user_id is None  # ann has no key yet: the flush fills it in

    def test_constructor_keyword_sets_the_reference_both_ways(self):
        ann = User(name="ann")
        order = Order(total=5, user=ann)
        assert same_objects(ann.orders, [order])

    def test_appending_sets_the_reference_once(self):
        ann = User(name="ann")
        order = Order(total=5)
        ann.orders.append(order)
        ann.orders.append(order)
        assert order.user is ann
        assert same_objects(ann.orders, [order])

    def test_remove_clears_the_reference(self):
        ann = User(name="ann")
        first, second = Order(total=1), Order(total=2)
        ann.orders.extend([first, second])
        ann.orders.remove(first)
        assert first.user is None
        assert first.user_id is None
        assert same_objects(ann.orders, [second])
        assert second.user is ann

    def test_reparenting_by_reference_moves_the_child(self):
        ann, bob = User(name="ann"), User(name="bob")
        order = Order(total=5, user=ann)
        order.user = bob
        assert same_objects(ann.orders, [])
        assert same_objects(bob.orders, [order])

    def test_reparenting_by_append_moves_the_child(self):
        ann, bob = User(name="ann"), User(name="bob")
        order = Order(total=5, user=ann)
        bob.orders.append(order)
        assert order.user is bob
        assert same_objects(ann.orders, [])
        assert same_objects(bob.orders, [order])

    def test_setting_the_reference_to_none_leaves_the_collection(self):
        ann = User(name="ann")
        order = Order(total=5, user=ann)
        order.user = None
        assert same_objects(ann.orders, [])

    def test_a_reference_to_a_keyed_object_sets_the_column_at_once(self):
        fr = Country(code="fr", name="France")
        paris = City(name="Paris", country=fr)
        assert paris.country_code == "fr"
        assert same_objects(fr.cities, [paris])

    def test_setting_the_column_by_hand_drops_the_cached_reference(self):
        fr = Country(code="fr", name="France")
        paris = City(name="Paris", country=fr)
        paris.country_code = "de"
        assert paris.country is not fr
        assert paris.country_code == "de"



def test_reference_and_collection_pair_up_before_anything_configures_the_mapping():
    """Fresh classes: nothing (no session, no create_all, no read of the collection) has paired
    Shop.items with Item.shop yet when the first assignment happens."""

    class FreshBase(uow.Entity, abstract=True):
        pass

    class Shop(FreshBase, table="shops"):
        id: int = uow.Column(primary_key=True)
        name: str
        items = uow.Collection("Item", "shop")

    class Item(FreshBase, table="items"):
        id: int = uow.Column(primary_key=True)
        shop_id: int = uow.Column(references="Shop")
        shop = uow.Reference("shop_id")

    shop = Shop(name="corner")
    item = Item()
    item.shop = shop
    assert same_objects(shop.items, [item]), "item.shop is shop, but shop.items lacks it"


def _read_only_mapping():
    """Fresh classes over tables that exist already: nothing (no create_all, no earlier test)
    has configured their mapping, as in a program that only reads a database made elsewhere."""

    class FreshBase(uow.Entity, abstract=True):
        pass

    class Club(FreshBase, table="clubs"):
        id: int = uow.Column(primary_key=True)
        name: str
        members = uow.Collection("Member", "club", cascade="all")
        fans = uow.Collection("Fan", "club")

    class Member(FreshBase, table="members"):
        id: int = uow.Column(primary_key=True)
        club_id: int = uow.Column(references="Club")
        club = uow.Reference("club_id")

    class Fan(FreshBase, table="fans"):
        id: int = uow.Column(primary_key=True)
        club_id: int | None = uow.Column(references="Club")
        club = uow.Reference("club_id")

    return Club, Member, Fan


@pytest.mark.parametrize("where", ["memory", "file"])
def test_a_mapping_used_only_for_reading_configures_itself_on_get_then_delete(where, tmp_path):
    path = str(tmp_path / "made_elsewhere.db") if where == "file" else ":memory:"
    connection = uow.connect(path)
    connection.execute("BEGIN")
    for statement in (
            "CREATE TABLE clubs (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
            "CREATE TABLE members (id INTEGER PRIMARY KEY, club_id INTEGER NOT NULL REFERENCES clubs (id))",
            "CREATE TABLE fans (id INTEGER PRIMARY KEY, club_id INTEGER REFERENCES clubs (id))",
            "INSERT INTO clubs VALUES (1, 'chess'), (2, 'go')",
            "INSERT INTO members VALUES (1, 1), (2, 1), (3, 2)",
            "INSERT INTO fans VALUES (1, 1), (2, 2)"):
        connection.execute(statement)
    connection.execute("COMMIT")
    Club, Member, Fan = _read_only_mapping()
    session = Session(connection)
    club = session.get(Club, 1)
    session.delete(club)  # neither collection was ever read
    session.commit()
    session.close()
    committed = connection if where == "memory" else sqlite3.connect(path)
    assert committed.execute("SELECT id FROM clubs").fetchall() == [(2,)]
    assert committed.execute("SELECT id, club_id FROM members").fetchall() == [(3, 2)]
    assert committed.execute("SELECT id, club_id FROM fans ORDER BY id").fetchall() == [(1, None), (2, 2)]
    committed.close()
    if committed is not connection:
        connection.close()


def test_a_relationship_repr_names_its_class_and_attribute():
    assert repr(Order.user) == "Reference(Order.user)"
    assert repr(User.orders) == "Collection(User.orders)"


def test_a_relationship_outside_an_entity_shows_a_question_mark_for_its_class():
    """Only an Entity subclass binds its relationships to a class; the repr still names the attribute."""

    class Draft:
        user = uow.Reference("user_id")
        orders = uow.Collection("Order", "user")

    assert repr(Draft.user) == "Reference(?.user)"
    assert repr(Draft.orders) == "Collection(?.orders)"


def test_a_collection_naming_an_undeclared_entity_is_a_mapping_error_naming_the_collection():
    class FreshBase(uow.Entity, abstract=True):
        pass

    class Shop(FreshBase, table="shops"):
        id: int = uow.Column(primary_key=True)
        items = uow.Collection("Item", "shop")

    connection = uow.connect(":memory:")
    try:
        with pytest.raises(errors.MappingError) as caught:
            uow.create_all(connection, [Shop])
    finally:
        connection.close()
    message = str(caught.value)
    assert "Shop.items" in message
    assert "'Item'" in message


def test_a_collection_whose_reference_is_missing_is_a_mapping_error_naming_both_sides():
    class FreshBase(uow.Entity, abstract=True):
        pass

    class Shop(FreshBase, table="shops"):
        id: int = uow.Column(primary_key=True)
        items = uow.Collection("Item", "shop")

    class Item(FreshBase, table="items"):
        id: int = uow.Column(primary_key=True)
        shop_id: int = uow.Column(references="Shop")
        owner = uow.Reference("shop_id")  # not the "shop" that Shop.items names

    connection = uow.connect(":memory:")
    try:
        with pytest.raises(errors.MappingError) as caught:
            uow.create_all(connection, [Shop, Item])
    finally:
        connection.close()
    assert str(caught.value) == (
        "Shop.items = Collection(Item, 'shop'): Item.shop must be a Reference to Shop")


def generated_batch(table, sql, rows, largest_rowid_before):
    """The statements of a multi-row INSERT whose keys SQLite generates: read the largest rowid,
    one executemany, then read the new keys back in rowid order."""
    return [
        (f'SELECT max("{table}"."id") FROM "{table}"', ()),
        (sql, rows),
        (f'SELECT "{table}"."id" FROM "{table}" WHERE "{table}"."id" > ? ORDER BY "{table}"."id"',
         (largest_rowid_before,)),
    ]


class TestPendingObjectsKeptInStep:
    def test_reparenting_pending_children_moves_them_and_the_flush_follows(self, db, session):
        ann, bob = User(name="ann"), User(name="bob")
        first, second = Order(total=1, user=ann), Order(total=2, user=ann)
        session.add_all([ann, bob])
        assert state_of(first) is ObjectState.PENDING
        second.user = bob
        bob.orders.append(first)
        assert same_objects(ann.orders, [])
        assert same_objects(bob.orders, [second, first])
        assert first.user is bob
        with capture_sql() as statements:
            session.flush()
        assert dml(statements) == (
            generated_batch("users", INSERT_USERS, [("ann", None), ("bob", None)], 3)
            + generated_batch("orders", INSERT_ORDERS, [(5, 1), (5, 2)], 3)
        )
        assert db.rows("SELECT id, user_id, total FROM orders WHERE id > 3") == [(4, 5, 1), (5, 5, 2)]

    def test_removing_a_pending_child_unlinks_it_and_it_is_inserted_without_parent(self, db, session):
        team = Team(name="blues")
        player = Player(name="p4", team=team)
        session.add(team)
        assert state_of(player) is ObjectState.PENDING  # save-update followed team.players
        team.players.remove(player)
        assert player.team is None
        assert same_objects(team.players, [])
        assert state_of(player) is ObjectState.PENDING  # no delete-orphan on Team.players
        with capture_sql() as statements:
            session.flush()
        assert dml(statements) == [
            ('INSERT INTO "teams" ("name") VALUES (?) RETURNING "id"', ("blues",)),
            ('INSERT INTO "players" ("name", "team_id") VALUES (?, ?) RETURNING "id"', ("p4", None)),
        ]
        assert db.rows("SELECT name, team_id FROM players WHERE name = 'p4'") == [("p4", None)]


class TestPersistentObjectsKeptInStep:
    def test_setting_the_reference_moves_the_order_between_loaded_collections(self, db, session):
        ann, bob = session.get(User, 1), session.get(User, 2)
        first, second = ann.orders
        third, = bob.orders
        first.user = bob
        assert first.user_id == 2
        assert same_objects(ann.orders, [second]), "the moved order is still in ann.orders"
        assert same_objects(bob.orders, [third, first])
        with capture_sql() as statements:
            session.flush()
        assert folded(statements) == [
            ('SAVEPOINT "uow_flush"', ()),
            (UPDATE_ORDER_USER, [(2, 1)]),
            ('RELEASE "uow_flush"', ()),
        ]
        assert db.rows("SELECT id, user_id FROM orders ORDER BY id") == [(1, 2), (2, 1), (3, 2)]

    def test_pointing_at_an_expired_object_takes_the_key_its_identity_records(self, db, session):
        """An expired object's key columns are not loaded, but its identity key is known."""
        order, bob = session.get(Order, 1), session.get(User, 2)
        session.expire(bob)
        order.user = bob
        assert order.user_id == 2
        session.rollback()  # both were read before any write: the rollback gives back what they read
        session.expire(bob)
        order.user = bob
        assert order.user_id == 2
        session.commit()
        assert db.rows("SELECT id, user_id FROM orders ORDER BY id") == [(1, 2), (2, 1), (3, 2)]

    def test_moving_an_order_whose_reference_was_read_updates_both_collections(self, session):
        first = session.get(Order, 1)
        ann, bob = first.user, session.get(User, 2)
        assert same_objects(ann.orders, [first, session.get(Order, 2)])
        bob.orders  # load it
        first.user = bob
        assert same_objects(ann.orders, [session.get(Order, 2)])
        assert same_objects(bob.orders, [session.get(Order, 3), first])

    def test_appending_to_another_parent_reparents_without_deleting_the_orphan(self, db, session):
        ann, bob = session.get(User, 1), session.get(User, 2)
        first = ann.orders[0]
        bob.orders.append(first)
        assert first.user is bob
        assert same_objects(ann.orders, [session.get(Order, 2)]), "the moved order is still in ann.orders"
        assert session.deleted == frozenset()  # moved, not orphaned
        with capture_sql() as statements:
            session.flush()
        assert dml(statements) == [(UPDATE_ORDER_USER, [(2, 1)])]
        assert state_of(first) is ObjectState.PERSISTENT
        assert db.rows("SELECT user_id FROM orders WHERE id = 1") == [(2,)]

    def test_removing_from_a_collection_clears_a_nullable_reference(self, db, session):
        team = session.get(Team, 1)
        p1, p2 = team.players
        team.players.remove(p1)
        assert p1.team is None
        assert p1.team_id is None
        assert same_objects(team.players, [p2])
        with capture_sql() as statements:
            session.flush()
        assert dml(statements) == [('UPDATE "players" SET "team_id" = ? WHERE "players"."id" = ?', [(None, 1)])]
        assert state_of(p1) is ObjectState.PERSISTENT
        assert db.rows("SELECT id, team_id FROM players ORDER BY id") == [(1, None), (2, 1), (3, None)]

    def test_a_parent_whose_collection_is_not_loaded_sees_the_child_when_it_loads(self, session):
        order, bob = session.get(Order, 1), session.get(User, 2)
        order.user = bob
        with capture_sql() as statements:
            orders = bob.orders
        assert folded(statements) == [  # autoflush writes the move before the SELECT reads it
            ('SAVEPOINT "uow_flush"', ()),
            (UPDATE_ORDER_USER, [(2, 1)]),
            ('RELEASE "uow_flush"', ()),
            (SELECT_ORDERS_OF, (2,)),
        ]
        assert same_objects(orders, [order, session.get(Order, 3)])

    def test_without_autoflush_a_moved_persistent_child_is_in_its_new_parents_collection(self, session):
        order, ann, bob = session.get(Order, 1), session.get(User, 1), session.get(User, 2)
        with session.no_autoflush:
            order.user = bob
            assert order.user is bob
            assert any(item is order for item in bob.orders), "order.user is bob, but bob.orders lacks it"
            assert not any(item is order for item in ann.orders)

    def test_a_reference_to_an_object_of_another_session_is_refused_naming_the_assignment(self, db, session):
        order = session.get(Order, 1)
        other = Session(db.conn)
        stranger = User(name="stranger")
        other.add(stranger)
        with pytest.raises(errors.InvalidStateError) as caught:
            order.user = stranger
        assert str(caught.value) == (
            "Order(id=1).user = User(id=None, name='stranger', email=None)<pending>: "
            "that object belongs to another session"
        )
        assert order.user_id == 1
        assert session.new == frozenset()
        assert other.new == {stranger}
        other.close()

    def test_setting_a_reference_after_a_failed_flush_is_refused_naming_the_reference(self, session):
        order, bob = session.get(Order, 1), session.get(User, 2)
        session.add(User(name="dup", email="a@x"))  # ann's email: the INSERT fails
        with pytest.raises(errors.FlushError):
            session.flush()
        with capture_sql() as statements, pytest.raises(errors.PendingRollbackError) as caught:
            order.user = bob
        assert statements == []
        assert str(caught.value).startswith("set user(): a previous flush failed")
        assert order.user_id == 1


# -- foreign keys filled at flush --------------------------------------------------------------

class TestForeignKeysFilledAtFlush:
    def test_a_key_the_database_generates_fills_the_childs_column(self, db, session):
        ann = User(name="Ann")
        order = Order(total=30)
        ann.orders.append(order)
        session.add(ann)
        with capture_sql() as statements:
            session.flush()
        assert folded(statements) == [
            ("BEGIN IMMEDIATE", ()),
            ('SAVEPOINT "uow_flush"', ()),
            (INSERT_USER, ("Ann", None)),
            (INSERT_ORDER, (4, 30)),
            ('RELEASE "uow_flush"', ()),
        ]
        assert (ann.id, order.user_id) == (4, 4)
        assert session.dirty_fields(order) == []
        assert db.rows("SELECT id, user_id, total FROM orders WHERE id = ?", (order.id,)) == [(4, 4, 30)]

    def test_many_new_parents_and_children_in_one_flush(self, db, session):
        u1, u2 = User(name="u1"), User(name="u2")
        u1.orders.extend([Order(total=1), Order(total=2)])
        u2.orders.extend([Order(total=3), Order(total=4)])
        session.add_all([u1, u2])
        with capture_sql() as statements:
            session.commit()
        assert dml(statements) == (
            generated_batch("users", INSERT_USERS, [("u1", None), ("u2", None)], 3)
            + generated_batch("orders", INSERT_ORDERS, [(4, 1), (4, 2), (5, 3), (5, 4)], 3)
        )
        assert db.committed(
            "SELECT u.name, o.total FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id > 3 ORDER BY o.id"
        ) == [("u1", 1), ("u1", 2), ("u2", 3), ("u2", 4)]

    def test_a_reference_to_a_persistent_parent_sets_the_column_at_once(self, db, session):
        ann = session.get(User, 1)
        order = Order(total=7, user=ann)
        assert order.user_id == 1
        session.add(order)
        with capture_sql() as statements:
            session.flush()
        assert dml(statements) == [(INSERT_ORDER, (1, 7))]
        assert same_objects(ann.orders[-1:], [order])

    def test_a_persistent_child_pointed_at_a_new_parent_is_updated_after_the_insert(self, db, session):
        order = session.get(Order, 1)
        dee = User(name="dee")
        order.user = dee
        assert state_of(dee) is ObjectState.PENDING  # save-update along the reference
        plan = session.plan()
        assert [str(c) for c in plan.constraints] == [
            "UPDATE Order(id=1) after INSERT User(new #2): orders.user_id references users.id"
        ]
        with capture_sql() as statements:
            session.flush()
        assert dml(statements) == [(INSERT_USER, ("dee", None)), (UPDATE_ORDER_USER, [(4, 1)])]
        assert order.user_id == dee.id == 4
        assert db.rows("SELECT user_id FROM orders WHERE id = 1") == [(4,)]

    def test_setting_the_column_by_hand_drops_a_stale_reference(self, db, session):
        order = session.get(Order, 1)
        ann, bob = order.user, session.get(User, 2)
        assert ann is session.get(User, 1)
        order.user_id = 2
        with capture_sql() as statements:
            assert order.user is bob
        assert statements == []  # bob is in the identity map
        with capture_sql() as statements:
            session.flush()
        assert dml(statements) == [(UPDATE_ORDER_USER, [(2, 1)])]
        assert db.rows("SELECT user_id FROM orders WHERE id = 1") == [(2,)]

    def test_setting_the_column_by_hand_loads_the_new_target_on_access(self, session):
        order = session.get(Order, 1)
        assert order.user.name == "ann"
        order.user_id = 3
        with capture_sql() as statements:
            assert order.user.name == "cy"
        assert folded(statements) == [  # the load autoflushes first, as every query does
            ('SAVEPOINT "uow_flush"', ()),
            (UPDATE_ORDER_USER, [(3, 1)]),
            ('RELEASE "uow_flush"', ()),
            (SELECT_USER, (3,)),
        ]


# -- loading -------------------------------------------------------------------------------------

class LinkBase(uow.Entity, abstract=True):
    pass


class Post(LinkBase, table="posts"):
    id: int = uow.Column(primary_key=True)
    title: str


class Tag(LinkBase, table="tags"):
    id: int = uow.Column(primary_key=True)
    name: str


class PostTag(LinkBase, table="post_tags"):
    """An association row: its key is two foreign keys, filled from the parents' keys."""

    post_id: int = uow.Column(primary_key=True, references=Post)
    tag_id: int = uow.Column(primary_key=True, references=Tag)
    post = uow.Reference("post_id")
    tag = uow.Reference("tag_id")


@pytest.fixture(params=["memory", "file"])
def links(request, tmp_path):
    path = str(tmp_path / "links.db") if request.param == "file" else ":memory:"
    connection = uow.connect(path)
    uow.create_all(connection, [Post, Tag, PostTag])
    yield connection, path
    connection.close()


def test_association_rows_keyed_by_the_new_keys_of_pending_parents_are_inserted_in_one_flush(links):
    connection, path = links
    session = Session(connection)
    post, red, blue = Post(title="p"), Tag(name="red"), Tag(name="blue")
    first, second = PostTag(post=post, tag=red), PostTag(post=post, tag=blue)
    session.add_all([first, second])
    session.commit()
    assert (first.post_id, first.tag_id, second.post_id, second.tag_id) == (1, 1, 1, 2)
    assert session.identity_key(instance=first) == (PostTag, (1, 1))
    assert session.get(PostTag, (1, 2)) is second
    read = connection if path == ":memory:" else sqlite3.connect(path)
    assert read.execute("SELECT post_id, tag_id FROM post_tags ORDER BY tag_id").fetchall() == [(1, 1), (1, 2)]
    if read is not connection:
        read.close()
    session.close()


def test_two_association_rows_under_the_same_pending_parents_are_refused_before_any_sql(links):
    connection, _ = links
    session = Session(connection)
    post, red = Post(title="p"), Tag(name="red")
    session.add_all([PostTag(post=post, tag=red), PostTag(post=post, tag=red)])
    with capture_sql() as statements, pytest.raises(errors.DuplicateIdentityError) as caught:
        session.flush()
    assert statements == []
    assert "both claim the identity PostTag(<id of Post(new #2)>, <id of Tag(new #3)>)" in str(caught.value)
    assert session.is_active  # refused before the flush began: nothing to roll back
    session.close()


class TestLazyLoading:
    def test_a_reference_loads_on_first_access_only(self, session):
        order = session.get(Order, 1)
        with capture_sql() as statements:
            user = order.user
            again = order.user
        assert folded(statements) == [(SELECT_USER, (1,))]
        assert user is again
        with capture_sql() as statements:
            assert session.get(User, 1) is user
        assert statements == []

    def test_a_reference_whose_target_is_held_runs_no_sql(self, session):
        ann = session.get(User, 1)
        order = session.get(Order, 2)
        with capture_sql() as statements:
            assert order.user is ann
        assert statements == []

    def test_a_collection_loads_once_through_the_identity_map(self, session):
        held = session.get(Order, 2)
        ann = session.get(User, 1)
        with capture_sql() as statements:
            orders = ann.orders
            again = ann.orders
        assert folded(statements) == [(SELECT_ORDERS_OF, (1,))]
        assert orders is again
        assert [order.id for order in orders] == [1, 2]
        assert orders[1] is held

    def test_a_loaded_row_never_overwrites_unflushed_changes(self, session):
        first = session.get(Order, 1)
        ann = session.get(User, 1)
        with session.no_autoflush:
            first.total = 99
            assert ann.orders[0] is first
        assert first.total == 99
        assert session.dirty_fields(first) == ["total"]

    def test_a_detached_object_cannot_load_its_collection(self, session):
        ann = session.get(User, 1)
        session.expunge(ann)
        with pytest.raises(errors.DetachedInstanceError, match="User.orders"):
            ann.orders

    def test_a_reference_whose_foreign_key_was_expired_reloads_the_key_first(self, session):
        """An expired foreign key is unknown, not NULL: reading the reference loads the row first."""
        order = session.get(Order, 1)
        ann = session.get(User, 1)
        session.expire(order)
        with capture_sql() as statements:
            assert order.user is ann
        assert folded(statements) == [(SELECT_ORDER, (1,))]
        assert order.user_id == 1 and order.total == 10

    @pytest.mark.parametrize("how", ["expire", "expire_on_commit", "rollback"])
    def test_a_reference_reads_its_target_after_every_kind_of_expiry(self, db, how):
        session = Session(db.conn, expire_on_commit=how == "expire_on_commit")
        try:
            if how == "rollback":
                session.get(User, 3).name = "cyd"
                session.flush()
            order = session.get(Order, 3)
            if how == "expire":
                session.expire(order)
            elif how == "expire_on_commit":
                session.commit()
            else:
                session.rollback()  # order was loaded after the flush wrote: it is expired
            assert "user_id" not in order.__dict__
            assert order.user is session.get(User, 2)
        finally:
            session.close()

    def test_a_detached_object_with_an_expired_foreign_key_cannot_load_its_reference(self, session):
        order = session.get(Order, 1)
        session.expire(order, ["user_id"])
        session.expunge(order)
        with pytest.raises(errors.DetachedInstanceError,
                           match=r"Order.user of Order\(id=1\) needs its foreign key \(user_id\), which was expired"):
            order.user


class TestEagerLoading:
    def count_selects(self, statements):
        return sum(1 for statement in statements if statement.sql.startswith("SELECT"))

    def test_filter_with_load_runs_one_select_per_relationship(self, db):
        db.run("INSERT INTO orders (user_id, total) VALUES (3, 40), (3, 50), (2, 60)")
        session = Session(db.conn)
        with capture_sql() as statements:
            users = session.filter(User, load=["orders"])
            totals = [[order.total for order in user.orders] for user in users]
        assert folded(statements) == [
            ("BEGIN DEFERRED", ()),
            ('SELECT "users"."id", "users"."name", "users"."email" FROM "users" ORDER BY "users"."id"', ()),
            ('SELECT "orders"."id", "orders"."user_id", "orders"."total" FROM "orders" '
             'WHERE "orders"."user_id" IN (?, ?, ?) ORDER BY "orders"."id"', (1, 2, 3)),
        ]
        assert totals == [[10, 20], [30, 60], [40, 50]]
        session.close()

    def test_filter_with_load_and_a_condition(self, session):
        with capture_sql() as statements:
            (bob,) = session.filter(User, name="bob", load=["orders"])
            assert [order.id for order in bob.orders] == [3]
        assert self.count_selects(statements) == 2

    def test_all_with_load_of_a_reference(self, session):
        with capture_sql() as statements:
            orders = session.all(Order, load=["user"])
            names = [order.user.name for order in orders]
        assert names == ["ann", "ann", "bob"]
        assert self.count_selects(statements) == 2
        assert folded(statements)[-1] == (
            'SELECT "users"."id", "users"."name", "users"."email" FROM "users" '
            'WHERE "users"."id" IN (?, ?) ORDER BY "users"."id"', (1, 2))
        assert orders[0].user is orders[1].user is session.get(User, 1)

    def test_two_relationships_are_two_selects(self, db, session):
        db.run("INSERT INTO messages (sender_id, recipient_id, text) VALUES (1, 2, 'hi'), (2, 3, 'yo')")
        with capture_sql() as statements:
            messages = session.all(Message, load=["sender", "recipient"])
            pairs = [(message.sender.name, message.recipient.name) for message in messages]
        assert pairs == [("ann", "bob"), ("bob", "cy")]
        assert self.count_selects(statements) == 3  # messages, senders, and the recipients not yet held
        assert folded(statements)[-1] == (
            'SELECT "users"."id", "users"."name", "users"."email" FROM "users" '
            'WHERE "users"."id" IN (?) ORDER BY "users"."id"', (3,))

    def test_load_related_is_one_select_for_many_objects(self, db):
        db.run("INSERT INTO users (name) VALUES " + ", ".join(f"('extra{n}')" for n in range(20)))
        session = Session(db.conn)
        users = session.all(User)
        assert len(users) == 23
        with capture_sql() as statements:
            session.load_related(users, "orders")
            counts = [len(user.orders) for user in users]
        assert self.count_selects(statements) == 1
        assert len(statements) == 1
        assert counts[:3] == [2, 1, 0] and sum(counts) == 3
        session.close()

    def test_load_related_skips_objects_already_loaded(self, session):
        ann, bob = session.get(User, 1), session.get(User, 2)
        ann.orders
        with capture_sql() as statements:
            session.load_related([ann, bob], "orders")
        assert folded(statements) == [
            ('SELECT "orders"."id", "orders"."user_id", "orders"."total" FROM "orders" '
             'WHERE "orders"."user_id" IN (?) ORDER BY "orders"."id"', (2,)),
        ]

    def test_load_related_of_a_reference_to_held_objects_runs_no_sql(self, session):
        users = session.all(User)
        orders = session.all(Order)
        with capture_sql() as statements:
            session.load_related(orders, "user")
            assert [order.user for order in orders] == [users[0], users[0], users[1]]
        assert statements == []

    def test_load_names_must_be_relationships(self, session):
        with pytest.raises(errors.UnknownFieldError, match="orders"):
            session.filter(User, load=["name"])

    def test_load_takes_the_relationship_itself_but_only_one_of_the_class_loaded(self, session):
        (ann,) = session.filter(User, name="ann", load=[User.orders])
        with capture_sql() as statements:
            assert [order.total for order in ann.orders] == [10, 20]
        assert statements == []
        with uow.capture_sql() as statements, pytest.raises(errors.UnknownFieldError) as raised:
            session.filter(User, load=[Order.user])
        assert statements == []
        assert str(raised.value).startswith("User has no relationship Reference(Order.user) to load")

    def test_load_on_a_class_without_relationships_says_it_has_none(self, session):
        class FreshBase(uow.Entity, abstract=True):
            pass

        class Tag(FreshBase, table="tags"):
            id: int = uow.Column(primary_key=True)
            label: str

        with capture_sql() as statements, pytest.raises(errors.UnknownFieldError) as raised:
            session.filter(Tag, load=["owner"])
        assert statements == []
        assert str(raised.value) == "Tag has no relationship 'owner' to load; its relationships are (none)"

    def test_filter_in_a_closed_session_is_refused_naming_filter(self, session):
        session.close()
        with capture_sql() as statements, pytest.raises(errors.SessionClosedError) as raised:
            session.filter(User, name="ann", load=["orders"])
        assert statements == []
        assert str(raised.value).startswith("filter(): this session was closed")


# -- cascades ------------------------------------------------------------------------------------

class TestSaveUpdateCascade:
    def test_adding_a_parent_adds_its_children_and_grandchildren(self, session):
        root = Node(name="root")
        child = Node(name="child", parent=root)
        grandchild = Node(name="grandchild", parent=child)
        session.add(root)
        assert session.new == {root, child, grandchild}

    def test_adding_a_child_adds_the_parents_it_references(self, session):
        root = Node(name="root")
        child = Node(name="child", parent=root)
        grandchild = Node(name="grandchild", parent=child)
        session.add(grandchild)
        assert session.new == {root, child, grandchild}
        assert all(state_of(node) is ObjectState.PENDING for node in (root, child, grandchild))

    def test_adding_an_order_adds_its_user(self, db, session):
        ann = User(name="ann2")
        order = Order(total=1, user=ann)
        session.add(order)
        assert state_of(ann) is ObjectState.PENDING
        session.commit()
        assert db.committed("SELECT u.name FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = ?",
                            (order.id,)) == [("ann2",)]

    def test_appending_to_a_persistent_parents_collection_adds_the_child(self, db, session):
        ann = session.get(User, 1)
        order = Order(total=5)
        ann.orders.append(order)
        assert order.user is ann
        assert state_of(order) is ObjectState.PENDING, "appended to a persistent user's orders, but not added"
        with capture_sql() as statements:
            session.commit()
        assert dml(statements) == [(INSERT_ORDER, (1, 5))]
        assert db.committed("SELECT user_id, total FROM orders WHERE id = 4") == [(1, 5)]

    def test_appending_to_a_pending_parents_collection_adds_the_child(self, session):
        dee = User(name="dee")
        session.add(dee)
        order = Order(total=5)
        dee.orders.append(order)
        assert order.user is dee
        assert state_of(order) is ObjectState.PENDING, "appended to a pending user's orders, but not added"
        assert session.new == {dee, order}

    def test_appending_a_detached_object_reattaches_it_and_the_flush_moves_it(self, db, session):
        earlier = Session(db.conn)
        order = earlier.get(Order, 3)
        earlier.commit()
        earlier.close()
        ann = session.get(User, 1)
        ann.orders.append(order)
        assert state_of(order) is ObjectState.PERSISTENT, "appended to a persistent user's orders, but not re-attached"
        assert order.user_id == 1
        with capture_sql() as statements:
            session.flush()
        assert dml(statements) == [(UPDATE_ORDER_USER, [(1, 3)])]
        assert db.rows("SELECT id, user_id FROM orders ORDER BY id") == [(1, 1), (2, 1), (3, 1)]

    def test_a_child_appended_while_the_parent_was_detached_is_inserted_when_the_parent_is_added_back(self, db, session):
        ann = session.get(User, 1)
        first, second = ann.orders
        session.commit()
        session.expunge(ann)  # cascades to the loaded orders
        new = Order(total=7)
        ann.orders.append(new)
        assert new.user is ann
        session.add(ann)
        assert state_of(new) is ObjectState.PENDING, "added a parent whose detached list held a new child, but not the child"
        assert [state_of(order) for order in (first, second)] == [ObjectState.PERSISTENT] * 2
        with capture_sql() as statements:
            session.commit()
        assert writes(statements) == [(INSERT_ORDER, (1, 7))]
        assert db.committed("SELECT id, user_id, total FROM orders ORDER BY id") == [
            (1, 1, 10), (2, 1, 20), (3, 2, 30), (4, 1, 7)]

    def test_a_reference_set_while_detached_is_followed_when_the_object_is_added_back(self, db, session):
        order = session.get(Order, 3)
        session.commit()
        session.expunge(order)
        dee = User(name="dee")
        order.user = dee
        session.add(order)
        assert state_of(dee) is ObjectState.PENDING
        session.commit()
        assert db.committed("SELECT o.id, u.name FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = 3") == [
            (3, "dee")]

    def test_adding_a_persistent_parent_again_re_attaches_an_expunged_child_it_still_holds(self, db, session):
        ann = session.get(User, 1)
        first, second = ann.orders
        session.expunge(first)  # ann.orders still lists it
        first.total = 99
        session.add(ann)
        assert state_of(first) is ObjectState.PERSISTENT, "ann.orders holds a detached order, but add(ann) left it out"
        session.commit()
        assert db.committed("SELECT id, total FROM orders WHERE user_id = 1 ORDER BY id") == [(1, 99), (2, 20)]

    def test_a_reference_without_save_update_leaves_its_target_out_of_the_session(self, session):
        class FreshBase(uow.Entity, abstract=True):
            pass

        class Owner(FreshBase, table="owners"):
            id: int = uow.Column(primary_key=True)
            name: str

        class Pet(FreshBase, table="pets"):
            id: int = uow.Column(primary_key=True)
            owner_id: int | None = uow.Column(references="Owner")
            owner = uow.Reference("owner_id", cascade="")

        pet = Pet()
        session.add(pet)
        owner = Owner(name="new")
        pet.owner = owner
        assert pet.owner is owner
        assert state_of(owner) is ObjectState.TRANSIENT
        assert session.new == {pet}


class TestDeleteCascade:
    def test_deleting_a_parent_deletes_its_loaded_children(self, db, session):
        ann = session.get(User, 1)
        first, second = ann.orders
        session.delete(ann)
        assert session.deleted == {ann, first, second}
        with capture_sql() as statements:
            session.flush()
        assert folded(statements) == [
            ('SAVEPOINT "uow_flush"', ()),
            (DELETE_ORDERS, [(1,), (2,)]),
            (DELETE_USERS, [(1,)]),
            ('RELEASE "uow_flush"', ()),
        ]
        assert state_of(first) is ObjectState.DELETED
        assert db.rows("SELECT id FROM orders") == [(3,)]

    def test_deleting_a_parent_deletes_children_that_were_never_loaded(self, db, session):
        ann = session.get(User, 1)
        with capture_sql() as statements:
            session.delete(ann)
        assert folded(statements) == [(SELECT_ORDERS_OF, (1,))]  # the cascade must know the children
        assert len(session.deleted) == 3
        with capture_sql() as statements:
            session.commit()
        assert folded(statements) == [
            ('SAVEPOINT "uow_flush"', ()),
            (DELETE_ORDERS, [(1,), (2,)]),
            (DELETE_USERS, [(1,)]),
            ('RELEASE "uow_flush"', ()),
            ("COMMIT", ()),
        ]
        assert db.committed("SELECT id FROM users ORDER BY id") == [(2,), (3,)]
        assert db.committed("SELECT id, user_id FROM orders") == [(3, 2)]
        assert state_of(ann) is ObjectState.DETACHED

    def test_deleting_the_root_of_an_unloaded_tree_deletes_every_level(self, db, session):
        db.run("""
            INSERT INTO nodes (id, name, parent_id) VALUES (1, 'root', NULL), (2, 'a', 1), (3, 'b', 1);
            INSERT INTO nodes (id, name, parent_id) VALUES (4, 'a1', 2), (5, 'a1x', 4)
        """)
        root = session.get(Node, 1)
        session.delete(root)
        assert len(session.deleted) == 5
        with capture_sql() as statements:
            session.commit()
        deletes = [params for sql, params in folded(statements) if sql.startswith("DELETE")]
        assert deletes == [[(3,), (5,)], [(4,)], [(2,)], [(1,)]]  # leaves first; one batch per level
        assert db.committed("SELECT count(*) FROM nodes") == [(0,)]

    def test_a_child_removed_from_its_collection_is_deleted_as_an_orphan(self, db, session):
        ann = session.get(User, 1)
        first, second = ann.orders
        ann.orders.remove(first)
        assert session.deleted == {first}
        with capture_sql() as statements:
            session.flush()
        assert dml(statements) == [(DELETE_ORDERS, [(1,)])]
        assert state_of(first) is ObjectState.DELETED
        assert state_of(second) is ObjectState.PERSISTENT
        assert db.rows("SELECT id FROM orders ORDER BY id") == [(2,), (3,)]

    def test_pop_del_and_clear_orphan_children_too(self, db, session):
        ann, bob = session.get(User, 1), session.get(User, 2)
        session.load_related([ann, bob], "orders")  # loading later would autoflush the first deletes
        popped = ann.orders.pop()
        del ann.orders[0]
        bob.orders.clear()
        assert popped.id == 2
        assert len(session.deleted) == 3
        with capture_sql() as statements:
            session.flush()
        assert dml(statements) == [(DELETE_ORDERS, [(1,), (2,), (3,)])]  # in the order they were loaded
        assert db.rows("SELECT count(*) FROM orders") == [(0,)]

    def test_an_orphaned_pending_child_is_simply_not_inserted(self, db, session):
        dee = User(name="dee")
        order = Order(total=1, user=dee)
        session.add(dee)
        dee.orders.remove(order)
        assert state_of(order) is ObjectState.TRANSIENT
        with capture_sql() as statements:
            session.flush()
        assert dml(statements) == [(INSERT_USER, ("dee", None))]
        assert db.rows("SELECT count(*) FROM orders") == [(3,)]

    def test_an_expunged_child_removed_from_its_collection_is_not_deleted(self, db, session):
        """delete-orphan is the session's rule, and an expunged object is no longer the session's."""
        ann = session.get(User, 1)
        first, second = ann.orders
        session.expunge(first)
        ann.orders.remove(first)
        assert first.user is None
        assert state_of(first) is ObjectState.DETACHED
        assert session.deleted == frozenset()
        with capture_sql() as statements:
            session.flush()
        assert dml(statements) == []
        assert db.rows("SELECT id, user_id FROM orders ORDER BY id") == [(1, 1), (2, 1), (3, 2)]

    def test_deleting_a_parent_with_a_composite_key_finds_its_children_by_every_key_column(self, db, session):
        class FreshBase(uow.Entity, abstract=True):
            pass

        class Shelf(FreshBase, table="shelves"):
            aisle: int = uow.Column(primary_key=True)
            slot: int = uow.Column(primary_key=True)
            boxes = uow.Collection("Box", "shelf", cascade="all")

        class Box(FreshBase, table="boxes", foreign_keys=[uow.ForeignKey(("shelf_aisle", "shelf_slot"), "Shelf")]):
            id: int = uow.Column(primary_key=True)
            shelf_aisle: int
            shelf_slot: int
            shelf = uow.Reference(("shelf_aisle", "shelf_slot"))

        uow.create_all(db.conn, [Shelf, Box])
        db.run("""
            INSERT INTO shelves (aisle, slot) VALUES (1, 1), (1, 2), (2, 2);
            INSERT INTO boxes (shelf_aisle, shelf_slot) VALUES (1, 2), (1, 1), (2, 2), (1, 2)
        """)
        shelf = session.get(Shelf, (1, 2))
        with capture_sql() as statements:
            session.delete(shelf)
        assert folded(statements) == [(
            'SELECT "boxes"."id", "boxes"."shelf_aisle", "boxes"."shelf_slot" FROM "boxes" '
            'WHERE "boxes"."shelf_aisle" = ? AND "boxes"."shelf_slot" = ? ORDER BY "boxes"."id"', (1, 2))]
        assert sorted(box.id for box in session.deleted if isinstance(box, Box)) == [1, 4]
        session.commit()
        assert db.committed("SELECT id FROM boxes ORDER BY id") == [(2,), (3,)]
        assert db.committed("SELECT aisle, slot FROM shelves ORDER BY aisle, slot") == [(1, 1), (2, 2)]

    def test_deleting_a_parent_deletes_the_children_of_every_collection_that_cascades_delete(self, db, session):
        class FreshBase(uow.Entity, abstract=True):
            pass

        class Album(FreshBase, table="albums"):
            id: int = uow.Column(primary_key=True)
            title: str
            tracks = uow.Collection("Track", "album", cascade="all")
            credits = uow.Collection("Credit", "album", cascade="all")

        class Track(FreshBase, table="tracks"):
            id: int = uow.Column(primary_key=True)
            album_id: int = uow.Column(references="Album")
            album = uow.Reference("album_id")

        class Credit(FreshBase, table="credits"):
            id: int = uow.Column(primary_key=True)
            album_id: int = uow.Column(references="Album")
            album = uow.Reference("album_id")

        uow.create_all(db.conn, [Album, Track, Credit])
        db.run("""
            INSERT INTO albums (title) VALUES ('a'), ('b');
            INSERT INTO tracks (album_id) VALUES (1), (1), (2);
            INSERT INTO credits (album_id) VALUES (1), (2)
        """)
        album = session.get(Album, 1)
        session.delete(album)
        deleted = sorted((type(obj).__name__, obj.id) for obj in session.deleted)
        assert deleted == [("Album", 1), ("Credit", 1), ("Track", 1), ("Track", 2)]
        session.commit()
        assert db.committed("SELECT id, album_id FROM tracks") == [(3, 2)]
        assert db.committed("SELECT id, album_id FROM credits") == [(2, 2)]
        assert db.committed("SELECT id FROM albums") == [(2,)]


    def test_adding_back_a_deleted_parent_takes_back_the_delete_of_its_children(self, db, session):
        ann = session.get(User, 1)
        first, second = ann.orders
        new = Order(total=3)
        ann.orders.append(new)
        session.delete(ann)
        assert session.deleted == {ann, first, second} and state_of(new) is ObjectState.TRANSIENT
        session.add(ann)
        assert session.deleted == frozenset()
        assert session.new == {new}
        assert same_objects(ann.orders, [first, second, new])
        with capture_sql() as statements:
            session.commit()
        assert writes(statements) == [(INSERT_ORDER, (1, 3))]
        assert db.committed("SELECT id, user_id FROM orders ORDER BY id") == [(1, 1), (2, 1), (3, 2), (4, 1)]

    def test_a_child_deleted_on_its_own_stays_deleted_when_the_parent_is_added_back(self, db, session):
        ann = session.get(User, 1)
        first, second = ann.orders
        session.delete(first)
        session.delete(ann)
        session.add(ann)
        assert session.deleted == {first}
        session.commit()
        assert db.committed("SELECT id FROM orders ORDER BY id") == [(2,), (3,)]

    def test_expunging_a_deleted_parent_takes_back_the_delete_of_its_children(self, db, session):
        ann = session.get(User, 1)
        first, second = ann.orders
        new = Order(total=3)
        ann.orders.append(new)
        session.delete(ann)
        session.expunge(ann)
        # As after add(): the cancelled insert is pending again, then the expunge cascade takes
        # every child along (pending becomes transient, persistent detached).
        assert same_objects(ann.orders, [first, second, new])
        assert [state_of(obj) for obj in (ann, first, second)] == [ObjectState.DETACHED] * 3
        assert state_of(new) is ObjectState.TRANSIENT
        assert session.deleted == frozenset() and session.new == frozenset()
        with capture_sql() as statements:
            session.commit()
        assert writes(statements) == []
        assert db.committed("SELECT id, user_id FROM orders ORDER BY id") == [(1, 1), (2, 1), (3, 2)]
        session.add(ann)  # the parent's collection still holds the new order: it is inserted now
        session.commit()
        assert db.committed("SELECT id, user_id FROM orders ORDER BY id") == [(1, 1), (2, 1), (3, 2), (4, 1)]


class TestExpungeAndRefreshCascades:
    def test_expunging_a_parent_expunges_its_loaded_children(self, session):
        ann = session.get(User, 1)
        first, second = ann.orders
        other = session.get(Order, 3)
        session.expunge(ann)
        assert [state_of(obj) for obj in (ann, first, second)] == [ObjectState.DETACHED] * 3
        assert state_of(other) is ObjectState.PERSISTENT
        assert set(session.identity_map.values()) == {other}

    def test_expunging_a_child_leaves_its_parent(self, session):
        order = session.get(Order, 1)
        user = order.user
        session.expunge(order)
        assert state_of(order) is ObjectState.DETACHED
        assert state_of(user) is ObjectState.PERSISTENT

    def test_refreshing_a_parent_refreshes_its_loaded_children(self, session):
        ann = session.get(User, 1)
        first, second = ann.orders
        ann.name = "changed"
        first.total = 99
        with capture_sql() as statements:
            session.refresh(ann)
        assert folded(statements) == [(SELECT_USER, (1,)), (SELECT_ORDER, (1,)), (SELECT_ORDER, (2,))]
        assert (ann.name, first.total) == ("ann", 10)
        assert session.dirty == frozenset()

    def test_refreshing_a_parent_does_not_load_its_collection(self, session):
        ann = session.get(User, 1)
        with capture_sql() as statements:
            session.refresh(ann)
        assert folded(statements) == [(SELECT_USER, (1,))]

    def test_cascade_all_is_save_update_delete_expunge_and_refresh_but_not_delete_orphan(self, db, session):
        class FreshBase(uow.Entity, abstract=True):
            pass

        class Crate(FreshBase, table="crates"):
            id: int = uow.Column(primary_key=True)
            label: str
            bottles = uow.Collection("Bottle", "crate", cascade="all")

        class Bottle(FreshBase, table="bottles"):
            id: int = uow.Column(primary_key=True)
            crate_id: int | None = uow.Column(references="Crate")
            crate = uow.Reference("crate_id")
            volume: int = 75

        uow.create_all(db.conn, [Crate, Bottle])
        db.run("""
            INSERT INTO crates (label) VALUES ('c1');
            INSERT INTO bottles (crate_id, volume) VALUES (1, 75), (1, 75)
        """)
        crate = session.get(Crate, 1)
        held = list(crate.bottles)
        session.expunge(crate)  # expunge
        assert [state_of(obj) for obj in [crate, *held]] == [ObjectState.DETACHED] * 3

        crate = session.get(Crate, 1)
        first, second = crate.bottles
        first.volume = 1
        session.refresh(crate)  # refresh
        assert first.volume == 75
        crate.bottles.remove(second)  # no delete-orphan: the bottle only leaves the crate
        assert state_of(second) is ObjectState.PERSISTENT
        added = Bottle()
        crate.bottles.append(added)  # save-update
        assert state_of(added) is ObjectState.PENDING
        session.delete(crate)  # delete
        assert session.deleted == {crate, first}
        assert state_of(added) is ObjectState.TRANSIENT  # its insert is cancelled with its parent
        session.commit()
        assert db.committed("SELECT id, crate_id FROM bottles ORDER BY id") == [(2, None)]
        assert db.committed("SELECT count(*) FROM crates") == [(0,)]


class TestDeletingParentsWithoutDeleteCascade:
    def test_a_loaded_not_null_child_is_refused_before_any_sql(self, db, session):
        ada = session.get(Author, 1)
        b1, b2 = ada.books
        session.delete(ada)
        with capture_sql() as statements:
            with pytest.raises(errors.InvalidStateError) as caught:
                session.flush()
        assert statements == []
        message = str(caught.value)
        assert "Author(id=1)" in message
        assert "Book(id=1).author_id" in message
        assert "books.author_id references authors.id" in message
        assert "cascade='delete'" in message
        assert session.deleted == {ada}
        assert b1.author_id == 1
        assert db.rows("SELECT id, author_id FROM books ORDER BY id") == [(1, 1), (2, 1)]
        session.delete(b1)
        session.delete(b2)
        session.commit()  # the session is still usable, and the fix works
        assert db.committed("SELECT count(*) FROM books") == [(0,)]
        assert db.committed("SELECT id FROM authors") == [(2,)]

    def test_a_held_not_null_child_is_refused_even_when_the_collection_is_not_loaded(self, session):
        book = session.get(Book, 2)
        ada = session.get(Author, 1)
        session.delete(ada)
        with capture_sql() as statements:
            with pytest.raises(errors.InvalidStateError, match=r"Book\(id=2\)\.author_id"):
                session.flush()
        assert statements == []
        assert book.author_id == 1

    def test_an_unloaded_not_null_child_is_refused_with_a_uow_error_before_any_write(self, db, session):
        ada = session.get(Author, 1)
        session.delete(ada)
        with capture_sql() as statements:
            with pytest.raises(errors.UowError) as caught:
                session.flush()
        written = [s.sql for s in statements if not s.sql.startswith("SELECT")]
        assert written == [], "the flush started writing before it found the books of Author(id=1)"
        assert isinstance(caught.value, errors.InvalidStateError), caught.value
        assert "Book(id=1)" in str(caught.value)
        assert db.rows("SELECT count(*) FROM authors") == [(2,)]

    def test_loaded_nullable_children_are_cleared_when_their_parent_is_deleted(self, db, session):
        team = session.get(Team, 1)
        p1, p2 = team.players
        session.delete(team)
        assert (p1.team_id, p2.team_id) == (None, None)
        assert p1.team is None
        with capture_sql() as statements:
            session.commit()
        assert folded(statements) == [
            ('SAVEPOINT "uow_flush"', ()),
            ('UPDATE "players" SET "team_id" = ? WHERE "players"."id" = ?', [(None, 1), (None, 2)]),
            ('DELETE FROM "teams" WHERE "teams"."id" = ?', [(1,)]),
            ('RELEASE "uow_flush"', ()),
            ("COMMIT", ()),
        ]
        assert db.committed("SELECT id, team_id FROM players ORDER BY id") == [(1, None), (2, None), (3, None)]
        assert db.committed("SELECT count(*) FROM teams") == [(0,)]
        assert state_of(p1) is ObjectState.PERSISTENT
        assert session.dirty_fields(p1) == []

    def test_unloaded_nullable_children_are_cleared_when_their_parent_is_deleted(self, db, session):
        team = session.get(Team, 1)
        session.delete(team)
        session.commit()
        assert db.committed("SELECT id, team_id FROM players ORDER BY id") == [(1, None), (2, None), (3, None)]
        assert db.committed("SELECT count(*) FROM teams") == [(0,)]

    def test_deleting_a_parent_after_one_of_its_children_clears_the_other_children(self, db, session):
        team = session.get(Team, 1)
        p1, p2 = team.players
        session.delete(p1)
        session.delete(team)
        assert p2.team_id is None
        assert session.deleted == {p1, team}
        session.commit()
        assert db.committed("SELECT id, team_id FROM players ORDER BY id") == [(2, None), (3, None)]
        assert db.committed("SELECT count(*) FROM teams") == [(0,)]


    def test_adding_back_a_deleted_parent_links_its_cleared_children_again(self, db, session):
        team = session.get(Team, 1)
        session.delete(team)  # clears p1 and p2, loaded or not
        p1 = session.get(Player, 1)
        assert p1.team_id is None
        p2 = session.get(Player, 2)
        p2.team = None  # cleared already; the user's own choice now (the same value)
        session.add(team)
        assert (p1.team_id, p2.team_id) == (1, 1)
        assert p1.team is team
        with capture_sql() as statements:
            session.commit()
        assert writes(statements) == []
        assert db.committed("SELECT id, team_id FROM players ORDER BY id") == [(1, 1), (2, 1), (3, None)]

    def test_a_cleared_child_pointed_elsewhere_keeps_its_new_parent_when_the_old_one_is_added_back(self, db, session):
        team = session.get(Team, 1)
        session.delete(team)
        blues = Team(name="blues")
        p1 = session.get(Player, 1)
        p1.team = blues
        session.add(team)
        assert p1.team is blues
        session.commit()
        assert db.committed("SELECT id, team_id FROM players ORDER BY id") == [(1, 2), (2, 1), (3, None)]

    def test_expunging_a_deleted_parent_links_its_cleared_children_again(self, db, session):
        """expunge() takes the delete back as add() does: before, p1 and p2 stayed in the session
        with team_id cleared, and the commit wrote NULL under a team that was never deleted."""
        team = session.get(Team, 1)
        p1, p2 = team.players
        session.delete(team)
        session.expunge(team)
        assert (p1.team_id, p2.team_id) == (1, 1)
        assert p1.team is team and p2.team is team
        # The default cascade includes expunge: the children linked again leave with their parent.
        assert [state_of(obj) for obj in (team, p1, p2)] == [ObjectState.DETACHED] * 3
        assert session.dirty == frozenset() and session.deleted == frozenset()
        with capture_sql() as statements:
            session.commit()
        assert writes(statements) == []
        assert db.committed("SELECT id, team_id FROM players ORDER BY id") == [(1, 1), (2, 1), (3, None)]
        assert db.committed("SELECT id, name FROM teams") == [(1, "reds")]

    def test_expunging_a_deleted_parent_leaves_a_child_pointed_elsewhere_with_its_new_parent(self, db, session):
        team = session.get(Team, 1)
        p1, p2 = team.players
        session.delete(team)
        blues = Team(name="blues")
        p1.team = blues
        session.expunge(team)
        assert p1.team is blues and p2.team is team
        assert state_of(p1) is ObjectState.PERSISTENT
        session.commit()
        assert db.committed("SELECT id, team_id FROM players ORDER BY id") == [(1, 2), (2, 1), (3, None)]

    def test_expunge_all_after_a_delete_leaves_no_detached_child_with_its_reference_cleared(self, db, session):
        """Re-attached later, such a child wrote NULL under a team whose delete was never flushed."""
        team = session.get(Team, 1)
        p1, p2 = team.players
        session.delete(team)
        session.expunge_all()
        assert (p1.team_id, p2.team_id) == (1, 1)
        assert [state_of(obj) for obj in (team, p1, p2)] == [ObjectState.DETACHED] * 3
        session.add(p1)
        with capture_sql() as statements:
            session.commit()
        assert writes(statements) == []
        assert db.committed("SELECT id, team_id FROM players ORDER BY id") == [(1, 1), (2, 1), (3, None)]


# -- natural keys that change ---------------------------------------------------------------------

class TestChangingANaturalKey:
    UPDATE_CODE = 'UPDATE "countries" SET "code" = ? WHERE "countries"."code" = ?'

    def test_children_follow_in_the_database_and_in_memory(self, db, session):
        fr = session.get(Country, "fr")
        paris, lyon = fr.cities
        berlin = session.get(City, 3)
        fr.code = "fx"
        with capture_sql() as statements:
            session.flush()
        assert folded(statements) == [
            ('SAVEPOINT "uow_flush"', ()),
            (self.UPDATE_CODE, [("fx", "fr")]),
            ('RELEASE "uow_flush"', ()),
        ]
        assert db.rows("SELECT id, country_code FROM cities ORDER BY id") == [(1, "fx"), (2, "fx"), (3, "de")]
        assert (paris.country_code, lyon.country_code, berlin.country_code) == ("fx", "fx", "de")
        assert session.dirty_fields(paris) == []  # the snapshot moved too
        assert session.original_value(paris, "country_code") == "fx"
        assert session.dirty == frozenset()
        with capture_sql() as statements:
            session.flush()
            assert session.get(Country, "fx") is fr
        assert statements == []

    def test_children_that_were_never_loaded_follow_in_the_database(self, db, session):
        fr = session.get(Country, "fr")
        fr.code = "fx"
        session.commit()
        assert db.committed("SELECT name FROM cities WHERE country_code = 'fx' ORDER BY id") == [("Paris",), ("Lyon",)]
        assert [city.name for city in fr.cities] == ["Paris", "Lyon"]

    def test_a_new_child_of_a_rekeyed_parent_gets_the_new_key(self, db, session):
        fr = session.get(Country, "fr")
        fr.code = "fx"
        nice = City(name="Nice", country=fr)
        session.add(nice)
        with capture_sql() as statements:
            session.flush()
        assert dml(statements) == [
            (self.UPDATE_CODE, [("fx", "fr")]),
            ('INSERT INTO "cities" ("name", "country_code") VALUES (?, ?) RETURNING "id"', ("Nice", "fx")),
        ]
        assert nice.country_code == "fx"
        assert db.rows("SELECT country_code FROM cities WHERE name = 'Nice'") == [("fx",)]


class TestCachedReferencesFollowTheirColumns:
    """A reference caches the object it was read or set with only while its foreign-key columns
    hold that object's key: expire() and refresh() of the columns forget it, and a rollback gives
    back exactly the object the reference held (the conformance oracle found all three)."""

    def test_expire_discards_an_unflushed_reference_change_with_its_column(self, db, session):
        player = session.get(Player, 1)
        reds = session.get(Team, 1)
        blues = Team(name="blues")
        session.add(blues)
        session.flush()
        player.team = blues
        session.expire(player)
        assert player.team is reds  # it was blues: the cached object outlived the column it set
        assert player.team_id == 1
        with capture_sql() as statements:
            session.flush()
        assert dml(statements) == []

    def test_refresh_discards_an_unflushed_reference_change_with_its_column(self, db, session):
        player = session.get(Player, 1)
        reds = session.get(Team, 1)
        blues = Team(name="blues")
        session.add(blues)
        session.flush()
        player.team = blues
        session.refresh(player)
        assert player.team is reds
        assert blues.players == []
        assert player.team_id == 1

    def test_a_rollback_gives_back_the_object_a_reference_held(self, db, session):
        player = session.get(Player, 1)
        reds = player.team
        session.commit()
        session.delete(player)  # first touch in the new transaction, with nothing assigned
        session.rollback()
        session.expunge(reds)
        assert player.team is reds  # it loaded a second Team(id=1)

    def test_refresh_cascades_once_over_a_node_that_is_its_own_child(self, db, session):
        root = Node(name="root")
        session.add(root)
        root.children.append(root)
        session.flush()
        root.name = "changed"
        session.refresh(root)  # RecursionError: the refresh cascade went round the cycle forever
        assert root.name == "root"
        assert root.children == [root]

    def test_refresh_cascades_once_over_two_nodes_that_hold_each_other(self, db, session):
        left = Node(name="left")
        right = Node(name="right")
        left.children.append(right)
        right.children.append(left)
        session.add(left)
        session.flush()
        right.name = "changed"
        session.refresh(left)
        assert right.name == "right"
        assert db.rows("SELECT name, parent_id FROM nodes ORDER BY id") == [("left", 2), ("right", 1)]


def test_a_loaded_collection_survives_the_rollback_after_a_failed_flush(db, session):
    """A failed flush changes nothing, so the rollback it demands has nothing to undo in the
    collections read before it (the statements that ran before the failing one counted as a write,
    and the rollback dropped every loaded collection)."""
    reds = session.get(Team, 1)
    players = reds.players
    assert [player.name for player in players] == ["p1", "p2"]
    reds.name = "renamed"  # its UPDATE runs before the failing INSERT
    session.add(User(name="dup", email="a@x"))  # users.email is UNIQUE, and a@x is taken
    with pytest.raises(errors.FlushError):
        session.flush()
    session.rollback()
    assert reds.__dict__.get("players") is players  # no SELECT needed to read them again
    assert reds.name == "reds"


def test_adding_an_object_whose_reference_holds_a_deleted_object_of_this_session_adds_it(db, session):
    """The save-update cascade passes over objects of the session, one whose row this transaction
    deleted too (the check made before add() changes anything called it 'another session's')."""
    reds = session.get(Team, 1)
    for player in list(reds.players):
        session.delete(player)
    session.delete(reds)
    session.flush()
    newcomer = Player(name="new")
    newcomer.team = reds  # outside the session: only the objects change
    session.add(newcomer)
    assert state_of(newcomer) is ObjectState.PENDING
    assert state_of(reds) is ObjectState.DELETED
    with pytest.raises(errors.FlushError):
        session.flush()  # players.team_id = 1 references no team row any more


def test_an_add_whose_cascade_reaches_two_detached_copies_of_one_row_is_refused_changing_nothing(db, session):
    """Two detached copies of one row in one collection cannot both attach; the refusal used to come
    from the identity map part way through the cascade, after the parent and the first copy had
    joined the session (found by the whole-session oracle: add() raised, and changed the session)."""
    reds = session.get(Team, 1)
    first = session.get(Player, 1)
    assert first in reds.players  # loaded while reds is in the session
    session.expunge(first)
    second = session.get(Player, 1)
    session.expunge(second)
    session.expunge(reds)
    second.team = reds  # both copies are now in reds.players
    assert first in reds.players and second in reds.players
    with pytest.raises(errors.DuplicateIdentityError, match=r"both detached copies of the row Player\(1\)"):
        session.add(reds)
    assert dict(session.identity_map) == {} and not session.new
    assert state_of(reds) is ObjectState.DETACHED and state_of(first) is ObjectState.DETACHED
    assert state_of(second) is ObjectState.DETACHED


def test_add_all_of_two_detached_copies_of_one_row_is_refused_before_either_attaches(db, session):
    first = session.get(Player, 1)
    session.expunge(first)
    second = session.get(Player, 1)
    session.expunge(second)
    with pytest.raises(errors.DuplicateIdentityError, match="add_all"):
        session.add_all([first, second])
    assert dict(session.identity_map) == {}
    assert state_of(first) is ObjectState.DETACHED and state_of(second) is ObjectState.DETACHED
