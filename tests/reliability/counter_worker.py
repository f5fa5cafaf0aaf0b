"""A worker process of the concurrency stress test (test_concurrency.py).

Run as ``python counter_worker.py DATABASE INCREMENTS SEED``: it increments one versioned counter
INCREMENTS times through uow sessions, retrying every attempt that loses a race, and prints a
JSON summary: how many attempts succeeded, how many lost as StaleDataError, how many as a lock
error (SQLITE_BUSY: as a uow error, or as a raw sqlite3 error that uow let through), and any
other exception (which the test treats as a failure).

Half of the attempts read the counter in one transaction and write it in the next (the
optimistic pattern, which loses as StaleDataError); the other half read and write in one
transaction (which loses on the database lock).
"""

import json
import random
import sqlite3
import sys

import uow
from uow import Column, Entity
from uow.errors import StaleDataError, UowError


class WorkerBase(Entity, abstract=True):
    pass


class Counter(WorkerBase, table="stress_counter"):
    id: int = Column(primary_key=True)
    value: int
    version: int = Column(version=True)


def create(path, journal_mode):
    conn = uow.connect(path)
    conn.execute(f"PRAGMA journal_mode = {journal_mode}")
    uow.create_all(conn, [Counter])
    session = uow.Session(conn)
    session.add(Counter(id=1, value=0))
    session.commit()
    session.close()
    conn.close()


def sqlite_cause(error):
    """The sqlite3 exception in an error's cause/context chain, or None (as in harness.py, which
    this script cannot import: it runs outside the tests package)."""
    seen = error
    while seen is not None:
        if isinstance(seen, sqlite3.Error):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def main(path, increments, seed):
    rng = random.Random(seed)
    conn = uow.connect(path, timeout=5.0)
    print("ready", flush=True)
    sys.stdin.readline()  # wait for the parent's "go": every worker starts at the same moment
    summary = {"successes": 0, "stale": 0, "locked": 0, "raw_locked": 0, "other": [], "attempts": 0}
    while summary["successes"] < increments and summary["attempts"] < increments * 50:
        summary["attempts"] += 1
        session = uow.Session(conn)
        try:
            counter = session.get(Counter, 1)
            if rng.random() < 0.5:
                session.commit()  # end the read: the write happens in a new transaction
            counter.value += 1
            session.commit()
            summary["successes"] += 1
        except StaleDataError:
            summary["stale"] += 1
        except Exception as error:
            cause = sqlite_cause(error)
            if cause is not None and cause.sqlite_errorname.startswith("SQLITE_BUSY"):
                summary["locked" if isinstance(error, UowError) else "raw_locked"] += 1
            else:
                summary["other"].append(f"{type(error).__name__}: {error}")
        finally:
            session.close()
    conn.close()
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
