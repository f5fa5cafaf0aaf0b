"""Search for super-linear work: run every uow workload at n and 4n rows and compare the cost per row.

    python bench/scaling.py [--rows 5000] [--factor 4] [--repeat 3] [--only NAME] [--flag 1.5]

A session's work should grow with what it was asked to do, never with its square: a commit after n
deletes that costs n^2/2 steps (found by hand in session six, see 399ee1f) shows up as a per-row cost
that grows with n.  This script makes that search mechanical.  Each workload runs with n rows and with
factor*n rows, each in a fresh interpreter, in CPU time (``time.process_time``, which another busy
process disturbs far less than the wall clock), the sizes taking turns inside every repeat.  For each
timed phase it prints the median cost per unit of work at both sizes and their ratio, and flags a
ratio above ``--flag`` (1.5 by default): linear work gives about 1.0, quadratic work about ``factor``.

This is a measurement, not a test: nothing here has a clock limit, and a flag is a lead to profile,
not a verdict (a larger table also costs more cache misses; re-run a flagged row with ``--repeat 9``
and a larger ``--rows`` before believing it).

The workloads are bench/uow_orm.py's (the benchmark table's rows), plus the ones below: the session
operations the table does not time, each over n objects (rollbacks, savepoints, expiry, expunge,
cascaded deletes with and without changed children, queries, merge, bulk writes, related loads).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make the repository root importable, as bench/run.py does.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import GET_HITS, GETS, BenchData, clock, count_rows, expect, fill_users, start_clock

# The worker: one size, one workload, CPU-time clock (common.use_cpu_clock, before the workload
# modules import the clocks by name).
WORKER = """
import json, sys
import bench.common as common
common.use_cpu_clock()
from bench import scaling
data = common.make_data(int(sys.argv[1]))
print(json.dumps(scaling.all_workloads()[sys.argv[2]](data)))
"""

# Labels whose amount of work does not follow --rows: how many units each one times.  (The same
# million gets over a 4x larger identity map cost more each from cache misses alone: a plain dict's
# d[key].attribute over the same scrambled keys rises 2.5-3x from 5,000 to 20,000 keys on the
# 2-core machine, uow's get about 1.7x; a flag on that row is the memory hierarchy, not more steps.)
FIXED_UNITS = {GET_HITS: GETS}


# -- the workloads the benchmark table does not time ------------------------------------------------
# Each takes the run's BenchData and returns {label: seconds} for one fresh in-memory database; the
# setup (filling, loading) is outside the clock, and a check after the clock proves the work was done.

def _filled_session(data: BenchData):
    from bench.uow_orm import open_filled_database
    from uow import Session

    connection = open_filled_database(data)
    return connection, Session(connection)


def rollback_of_inserts(data: BenchData) -> dict[str, float]:
    """n new objects flushed, then rollback(): every one goes back to transient."""
    from bench.uow_orm import User, open_database
    from uow import Session

    connection = open_database()
    session = Session(connection)
    users = [User(name=name, email=email, score=score, age=age, active=active)
             for name, email, score, age, active in data.fields]
    session.add_all(users)
    session.flush()
    start = start_clock()
    session.rollback()
    end = clock()
    expect(count_rows(connection), 0, "rows after rolling back the inserts")
    session.close()
    return {"rollback: n flushed inserts": end - start}


def rollback_of_changes(data: BenchData) -> dict[str, float]:
    """n loaded objects changed and flushed, then rollback(): every one gets its old value back."""
    from bench.uow_orm import User

    connection, session = _filled_session(data)
    users = session.all(User)
    for user in users:
        user.age = user.age + 1
    session.flush()
    start = start_clock()
    session.rollback()
    end = clock()
    expect(sum(user.age for user in users), sum(row[3] for row in data.fields), "ages after rollback")
    session.close()
    return {"rollback: n flushed changes": end - start}


def savepoint_rollback(data: BenchData) -> dict[str, float]:
    """Inside a savepoint, n changes flushed and n objects deleted, then the savepoint rolled back."""
    from bench.uow_orm import User

    connection, session = _filled_session(data)
    users = session.all(User)
    start = start_clock()
    nested = session.begin_nested()
    for user in users:
        user.age = user.age + 1
    for user in users[::10]:
        session.delete(user)
    session.flush()
    flushed = clock()
    nested.rollback()
    end = clock()
    expect(count_rows(connection), data.rows, "rows after the savepoint's rollback")
    expect(len(session.deleted), 0, "objects marked for deletion after the savepoint's rollback")
    session.commit()
    session.close()
    return {"savepoint: change, delete, flush": flushed - start, "savepoint: rollback": end - flushed}


def expiry(data: BenchData) -> dict[str, float]:
    """expire_all() over n objects, then one query that reloads every one of them."""
    from bench.uow_orm import User

    connection, session = _filled_session(data)
    users = session.all(User)
    start = start_clock()
    session.expire_all()
    expired = clock()
    session.all(User)
    end = clock()
    expect(session.is_expired(users[-1]), False, "the last object expired after the reload")
    session.close()
    return {"expire_all": expired - start, "reload after expire_all": end - expired}


def expunging(data: BenchData) -> dict[str, float]:
    """Half the objects expunged one by one, then expunge_all() of the rest."""
    from bench.uow_orm import User

    connection, session = _filled_session(data)
    users = session.all(User)
    start = start_clock()
    for user in users[::2]:
        session.expunge(user)
    one_by_one = clock()
    session.expunge_all()
    end = clock()
    expect(len(session.identity_map), 0, "objects held after expunge_all")
    session.close()
    return {"expunge half, one by one": one_by_one - start, "expunge_all": end - one_by_one}


def query(data: BenchData) -> dict[str, float]:
    """A filtered, ordered query over the whole table, and its count."""
    from bench.uow_orm import User

    connection, session = _filled_session(data)
    start = start_clock()
    found = session.select(User).where(User.age >= 48).order_by(User.email).all()
    end = clock()
    expect(len(found), sum(1 for row in data.fields if row[3] >= 48), "objects found")
    session.close()
    return {"select where/order_by": end - start}


def merging(data: BenchData) -> dict[str, float]:
    """n detached objects from another session merged into one that holds every row."""
    from bench.uow_orm import User
    from uow import Session

    connection, session = _filled_session(data)
    other = Session(connection)
    detached = other.all(User)
    other.close()
    for user in detached:
        user.age = user.age + 1
    session.all(User)
    start = start_clock()
    for user in detached:
        session.merge(user)
    merged = clock()
    session.commit()
    end = clock()
    expect(connection.execute("SELECT sum(age) FROM users").fetchone()[0],
           sum(row[3] for row in data.fields) + data.rows, "sum of ages after merge")
    session.close()
    return {"merge n detached": merged - start, "merge: commit": end - merged}


def bulk(data: BenchData) -> dict[str, float]:
    """bulk_insert_mappings of n rows, then bulk_update_mappings of all of them, committed."""
    from bench.uow_orm import User, open_database
    from uow import Session

    connection = open_database()
    session = Session(connection)
    mappings = [dict(name=name, email=email, score=score, age=age, active=active)
                for name, email, score, age, active in data.fields]
    updates = [{"id": key, "age": 0} for key in range(1, data.rows + 1)]
    start = start_clock()
    session.bulk_insert_mappings(User, mappings)
    inserted = clock()
    session.bulk_update_mappings(User, updates)
    session.commit()
    end = clock()
    expect(connection.execute("SELECT count(*), sum(age) FROM users").fetchone(), (data.rows, 0), "rows after bulk")
    session.close()
    return {"bulk_insert_mappings": inserted - start, "bulk_update_mappings+commit": end - inserted}


def _parents_with_children(data: BenchData):
    """A session holding rows // 10 committed parents, each with 10 children (setup)."""
    from bench.common import CHILDREN_PER_PARENT
    from bench.uow_orm import Child, Parent
    from uow import Session, connect, create_all

    connection = connect(":memory:")
    create_all(connection, [Parent, Child])
    setup = Session(connection)
    for number in range(data.rows // CHILDREN_PER_PARENT):
        parent = Parent(name=f"parent{number}")
        setup.add(parent)
        for child in range(CHILDREN_PER_PARENT):
            setup.add(Child(name=f"child{child}", parent=parent))
    setup.commit()
    setup.close()
    return connection, Session(connection)


def related(data: BenchData) -> dict[str, float]:
    """load_related of every parent's children, then delete every parent's children through its
    collection and the parents, flushed and committed."""
    from bench.uow_orm import Parent

    connection, session = _parents_with_children(data)
    parents = session.all(Parent)
    start = start_clock()
    session.load_related(parents, "children")
    loaded = clock()
    for parent in parents:
        for child in parent.children:
            session.delete(child)
        session.delete(parent)
    session.commit()
    end = clock()
    expect(connection.execute("SELECT count(*) FROM children").fetchone()[0], 0, "children after the deletes")
    session.close()
    return {"load_related children": loaded - start, "delete parents and children+commit": end - loaded}


def related_with_changes(data: BenchData) -> dict[str, float]:
    """As :func:`related`, with every child's name changed first: the changed children are what a
    parent's delete must also look through (they may point at it in memory only)."""
    from bench.uow_orm import Child, Parent

    connection, session = _parents_with_children(data)
    parents = session.all(Parent)
    for child in session.all(Child):
        child.name = child.name + "!"
    session.load_related(parents, "children")
    start = start_clock()
    for parent in parents:
        for child in parent.children:
            session.delete(child)
        session.delete(parent)
    session.commit()
    end = clock()
    expect(connection.execute("SELECT count(*) FROM children").fetchone()[0], 0, "children after the deletes")
    session.close()
    return {"delete parents, children changed+commit": end - start}


EXTRA_WORKLOADS = {
    "rollback_inserts": rollback_of_inserts,
    "rollback_changes": rollback_of_changes,
    "savepoint": savepoint_rollback,
    "expiry": expiry,
    "expunge": expunging,
    "query": query,
    "merge": merging,
    "bulk": bulk,
    "related": related,
    "related_changed": related_with_changes,
}


def all_workloads() -> dict:
    """The benchmark table's uow workloads (memory left out: it is bytes, not time) and the extra ones."""
    from bench import uow_orm

    workloads = {name: work for name, work in uow_orm.WORKLOADS.items() if name != "memory"}
    workloads.update(EXTRA_WORKLOADS)
    return workloads


# -- running and reporting ----------------------------------------------------------------------------

def run_once(rows: int, name: str) -> dict[str, float]:
    """One workload at one size, in a fresh interpreter importing this checkout's uow and bench."""
    root = Path(__file__).resolve().parent.parent
    environment = dict(os.environ, PYTHONPATH=str(root))
    result = subprocess.run([sys.executable, "-c", WORKER, str(rows), name],
                            cwd=root, env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"workload {name!r} at {rows} rows failed:\n{result.stderr}")
    return json.loads(result.stdout)


def units(label: str, rows: int) -> int:
    """How much work a label's time covers: the rows, unless the workload fixes its own count."""
    return FIXED_UNITS.get(label, rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000, help="the smaller size n (default 5000)")
    parser.add_argument("--factor", type=int, default=4, help="the larger size is factor*n (default 4)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats per size (default 3)")
    parser.add_argument("--flag", type=float, default=1.5, help="flag a per-row ratio above this (default 1.5)")
    parser.add_argument("--only", action="append", help="a workload name (repeatable)")
    args = parser.parse_args(argv)
    if args.rows < 100 or args.factor < 2 or args.repeat < 1:
        parser.error("--rows must be at least 100, --factor at least 2 and --repeat at least 1")
    names = args.only or list(all_workloads())
    sizes = [args.rows, args.rows * args.factor]

    print(f"CPU microseconds per unit of work (a row, unless noted), median of {args.repeat}; "
          f"n={sizes[0]:,}, {args.factor}n={sizes[1]:,}; flagged: ratio > {args.flag}")
    print(f"{'workload':16} {'phase':36} {'n':>9} {f'{args.factor}n':>9} {'ratio':>7}")
    flagged = []
    for name in names:
        runs: dict[int, dict[str, list[float]]] = {size: {} for size in sizes}
        for repeat in range(args.repeat):
            # Alternate which size goes first, so neither always runs on a warmer machine.
            for size in sizes if repeat % 2 == 0 else sizes[::-1]:
                for label, seconds in run_once(size, name).items():
                    runs[size].setdefault(label, []).append(seconds)
        for label in runs[sizes[0]]:
            per_unit = [statistics.median(runs[size][label]) / units(label, size) for size in sizes]
            ratio = per_unit[1] / per_unit[0] if per_unit[0] > 0 else float("inf")
            mark = "  <-- super-linear?" if ratio > args.flag else ""
            if mark:
                flagged.append(f"{name}: {label} ({ratio:.2f}x)")
            print(f"{name:16} {label:36} {per_unit[0] * 1e6:9.2f} {per_unit[1] * 1e6:9.2f} {ratio:6.2f}x{mark}",
                  flush=True)
    print("flagged: " + ("; ".join(flagged) if flagged else "none"))


if __name__ == "__main__":
    main()
