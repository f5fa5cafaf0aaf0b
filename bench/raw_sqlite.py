"""The baseline: each workload done by hand with the sqlite3 module, no objects and no session.

Rows are plain tuples; "loading" is fetchall(); a change is a parameter tuple for executemany.  The
identity-map baseline is a plain dict lookup.  Every function takes the run's BenchData and
returns {label: seconds} for one repeat on a fresh in-memory database.
"""

import sqlite3

from bench.common import (
    CHILDREN_PER_PARENT,
    DELETE_CALLS,
    DELETE_FLUSH,
    DENSE_CHANGES,
    DENSE_FLUSH,
    GET_HITS,
    INSERT_CONSTRUCT,
    INSERT_FLUSH,
    INSERT_SQL,
    INSERT_TOTAL,
    LOAD,
    MEMORY,
    PARENT_CHILD,
    SPARSE_ALL,
    SPARSE_FEW,
    BenchData,
    clock,
    count_rows,
    expect,
    fill_users,
    measure_memory,
    start_clock,
    sum_of_ages,
)

CREATE_SQL = """
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    score REAL NOT NULL,
    age INTEGER NOT NULL,
    active INTEGER NOT NULL
)
"""
SELECT_SQL = "SELECT id, name, email, score, age, active FROM users"
UPDATE_AGE_SQL = "UPDATE users SET age = ? WHERE id = ?"
DELETE_SQL = "DELETE FROM users WHERE id = ?"


def open_database() -> sqlite3.Connection:
    """A fresh in-memory database with an empty users table; transactions are sent by hand."""
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.execute(CREATE_SQL)
    return connection


def open_filled_database(data: BenchData) -> sqlite3.Connection:
    connection = open_database()
    fill_users(connection, data)
    return connection


def insert(data: BenchData) -> dict[str, float]:
    connection = open_database()
    start = start_clock()
    # Building the tuples is the raw counterpart of constructing objects.
    rows = [(name, email, score, age, active) for name, email, score, age, active in data.fields]
    flush_start = clock()
    connection.execute("BEGIN")
    connection.executemany(INSERT_SQL, rows)
    connection.execute("COMMIT")
    end = clock()
    expect(count_rows(connection), data.rows, "rows after insert")
    # Raw sqlite3 has nothing to add its tuples to: no add_all row.
    return {INSERT_CONSTRUCT: flush_start - start, INSERT_TOTAL: end - start, INSERT_FLUSH: end - flush_start}


def load(data: BenchData) -> dict[str, float]:
    connection = open_filled_database(data)
    start = start_clock()
    rows = connection.execute(SELECT_SQL).fetchall()
    end = clock()
    expect(len(rows), data.rows, "rows loaded")
    return {LOAD: end - start}


def memory(data: BenchData) -> dict[str, float]:
    """The bytes per row of fetchall(): a tuple and its values, the least any load keeps."""
    connection = open_filled_database(data)
    return {MEMORY: measure_memory(connection.execute(SELECT_SQL).fetchall, data.rows)}


def sparse_update(data: BenchData) -> dict[str, float]:
    connection = open_filled_database(data)
    ages_before = sum_of_ages(connection)
    rows = connection.execute(SELECT_SQL).fetchall()
    changes = [(rows[key - 1][4] + 1, key) for key in data.sparse_keys]
    start = start_clock()
    connection.execute("BEGIN")
    connection.executemany(UPDATE_AGE_SQL, changes)
    connection.execute("COMMIT")
    end = clock()
    expect(sum_of_ages(connection) - ages_before, len(data.sparse_keys), "sum of ages added")
    # Raw sqlite3 has no session, so how many rows are "loaded" does not apply:
    # the same statement is the baseline for both sparse rows.
    return {SPARSE_FEW: end - start, SPARSE_ALL: end - start}


def dense_update(data: BenchData) -> dict[str, float]:
    connection = open_filled_database(data)
    ages_before = sum_of_ages(connection)
    rows = connection.execute(SELECT_SQL).fetchall()
    start = start_clock()
    changes = [(age + 1, key) for key, name, email, score, age, active in rows]
    changes_end = clock()
    flush_start = start_clock()
    connection.execute("BEGIN")
    connection.executemany(UPDATE_AGE_SQL, changes)
    connection.execute("COMMIT")
    end = clock()
    expect(sum_of_ages(connection) - ages_before, data.rows, "sum of ages added")
    return {DENSE_CHANGES: changes_end - start, DENSE_FLUSH: end - flush_start}


def delete_tenth(data: BenchData) -> dict[str, float]:
    connection = open_filled_database(data)
    rows = connection.execute(SELECT_SQL).fetchall()
    start = start_clock()
    doomed = [(rows[key - 1][0],) for key in data.delete_keys]
    calls_end = clock()
    flush_start = start_clock()
    connection.execute("BEGIN")
    connection.executemany(DELETE_SQL, doomed)
    connection.execute("COMMIT")
    end = clock()
    expect(count_rows(connection), data.rows - len(data.delete_keys), "rows after delete")
    return {DELETE_CALLS: calls_end - start, DELETE_FLUSH: end - flush_start}


def get_hits(data: BenchData) -> dict[str, float]:
    """The identity-map baseline: d[key] on a dict of loaded rows, with the same keys."""
    connection = open_filled_database(data)
    rows_by_key = {row[0]: row for row in connection.execute(SELECT_SQL)}
    start = start_clock()
    for key in data.get_keys:
        rows_by_key[key]
    end = clock()
    return {GET_HITS: end - start}


PARENT_CHILD_SQL = """
CREATE TABLE parents (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE children (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER NOT NULL REFERENCES parents (id),
    name TEXT NOT NULL
)
"""


def open_parent_child_database() -> sqlite3.Connection:
    """A fresh in-memory database with empty parents and children tables, foreign keys enforced."""
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.execute("PRAGMA foreign_keys = ON")
    for statement in PARENT_CHILD_SQL.split(";"):
        connection.execute(statement)
    return connection


def parents_and_children(data: BenchData) -> dict[str, float]:
    """The same rows as the ORMs insert, with the keys already known: the best raw can do."""
    connection = open_parent_child_database()
    parents = data.rows // CHILDREN_PER_PARENT
    start = start_clock()
    parent_rows = [(number + 1, f"parent{number}") for number in range(parents)]
    child_rows = [
        (number * CHILDREN_PER_PARENT + child + 1, number + 1, f"child{child}")
        for number in range(parents) for child in range(CHILDREN_PER_PARENT)
    ]
    connection.execute("BEGIN")
    connection.executemany("INSERT INTO parents (id, name) VALUES (?, ?)", parent_rows)
    connection.executemany("INSERT INTO children (id, parent_id, name) VALUES (?, ?, ?)", child_rows)
    connection.execute("COMMIT")
    end = clock()
    expect(connection.execute("SELECT count(*) FROM children").fetchone()[0], parents * CHILDREN_PER_PARENT,
           "children inserted")
    return {PARENT_CHILD: end - start}


WORKLOADS = {
    "insert": insert,
    "load": load,
    "sparse": sparse_update,
    "dense": dense_update,
    "delete": delete_tenth,
    "get": get_hits,
    "parents": parents_and_children,
    "memory": memory,
}
