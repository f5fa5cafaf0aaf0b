"""session.explain(obj): why an object is in the next flush, from what the session recorded.

One test per kind of reason (added, each cascade, a cleared reference, changed fields, mark_dirty,
a row switch, not in the flush), each on a real database in memory and in a file; then the plan
listing's old -> new and dry_run()'s printing, which explain() shares its words with.
"""

import pytest

import uow
from uow import Session, capture_sql

from .relationship_models import (
    City, Country, Department, Egg, Employee, Hen, Order, Player, Team, User, database_fixtures,
)

SEED = """
INSERT INTO users (name, email) VALUES ('ann', 'a@x'), ('bob', 'b@x');
INSERT INTO orders (user_id, total) VALUES (1, 10), (1, 20);
INSERT INTO teams (name) VALUES ('reds');
INSERT INTO players (name, team_id) VALUES ('p1', 1);
INSERT INTO countries (code, name) VALUES ('fr', 'France');
INSERT INTO cities (name, country_code) VALUES ('Paris', 'fr')
"""

db, session = database_fixtures(SEED, "explain")


def kinds(explanation):
    return [reason.kind for reason in explanation.reasons]


def test_an_object_added_directly(session):
    ann = User(name="zed")
    session.add(ann)
    why = session.explain(ann)
    assert why.state is uow.ObjectState.PENDING
    assert kinds(why) == ["added"]
    assert why.in_flush
    assert [(s.number, s.of, s.step) for s in why.statements] == [(1, 1, "INSERT users (name, email) reading back (id): 1 row")]
    assert str(why) == """\
User(new #1) is pending: added to the session, not inserted yet.
Values to insert:
  name = 'zed'
  email = NULL
Why it is in the next flush:
  - added: add() (or add_all()) was called with it, not a cascade
What the flush writes:
  step 1 of 1: INSERT users (name, email) reading back (id): 1 row"""


def test_an_object_pulled_in_by_a_cascade_along_a_collection(session):
    zed = User(name="zed")
    order = Order(total=5)
    zed.orders.append(order)
    session.add(zed)
    why = session.explain(order)
    assert kinds(why) == ["save-update"]
    assert str(why) == """\
Order(new #2) is pending: added to the session, not inserted yet.
Values to insert:
  total = 5
Why it is in the next flush:
  - save-update: it is in User(new #1).orders, and User.orders cascades save-update
What the flush writes:
  step 2 of 2: INSERT orders (user_id, total) reading back (id): 1 row
    user_id = id of User(new #1)
Ordering:
  - INSERT Order(new #2) after INSERT User(new #1): orders.user_id references users.id"""
    assert kinds(session.explain(zed)) == ["added"]


def test_an_object_pulled_in_by_appending_to_a_loaded_collection(session):
    ann = session.get_one(User, 1)
    order = Order(total=7)
    ann.orders.append(order)
    why = session.explain(order)
    assert [str(reason) for reason in why.reasons] == [
        "save-update: it is in User(id=1).orders, and User.orders cascades save-update"]
    assert why.ordering == ()  # ann's row exists: nothing orders the insert
    assert session.explain(ann).reasons[0].kind == "not in the flush"


def test_an_object_pulled_in_by_setting_a_reference(session):
    order = session.get_one(Order, 1)
    cy = User(name="cy")
    order.user = cy
    why = session.explain(cy)
    assert [str(reason) for reason in why.reasons] == [
        "save-update: Order(id=1).user is this object, and Order.user cascades save-update"]
    order_why = session.explain(order)
    assert kinds(order_why) == ["changed"]
    # (#2: the loaded order was the first object the session met)
    assert [str(change) for change in order_why.statements[0].changes] == ["user_id 1 -> id of User(new #2)"]
    assert [str(constraint) for constraint in order_why.ordering] == [
        "UPDATE Order(id=1) after INSERT User(new #2): orders.user_id references users.id"]


def test_children_deleted_by_the_delete_cascade(session):
    ann = session.get_one(User, 1)
    session.delete(ann)
    order = session.get_one(Order, 2)
    why = session.explain(order)
    assert [str(reason) for reason in why.reasons] == [
        "delete: User(id=1) is marked for deletion, and User.orders cascades delete to it"]
    assert [str(constraint) for constraint in why.ordering] == [
        "DELETE User(id=1) after DELETE Order(id=2): orders.user_id references users.id"]
    assert kinds(session.explain(ann)) == ["deleted"]
    session.add(ann)  # takes the delete back, with its cascade: the cause goes with it
    assert kinds(session.explain(order)) == ["not in the flush"]


def test_an_orphan_deleted_by_delete_orphan(session):
    ann = session.get_one(User, 1)
    order = ann.orders[0]
    ann.orders.remove(order)
    why = session.explain(order)
    assert [str(reason) for reason in why.reasons] == [
        "delete-orphan: it was removed from User(id=1).orders, and User.orders cascades delete-orphan"]
    assert [statement.step for statement in why.statements] == ["DELETE orders: 1 row"]


def test_a_reference_cleared_by_a_parents_delete(session):
    reds = session.get_one(Team, 1)
    session.delete(reds)
    player = session.get_one(Player, 1)
    why = session.explain(player)
    assert kinds(why) == ["reference cleared", "changed"]
    assert str(why.reasons[0]) == ("reference cleared: deleting Team(id=1) set its team to None "
                                   "(Team.players has no delete cascade)")
    assert [str(change) for change in why.changes] == ["team_id 1 -> NULL"]


def test_changed_fields_old_to_new_and_expired_fields(session):
    bob = session.get_one(User, 2)
    bob.name = "robert"
    session.expire(bob, ["email"])
    why = session.explain(bob)
    assert kinds(why) == ["changed"]
    assert why.expired == ("email",)
    assert str(why).splitlines()[1:4] == [
        "Changed since loaded or last flushed (old -> new):",
        "  name 'bob' -> 'robert'",
        "Expired (reloaded when read): email",
    ]
    bob.name = "bob"  # back to the loaded value: no change, so not in the flush
    assert [str(reason) for reason in session.explain(bob).reasons] == [
        "not in the flush: nothing to write: it equals its snapshot"]


def test_mark_dirty(session):
    bob = session.get_one(User, 2)
    session.mark_dirty(bob)
    why = session.explain(bob)
    assert kinds(why) == ["mark_dirty"]
    assert why.statements[0].step == "UPDATE users (name, email): 1 row"


def test_a_row_switch(session):
    france = session.get_one(Country, "fr")
    session.delete(france)
    replacement = Country(code="fr", name="République française")
    session.add(replacement)
    why = session.explain(replacement)
    assert kinds(why) == ["added", "row switch"]
    assert why.statements[0].step == "UPDATE countries (name) [row switch]: 1 row"
    assert [str(change) for change in why.statements[0].changes] == ["name 'France' -> 'République française'"]
    old_why = session.explain(france)
    assert kinds(old_why) == ["deleted", "row switch"]
    assert old_why.statements == why.statements  # one UPDATE stands for both


def test_a_cycle_broken_by_a_post_update(session):
    sales = Department(name="sales")
    boss = Employee(name="boss", department=sales)
    sales.manager = boss
    session.add(sales)
    why = session.explain(sales)
    steps = [(statement.step, [str(change) for change in statement.changes]) for statement in why.statements]
    assert steps == [
        ("INSERT departments (name, manager_id) reading back (id): 1 row",
         ["manager_id = NULL for now (a later UPDATE sets it)"]),
        ("UPDATE departments (manager_id) [post-update]: 1 row", ["manager_id NULL -> id of Employee(new #2)"]),
    ]


def test_objects_the_flush_will_not_write(session, db):
    loose = City(name="Nice", country_code="fr")
    assert [str(reason) for reason in session.explain(loose).reasons] == [
        "not in the flush: no session holds it: add() it to have it inserted"]
    paris = session.get_one(City, 1)
    session.expunge(paris)
    assert session.explain(paris).state is uow.ObjectState.DETACHED
    other = Session(db.conn)
    try:
        lyon = City(name="Lyon", country_code="fr")
        other.add(lyon)
        assert "another session" in str(session.explain(lyon))
    finally:
        other.expunge(lyon)  # (not rollback(): the two sessions share one connection)
    zed = User(name="zed")
    session.add(zed)
    session.flush()
    session.delete(zed)
    session.flush()
    assert str(session.explain(zed)).splitlines()[-1] == "  - not in the flush: its DELETE was already flushed"


def test_a_plan_that_cannot_be_made_is_reported_not_raised(session):
    egg = Egg()
    hen = Hen()
    egg.hen = hen
    hen.egg = egg  # a cycle with no nullable edge: no order of INSERTs can work
    session.add(egg)
    why = session.explain(hen)
    assert kinds(why) == ["save-update"]
    assert why.statements == ()
    assert why.plan_error is not None and "cycle" in why.plan_error.lower()
    assert "\nThe next flush would fail: " in str(why)
    with pytest.raises(uow.errors.CycleError):
        session.flush()


def test_wb_causes_leave_with_the_flush_and_the_rollback(session):
    zed = User(name="zed")
    order = Order(total=1)
    zed.orders.append(order)
    session.add(zed)
    assert session.registers.causes  # recorded while pending
    session.flush()
    assert session.registers.causes == {}
    order.total = 2
    assert kinds(session.explain(order)) == ["changed"]
    session.rollback()
    assert session.registers.causes == {}
    assert session.explain(order).state is uow.ObjectState.TRANSIENT


def test_explain_refuses_what_is_not_an_entity(session):
    with pytest.raises(uow.errors.UowError, match="explain"):
        session.explain("ann")


# -- the plan's listing and dry_run(), which explain() shares its words with ------------------------

def test_the_plan_lists_old_and_new_values_of_each_update(session):
    ann = session.get_one(User, 1)
    ann.name = "annie"
    ann.email = None
    lines = str(session.plan()).splitlines()
    assert lines == [
        "Flush plan:",
        "  1. UPDATE users (name, email): 1 row",
        "       User(id=1): name 'ann' -> 'annie', email 'a@x' -> NULL",
    ]
    plan = session.plan()
    session.flush()  # the plan keeps the old values it was made with
    assert str(plan).splitlines()[-1] == "       User(id=1): name 'ann' -> 'annie', email 'a@x' -> NULL"


def test_the_plan_listing_stays_within_100_columns(session):
    ann = session.get_one(User, 1)
    ann.name = "x" * 500
    ann.email = "y" * 500
    lines = str(session.plan()).splitlines()
    assert max(len(line) for line in lines) <= 100
    assert lines[-1] == "       User(id=1): name 'ann' -> 'xxxxxxxxxxxxxx...(502 characters)...xxxxxxx' (+1 more)"


def test_dry_run_prints_one_numbered_statement_per_line(session):
    ann = session.get_one(User, 1)
    ann.name = "annie"
    statements = session.dry_run()
    assert isinstance(statements, list) and all(isinstance(s, uow.Statement) for s in statements)
    assert str(statements) == """\
1. SAVEPOINT "uow_flush"
2. UPDATE "users" SET "name" = ? WHERE "users"."id" = ?  -- executemany x1: [('annie', 1)]
3. RELEASE "uow_flush\""""
    assert session.dirty_fields(ann) == ["name"]  # a dry run changes nothing
    assert str(Session(session.executor.connection).dry_run()) == "(no statements)"
    with capture_sql() as captured:
        session.flush()
    assert str(captured).splitlines()[1].startswith("2. UPDATE")


def test_an_insert_cancelled_by_a_delete_and_taken_back(session):
    ann = session.get_one(User, 1)
    order = Order(total=9)
    ann.orders.append(order)          # pending, pulled in by save-update
    session.delete(ann)               # the delete cascade cancels its insert: transient again
    assert session.explain(order).state is uow.ObjectState.TRANSIENT
    session.add(ann)                  # takes the delete back, and the cancelled insert with it
    why = session.explain(order)
    assert [str(reason) for reason in why.reasons] == [
        "taken back: add() of User(id=1) took back its delete, which had cancelled this insert"]
    assert [statement.step for statement in why.statements] == ["INSERT orders (user_id, total) reading back (id): 1 row"]


def test_after_each_kind_of_rollback_a_cascaded_object_is_explained_by_what_the_session_holds(session, db):
    """What is right after a rollback: the cause explains the object as the session holds it *now*.
    A rollback never brings back a pending or marked object with a stale cause: begin_nested()
    flushes first (so nothing is pending when a savepoint begins), and a transaction's rollback
    makes every object added since the last commit transient again; re-adding the source records
    the cascade afresh."""
    zed = User(name="zed")
    order = Order(total=5)
    zed.orders.append(order)
    session.add(zed)
    with pytest.raises(RuntimeError):
        with session.begin_nested():  # flushes zed and the order first: the savepoint starts from rows
            order.total = 6
            assert kinds(session.explain(order)) == ["changed"]
            raise RuntimeError("discard the savepoint")
    why = session.explain(order)
    assert why.state is uow.ObjectState.PERSISTENT and kinds(why) == ["not in the flush"]
    session.rollback()  # the transaction: zed and the order were added since the last commit
    assert session.explain(order).state is uow.ObjectState.TRANSIENT
    assert session.registers.causes == {}
    session.add(zed)  # the source again: its cascade brings the order in, and says so
    assert [str(reason) for reason in session.explain(order).reasons] == [
        "save-update: it is in User(new #3).orders, and User.orders cascades save-update"]
    session.commit()
    assert db.committed("SELECT total FROM orders WHERE user_id = ?", (zed.id,)) == [(5,)]  # 6 was rolled back


def test_an_object_created_by_merge_names_the_merge_and_its_source(session, db):
    mia = User(id=50, name="mia")  # no row has id 50: merge() makes a new pending copy
    copy = session.merge(mia)
    why = session.explain(copy)
    assert copy is not mia and why.state is uow.ObjectState.PENDING
    assert [str(reason) for reason in why.reasons] == [
        "merge: merge() made this new object as the copy of User(id=50) (in no session), whose key no row has"]
    assert [statement.step for statement in why.statements] == ["INSERT users (id, name, email): 1 row"]
    # Along the merge cascade, each copy names its own source and the relationship that reached it.
    order = Order(total=3)
    order.user = User(name="noa")
    order_copy = session.merge(order)
    assert [str(reason) for reason in session.explain(order_copy).reasons] == [
        "merge: merge() made this new object as the copy of Order(id=None) (in no session), which has no key"]
    assert [str(reason) for reason in session.explain(order_copy.user).reasons] == [
        "merge: merge() made this new object as the copy of User(id=None) (in no session), which has no key, "
        "reached by Order.user's merge cascade"]
    session.commit()
    assert db.committed("SELECT name FROM users WHERE id = 50 OR name = 'noa' ORDER BY id") == [("mia",), ("noa",)]
    assert session.explain(copy).reasons[0].kind == "not in the flush"  # the cause left with the flush


def test_merge_of_an_object_that_an_add_would_take_is_still_explained_as_added(session):
    ann = User(name="ann2")
    session.add(ann)
    assert kinds(session.explain(ann)) == ["added"]
    with pytest.warns(uow.UowWarning), session.no_autoflush:  # (merge() autoflushes first otherwise)
        assert session.merge(ann) is ann  # already pending: returned as it is, nothing created
    assert kinds(session.explain(ann)) == ["added"]


def test_a_cascaded_object_its_source_let_go_of_is_not_said_to_be_held(session):
    order = session.get_one(Order, 1)
    cy = User(name="cy")
    order.user = cy                   # cy comes in along Order.user's save-update cascade
    order.user = None                 # and the order lets go of it: cy stays pending, as in SQLAlchemy
    assert [str(reason) for reason in session.explain(cy).reasons] == [
        "save-update: Order(id=1).user held it when it came in (Order.user cascades save-update), and no longer "
        "does; it stays pending: expunge() it to leave it out of the flush"]
    order.user = cy  # held again: said as before
    assert [str(reason) for reason in session.explain(cy).reasons] == [
        "save-update: Order(id=1).user is this object, and Order.user cascades save-update"]
