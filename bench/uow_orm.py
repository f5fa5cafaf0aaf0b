"""The workloads through uow's public API (``import uow``), as an application would write them.

Every function takes the run's BenchData and returns {label: seconds} for one repeat on a fresh
in-memory database.  Filling the database before a workload goes through plain executemany on
uow's own connection: setup is not measured, and this keeps it quick.  uow's identity map holds
strong references, so loaded objects stay in the session without the caller keeping them.
"""

import sqlite3

from uow import Collection, Column, Entity, Reference, Session, connect, create_all

from bench.common import (
    CHILDREN_PER_PARENT,
    DELETE_CALLS,
    DELETE_FLUSH,
    DENSE_CHANGES,
    DENSE_FLUSH,
    GET_HITS,
    INSERT_ADD,
    INSERT_CONSTRUCT,
    INSERT_FLUSH,
    INSERT_TOTAL,
    LOAD,
    MEMORY,
    PARENT_CHILD,
    PARENTS_WITH_ALL_CHILDREN,
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


class User(Entity, table="users"):
    id: int = Column(primary_key=True)
    name: str
    email: str
    score: float
    age: int
    active: bool


class Parent(Entity, table="parents"):
    id: int = Column(primary_key=True)
    name: str
    children = Collection("Child", "parent")


class Child(Entity, table="children"):
    id: int = Column(primary_key=True)
    parent_id: int = Column(references=Parent)
    parent = Reference("parent_id")
    name: str


def open_database() -> sqlite3.Connection:
    """A fresh in-memory database with an empty users table, as uow creates it."""
    connection = connect(":memory:")
    create_all(connection, [User])
    return connection


def open_filled_database(data: BenchData) -> sqlite3.Connection:
    connection = open_database()
    fill_users(connection, data)
    return connection


def insert(data: BenchData) -> dict[str, float]:
    connection = open_database()
    session = Session(connection)
    start = start_clock()
    users = [
        User(name=name, email=email, score=score, age=age, active=active)
        for name, email, score, age, active in data.fields
    ]
    add_start = clock()
    session.add_all(users)
    flush_start = clock()
    session.flush()
    session.commit()
    end = clock()
    session.close()
    expect(count_rows(connection), data.rows, "rows after insert")
    return {INSERT_CONSTRUCT: add_start - start, INSERT_ADD: flush_start - add_start,
            INSERT_TOTAL: end - start, INSERT_FLUSH: end - flush_start}


def load(data: BenchData) -> dict[str, float]:
    connection = open_filled_database(data)
    session = Session(connection)
    start = start_clock()
    users = session.all(User)
    end = clock()
    expect(len(users), data.rows, "objects loaded")
    session.close()
    return {LOAD: end - start}


def memory(data: BenchData) -> dict[str, float]:
    session = Session(open_filled_database(data))
    per_object = measure_memory(lambda: session.all(User), data.rows)
    session.close()
    return {MEMORY: per_object}


def timed_sparse_update(connection: sqlite3.Connection, data: BenchData, load_all: bool) -> float:
    """Change the age of the rows in data.sparse_keys, with either only those or all rows loaded."""
    session = Session(connection)
    if load_all:
        session.all(User)  # every row becomes an object the session holds
    # With everything loaded these are identity-map hits; otherwise each one loads its row.
    users = [session.get(User, key) for key in data.sparse_keys]
    for user in users:
        user.age = user.age + 1
    start = start_clock()
    session.flush()
    session.commit()
    end = clock()
    session.close()
    return end - start


def sparse_update(data: BenchData) -> dict[str, float]:
    seconds = {}
    for label, load_all in [(SPARSE_FEW, False), (SPARSE_ALL, True)]:
        connection = open_filled_database(data)
        ages_before = sum_of_ages(connection)
        seconds[label] = timed_sparse_update(connection, data, load_all)
        expect(sum_of_ages(connection) - ages_before, len(data.sparse_keys), "sum of ages added")
    return seconds


def dense_update(data: BenchData) -> dict[str, float]:
    connection = open_filled_database(data)
    ages_before = sum_of_ages(connection)
    session = Session(connection)
    users = session.all(User)
    start = start_clock()
    for user in users:
        user.age = user.age + 1
    changes_end = clock()
    flush_start = start_clock()
    session.flush()
    session.commit()
    end = clock()
    session.close()
    expect(sum_of_ages(connection) - ages_before, data.rows, "sum of ages added")
    return {DENSE_CHANGES: changes_end - start, DENSE_FLUSH: end - flush_start}


def delete_tenth(data: BenchData) -> dict[str, float]:
    connection = open_filled_database(data)
    session = Session(connection)
    session.all(User)  # the session holds every row: the gets below are identity-map hits
    doomed = [session.get(User, key) for key in data.delete_keys]
    start = start_clock()
    for user in doomed:
        session.delete(user)
    calls_end = clock()
    flush_start = start_clock()
    session.flush()
    session.commit()
    end = clock()
    session.close()
    expect(count_rows(connection), data.rows - len(data.delete_keys), "rows after delete")
    return {DELETE_CALLS: calls_end - start, DELETE_FLUSH: end - flush_start}


def get_hits(data: BenchData) -> dict[str, float]:
    connection = open_filled_database(data)
    session = Session(connection)
    loaded = session.all(User)
    statements_before = session.stats().statements
    start = start_clock()
    for key in data.get_keys:
        session.get(User, key)
    end = clock()
    expect(session.stats().statements - statements_before, 0, "statements run by identity-map hits")
    expect(len(session.identity_map), len(loaded), "objects in the identity map")
    session.close()
    return {GET_HITS: end - start}


def parents_and_children(data: BenchData) -> dict[str, float]:
    """New parents, each with new children linked by object reference; one flush numbers the
    parents and fills every child's parent_id from its parent's new key."""
    connection = connect(":memory:")
    create_all(connection, [Parent, Child])
    session = Session(connection)
    parents = data.rows // CHILDREN_PER_PARENT
    start = start_clock()
    objects = []
    for number in range(parents):
        parent = Parent(name=f"parent{number}")
        objects.append(parent)
        for child in range(CHILDREN_PER_PARENT):
            objects.append(Child(name=f"child{child}", parent=parent))
    session.add_all(objects)
    session.commit()
    end = clock()
    session.close()
    expect(connection.execute("SELECT count(*) FROM children").fetchone()[0], parents * CHILDREN_PER_PARENT,
           "children inserted")
    expect(connection.execute(PARENTS_WITH_ALL_CHILDREN).fetchone()[0], parents, "parents with all their children")
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
