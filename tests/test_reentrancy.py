"""What a lifecycle listener may do with the session that called it: the whole matrix.

The rule (see uow/events.py): while a listener runs, the operation that emitted its event is in
progress.  A listener may read (get, execute) and stage work (add, delete, change objects); it
may not begin or end a flush, a transaction or a savepoint (flush, commit, rollback,
begin_nested, close): those raise TransactionError naming the operation and the listener, and
the error propagates out of the operation that emitted the event.  Staged work goes where the
event sits: into the flush or commit in progress, into the savepoint just opened, or to the next
flush; work staged in before_rollback / before_rollback_to_savepoint is undone by that rollback.
A before_begin listener may not touch the database at all: that would begin the very transaction
being begun.

Every cell is checked from a second connection: the rows committed are exactly those expected,
none twice, none lost, and the session's objects agree with them.
"""

import sqlite3

import pytest

import uow
from uow import errors

from .models import User

OPERATIONS = ("flush", "commit", "rollback", "begin_nested", "close", "add", "delete", "get", "execute")
REFUSED = ("flush", "commit", "rollback", "begin_nested", "close")

# Which scenario emits each event from its last step (the "trigger").
SCENARIO_OF = {
    "before_begin": "commit", "after_begin": "commit",
    "before_flush": "commit", "after_flush": "commit",
    "before_commit": "commit", "after_commit": "commit",
    "before_rollback": "rollback", "after_rollback": "rollback",
    "before_savepoint": "savepoint", "after_savepoint": "savepoint",
    "before_release_savepoint": "release", "after_release_savepoint": "release",
    "before_rollback_to_savepoint": "rollback_to", "after_rollback_to_savepoint": "rollback_to",
}
assert set(SCENARIO_OF) == set(uow.EVENT_NAMES)

# The names committed at the end of each scenario when the listener does nothing.
BASE = {
    "commit": ["ann"],
    "rollback": [],
    "savepoint": ["ann", "bob"],
    "release": ["ann"],
    "rollback_to": ["ann"],
}

# Work staged by listeners of these events is undone by the rollback that emitted them.
UNDONE = {"before_rollback", "before_rollback_to_savepoint"}


class Scenario:
    """A session over a file database holding 'old' (loaded, held) and 'far' (not loaded), and the
    steps that end in the event under test."""

    def __init__(self, path, kind):
        self.kind = kind
        self.connection = uow.connect(path)
        self.session = uow.Session(self.connection)
        self.old = self.session.get(User, 1)
        self.session.commit()
        self.nested = None

    def prepare(self):
        session = self.session
        session.add(User(name="ann"))
        if self.kind == "rollback":
            session.flush()
        elif self.kind == "release":
            self.nested = session.begin_nested()
        elif self.kind == "rollback_to":
            self.nested = session.begin_nested()
            session.add(User(name="bob"))

    def trigger(self):
        session = self.session
        if self.kind == "commit":
            session.commit()
        elif self.kind == "rollback":
            session.rollback()
        elif self.kind == "savepoint":
            self.nested = session.begin_nested()
        elif self.kind == "release":
            self.nested.commit()
        else:
            self.nested.rollback()

    def finish(self, trigger_raised):
        """The rest of the scenario, done without the listener; every scenario ends with commit()."""
        session = self.session
        if trigger_raised and self.kind in ("commit", "rollback"):
            self.trigger()  # idempotent: commits (rolls back) whatever is left
        elif self.kind == "savepoint":
            session.add(User(name="bob"))
        elif self.kind in ("release", "rollback_to") and self.nested.is_active:
            self.trigger()
        session.commit()


def listener_doing(operation, scenario, seen):
    """A listener that performs ``operation`` on its first call and records what happened."""
    session = scenario.session

    def act():
        if operation == "flush":
            session.flush()
        elif operation == "commit":
            session.commit()
        elif operation == "rollback":
            session.rollback()
        elif operation == "begin_nested":
            session.begin_nested()
        elif operation == "close":
            session.close()
        elif operation == "add":
            session.add(User(name="carol"))
        elif operation == "delete":
            session.delete(scenario.old)
        elif operation == "get":
            seen["got"] = session.get(User, 2)
        elif operation == "execute":
            session.execute("INSERT INTO users (name, score) VALUES ('raw', 0)")

    def listener(session, **info):
        if "called" in seen:
            return
        seen["called"] = True
        try:
            act()
        except BaseException as error:
            seen["error"] = error
            raise

    return listener


def expected_names(event, operation):
    names = ["old", "far"] + BASE[SCENARIO_OF[event]]
    if operation in REFUSED or event in UNDONE:
        return sorted(names)
    if event == "before_begin" and operation in ("get", "execute"):
        return sorted(names)  # refused: it would begin the transaction being begun
    if operation == "add":
        names.append("carol")
    elif operation == "delete":
        names.remove("old")
    elif operation == "execute":
        names.append("raw")
    return sorted(names)


def refusal_expected(event, operation):
    return operation in REFUSED or (event == "before_begin" and operation in ("get", "execute"))


@pytest.fixture
def database(tmp_path):
    path = str(tmp_path / "reentrancy.db")
    connection = uow.connect(path)
    uow.create_all(connection, [User])
    connection.execute("INSERT INTO users (id, name, score) VALUES (1, 'old', 0), (2, 'far', 0)")
    connection.close()
    return path


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("event", uow.EVENT_NAMES)
def test_every_session_operation_from_every_lifecycle_listener(database, event, operation):
    scenario = Scenario(database, SCENARIO_OF[event])
    session = scenario.session
    scenario.prepare()
    seen = {}
    listener = listener_doing(operation, scenario, seen)
    uow.listen(session, event, listener)
    raised = None
    try:
        scenario.trigger()
    except errors.TransactionError as error:
        raised = error
    assert seen.get("called"), f"{event} was not emitted by the scenario"
    uow.remove_listener(session, event, listener)

    if refusal_expected(event, operation):
        assert raised is not None and raised is seen.get("error"), f"{event} x {operation}: not refused"
        if operation in REFUSED:
            article = "an" if event.startswith("after") else "a"
            assert str(raised).startswith(f"{operation}() was called from {article} {event} listener")
        else:
            assert str(raised).startswith("the database was used from a before_begin listener")
        assert "RecursionError" not in repr(raised.__context__)
    else:
        assert raised is None and "error" not in seen, f"{event} x {operation}: {seen.get('error')!r}"
    if operation == "get" and not refusal_expected(event, operation):
        assert seen["got"].name == "far"

    assert session.is_active, f"{event} x {operation}: the session was left {session!r}"
    scenario.finish(raised is not None)

    other = sqlite3.connect(database)
    rows = other.execute("SELECT id, name FROM users").fetchall()
    other.close()
    assert sorted(name for _, name in rows) == expected_names(event, operation)
    # The session agrees with the database: each object it holds has its row, with its values.
    by_id = dict(rows)
    for key, obj in session.identity_map.items():
        assert by_id.get(key[1][0]) == obj.name, f"{obj!r} is held but its row is {by_id.get(key[1][0])!r}"
    assert not session.new and not session.deleted and not session.dirty
    session.close()
    scenario.connection.close()


def test_commit_from_an_after_begin_listener_during_a_flush_is_refused_and_nothing_is_committed_twice(database):
    """Issue 10.4: the listener's commit() ran the same flush inside the flush, COMMITted it, and the
    outer flush then inserted the row again (committed at its RELEASE) before raising InvalidStateError."""
    connection = uow.connect(database)
    session = uow.Session(connection)
    session.add(User(name="ann"))
    uow.listen(session, "after_begin", lambda s, **info: s.commit())
    with pytest.raises(errors.TransactionError) as raised:
        session.flush()
    assert str(raised.value).startswith("commit() was called from an after_begin listener, while beginning the "
                                        "transaction is in progress")
    other = sqlite3.connect(database)
    assert other.execute("SELECT count(*) FROM users WHERE name = 'ann'").fetchone() == (0,)
    assert session.is_active and [user.name for user in session.new] == ["ann"]
    session.commit()  # the transaction is open already: no begin, no listener
    assert other.execute("SELECT count(*) FROM users WHERE name = 'ann'").fetchone() == (1,)
    other.close()
    session.close()
    connection.close()


def test_work_an_after_begin_listener_does_during_a_flush_is_part_of_that_flush(database):
    """Issue 10.6: an object it added stayed pending but left session.new and was never inserted; a
    field it changed was listed by dirty_fields() but never written; a delete() it made was forgotten."""
    connection = uow.connect(database)
    session = uow.Session(connection)
    old, far = session.get(User, 1), session.get(User, 2)
    session.commit()
    carol = User(name="carol")

    def stage(session, **info):
        session.add(carol)
        old.name = "renamed by the listener"
        session.delete(far)

    uow.listen(session, "after_begin", stage)
    session.add(User(name="ann"))
    with uow.capture_sql() as statements:
        session.flush()
    writes = [(s.sql.split()[0], len(s.params)) for s in statements if s.many]
    assert writes == [("UPDATE", 1), ("INSERT", 2), ("DELETE", 1)]  # one flush: ann and carol together
    assert uow.state_of(carol) is uow.ObjectState.PERSISTENT and carol.id is not None
    assert uow.state_of(far) is uow.ObjectState.DELETED
    assert session.dirty_fields(old) == []
    assert not session.new and not session.dirty and not session.deleted
    session.commit()
    other = sqlite3.connect(database)
    assert sorted(other.execute("SELECT name FROM users")) == [("ann",), ("carol",), ("renamed by the listener",)]
    other.close()
    session.close()
    connection.close()


def test_upsert_from_a_flush_listener_is_refused_as_flush_is(database):
    """upsert() flushes pending work first: from a before_flush listener it flushed inside the flush,
    whose before_flush called upsert() again, until RecursionError."""
    connection = uow.connect(database)
    session = uow.Session(connection)
    uow.listen(session, "before_flush", lambda s, **info: s.upsert(User(id=7, name="up", score=0.0)))
    session.add(User(name="ann"))
    with uow.capture_sql() as statements:
        with pytest.raises(errors.TransactionError) as raised:
            session.flush()
    assert str(raised.value).startswith("upsert() was called from a before_flush listener, while the flush is in "
                                        "progress")
    assert statements == []
    assert session.is_active
    session.close()
    connection.close()
