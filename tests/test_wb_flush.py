"""uow.flush: one Flush object per flush holds what that flush knows, step by step.

White-box tests (house rule 11): they run a Flush by hand and read its fields, the way a reader
of ``uow/flush.py`` would follow one flush through collect, plan, write and apply.
"""

import pytest

import uow
from uow.flush import Flush
from uow.planner import StepKind, StepPurpose

from .relationship_models import City, Country, Department, Employee, Order, User, make_connection


@pytest.fixture(params=["memory", "file"])
def connection(request, tmp_path):
    connection = make_connection(":memory:" if request.param == "memory" else str(tmp_path / "flush.db"))
    yield connection
    connection.close()


def state(obj):
    return obj.__dict__[uow.STATE_ATTRIBUTE]


def test_wb_a_flush_holds_its_changes_its_plan_and_what_sqlite_filled_in(connection):
    session = uow.Session(connection)
    ann = User(name="ann")
    order = Order(user=ann, total=30)
    session.add_all([ann, order])
    flush = Flush(session, session.flusher)
    assert flush.prepare()
    assert flush.inserts == [state(ann), state(order)]
    assert (flush.updates, flush.deletes) == ([], [])
    assert [(step.kind, step.table) for step in flush.plan.steps] == [
        (StepKind.INSERT, "users"), (StepKind.INSERT, "orders")]
    # The order's user_id waits for ann's key: bound as None now, filled in while the flush runs.
    assert flush.bound == [[("ann", None)], [(None, 30)]]
    flush.run()
    assert flush.filled == {state(ann): (("id",), (1,)), state(order): (("id",), (1,))}
    assert flush.assigned == {state(order): {"user_id": 1}}
    assert flush.new_keys == []
    assert (order.user_id, uow.state_of(order)) == (1, uow.ObjectState.PERSISTENT)
    assert connection.execute("SELECT id, user_id, total FROM orders").fetchall() == [(1, 1, 30)]


def test_wb_a_flush_records_the_keys_its_updates_changed(connection):
    session = uow.Session(connection)
    france = Country(code="FR", name="France")
    paris = City(name="Paris", country=france)
    session.add_all([france, paris])
    session.commit()
    france.code = "FX"
    flush = Flush(session, session.flusher)
    flush.run()
    assert flush.updates == [(state(france), ("code",))]
    assert flush.new_keys == [(Country.__mapper__, "FR", "FX")]
    # SQLite re-pointed the city (ON UPDATE CASCADE); the loaded city followed, snapshot too.
    assert paris.country_code == "FX"
    assert session.dirty_fields(paris) == []


def test_wb_a_flush_breaks_a_cycle_with_a_follow_up_update(connection):
    session = uow.Session(connection)
    department = Department(name="sales")
    boss = Employee(name="bo", department=department)
    department.manager = boss
    session.add_all([department, boss])
    flush = Flush(session, session.flusher)
    flush.run()
    assert [(step.kind, step.table, step.purpose) for step in flush.plan.steps] == [
        (StepKind.INSERT, "departments", StepPurpose.WRITE),
        (StepKind.INSERT, "employees", StepPurpose.WRITE),
        (StepKind.UPDATE, "departments", StepPurpose.POST_UPDATE),
    ]
    assert connection.execute("SELECT manager_id FROM departments").fetchall() == [(boss.id,)]
