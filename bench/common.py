"""What every implementation in the benchmark shares: the rows, the keys, the labels and the clock.

The same prepared values go to raw sqlite3, the floor, uow and SQLAlchemy, so all of them do the
same work on the same data. Nothing here is timed: the data is built once per run, before any
repeat, and the helpers at the end fill and check a database outside the timed sections.
"""

import gc
import sqlite3
import time
import tracemalloc
from dataclasses import dataclass

# How many session.get() calls the identity-map workload makes, whatever --rows says.
GETS = 1_000_000

# Row labels, in the order the table prints them.  Each workload function returns some of them.
INSERT_CONSTRUCT = "insert: construct"
INSERT_ADD = "insert: add_all"
INSERT_FLUSH = "insert: flush+commit"
INSERT_TOTAL = "insert total"
LOAD = "load all"
SPARSE_FEW = "sparse update, 1% loaded"
SPARSE_ALL = "sparse update, all loaded"
DENSE_CHANGES = "dense update: obj.age += 1"
DENSE_FLUSH = "dense update: flush+commit"
DELETE_CALLS = "delete 10%: delete()"
DELETE_FLUSH = "delete 10%: flush+commit"
DENSE_TOTAL = "dense update total"
DELETE_TOTAL = "delete 10% total"
GET_HITS = "get hit x1,000,000"
PARENT_CHILD = "parents + 10 children each"
# Not a time: the bytes one loaded object costs (see measure_memory).
MEMORY = "memory per loaded object"
LABELS = [
    INSERT_CONSTRUCT,
    INSERT_ADD,
    INSERT_FLUSH,
    INSERT_TOTAL,
    LOAD,
    SPARSE_FEW,
    SPARSE_ALL,
    DENSE_CHANGES,
    DENSE_FLUSH,
    DENSE_TOTAL,
    DELETE_CALLS,
    DELETE_FLUSH,
    DELETE_TOTAL,
    GET_HITS,
    PARENT_CHILD,
    MEMORY,
]

# Rows that are the sum of two phases timed in the same repeat: what the user's loop and the flush
# cost together.  An implementation that does a phase's work in the other phase (peewee runs each
# DELETE inside delete_instance(), so its "flush+commit" is the COMMIT alone) is compared fairly here.
PHASE_TOTALS = {
    DENSE_TOTAL: (DENSE_CHANGES, DENSE_FLUSH),
    DELETE_TOTAL: (DELETE_CALLS, DELETE_FLUSH),
}

# The parent/child workload: rows // CHILDREN_PER_PARENT new parents, each with this many new
# children, linked by object references and written in one flush.
CHILDREN_PER_PARENT = 10
# After the workload: how many parents have exactly their children (each child linked right).
PARENTS_WITH_ALL_CHILDREN = (
    "SELECT count(*) FROM (SELECT parent_id FROM children GROUP BY parent_id HAVING count(*) = 10)"
)

# Used to fill a database before the timed part of a workload.  Every implementation names its
# table and columns the same way, so this one statement fills any of them.
INSERT_SQL = "INSERT INTO users (name, email, score, age, active) VALUES (?, ?, ?, ?, ?)"


@dataclass
class BenchData:
    """The values and keys one run uses, built once and shared by every implementation.

    fields holds one (name, email, score, age, active) tuple per row.  A fresh database fills its
    rows in this order, so row i gets the primary key i + 1.
    """

    rows: int
    fields: list[tuple]
    sparse_keys: list[int]
    delete_keys: list[int]
    get_keys: list[int]


def make_data(rows: int) -> BenchData:
    """Prepare the field values and key lists for a run with `rows` rows."""
    fields = []
    for i in range(rows):
        fields.append((f"user{i}", f"user{i}@example.com", i / 8, 18 + i % 60, i % 3 != 0))
    # Every 100th and every 10th key, so the changed rows are spread over the whole table.
    sparse_keys = list(range(1, rows + 1, 100))
    delete_keys = list(range(1, rows + 1, 10))
    # A fixed scramble of the keys (7919 is prime): lookups do not walk memory in order.
    get_keys = [1 + (i * 7919) % rows for i in range(GETS)]
    return BenchData(rows, fields, sparse_keys, delete_keys, get_keys)


def start_clock() -> float:
    """Collect garbage left by the setup, then return the start time of a timed section.

    The collector stays enabled inside the section, as it is in a real program: the cost of
    collecting the objects a workload creates is part of that workload.
    """
    gc.collect()
    return time.perf_counter()


def clock() -> float:
    """The current time, for the end of a timed section (or a split inside one)."""
    return time.perf_counter()


def use_cpu_clock() -> None:
    """Make the two clocks above read CPU time of the process (``time.process_time``) instead.

    For bench/compare.py and bench/scaling.py, whose runs share a busy machine: another process
    disturbs CPU time far less than the wall clock.  Call it before importing a workload module,
    since those import ``start_clock`` and ``clock`` by name.
    """
    global start_clock, clock

    def start_cpu_clock() -> float:
        gc.collect()
        return time.process_time()

    start_clock = start_cpu_clock
    clock = time.process_time


def measure_memory(load, rows: int) -> float:
    """Bytes per object that `load()` allocates and keeps, while what it returns is still held.

    Everything the Python allocator hands out during the load and still holds after a collection
    counts: the object, its values, its snapshot, the session's bookkeeping for it, the list.  The
    same rows give every implementation the same strings and numbers, so the differences are what
    each one keeps per object.  (tracemalloc slows the load; this is never a timed section.)
    """
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = load()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    expect(len(held), rows, "objects held while measuring memory")
    return (after - before) / rows


def fill_users(connection: sqlite3.Connection, data: BenchData) -> None:
    """Fill an empty users table with the run's rows, in one transaction (setup, not timed).

    Works on any sqlite3 connection opened with isolation_level=None, uow's included.
    """
    connection.execute("BEGIN")
    connection.executemany(INSERT_SQL, data.fields)
    connection.execute("COMMIT")


def count_rows(connection: sqlite3.Connection) -> int:
    return connection.execute("SELECT count(*) FROM users").fetchone()[0]


def sum_of_ages(connection: sqlite3.Connection) -> int:
    return connection.execute("SELECT sum(age) FROM users").fetchone()[0]


def expect(actual, expected, what: str) -> None:
    """Check, after the clock has stopped, that a workload really did its work.

    A benchmark that measures a flush which silently did nothing would report a fine figure for
    a broken program; this turns that into an error.
    """
    if actual != expected:
        raise RuntimeError(f"benchmark check failed: {what} is {actual!r}, expected {expected!r}")
