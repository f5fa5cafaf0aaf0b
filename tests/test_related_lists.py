"""The list behind a Collection: inserting, replacing an item, and assigning a whole new list all
set or clear the children's Reference, bring new children into the session (save-update) and,
with delete-orphan, delete the children that leave.

Every test runs on a real sqlite3 database, in memory and in a file.  The models are in
``relationship_models``: ``User.orders`` cascades everything, delete-orphan too; ``Team.players``
has the default cascade, so a player who leaves only loses his team.
"""

import pytest

from uow import ObjectState, capture_sql, errors, state_of

from .relationship_models import Order, Player, Team, User, database_fixtures, dml

SEED = """
INSERT INTO users (name, email) VALUES ('ann', 'a@x'), ('bob', 'b@x');
INSERT INTO orders (user_id, total) VALUES (1, 10), (1, 20), (2, 30);
INSERT INTO teams (name) VALUES ('reds');
INSERT INTO players (name, team_id) VALUES ('p1', 1), ('p2', 1), ('p3', NULL)
"""

db, session = database_fixtures(SEED, "related_lists")


def same_objects(left, right):
    """Lists holding the very same objects, in the same order."""
    return len(left) == len(right) and all(a is b for a, b in zip(left, right))


class TestInsert:
    def test_insert_puts_a_new_child_at_the_index_once_and_adds_it(self, db, session):
        ann = session.get(User, 1)
        first, second = ann.orders
        new = Order(total=5)
        ann.orders.insert(0, new)
        assert same_objects(ann.orders, [new, first, second])
        assert new.user is ann
        assert state_of(new) is ObjectState.PENDING
        session.flush()
        assert db.rows("SELECT id, user_id, total FROM orders ORDER BY id") == [
            (1, 1, 10), (2, 1, 20), (3, 2, 30), (4, 1, 5)]

    def test_insert_of_a_held_child_moves_it_within_the_list(self, session):
        ann = session.get(User, 1)
        first, second = ann.orders
        ann.orders.insert(0, second)
        assert same_objects(ann.orders, [second, first])
        assert session.deleted == frozenset()
        assert session.dirty == frozenset()

    def test_insert_into_a_transient_parent_sets_the_reference(self):
        ann = User(name="ann")
        first, second = Order(total=1), Order(total=2)
        ann.orders.append(first)
        ann.orders.insert(0, second)
        assert same_objects(ann.orders, [second, first])
        assert second.user is ann


class TestReplacingOneChild:
    def test_assigning_an_index_orphans_the_old_child_and_adopts_the_new_one(self, db, session):
        ann = session.get(User, 1)
        first, second = ann.orders
        new = Order(total=5)
        ann.orders[0] = new
        assert same_objects(ann.orders, [new, second])
        assert (first.user, new.user) == (None, ann)
        assert session.deleted == {first}
        assert session.new == {new}
        session.flush()
        assert db.rows("SELECT id, user_id, total FROM orders ORDER BY id") == [(2, 1, 20), (3, 2, 30), (4, 1, 5)]

    def test_assigning_an_index_without_delete_orphan_only_unlinks_the_old_child(self, db, session):
        team = session.get(Team, 1)
        p1, p2 = team.players
        p3 = session.get(Player, 3)
        team.players[1] = p3
        assert same_objects(team.players, [p1, p3])
        assert (p2.team, p3.team) == (None, team)
        assert session.deleted == frozenset()
        with capture_sql() as statements:
            session.flush()
        assert dml(statements) == [
            ('UPDATE "players" SET "team_id" = ? WHERE "players"."id" = ?', [(None, 2), (1, 3)])]
        assert db.rows("SELECT id, team_id FROM players ORDER BY id") == [(1, 1), (2, None), (3, 1)]


class TestAssigningAWholeList:
    def test_assigning_a_list_keeps_the_children_in_it_and_orphans_the_rest(self, db, session):
        ann = session.get(User, 1)
        first, second = ann.orders
        new = Order(total=5)
        ann.orders = [first, new]
        assert same_objects(ann.orders, [first, new])
        assert (first.user, second.user, new.user) == (ann, None, ann)
        assert session.deleted == {second}, "a child in the new list was orphaned"
        assert session.new == {new}
        assert session.dirty == frozenset()
        session.flush()
        assert db.rows("SELECT id, user_id, total FROM orders ORDER BY id") == [(1, 1, 10), (3, 2, 30), (4, 1, 5)]

    def test_assigning_a_list_moves_children_from_another_parent(self, db, session):
        ann, bob = session.get(User, 1), session.get(User, 2)
        first, second = ann.orders
        third, = bob.orders
        bob.orders = [third, first]
        assert same_objects(bob.orders, [third, first])
        assert same_objects(ann.orders, [second])
        assert first.user is bob
        assert session.deleted == frozenset()
        session.flush()
        assert db.rows("SELECT id, user_id FROM orders ORDER BY id") == [(1, 2), (2, 1), (3, 2)]

    def test_slice_assignment_of_the_whole_list_without_delete_orphan_unlinks_the_rest(self, db, session):
        team = session.get(Team, 1)
        p1, p2 = team.players
        p3 = session.get(Player, 3)
        team.players[:] = [p2, p3]
        assert same_objects(team.players, [p2, p3])
        assert (p1.team, p2.team, p3.team) == (None, team, team)
        assert session.deleted == frozenset()
        with capture_sql() as statements:
            session.flush()
        assert dml(statements) == [
            ('UPDATE "players" SET "team_id" = ? WHERE "players"."id" = ?', [(None, 1), (1, 3)])]
        assert db.rows("SELECT id, team_id FROM players ORDER BY id") == [(1, None), (2, 1), (3, 1)]

    def test_assigning_a_list_to_a_transient_parent(self):
        ann = User(name="ann")
        first, second = Order(total=1), Order(total=2)
        ann.orders = [first, second]
        assert same_objects(ann.orders, [first, second])
        assert first.user is ann and second.user is ann


class TestListSemantics:
    """Index and slice assignment do what they do on a plain list; only the links follow."""

    def test_assigning_a_partial_slice_releases_only_the_children_in_it(self, db, session):
        ann = session.get(User, 1)
        first, second = ann.orders
        ann.orders[1:] = []
        assert same_objects(ann.orders, [first])
        assert (first.user, second.user) == (ann, None)
        assert session.deleted == {second}
        session.flush()
        assert db.rows("SELECT id, user_id FROM orders ORDER BY id") == [(1, 1), (3, 2)]

    def test_assigning_a_negative_index_replaces_the_item_counted_from_the_end(self, session):
        team = session.get(Team, 1)
        p1, p2 = team.players
        p3 = session.get(Player, 3)
        team.players[-1] = p3
        assert same_objects(team.players, [p1, p3])
        assert (p2.team, p3.team) == (None, team)

    def test_a_whole_list_assigned_keeps_the_order_given(self, session):
        team = session.get(Team, 1)
        p1, p2 = team.players
        p3 = session.get(Player, 3)
        team.players[:] = [p3, p2]
        assert same_objects(team.players, [p3, p2])
        assert p1.team is None

    def test_an_index_out_of_range_raises_index_error_and_changes_nothing(self, session):
        team = session.get(Team, 1)
        p1, p2 = team.players
        p3 = session.get(Player, 3)
        with pytest.raises(IndexError):
            team.players[5] = p3
        assert same_objects(team.players, [p1, p2])
        assert p3.team is None

    def test_a_wrong_object_in_an_assigned_list_is_refused_before_anything_changes(self, session):
        ann = session.get(User, 1)
        first, second = ann.orders
        with pytest.raises(errors.MappingError, match="holds Order objects, not 'not an order'"):
            ann.orders[:] = [first, "not an order"]
        assert same_objects(ann.orders, [first, second])
        assert session.deleted == frozenset()

    def test_deleting_a_slice_releases_only_the_children_in_it(self, db, session):
        ann = session.get(User, 1)
        first, second = ann.orders
        del ann.orders[:1]
        assert same_objects(ann.orders, [second])
        assert (first.user, second.user) == (None, ann)
        assert session.deleted == {first}
        session.flush()
        assert db.rows("SELECT id, user_id FROM orders ORDER BY id") == [(2, 1), (3, 2)]

    def test_multiplying_by_zero_releases_every_child(self, db, session):
        # As ``orders[:] = []``: list's own ``*= 0`` emptied the list and left each order
        # pointing at its user, so the next flush changed nothing.
        ann = session.get(User, 1)
        first, second = ann.orders
        ann.orders *= 0
        assert same_objects(ann.orders, [])
        assert (first.user, second.user) == (None, None)
        assert session.deleted == {first, second}  # delete-orphan
        session.commit()
        assert db.committed("SELECT id, user_id FROM orders ORDER BY id") == [(3, 2)]

    def test_multiplying_by_one_changes_nothing(self, session):
        team = session.get(Team, 1)
        p1, p2 = team.players
        team.players *= 1
        assert same_objects(team.players, [p1, p2])
        assert (p1.team, p2.team) == (team, team)
        assert session.dirty == frozenset()


class TestRemovingAChildWhoseReferenceIsNotCached:
    """Setting a child's key column by hand drops its cached reference, and the parent's loaded
    list may still hold it: remove() then asks the key where the child points now."""

    def test_removing_a_child_pointed_at_the_same_parent_by_key_clears_its_key(self, db, session):
        team = session.get(Team, 1)
        p1, p2 = team.players
        p1.team_id = 1
        team.players.remove(p1)
        assert (p1.team_id, p1.team) == (None, None)
        assert same_objects(team.players, [p2])
        session.flush()
        assert db.rows("SELECT id, team_id FROM players ORDER BY id") == [(1, None), (2, 1), (3, None)]

    def test_removing_a_child_repointed_by_key_from_its_old_parents_list_leaves_its_new_parent(self, db, session):
        db.run("INSERT INTO teams (name) VALUES ('blues')")
        team = session.get(Team, 1)
        p1, p2 = team.players
        p1.team_id = 2
        team.players.remove(p1)
        assert same_objects(team.players, [p2])
        assert p1.team_id == 2
        assert p1.team is session.get(Team, 2)
        session.flush()
        assert db.rows("SELECT id, team_id FROM players ORDER BY id") == [(1, 2), (2, 1), (3, None)]


class TestRemove:
    def test_removing_a_child_the_list_does_not_hold_raises_value_error_and_changes_nothing(self, db, session):
        """As list.remove() does; the child stays with its own parent (it used to be orphaned)."""
        ann, bob = session.get(User, 1), session.get(User, 2)
        held = list(bob.orders)
        with pytest.raises(ValueError, match="not in the list"):
            ann.orders.remove(held[0])
        assert held[0].user is bob
        assert same_objects(bob.orders, held)
        assert session.deleted == frozenset()
