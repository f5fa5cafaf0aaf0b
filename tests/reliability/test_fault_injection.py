"""Fault injection at every statement position of a flush.

SQLite's own "fail at step n, loop n until success" pattern: each scenario is run once cleanly to
count the N statements its flush sends; then, for k = 1..N and for each kind of fault, a fresh run
fails statement k and checks that

* the database is exactly as before the flush (or, when SQLite threw the transaction away, as at
  the last commit), and passes ``PRAGMA integrity_check``;
* the session is exactly as before the flush (identity map, new/dirty/deleted, each object's
  state, values and snapshot);
* any further use raises PendingRollbackError naming the failure;
* ``rollback()`` brings database and session back to the last commit, and a clean retry then gives
  the same database and session as a run that never failed.

Fault kinds at statement k: ``deny`` (authorizer), ``interrupt`` (progress handler; SQLite rolls
back the whole transaction), ``error`` / ``error_after`` (RuntimeError just before / just after
the statement), ``kbint`` / ``kbint_after`` (KeyboardInterrupt just before / just after it).
test_fault_after_statement.py does the same for whole operations (commit, savepoint blocks,
bulk writes, upsert, rollback), whose COMMIT / RELEASE / ROLLBACK come after the flush.  Faults at a row instead of a statement
position: a UNIQUE / FOREIGN KEY / version conflict planted by a raw write, and TEMP triggers that
RAISE(ABORT) or RAISE(ROLLBACK) for one row.  Faults at events: exceptions from listeners.  And the
disk filling up (``PRAGMA max_page_count``) on a file database, looped over every page the flush
allocates.
"""

import dataclasses
import sqlite3

import pytest

import uow
from uow.errors import FlushError, PendingRollbackError, StaleDataError, UowError

from .harness import (Fault, Item, assert_db, assert_session, column_values, db_rows, raw,
                      session_shape, session_snapshot, sqlite_cause)
from .scenarios import SCENARIOS, constraint_plant, planned_writes, start, trigger_plant

MAX_ROW_CASES = 6  # writes per scenario that get a planted conflict (first, second, ..., last)


@dataclasses.dataclass
class Baseline:
    """What a scenario does when nothing fails."""

    sent: list            # the statements its flush sends
    writes: list          # (operation, table, tag, has a constraint plant)
    events: list          # the events its flush emits
    flushed: dict         # database rows right after the flush
    committed: dict       # database rows after the commit that follows
    shape: list           # the session's content after that commit


_BASELINES = {}


def baseline(name):
    if name not in _BASELINES:
        scenario = SCENARIOS[name]
        run = start(scenario)
        scenario.prepare(run)
        writes = [(op, table, tag, constraint_plant(run.conn, run.session, (op, table, tag, obj)) is not None)
                  for op, table, tag, obj in planned_writes(run.session)]
        events = []
        for event in uow.EVENT_NAMES:
            uow.listen(run.session, event, lambda session, _event=event, **info: events.append(_event))
        run.conn.arm()
        run.session.flush()
        sent = list(run.conn.sent)
        run.conn.disarm()
        during_flush = list(events)
        flushed = db_rows(run.conn)
        run.session.commit()
        _BASELINES[name] = Baseline(sent, writes, during_flush, flushed, db_rows(run.conn),
                                    session_shape(run.session))
        run.conn.close()
    return _BASELINES[name]


def _sample(indexes):
    """At most MAX_ROW_CASES of the indexes, always including the first two and the last two."""
    if len(indexes) <= MAX_ROW_CASES:
        return indexes
    picks = [0, 1, len(indexes) // 3, len(indexes) // 2, len(indexes) - 2, len(indexes) - 1]
    return [indexes[i] for i in sorted(set(picks))]


def _baseline_or_none(name):
    """The baseline, or None when the clean run itself fails (test_baseline then reports why),
    so that one broken scenario does not stop the whole module from being collected."""
    try:
        return baseline(name)
    except Exception:
        return None


def _statement_cases():
    for name in SCENARIOS:
        base = _baseline_or_none(name)
        if base is None:
            continue
        for kind in Fault.KINDS:
            for k in range(1, len(base.sent) + 1):
                yield pytest.param(name, kind, k, id=f"{name}-{kind}-{k}")


def _row_cases(kinds):
    for name in SCENARIOS:
        base = _baseline_or_none(name)
        if base is None:
            continue
        writes = base.writes
        for kind in kinds:
            usable = [j for j, write in enumerate(writes) if kind != "constraint" or write[3]]
            for j in _sample(usable):
                yield pytest.param(name, kind, j, id=f"{name}-{kind}-{writes[j][0]}-{writes[j][2]}")


# -- the checks every failed flush must pass ----------------------------------------------------

def exercise(name, inject, check_error, plant_for=None, path=":memory:", journal_mode=None):
    """Run scenario ``name`` with a fault and check everything the contract promises.

    ``inject(run)`` arms the fault; ``plant_for(run)`` returns a Plant to apply before the flush.
    Returns the error the flush raised, and whether SQLite had ended the transaction by itself.
    """
    scenario = SCENARIOS[name]
    base = baseline(name)
    run = start(scenario, path, journal_mode)
    conn, session = run.conn, run.session
    try:
        last_commit_rows = db_rows(conn)
        last_commit = session_snapshot(session)
        committed_objects = list(session.identity_map.values())
        scenario.prepare(run)
        plant = plant_for(run) if plant_for is not None else None
        if plant is not None:
            plant.apply()
            if plant.persisted:
                last_commit_rows = db_rows(conn)
        before_rows = db_rows(conn)
        objects = committed_objects + [obj for obj, _ in run.created]
        before = session_snapshot(session, objects)

        fault = inject(run)
        error = None
        try:
            session.flush()
        except BaseException as caught:  # KeyboardInterrupt included: it is one of the faults
            error = caught
        finally:
            conn.disarm()
        if fault is not None:
            assert fault.fired, f"the fault at statement {fault.k} never fired"
        assert error is not None, "the flush did not fail"

        # The checks up to here do not change anything, so each one runs and all failures are
        # reported together: a wrong exception type should not hide a wrong database.
        problems = []
        gone = not conn.in_transaction
        # An interrupt that lands after the flush's last statement (RELEASE "uow_flush") finds the
        # flush complete in the database but not yet recorded in the objects. uow cannot undo a
        # released savepoint, so it says so on the exception and requires rollback(), which the
        # checks below then verify restores the last commit.
        completed = any("had all run" in note for note in getattr(error, "__notes__", ()))
        for check in (
            lambda: check_error(error),
            lambda: None if completed else assert_db(
                conn, last_commit_rows if gone else before_rows,
                "after the failed flush" + (" (SQLite rolled the transaction back)" if gone else "")),
            lambda: assert_session(session, before, objects, "after the failed flush"),
        ):
            try:
                check()
            except AssertionError as failure:
                problems.append(str(failure))

        probes = {
            "flush": session.flush,
            "commit": session.commit,
            "get": lambda: session.get(Item, 1),
            "filter": lambda: session.filter(Item, qty=1),
            "add": lambda: session.add(Item(tag="probe", name="probe")),
            "begin_nested": session.begin_nested,
        }
        for probe, call in probes.items():
            try:
                call()
            except PendingRollbackError as refused:
                if refused.original is not error:
                    problems.append(f"{probe}(): PendingRollbackError.original is {refused.original!r}, "
                                    f"not the flush's error {error!r}")
            except Exception as other:
                problems.append(f"after the failed flush, {probe}() raised {type(other).__name__}: {other} "
                                f"instead of PendingRollbackError")
                break
            else:
                problems.append(f"after the failed flush, {probe}() worked instead of raising PendingRollbackError")
                break
        assert not problems, "\n".join(problems)
        assert_session(session, before, objects, "after the refused calls")

        session.rollback()
        assert not conn.in_transaction
        assert_db(conn, last_commit_rows, "after rollback()")
        after = session_snapshot(session, objects)
        # The object whose row another writer changed first is expired, so a retry reloads it.
        stale = error.obj if isinstance(error, StaleDataError) else None
        for key, record in last_commit["objects"].items():
            if stale is not None and key == id(stale):
                assert uow.state_of(stale) is uow.ObjectState.PERSISTENT and not column_values(stale), (
                    f"after rollback(): the stale {stale!r} is not expired")
                continue
            assert after["objects"][key] == record, (
                f"after rollback(): {record[0]} object differs from the last commit:\n"
                f"  was {record}\n  now {after['objects'][key]}")
        for part in ("new", "dirty", "deleted"):
            assert after[part] == last_commit[part], f"after rollback(): session.{part} differs from the last commit"
        held = {id(obj) for obj in session.identity_map.values()}
        lost = set(last_commit["identity"]) - set(after["identity"])
        assert not lost, f"after rollback(): identity-map entries of the last commit are gone: {sorted(lost)[:4]}"
        for key, obj in session.identity_map.items():
            # An object loaded in the rolled-back transaction keeps its values only if it read
            # them before anything was written; either way it holds nothing the rollback undid.
            kept = column_values(obj)
            if id(obj) not in last_commit["objects"] and kept:
                mapper = type(obj).__mapper__
                row = conn.execute(f"SELECT {', '.join(kept)} FROM {mapper.quoted_table} "
                                   f"WHERE {mapper.key_condition}", key[1]).fetchone()
                assert row is not None and dict(zip(kept, row)) == kept, (
                    f"after rollback(): {key} was loaded in the rolled-back transaction and keeps {kept}, "
                    f"but the row holds {row}")
        for obj, values in run.created:
            assert uow.state_of(obj) is uow.ObjectState.TRANSIENT, f"after rollback(): {obj!r} is not transient"
            assert id(obj) not in held and uow.object_session(obj) is None
            assert column_values(obj) == values, f"after rollback(): {obj!r} lost the values it was added with"

        if plant is not None:
            plant.undo()
        run.created = []
        scenario.prepare(run)
        session.flush()
        session.commit()
        assert_db(conn, base.committed, "after a clean retry")
        assert session_shape(session) == base.shape, "after a clean retry the session differs from a clean run"
        return error, gone
    finally:
        conn.close()


def expect_sqlite_failure(errorname):
    def check(error):
        assert isinstance(error, UowError), (
            f"a failed statement should raise a uow error (FlushError), got {type(error).__name__}: {error}")
        cause = sqlite_cause(error)
        assert cause is not None and cause.sqlite_errorname == errorname, f"cause {cause!r}"
        if isinstance(error, FlushError):
            assert isinstance(error.statement, str) and error.statement
    return check


def check_runtime_error(error):
    injected = error if isinstance(error, RuntimeError) else error.__cause__
    assert isinstance(injected, RuntimeError) and "injected" in str(injected), repr(error)


def check_keyboard_interrupt(error):
    assert type(error) is KeyboardInterrupt and "injected" in str(error), (
        f"KeyboardInterrupt must reach the caller unchanged, got {type(error).__name__}: {error}")


CHECKS = {
    "deny": expect_sqlite_failure("SQLITE_AUTH"),
    "interrupt": expect_sqlite_failure("SQLITE_INTERRUPT"),
    "error": check_runtime_error,
    "kbint": check_keyboard_interrupt,
    "kbint_after": check_keyboard_interrupt,
    "error_after": check_runtime_error,
}


# -- the tests ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SCENARIOS))
def test_baseline(name):
    """Each scenario runs cleanly and its flush sends at least a savepoint, a write and a release."""
    sent = baseline(name).sent
    assert len(sent) >= 3
    assert any(sql.startswith(("INSERT", "UPDATE", "DELETE")) for sql in sent)


@pytest.mark.parametrize("name, kind, k", list(_statement_cases()))
def test_fault_at_statement(name, kind, k):
    def inject(run):
        fault = Fault(kind, k)
        run.conn.arm(fault)
        return fault

    error, gone = exercise(name, inject, CHECKS[kind])
    statement = baseline(name).sent[k - 1]
    if kind == "interrupt" and statement.startswith(("INSERT", "UPDATE", "DELETE")):
        # SQLite rolls the whole transaction back when a write is interrupted (an interrupted
        # SELECT leaves it open): this is the "transaction gone" path the case exists to test.
        assert gone, "SQLite kept the transaction after an interrupted write"


@pytest.mark.parametrize("name, kind, j", list(_row_cases(["constraint", "trigger_abort", "trigger_rollback"])))
def test_fault_at_row(name, kind, j):
    """A raw write (or a TEMP trigger) made before the flush makes SQLite refuse one row."""
    planted = []

    def plant_for(run):
        write = planned_writes(run.session)[j]
        if kind == "constraint":
            plant = constraint_plant(run.conn, run.session, write)
        else:
            plant = trigger_plant(run.conn, write, j, kind.split("_")[1])
        planted.append(plant)
        return plant

    def check(error):
        plant = planted[0]
        assert isinstance(error, FlushError), f"expected a FlushError, got {type(error).__name__}: {error}"
        assert error.statement, "FlushError.statement is empty"
        if plant.kind == "stale":
            assert isinstance(error, StaleDataError), f"a version conflict should be a StaleDataError: {error}"
            assert error.obj is plant.target
            version = plant.target.__dict__["version"]
            assert (error.expected, error.found) == (version, version + 1)
            return
        cause = error.__cause__
        assert isinstance(cause, sqlite3.IntegrityError), f"cause {cause!r}"
        if plant.kind == "trigger_rollback":
            # The transaction is gone, so the failing row of a batch cannot be replayed to find it.
            assert error.obj in (plant.target, None)
        else:
            assert error.obj is plant.target, f"FlushError.obj is {error.obj!r}, expected {plant.target!r}"

    error, gone = exercise(name, lambda run: None, check, plant_for=plant_for)
    assert gone == (kind == "trigger_rollback"), "only RAISE(ROLLBACK) should end the transaction"


def _listener_cases():
    for name in SCENARIOS:
        base = _baseline_or_none(name)
        for event in base.events if base is not None else ():
            if event == "after_flush":
                continue
            for exception in (RuntimeError, KeyboardInterrupt):
                yield pytest.param(name, event, exception, id=f"{name}-{event}-{exception.__name__}")


@pytest.mark.parametrize("name, event, exception", list(_listener_cases()))
def test_listener_exception_during_flush(name, event, exception):
    """An exception from a listener the flush calls before it writes anything aborts the flush:
    no data statement runs, database and session are unchanged, and after the listener is gone
    (and a rollback if the session asks for one) the flush works."""
    scenario = SCENARIOS[name]
    base = baseline(name)
    run = start(scenario)
    conn, session = run.conn, run.session
    try:
        scenario.prepare(run)
        before_rows = db_rows(conn)
        objects = list(session.identity_map.values()) + [obj for obj, _ in run.created]
        before = session_snapshot(session, objects)

        def listener(session, **info):
            raise exception(f"from {event}")

        uow.listen(session, event, listener)
        conn.arm()
        with pytest.raises(exception, match=f"from {event}"):
            session.flush()
        conn.disarm()
        assert not [sql for sql in conn.sent if sql.startswith(("INSERT", "UPDATE", "DELETE", "SAVEPOINT"))], conn.sent
        if event.startswith("before_"):
            assert conn.sent == [], f"a {event} listener's exception must stop the flush before any SQL"
        assert_db(conn, before_rows, f"after {event} raised")
        assert_session(session, before, objects, f"after {event} raised")
        uow.remove_listener(session, event, listener)
        if event.startswith("before_"):
            session.flush()  # the session is as it was, so it is still usable
            session.commit()
        else:
            try:
                session.flush()
            except PendingRollbackError:
                session.rollback()
                run.created = []
                scenario.prepare(run)
                session.flush()
            session.commit()
        assert_db(conn, base.committed, "after the listener was removed")
    finally:
        conn.close()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_after_flush_listener_exception(name):
    """An exception from after_flush arrives after the flush succeeded: the database and the
    session must agree (both flushed), and the session stays usable."""
    scenario = SCENARIOS[name]
    base = baseline(name)
    run = start(scenario)
    conn, session = run.conn, run.session
    try:
        scenario.prepare(run)
        seen = []

        def listener(session, *, error=None, **info):
            seen.append(error)
            raise RuntimeError("from after_flush")

        uow.listen(session, "after_flush", listener)
        with pytest.raises(RuntimeError, match="from after_flush"):
            session.flush()
        assert seen == [None]
        uow.remove_listener(session, "after_flush", listener)
        assert_db(conn, base.flushed, "after after_flush raised")
        assert not (session.new or session.dirty or session.deleted), "the flushed changes are still pending"
        session.commit()
        assert_db(conn, base.committed, "after commit")
        assert session_shape(session) == base.shape
    finally:
        conn.close()


@pytest.mark.parametrize("journal_mode", ["DELETE", "WAL"])
@pytest.mark.parametrize("name", [name for name, scenario in SCENARIOS.items() if scenario.grows])
def test_disk_full(name, journal_mode, tmp_path):
    """``PRAGMA max_page_count`` lets the file grow by m pages, for m = 0, 1, 2, ... until the
    flush fits: each page the flush allocates is a fault position (SQLITE_FULL)."""
    failures = 0
    for extra_pages in range(64):
        def plant_for(run):
            pages = raw(run.conn, "PRAGMA page_count").fetchone()[0]
            raw(run.conn, f"PRAGMA max_page_count = {pages + extra_pages}")
            return _PageLimit(run.conn)

        scenario = SCENARIOS[name]
        run = start(scenario, str(tmp_path / f"probe-{extra_pages}.db"), journal_mode)
        try:
            scenario.prepare(run)
            plant_for(run)
            try:
                run.session.flush()
                break
            except FlushError:
                pass
        finally:
            run.conn.close()
        failures += 1
        exercise(name, lambda run: None, expect_sqlite_failure("SQLITE_FULL"), plant_for=plant_for,
                 path=str(tmp_path / f"case-{extra_pages}.db"), journal_mode=journal_mode)
    else:
        pytest.fail("the flush never fitted in 64 extra pages")
    assert failures >= 1, "the flush never ran out of pages"


class _PageLimit:
    """Not a write: the page limit, lifted again before the clean retry."""

    kind = "max_page_count"
    persisted = False

    def __init__(self, conn):
        self.conn = conn

    def apply(self):
        pass

    def undo(self):
        raw(self.conn, "PRAGMA max_page_count = 1073741823")


# -- what sqlite3 itself does with exceptions raised in its callbacks ------------------------------

@pytest.mark.parametrize("callback", ["authorizer", "progress handler", "trace callback"])
def test_sqlite3_swallows_exceptions_raised_in_callbacks(callback):
    """Why KeyboardInterrupt is injected by a Connection subclass and not from a callback:
    sqlite3 never lets an exception out of its callbacks (it prints it when
    sqlite3.enable_callback_tracebacks(True) is set).  An authorizer that raises denies the
    statement; a progress handler that raises interrupts it and SQLite rolls the transaction
    back; a trace callback that raises is ignored and the statement runs."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    conn.execute("BEGIN")
    conn.execute("INSERT INTO t VALUES (1)")

    def interrupt(*args):
        raise KeyboardInterrupt("from a callback")

    if callback == "authorizer":
        conn.set_authorizer(interrupt)
    elif callback == "progress handler":
        conn.set_progress_handler(interrupt, 1)
    else:
        conn.set_trace_callback(interrupt)
    outcome = None
    try:
        conn.execute("INSERT INTO t VALUES (2)")
    except sqlite3.Error as error:
        outcome = error.sqlite_errorname
    conn.set_authorizer(None)
    conn.set_progress_handler(None, 0)
    conn.set_trace_callback(None)
    expected = {"authorizer": ("SQLITE_AUTH", True, [(1,)]),
                "progress handler": ("SQLITE_INTERRUPT", False, []),
                "trace callback": (None, True, [(1,), (2,)])}[callback]
    assert (outcome, conn.in_transaction, conn.execute("SELECT id FROM t").fetchall()) == expected
    conn.close()


def test_sqlite3_statement_cache_skips_the_authorizer():
    """A statement found in sqlite3's statement cache is not prepared again, so the authorizer is
    not asked again: FaultConnection is opened with cached_statements=0 for that reason."""
    asked = {}
    for cache in (128, 0):
        conn = sqlite3.connect(":memory:", isolation_level=None, cached_statements=cache)
        conn.execute("CREATE TABLE t (x)")
        calls = []
        conn.set_authorizer(lambda *args: calls.append(args) or sqlite3.SQLITE_OK)
        conn.execute("INSERT INTO t VALUES (?)", (1,))
        first = len(calls)
        conn.execute("INSERT INTO t VALUES (?)", (2,))
        asked[cache] = len(calls) - first
        conn.close()
    assert asked == {128: 0, 0: 1}
