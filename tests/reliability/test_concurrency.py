"""Concurrency: two sessions on one file, locks, threads, read-only.

Every test uses a real file database and real second connections; nothing is mocked.
"""

import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

import uow
from uow.errors import (FlushError, PendingRollbackError, ReadOnlyError, StaleDataError, UowError,
                        WrongThreadError)

from ..helpers import in_other_thread
from . import counter_worker
from .counter_worker import Counter
from .harness import Item, assert_session, db_rows, one_item_file, session_snapshot, sqlite_cause

JOURNAL_MODES = ["DELETE", "WAL"]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(params=JOURNAL_MODES)
def counter_db(request, tmp_path):
    path = str(tmp_path / "counter.db")
    counter_worker.create(path, request.param)
    return path


@pytest.fixture
def items_db(tmp_path):
    return one_item_file(str(tmp_path / "items.db"))


def counter_row(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT value, version FROM stress_counter WHERE id = 1").fetchone()
    finally:
        conn.close()


def is_lock_error(error):
    cause = sqlite_cause(error)
    return cause is not None and cause.sqlite_errorname.startswith("SQLITE_BUSY")


# -- C1: lost updates ---------------------------------------------------------------------------

def test_second_writer_gets_stale_data_error(counter_db):
    """Both sessions load version 1 (each in a transaction of its own), both change the counter:
    the first commit wins, the second raises StaleDataError naming the object and both versions,
    and the winner's value is not overwritten."""
    conn1, conn2 = uow.connect(counter_db), uow.connect(counter_db)
    first, second = uow.Session(conn1), uow.Session(conn2)
    try:
        mine, theirs = first.get(Counter, 1), second.get(Counter, 1)
        first.commit()
        second.commit()
        mine.value = 10
        theirs.value = 20
        first.commit()
        with pytest.raises(StaleDataError) as raised:
            second.commit()
        error = raised.value
        assert error.obj is theirs
        assert (error.expected, error.found) == (1, 2)
        assert "Counter(id=1)" in str(error) and "1" in str(error) and "2" in str(error), str(error)
        assert error.statement.startswith("UPDATE")
        assert counter_row(counter_db) == (10, 2)
        second.rollback()
        second.refresh(theirs)
        theirs.value += 5
        second.commit()
        assert counter_row(counter_db) == (15, 3)
    finally:
        first.close()
        second.close()
        conn1.close()
        conn2.close()


STEPS = ("load", "modify", "flush", "commit")
INTERLEAVINGS = sorted(set(itertools.permutations([0] * 4 + [1] * 4)))


@pytest.mark.parametrize("journal_mode", JOURNAL_MODES)
def test_every_interleaving_of_two_writers(journal_mode, tmp_path):
    """All 70 interleavings of {load, modify, flush, commit} for two sessions incrementing one
    versioned counter.  A session whose flush or commit fails rolls back and stops, as an
    application would.  Each time: at least one commit wins, every loser got StaleDataError or a
    lock error that is a uow error, and the counter equals its start plus the number of commits
    (no update was lost)."""
    outcomes = {}
    template = str(tmp_path / "template.db")
    counter_worker.create(template, journal_mode)
    for number, order in enumerate(INTERLEAVINGS):
        path = str(tmp_path / f"interleaving-{number}.db")
        shutil.copyfile(template, path)  # closed cleanly, so the WAL (if any) was checkpointed
        connections = [uow.connect(path, timeout=0.05) for _ in range(2)]
        sessions = [uow.Session(conn) for conn in connections]
        counters = [None, None]
        position = [0, 0]
        failed = [None, None]
        committed = [False, False]
        try:
            for who in order:
                step = STEPS[position[who]]
                position[who] += 1
                if failed[who] is not None:
                    continue
                session = sessions[who]
                try:
                    if step == "load":
                        counters[who] = session.get(Counter, 1)
                    elif step == "modify":
                        counters[who].value += 1
                    elif step == "flush":
                        session.flush()
                    else:
                        session.commit()
                        committed[who] = True
                except Exception as error:
                    failed[who] = error
                    session.rollback()
            label = "".join(str(who) for who in order)
            for who, error in enumerate(failed):
                if error is not None:
                    assert isinstance(error, StaleDataError) or (isinstance(error, UowError) and is_lock_error(error)), (
                        f"{label}: session {who} failed with {type(error).__name__}: {error}")
            assert any(committed), f"{label}: neither session committed ({failed})"
            value, version = counter_row(path)
            assert value == sum(committed), f"{label}: counter {value} after {sum(committed)} commits"
            assert version == 1 + sum(committed)
            outcome = tuple(type(error).__name__ if error else "commit" for error in failed)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        finally:
            for session in sessions:
                session.close()
            for conn in connections:
                conn.close()
    # Races were really lost in some interleavings (otherwise this test tested nothing).
    print(f"\n{journal_mode}: outcomes of the 70 interleavings: {outcomes}")
    assert any("commit" in outcome and len(set(outcome)) == 2 for outcome in outcomes), outcomes


READ_APART_INTERLEAVINGS = sorted(set(itertools.permutations([0] * 3 + [1] * 3)))


@pytest.mark.parametrize("journal_mode", JOURNAL_MODES)
def test_every_interleaving_with_reads_in_their_own_transaction(journal_mode, tmp_path):
    """The optimistic pattern: each session loads the counter and ends that read transaction
    (commit), later changes it and commits.  No lock is held between the steps, so the version
    column is the only guard: in all 20 interleavings, the second commit fails with StaleDataError
    exactly when both sessions loaded before the first commit, and never otherwise."""
    template = str(tmp_path / "template.db")
    counter_worker.create(template, journal_mode)
    stale_seen = 0
    for number, order in enumerate(READ_APART_INTERLEAVINGS):
        path = str(tmp_path / f"interleaving-{number}.db")
        shutil.copyfile(template, path)
        connections = [uow.connect(path, timeout=0.05) for _ in range(2)]
        sessions = [uow.Session(conn) for conn in connections]
        counters = [None, None]
        position = [0, 0]
        loaded_before_first_commit = 0
        first_commit_done = False
        errors = [None, None]
        try:
            for who in order:
                step = ("load", "modify", "commit")[position[who]]
                position[who] += 1
                session = sessions[who]
                if step == "load":
                    counters[who] = session.get(Counter, 1)
                    session.commit()
                    loaded_before_first_commit += not first_commit_done
                elif step == "modify":
                    counters[who].value += 1
                else:
                    try:
                        session.commit()
                    except StaleDataError as error:
                        errors[who] = error
                        assert error.obj is counters[who] and error.expected == 1 and error.found == 2
                        session.rollback()
                    first_commit_done = True
            label = "".join(str(who) for who in order)
            expected_failures = 1 if loaded_before_first_commit == 2 else 0
            assert sum(error is not None for error in errors) == expected_failures, f"{label}: {errors}"
            stale_seen += expected_failures
            assert counter_row(path) == (2 - expected_failures, 3 - expected_failures), label
        finally:
            for session in sessions:
                session.close()
            for conn in connections:
                conn.close()
    assert stale_seen > 0


# -- C5: the busy timeout -----------------------------------------------------------------------

def test_flush_waits_for_the_busy_timeout_then_fails_clearly(items_db):
    """Another connection holds the write lock: a flush that must BEGIN IMMEDIATE waits the busy
    timeout, then fails with a uow error; database and session are unchanged, and once the lock
    is free the work can be done."""
    blocker = sqlite3.connect(items_db, isolation_level=None)
    conn = uow.connect(items_db)
    session = uow.Session(conn, busy_timeout=0.2)
    try:
        item = session.get(Item, 1)
        session.commit()
        item.name = "changed"
        added = Item(tag="item-2", name="two")
        session.add(added)
        objects = [item, added]
        before = session_snapshot(session, objects)
        blocker.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(Exception) as raised:
            session.flush()
        waited = time.monotonic() - started
        blocker.execute("ROLLBACK")
        assert waited >= 0.8 * 0.2, f"the flush gave up after {waited:.3f} s, before the 0.2 s busy timeout"
        assert is_lock_error(raised.value), repr(raised.value)
        assert_session(session, before, objects, "after the lock timeout")
        assert db_rows(blocker)["rel_items"] == [(1, "item-1", "one", 1, None)]
        assert isinstance(raised.value, UowError), (
            f"a lock timeout in flush() should be a uow error, got {type(raised.value).__name__}: {raised.value}")
        try:
            session.flush()
        except PendingRollbackError:
            session.rollback()
            item.name = "changed"
            session.add(added)
            session.flush()
        session.commit()
        assert [row[2] for row in db_rows(blocker)["rel_items"]] == ["changed", "two"]
    finally:
        session.close()
        conn.close()
        blocker.close()


@pytest.mark.parametrize("call", ["get", "get_one", "all", "filter", "refresh", "merge", "lazy load"])
def test_a_read_that_meets_a_held_lock_fails_with_a_uow_error_and_changes_nothing(items_db, call):
    """A writer holding the EXCLUSIVE lock (it is committing, or in rollback-journal mode it
    spilled its changes): a read waits the busy timeout, then fails.  The stress test once saw
    get() let that out as a raw sqlite3.OperationalError; it is a DatabaseLockedError, the session
    is as it was, and once the lock is free the same read works."""
    blocker = sqlite3.connect(items_db, isolation_level=None)
    blocker.execute("INSERT INTO rel_items (id, tag, name, qty) VALUES (2, 'item-2', 'two', 2)")
    conn = uow.connect(items_db)
    session = uow.Session(conn, busy_timeout=0.05)
    try:
        item = session.get(Item, 1)
        session.commit()
        if call == "lazy load":
            session.expire(item)
        objects = [item]
        before = session_snapshot(session, objects)
        reads = {
            "get": lambda: session.get(Item, 2),
            "get_one": lambda: session.get_one(Item, 2),
            "all": lambda: session.all(Item),
            "merge": lambda: session.merge(Item(id=2, tag="item-2", name="two")),
            "filter": lambda: session.filter(Item, tag="item-1"),
            "refresh": lambda: session.refresh(item),
            "lazy load": lambda: item.name,
        }
        blocker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(uow.errors.DatabaseLockedError) as raised:
            reads[call]()
        assert is_lock_error(raised.value), repr(raised.value)
        assert "Item" in str(raised.value) and "retry" in str(raised.value)
        assert_session(session, before, objects, f"after {call} met the lock")
        blocker.execute("ROLLBACK")
        reads[call]()
        assert item.name == "one"
    finally:
        session.close()
        conn.close()
        blocker.close()


@pytest.mark.parametrize("journal_mode", JOURNAL_MODES)
def test_flush_in_a_read_transaction_fails_at_once_on_the_lock(items_db, journal_mode):
    """A session that read first holds a DEFERRED transaction; SQLite cannot let it wait for the
    write lock (that could deadlock) and fails at once.  uow must say so with a FlushError that
    tells the user to roll back and retry, leave the session as it was, and let the retry work."""
    setup = sqlite3.connect(items_db, isolation_level=None)
    setup.execute(f"PRAGMA journal_mode = {journal_mode}")
    setup.close()
    blocker = sqlite3.connect(items_db, isolation_level=None)
    conn = uow.connect(items_db)
    session = uow.Session(conn, busy_timeout=0.2)
    try:
        item = session.get(Item, 1)  # BEGIN DEFERRED + a read
        item.name = "changed"
        before = session_snapshot(session, [item])
        blocker.execute("BEGIN IMMEDIATE")
        blocker.execute("UPDATE rel_items SET qty = 5 WHERE id = 1")
        with pytest.raises(FlushError) as raised:
            session.flush()
        assert is_lock_error(raised.value), repr(raised.value)
        assert "retry" in str(raised.value)
        assert_session(session, before, [item], "after the lock error")
        with pytest.raises(PendingRollbackError):
            session.flush()
        session.rollback()  # ends the read transaction, which in DELETE mode blocks the other COMMIT
        blocker.execute("COMMIT")
        item.name = "changed"
        session.commit()
        assert db_rows(blocker)["rel_items"] == [(1, "item-1", "changed", 5, None)]
    finally:
        session.close()
        conn.close()
        blocker.close()


def test_writes_begin_immediate_and_reads_begin_deferred(items_db):
    conn = uow.connect(items_db)
    session = uow.Session(conn)
    try:
        session.add(Item(tag="item-2", name="two"))
        with uow.capture_sql() as statements:
            session.flush()
        assert statements[0].sql == "BEGIN IMMEDIATE"
        session.commit()
        with uow.capture_sql() as statements:
            session.get(Item, 1)
        assert statements[0].sql == "BEGIN DEFERRED"
    finally:
        session.close()
        conn.close()


# -- C6: threads --------------------------------------------------------------------------------

@pytest.mark.parametrize("check_same_thread", [True, False])
def test_session_used_from_another_thread(items_db, check_same_thread):
    """Every operation from a thread other than the creator's raises WrongThreadError naming both
    threads, even when the connection itself would allow it (check_same_thread=False), and the
    session is unchanged for its owner."""
    conn = sqlite3.connect(items_db, isolation_level=None, check_same_thread=check_same_thread)
    conn.execute("PRAGMA foreign_keys = ON")
    session = uow.Session(conn)
    try:
        item = session.get(Item, 1)
        item.name = "owner's change"
        pending = Item(tag="item-2", name="two")
        session.add(pending)
        before = session_snapshot(session, [item, pending])
        owner = threading.get_ident()
        calls = {
            "add": lambda: session.add(Item(tag="item-3", name="three")),
            "delete": lambda: session.delete(item),
            "get": lambda: session.get(Item, 1),
            "get (a miss)": lambda: session.get(Item, 99),
            "filter": lambda: session.filter(Item),
            "flush": session.flush,
            "commit": session.commit,
            "rollback": session.rollback,
            "begin_nested": session.begin_nested,
            "refresh": lambda: session.refresh(item),
            "set attribute": lambda: setattr(item, "name", "other thread"),
        }
        for name, call in calls.items():
            error, caller = in_other_thread(call)
            assert isinstance(error, WrongThreadError), f"{name} from another thread: {error!r}"
            assert str(owner) in str(error) and str(caller) in str(error), f"{name}: {error}"
        assert_session(session, before, [item, pending], "after the calls from another thread")
        session.commit()
        assert [row[2] for row in db_rows(conn)["rel_items"]] == ["owner's change", "two"]
    finally:
        session.close()
        conn.close()


# -- C7: read-only sessions ---------------------------------------------------------------------

def _query_only(conn):
    return conn.execute("PRAGMA query_only").fetchone()[0]


@pytest.mark.parametrize("how", ["loaded first", "nothing loaded", "begin(read_only=True)"])
def test_read_only_session_refuses_to_flush_before_any_sql(items_db, how):
    conn = uow.connect(items_db)
    session = uow.Session(conn, read_only=(how != "begin(read_only=True)"))
    try:
        if how == "begin(read_only=True)":
            session.begin(read_only=True)
        if how != "nothing loaded":
            item = session.get(Item, 1)
            item.name = "changed"
            assert _query_only(conn) == 1
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                conn.execute("UPDATE rel_items SET qty = 2")
        added = Item(tag="item-2", name="two")
        session.add(added)
        with uow.capture_sql() as statements:
            with pytest.raises(ReadOnlyError):
                session.flush()
        assert statements == [], f"SQL was sent before the read-only check: {[s.sql for s in statements]}"
        with uow.capture_sql() as statements:
            with pytest.raises(ReadOnlyError):
                session.commit()
        assert not [s for s in statements if s.sql.startswith(("INSERT", "UPDATE", "DELETE", "SAVEPOINT"))]
        session.rollback()
        assert _query_only(conn) == 0, "PRAGMA query_only was not restored"
        assert db_rows(conn)["rel_items"] == [(1, "item-1", "one", 1, None)]
    finally:
        session.close()
        conn.close()


def test_read_only_keeps_a_query_only_the_user_set(items_db):
    conn = uow.connect(items_db)
    conn.execute("PRAGMA query_only = 1")
    session = uow.Session(conn, read_only=True)
    try:
        session.get(Item, 1)
        session.commit()
        assert _query_only(conn) == 1
    finally:
        session.close()
        conn.close()


# -- C2: stress ---------------------------------------------------------------------------------

WORKERS = int(os.environ.get("UOW_STRESS_WORKERS", "4"))
INCREMENTS = int(os.environ.get("UOW_STRESS_INCREMENTS", "50"))


def test_processes_increment_one_counter(counter_db):
    """WORKERS processes x INCREMENTS increments of one versioned counter, retrying lost races:
    the final value is exactly the number of successful commits, the version moved once per
    commit, and every lost race surfaced as StaleDataError or a lock error."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    script = os.path.join(os.path.dirname(__file__), "counter_worker.py")
    workers = [subprocess.Popen([sys.executable, script, counter_db, str(INCREMENTS), f"seed-{n}"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                bufsize=0)
               for n in range(WORKERS)]
    for worker in workers:
        assert worker.stdout.readline() == b"ready\n", worker.stderr.read().decode()[-2000:]
    for worker in workers:  # start them together, so that they really compete
        worker.stdin.write(b"go\n")
        worker.stdin.flush()
    summaries = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()[-2000:]
        summaries.append(json.loads(out))
    successes = sum(s["successes"] for s in summaries)
    lost = {kind: sum(s[kind] for s in summaries) for kind in ("stale", "locked", "raw_locked")}
    others = [message for s in summaries for message in s["other"]]
    print(f"\nstress: {successes} commits, lost races: {lost}, other errors: {len(others)}")
    assert others == [], others[:5]
    for s in summaries:
        assert s["attempts"] == s["successes"] + s["stale"] + s["locked"] + s["raw_locked"]
    assert successes == WORKERS * INCREMENTS
    assert counter_row(counter_db) == (successes, successes + 1)
    assert lost["raw_locked"] == 0, f"{lost['raw_locked']} lock errors reached the caller as raw sqlite3 errors"
