"""Transaction options and lifecycle events: the SQL they send, what they refuse, and in what order
they call listeners (uow/events.py)."""

import sqlite3

import pytest

import uow
from uow.errors import FlushError, TransactionError

from .harness import Item, assert_session, db_rows, one_item_file, session_snapshot


@pytest.fixture
def db(tmp_path):
    return one_item_file(str(tmp_path / "tx.db"))


@pytest.fixture
def conn(db):
    connection = uow.connect(db)
    yield connection
    connection.close()


@pytest.fixture
def other(db):
    """A plain second connection: it sees only what was committed."""
    connection = sqlite3.connect(db, isolation_level=None)
    yield connection
    connection.close()


@pytest.fixture
def class_listeners():
    """Register listeners on uow.Session (every session) and remove them after the test."""
    registered = []

    def listen(name, listener):
        uow.listen(uow.Session, name, listener)
        registered.append((name, listener))

    yield listen
    for name, listener in registered:
        uow.remove_listener(uow.Session, name, listener)


def committed_names(other):
    return [row[0] for row in other.execute("SELECT name FROM rel_items ORDER BY id")]


# -- BEGIN modes --------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["DEFERRED", "IMMEDIATE", "EXCLUSIVE", "immediate"])
def test_begin_mode_argument_is_sent(conn, mode):
    session = uow.Session(conn)
    with uow.capture_sql() as statements:
        session.begin(mode)
    assert [s.sql for s in statements] == [f"BEGIN {mode.upper()}"]
    session.rollback()


@pytest.mark.parametrize("mode", ["DEFERRED", "IMMEDIATE", "EXCLUSIVE"])
def test_session_begin_mode_applies_to_reads_and_flushes(conn, mode):
    session = uow.Session(conn, begin_mode=mode)
    with uow.capture_sql() as statements:
        session.get(Item, 1)
    assert statements[0].sql == f"BEGIN {mode}"
    session.commit()
    session.add(Item(tag="item-2", name="two"))
    with uow.capture_sql() as statements:
        session.flush()
    assert statements[0].sql == f"BEGIN {mode}"
    session.commit()


def test_default_modes(conn):
    """Reads begin DEFERRED (readers run side by side); a flush that begins begins IMMEDIATE."""
    session = uow.Session(conn)
    with uow.capture_sql() as statements:
        session.get(Item, 1)
    assert statements[0].sql == "BEGIN DEFERRED"
    session.commit()
    session.add(Item(tag="item-2", name="two"))
    with uow.capture_sql() as statements:
        session.commit()
    assert [s.sql for s in statements][0] == "BEGIN IMMEDIATE"
    assert [s.sql for s in statements][-1] == "COMMIT"


def test_exclusive_blocks_readers_in_rollback_journal_mode(conn, other):
    session = uow.Session(conn, begin_mode="EXCLUSIVE")
    session.begin()
    other.execute("PRAGMA busy_timeout = 0")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("SELECT count(*) FROM rel_items").fetchall()
    session.rollback()
    assert other.execute("SELECT count(*) FROM rel_items").fetchone() == (1,)


@pytest.mark.parametrize("options", [
    {"begin_mode": "SERIALIZABLE"},
    {"begin_mode": "CONCURRENT"},
    {"isolation_level": "READ COMMITTED"},
    {"isolation_level": "REPEATABLE READ"},
    {"isolation_level": "READ UNCOMMITTED"},
    {"deferrable": True},
    {"deferrable": False},
])
def test_options_sqlite_cannot_honour_are_refused_before_any_sql(conn, options):
    [(option, value)] = options.items()
    named = f"begin mode {value!r}" if option == "begin_mode" else f"{option}={value!r}"
    with uow.capture_sql() as statements:
        with pytest.raises(TransactionError) as caught:
            uow.Session(conn, **options)
    assert statements == []
    assert str(caught.value).startswith(named)
    session = uow.Session(conn)
    begin_options = dict(options)
    mode = begin_options.pop("begin_mode", None)
    with uow.capture_sql() as statements:
        with pytest.raises(TransactionError) as caught:
            session.begin(mode, **begin_options)
    assert statements == []
    assert str(caught.value).startswith(named)
    assert not session.in_transaction() and not conn.in_transaction
    session.begin()  # the refusal left the session usable
    session.rollback()


def test_serializable_is_accepted(conn):
    session = uow.Session(conn, isolation_level="SERIALIZABLE")
    session.begin(isolation_level="serializable")
    assert conn.in_transaction
    session.rollback()


def test_begin_twice_is_refused_and_the_transaction_survives(conn, other):
    session = uow.Session(conn)
    session.begin()
    session.add(Item(tag="item-2", name="two"))
    session.flush()
    with uow.capture_sql() as statements:
        with pytest.raises(TransactionError, match="begin_nested"):
            session.begin()
    assert statements == []
    assert conn.in_transaction
    session.commit()
    assert committed_names(other) == ["one", "two"]


# -- events -------------------------------------------------------------------------------------

class Recorder:
    """Listens to every event and records (event, error, savepoint name)."""

    def __init__(self, target=None, tag=None):
        self.calls = []
        self.tag = tag
        if target is not None:
            for name in uow.EVENT_NAMES:
                uow.listen(target, name, self.listener(name))

    def listener(self, name):
        def record(session, *, error=None, savepoint=None, **info):
            entry = (name, error, savepoint.name if savepoint is not None else None)
            self.calls.append(entry if self.tag is None else (self.tag,) + entry)
        return record

    def take(self):
        calls, self.calls = self.calls, []
        return calls

    def names(self):
        return [call[0] for call in self.take()]


def test_event_order_for_every_operation(conn):
    session = uow.Session(conn)
    events = Recorder(session)

    session.begin()
    assert events.take() == [("before_begin", None, None), ("after_begin", None, None)]

    session.add(Item(tag="item-2", name="two"))
    session.flush()
    assert events.take() == [("before_flush", None, None), ("after_flush", None, None)]

    nested = session.begin_nested()
    # The NestedTransaction does not exist yet when before_savepoint runs; after_savepoint has it.
    assert events.take() == [("before_savepoint", None, None), ("after_savepoint", None, nested.name)]
    session.add(Item(tag="item-3", name="three"))
    nested.commit()
    assert events.take() == [
        # Like commit(): the before-event comes first, so a refusing listener stops the flush too.
        ("before_release_savepoint", None, nested.name),
        ("before_flush", None, None), ("after_flush", None, None),
        ("after_release_savepoint", None, nested.name),
    ]

    inner = session.begin_nested()
    session.add(Item(tag="item-4", name="four"))
    inner.rollback()
    assert events.take() == [
        ("before_savepoint", None, None), ("after_savepoint", None, inner.name),
        ("before_rollback_to_savepoint", None, inner.name), ("after_rollback_to_savepoint", None, inner.name),
    ]

    session.get(Item, 1).name = "uno"
    session.commit()
    assert events.take() == [
        ("before_commit", None, None), ("before_flush", None, None), ("after_flush", None, None),
        ("after_commit", None, None),
    ]

    session.get(Item, 1).name = "eins"
    session.rollback()
    assert events.names() == ["before_rollback", "after_rollback"]


def test_event_order_when_commit_begins_the_transaction(conn):
    session = uow.Session(conn)
    events = Recorder(session)
    session.add(Item(tag="item-2", name="two"))
    session.commit()
    assert events.names() == ["before_commit", "before_flush", "before_begin", "after_begin",
                              "after_flush", "after_commit"]


def test_after_events_carry_the_error_of_a_failed_flush(conn, other):
    other.execute("INSERT INTO rel_items (tag, name, qty) VALUES ('taken', 'planted', 0)")
    session = uow.Session(conn)
    events = Recorder(session)
    session.add(Item(tag="taken", name="clash"))
    with pytest.raises(FlushError) as raised:
        session.commit()
    calls = events.take()
    assert [call[0] for call in calls] == ["before_commit", "before_flush", "before_begin", "after_begin",
                                           "after_flush", "after_commit"]
    errors = {name: error for name, error, _ in calls}
    assert errors["after_begin"] is None
    assert errors["after_flush"] is raised.value
    assert errors["after_commit"] is raised.value
    session.rollback()
    assert [call[:2] for call in events.take()] == [("before_rollback", None), ("after_rollback", None)]


def test_after_commit_carries_the_error_of_a_refused_commit(conn, other):
    """In rollback-journal mode an open read transaction elsewhere blocks COMMIT (SQLITE_BUSY)."""
    session = uow.Session(conn, busy_timeout=0.05)
    events = Recorder(session)
    session.add(Item(tag="item-2", name="two"))
    session.flush()
    other.execute("BEGIN")
    other.execute("SELECT * FROM rel_items").fetchall()
    events.take()
    with pytest.raises(TransactionError) as raised:
        session.commit()
    assert events.take() == [("before_commit", None, None), ("after_commit", raised.value, None)]
    assert conn.in_transaction, "a refused COMMIT leaves the transaction open"
    other.execute("COMMIT")
    session.commit()
    assert committed_names(other) == ["one", "two"]


def test_class_listeners_see_every_session_and_run_first(conn, db, class_listeners):
    everyone = Recorder(tag="class")
    for name in ("before_commit", "after_commit"):
        class_listeners(name, everyone.listener(name))
    conn2 = uow.connect(db)
    try:
        first, second = uow.Session(conn), uow.Session(conn2)
        first_only = Recorder(first, tag="first")
        first.commit()
        second.commit()
        calls = everyone.take() + first_only.take()
        assert [c for c in calls if c[0] == "class"] == [
            ("class", "before_commit", None, None), ("class", "after_commit", None, None),
            ("class", "before_commit", None, None), ("class", "after_commit", None, None)]
    finally:
        conn2.close()
    order = []
    class_listeners("before_rollback", lambda session, **info: order.append("class"))
    session = uow.Session(conn)
    uow.listen(session, "before_rollback", lambda session, **info: order.append("session"))
    session.rollback()
    assert order == ["class", "session"]


def test_class_listeners_are_removed(conn, class_listeners):
    calls = []

    def listener(session, **info):
        calls.append(1)

    uow.listen(uow.Session, "before_rollback", listener)
    uow.remove_listener(uow.Session, "before_rollback", listener)
    uow.Session(conn).rollback()
    assert calls == []
    with pytest.raises(uow.errors.UowError):
        uow.remove_listener(uow.Session, "before_rollback", listener)
    with pytest.raises(uow.errors.UowError):
        uow.listen(uow.Session, "before_teleport", listener)


# -- an exception in a before_* listener aborts the operation, leaving the session as it was ----

def _boom(session, **info):
    raise RuntimeError("listener refuses")


def _session_with_work(conn):
    """A session in a transaction, with a flushed insert, a pending insert and a change."""
    session = uow.Session(conn)
    item = session.get(Item, 1)
    flushed = Item(tag="item-2", name="two")
    session.add(flushed)
    session.flush()
    pending = Item(tag="item-3", name="three")
    session.add(pending)
    item.name = "changed"
    return session, [item, flushed, pending]


WORK = ["changed", "two", "three"]  # what _session_with_work commits


@pytest.mark.parametrize("event, operation, committed", [
    ("before_commit", lambda session, nested: session.commit(), WORK),
    ("before_rollback", lambda session, nested: session.rollback(), ["one"]),
    ("before_flush", lambda session, nested: session.flush(), WORK),
    ("before_savepoint", lambda session, nested: session.begin_nested(), WORK),
    ("before_release_savepoint", lambda session, nested: nested.commit(), WORK + ["four"]),
    ("before_rollback_to_savepoint", lambda session, nested: nested.rollback(), WORK),
])
def test_before_listener_exception_aborts_with_session_unchanged(conn, other, event, operation, committed):
    session, objects = _session_with_work(conn)
    nested = None
    if "savepoint" in event and event != "before_savepoint":
        nested = session.begin_nested()
        inside = Item(tag="item-4", name="four")
        session.add(inside)
        objects.append(inside)
    before = session_snapshot(session, objects)
    rows = db_rows(conn)
    savepoints = session.in_nested_transaction()
    uow.listen(session, event, _boom)
    with uow.capture_sql() as statements:
        with pytest.raises(RuntimeError, match="listener refuses"):
            operation(session, nested)
    assert [s.sql for s in statements] == [], f"{event}: SQL ran before the listener aborted it"
    assert_session(session, before, objects, f"after {event} raised")
    assert db_rows(conn) == rows
    assert conn.in_transaction and session.in_nested_transaction() == savepoints
    if nested is not None:
        assert nested.is_active
    assert committed_names(other) == ["one"]
    uow.remove_listener(session, event, _boom)
    operation(session, nested)  # the same operation now works
    session.commit()
    assert committed_names(other) == committed


def test_before_begin_exception_sends_no_begin(conn):
    session = uow.Session(conn)
    uow.listen(session, "before_begin", _boom)
    with uow.capture_sql() as statements:
        with pytest.raises(RuntimeError):
            session.begin()
        with pytest.raises(RuntimeError):
            session.get(Item, 1)
    assert statements == []
    assert not conn.in_transaction and not session.in_transaction()
    uow.remove_listener(session, "before_begin", _boom)
    assert session.get(Item, 1).name == "one"
