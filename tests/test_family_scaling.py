"""One large family: a parent with many children costs the same per child as a small one.

Each of these was quadratic: every append asked whether the parent's list held the child by
scanning the list (``any(item is child for item in held)``), assigning a whole list compared every
old child with every new one, and ``delete()`` of a parent checked each child it found against the
children found before it, and loading a collection with autoflush paused checked each pending
child against the list built so far.  With ten thousand children the scans were most of the work (a parent of
8,000 children took 95 µs per child to build instead of 4, and 180 µs per child to delete).

No clock: each test counts the lines of uow's own code that run (``sys.settrace``) for n and for 4n
children.  Linear work grows about 4x; a scan per child, about 8-13x at these sizes.  One
test counts add_all()'s cascade walks: one per object.  Each test also
checks what the session and the database hold afterwards (memory and file databases).
"""

import os
import sys

import uow
from uow import ObjectState, state_of

from .relationship_models import Order, User, database_fixtures

db, session = database_fixtures("", "family_scaling")

UOW_DIRECTORY = os.path.dirname(uow.__file__) + os.sep
SMALL = 150
LARGE = 4 * SMALL
LINEAR = 5  # the most a linear count may grow from SMALL to LARGE children (4x; a scan per child: 8-13x)


def uow_lines(call):
    """How many lines of uow's own code run during ``call()`` (the caller's lines do not count)."""
    count = 0

    def count_lines(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return count_lines

    def in_uow(frame, event, arg):
        return count_lines if frame.f_code.co_filename.startswith(UOW_DIRECTORY) else None

    previous = sys.gettrace()
    sys.settrace(in_uow)
    try:
        call()
    finally:
        sys.settrace(previous)
    return count


def growth(work):
    """lines(work(LARGE)) / lines(work(SMALL)): ``work(n)`` sets up and returns the call to count."""
    return uow_lines(work(LARGE)) / uow_lines(work(SMALL))


def committed_orders(db, user):
    return db.committed("SELECT count(*) FROM orders WHERE user_id = ?", (user.id,))[0][0]


def test_wb_appending_children_to_one_parent_is_linear(db, session):
    families = []

    def work(n):
        user = User(name=f"u{n}")
        session.add(user)
        session.flush()
        assert list(user.orders) == []  # loaded (empty): each append below asks whether it holds the order
        orders = [Order(total=i) for i in range(n)]
        families.append((user, orders))

        def append_all():
            for order in orders:
                user.orders.append(order)
        return append_all

    assert growth(work) < LINEAR
    session.commit()
    for user, orders in families:
        assert len(user.orders) == len(orders) and all(a is b for a, b in zip(user.orders, orders))
        assert committed_orders(db, user) == len(orders)


def test_wb_constructing_children_with_their_parent_is_linear(db, session):
    families = []

    def work(n):
        user = User(name=f"u{n}")
        families.append(user)
        return lambda: [Order(total=i, user=user) for i in range(n)]

    assert growth(work) < LINEAR
    session.add_all(families)
    session.commit()
    for user in families:
        assert all(order.user is user for order in user.orders)
        assert len({id(order) for order in user.orders}) == len(user.orders) == committed_orders(db, user)
    assert [len(user.orders) for user in families] == [LARGE, SMALL]


def test_wb_assigning_a_whole_list_is_linear(db, session):
    families = []

    def work(n):
        user = User(name=f"u{n}", orders=[Order(total=-i) for i in range(n)])
        session.add(user)
        session.flush()
        old = list(user.orders)
        new = old[: n // 2] + [Order(total=i) for i in range(n)]
        families.append((user, old, new))

        def assign():
            user.orders = new
        return assign

    assert growth(work) < LINEAR
    session.commit()
    for user, old, new in families:
        assert len(user.orders) == len(new) and all(a is b for a, b in zip(user.orders, new))
        assert committed_orders(db, user) == len(new)
        # delete-orphan: the half of the old orders left out of the new list is gone
        assert all(state_of(order) is ObjectState.DETACHED for order in old[len(old) // 2:])


def test_wb_deleting_a_parent_with_many_children_is_linear(db, session):
    families = []

    def work(n):
        user = User(name=f"u{n}", orders=[Order(total=i) for i in range(n)])
        session.add(user)
        session.commit()
        user = session.get(User, user.id)
        families.append(user.id)
        return lambda: session.delete(user)

    assert growth(work) < LINEAR
    session.commit()
    for key in families:
        assert db.committed("SELECT count(*) FROM users WHERE id = ?", (key,)) == [(0,)]
        assert db.committed("SELECT count(*) FROM orders WHERE user_id = ?", (key,)) == [(0,)]


def test_wb_add_all_walks_each_objects_cascade_once(db, session, monkeypatch):
    # add_all() checks everything first (refuse_to_add), then brings it in: the check's walk lists
    # what it met, and the objects are brought in from that list, so each object's save-update
    # cascade is walked once.  A parent listed before its children reaches them, and each child
    # reaches its parent: on the old main the children's own entries, the walk back to the parent
    # and the second pass walked again (96 walks for these 33 objects, 64,000 for 22,000).
    walks = []
    along = session.cascades.along
    monkeypatch.setattr(session.cascades, "along", lambda obj, cascade: walks.append(obj) or along(obj, cascade))
    families = []
    for number in range(3):
        user = User(name=f"u{number}")
        families += [user] + [Order(total=i, user=user) for i in range(10)]
    session.add_all(families)
    assert len(walks) == len(families)
    assert {id(obj) for obj in walks} == {id(obj) for obj in families}
    session.commit()
    assert db.committed("SELECT count(*) FROM orders") == [(30,)]


def test_wb_loading_a_collection_with_many_pending_children_is_linear(db, session):
    # With autoflush paused, loading user.orders adds the pending orders that point at the user
    # (the database does not know them yet); each was checked against the list built so far by a
    # scan (``any(item is other ...)``), so n pending children cost n^2/2 steps.
    families = []

    def work(n):
        user = User(name=f"u{n}")
        session.add(user)
        session.commit()
        user = session.get(User, user.id)
        orders = [Order(total=i, user=user) for i in range(n)]
        session.add_all(orders)
        families.append((user, orders))

        def load():
            with session.no_autoflush:
                assert len(user.orders) == n
        return load

    assert growth(work) < LINEAR
    session.commit()
    for user, orders in families:
        assert {id(order) for order in user.orders} == {id(order) for order in orders}
        assert committed_orders(db, user) == len(orders)
