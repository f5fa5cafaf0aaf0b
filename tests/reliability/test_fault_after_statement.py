"""An exception or a Ctrl-C after (and before) every statement of a whole session operation.

Class of defect searched for: **the session and the database out of step after an interruption**.
A statement can succeed and the exception arrive before uow records that it did -- most harmfully
after COMMIT, RELEASE or ROLLBACK, which change what is committed.  test_fault_injection.py
fails each statement of a *flush*; this module fails each statement of a *user-level operation*
that ends in a transaction statement: a commit (its flush, then COMMIT), a flush followed by a
commit, ``with begin_nested():`` blocks (SAVEPOINT, RELEASE, ROLLBACK TO), bulk writes, upsert,
an explicit ``begin()``, ``with session.begin():`` blocks that commit or roll back, and
``rollback()`` itself (ROLLBACK).

For each operation, a clean run numbers the N statements it sends and records the committed
database it ends with.  Then for k = 1..N and for each fault kind (``error`` / ``kbint`` just
before statement k, ``error_after`` / ``kbint_after`` just after it), a fresh run on a file
database fails statement k, the test does what a user would (``session.rollback()``), and checks:

* the fault reached the caller (a KeyboardInterrupt unchanged, a RuntimeError itself or as the
  cause of a uow error) and ``rollback()`` itself worked;
* from a second connection, the database holds exactly the state of the last commit or exactly
  the state the operation commits -- nothing half-done, nothing committed twice;
* the session agrees with that database: every object the run touched is persistent in the
  session exactly when its row exists (found by its unique ``tag``), a persistent object's values
  (reloaded where expired) equal its row, and no row is held by two objects -- so no committed
  row's object is left transient, and no object claims a row that is not there;
* the session is still usable: when nothing was committed, the operation run again cleanly
  commits exactly what the clean run committed; when it was, a further commit works.

In CI each operation runs on a rollback-journal file; the commit and savepoint operations also in
WAL mode.  For a heavier run (every operation in both journal modes) set
``UOW_RELIABILITY_HEAVY=1``::

    UOW_RELIABILITY_HEAVY=1 PYTHONPATH=$PWD python -m pytest -q -p no:cacheprovider \\
        tests/reliability/test_fault_after_statement.py
"""

import collections
import os
import sqlite3

import pytest

import uow

from .harness import HEAVY, Bulk, Code, Fault, Item, Parent, Versioned, check_fault_reached_caller, db_rows
from .scenarios import SCENARIOS, Scenario, start

KINDS = ("error", "kbint", "error_after", "kbint_after")


# -- the operations -----------------------------------------------------------------------------

def commit_mixed(run):
    SCENARIOS["mixed"].prepare(run)
    run.session.commit()


def flush_then_commit(run):
    SCENARIOS["second_flush"].prepare(run)
    run.session.flush()
    run.session.commit()


def parent_child_commit(run):
    SCENARIOS["parent_child"].prepare(run)
    run.session.commit()


def versioned_commit(run):
    SCENARIOS["versioned"].prepare(run)
    run.session.commit()


def savepoint_blocks(run):
    """A released savepoint, then one rolled back by an exception in its block, then COMMIT."""
    session = run.session
    with session.begin_nested():
        session.get(Item, 1).name = "kept in savepoint"
        run.add(Item(tag="sp-kept", name="kept"))
    try:
        with session.begin_nested():
            session.get(Item, 2).name = "undone"
            run.add(Item(tag="sp-undone", name="undone"))
            session.flush()
            raise LookupError("leave the block")
    except LookupError:
        pass
    session.commit()


def nested_rollback(run):
    """An explicit savepoint rolled back by hand (ROLLBACK TO, RELEASE), then COMMIT."""
    session = run.session
    session.get(Item, 3).qty = 33
    nested = session.begin_nested()
    session.delete(session.get(Item, 4))
    run.add(Code(code="nn", tag="code-nn", label="N"))
    session.flush()
    nested.rollback()
    session.commit()


def bulk_writes(run):
    session = run.session
    session.bulk_insert_mappings(Bulk, [{"id": 5000 + i, "tag": f"bulk-new-{i}", "n": i} for i in range(3)])
    session.bulk_update_mappings(Item, [{"id": 1, "qty": 100}, {"id": 2, "qty": 200}])
    session.bulk_save_objects([Bulk(id=6000, tag="bulk-obj", n=1)])
    session.commit()


def upsert_commit(run):
    session = run.session
    session.upsert(Item(id=1, tag="item-1", name="upserted", qty=10))
    session.upsert(Item(id=70, tag="item-70", name="new by upsert", qty=70))
    session.upsert(Code(code="up", tag="code-up", label="U"))
    session.commit()


def explicit_begin(run):
    session = run.session
    session.begin()
    session.get(Parent, 1).name = "p1 in begin"
    run.add(Item(tag="begin-new", name="b"))
    session.delete(session.get(Versioned, 2))
    session.commit()


def rollback_after_flush(run):
    """Work that is flushed and then thrown away: the only statement that ends it is ROLLBACK."""
    session = run.session
    session.get(Item, 1).name = "thrown away"
    run.add(Item(tag="rolled-back", name="r"))
    session.delete(session.get(Code, "aa"))
    session.flush()
    session.rollback()


def begin_block(run):
    """``with session.begin():`` -- the block commits the transaction it began."""
    session = run.session
    with session.begin():
        session.get(Item, 5).qty = 55
        run.add(Item(tag="block-new", name="in block"))


def begin_block_rolled_back(run):
    """``with session.begin():`` left by an exception -- the block rolls its transaction back."""
    session = run.session
    try:
        with session.begin():
            session.get(Item, 5).qty = 55
            run.add(Item(tag="block-undone", name="undone"))
            session.flush()
            raise LookupError("leave the block")
    except LookupError:
        pass


OPERATIONS = {operation.__name__: operation for operation in [
    commit_mixed, flush_then_commit, parent_child_commit, versioned_commit, savepoint_blocks,
    nested_rollback, bulk_writes, upsert_commit, explicit_begin, rollback_after_flush, begin_block,
    begin_block_rolled_back,
]}
WAL_IN_CI = ("commit_mixed", "savepoint_blocks")
TAGGED = [Item, Code, Parent, Versioned, Bulk]  # every touched table: each has a UNIQUE tag


# -- clean runs -----------------------------------------------------------------------------------

_BASELINES = {}


def _run(path, journal_mode):
    """A session that has loaded every seeded row and committed (see scenarios.start)."""
    return start(Scenario("loaded", lambda run: None), path, journal_mode)


def baseline(name, tmp_dir):
    """(statements the operation sends, database before it, database after it) from a clean run."""
    if name not in _BASELINES:
        path = os.path.join(tmp_dir, f"baseline-{name}.db")
        run = _run(path, None)
        before = db_rows(run.conn)
        run.conn.arm()
        OPERATIONS[name](run)
        sent = list(run.conn.sent)
        run.conn.disarm()
        after = db_rows(run.conn)
        run.conn.close()
        _BASELINES[name] = (sent, before, after)
    return _BASELINES[name]


def _cases():
    import tempfile

    scratch = tempfile.mkdtemp(prefix="uow-after-")
    for name in OPERATIONS:
        try:
            sent = baseline(name, scratch)[0]
        except Exception:  # test_clean_run reports it
            continue
        modes = ["DELETE", "WAL"] if HEAVY or name in WAL_IN_CI else ["DELETE"]
        for mode in modes:
            for kind in KINDS:
                for k in range(1, len(sent) + 1):
                    verb = " ".join(sent[k - 1].split()[:1])
                    yield pytest.param(name, mode, kind, k, id=f"{name}-{mode}-{kind}-{k}-{verb}")


CASES = list(_cases())


# -- the checks -----------------------------------------------------------------------------------

def _second_connection_rows(path):
    other = sqlite3.connect(path, isolation_level=None)
    try:
        return db_rows(other)
    finally:
        other.close()


def _tracked(session, run, loaded):
    everything = {id(obj): obj for obj in loaded}
    everything.update((id(obj), obj) for obj, _ in run.created)
    everything.update((id(obj), obj) for obj in session.identity_map.values())
    return list(everything.values())


def assert_session_agrees(session, objects, path, when):
    """Each object is persistent in ``session`` exactly when a row with its tag exists (read by a
    fresh uow session on a second connection), with the same values; no row has two objects."""
    reader_conn = uow.connect(path)
    reader = uow.Session(reader_conn)
    problems = []
    try:
        holders = collections.Counter()
        for obj in objects:
            cls = type(obj)
            tag = obj.__dict__.get("tag")
            state = uow.state_of(obj)
            mine = uow.object_session(obj) is session
            persistent = mine and state is uow.ObjectState.PERSISTENT
            if persistent:
                values = {name: getattr(obj, name) for name in cls.__mapper__.column_names}
                tag = values["tag"]
                holders[(cls.__name__, tag)] += 1
            rows = reader.filter(cls, tag=tag) if tag is not None else []
            if persistent and not rows:
                problems.append(f"{obj!r} is persistent but no {cls.__name__} row has tag {tag!r}")
            elif not persistent and rows:
                problems.append(f"{obj!r} is {state.value} but its row is committed: {rows[0]!r}")
            elif persistent:
                row = {name: getattr(rows[0], name) for name in cls.__mapper__.column_names}
                if [(type(v), v) for v in row.values()] != [(type(v), v) for v in values.values()]:
                    problems.append(f"{obj!r} holds {values} but its row holds {row}")
        problems += [f"{holder} is held by {count} objects" for holder, count in holders.items() if count > 1]
    finally:
        reader.close()
        reader_conn.close()
    assert not problems, f"{when}: the session disagrees with the database:\n  " + "\n  ".join(problems[:8])


TALLY = collections.Counter()  # faults injected per (kind, statement verb), for the report


# -- the tests ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(OPERATIONS))
def test_clean_run(name, tmp_path):
    """Each operation runs cleanly and ends with a transaction statement it sent itself."""
    sent, before, after = baseline(name, str(tmp_path))
    assert sent[-1] in ("COMMIT", "ROLLBACK"), sent[-1]
    assert (before == after) == name.endswith(("rollback_after_flush", "rolled_back"))


@pytest.mark.parametrize("name, journal_mode, kind, k", CASES)
def test_fault_around_statement(name, journal_mode, kind, k, tmp_path):
    sent, last_commit, committed = baseline(name, str(tmp_path))
    path = str(tmp_path / "case.db")
    run = _run(path, journal_mode)
    conn, session = run.conn, run.session
    try:
        loaded = list(session.identity_map.values())
        assert _second_connection_rows(path) == last_commit
        fault = Fault(kind, k)
        conn.arm(fault)
        error = None
        try:
            OPERATIONS[name](run)
        except BaseException as caught:  # the KeyboardInterrupt is the point
            error = caught
        finally:
            conn.disarm()
        assert fault.fired, f"statement {k} was never sent (the run sent {conn.sent})"
        assert fault.sql == sent[k - 1], f"statement {k} differs from the clean run's: {fault.sql!r}"
        TALLY[(kind, fault.sql.split()[0])] += 1
        assert error is not None, "the operation swallowed the injected fault"
        check_fault_reached_caller(kind, error)

        session.rollback()  # what a user (or ``with Session(...)``) does after an error
        assert not conn.in_transaction, "rollback() left a transaction open"
        found = _second_connection_rows(path)
        outcome = "old" if found == last_commit else "new" if found == committed else None
        assert outcome is not None, (
            f"after the fault and rollback() the database holds neither the last commit nor the "
            f"operation's commit: {_table_sizes(found)} vs old {_table_sizes(last_commit)}, "
            f"new {_table_sizes(committed)}")
        objects = _tracked(session, run, loaded)
        assert_session_agrees(session, objects, path, f"after the fault and rollback() ({outcome} state)")

        if outcome == "old":
            run.created = []
            OPERATIONS[name](run)
            assert _second_connection_rows(path) == committed, "a clean retry committed something else"
        else:
            run.add(Item(tag="afterwards", name="afterwards"))
            session.commit()
            rows = _second_connection_rows(path)
            assert [row for row in rows["rel_items"] if row[1] == "afterwards"]
        assert_session_agrees(session, _tracked(session, run, loaded), path, "after the retry")
    finally:
        conn.close()


def _table_sizes(rows):
    return {table: len(found) for table, found in rows.items() if found}


def test_every_transaction_statement_is_a_fault_position():
    """The cases reach every kind of statement that ends or opens a transaction or savepoint."""
    verbs = {sent[k - 1].split()[0] for name in OPERATIONS if name in _BASELINES
             for sent in [_BASELINES[name][0]] for k in range(1, len(sent) + 1)}
    assert {"BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "INSERT", "UPDATE", "DELETE"} <= verbs, verbs
    rollback_to = any(sql.startswith("ROLLBACK TO") for name in _BASELINES for sql in _BASELINES[name][0])
    assert rollback_to, "no operation sends ROLLBACK TO"
