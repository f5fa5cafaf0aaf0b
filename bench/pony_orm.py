"""The workloads through Pony ORM, each the way Pony's documentation writes it.

Pony keeps a unit of work inside ``db_session``: an object belongs to the session from its
constructor (there is no ``add``, so Pony has no add_all row), ``obj.delete()`` marks it deleted,
``Entity[key]`` looks in the session's cache first, and ``commit()`` flushes and commits.  Entities
belong to one ``Database``, so every repeat defines them again on a fresh in-memory database.
Every function takes the run's BenchData and returns {label: seconds} for one repeat.
"""

import pony
from pony.orm import Database, PrimaryKey, Required, Set, commit, db_session, flush

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
    PARENTS_WITH_ALL_CHILDREN,
    SPARSE_ALL,
    SPARSE_FEW,
    BenchData,
    clock,
    expect,
    measure_memory,
    start_clock,
)

VERSION = pony.__version__


def open_database():
    """A fresh in-memory database with users, parents and children tables, and its entities."""
    db = Database()

    class User(db.Entity):
        _table_ = "users"
        id = PrimaryKey(int, auto=True)
        name = Required(str)
        email = Required(str)
        score = Required(float)
        age = Required(int)
        active = Required(bool)

    class Parent(db.Entity):
        _table_ = "parents"
        id = PrimaryKey(int, auto=True)
        name = Required(str)
        children = Set("Child")

    class Child(db.Entity):
        _table_ = "children"
        id = PrimaryKey(int, auto=True)
        parent = Required(Parent, column="parent_id")
        name = Required(str)

    db.bind(provider="sqlite", filename=":memory:")
    db.generate_mapping(create_tables=True)
    return db


def open_filled_database(data: BenchData):
    db = open_database()
    with db_session:
        db.get_connection().executemany(INSERT_SQL, data.fields)
    return db


def scalar(db, sql: str):
    with db_session:
        return db.get_connection().execute(sql).fetchone()[0]


def insert(data: BenchData) -> dict[str, float]:
    db = open_database()
    User = db.User
    with db_session:
        start = start_clock()
        users = [
            User(name=name, email=email, score=score, age=age, active=active)
            for name, email, score, age, active in data.fields
        ]
        flush_start = clock()
        flush()
        commit()
        end = clock()
    expect(scalar(db, "SELECT count(*) FROM users"), data.rows, "rows after insert")
    expect(len(users), data.rows, "objects constructed")
    return {INSERT_CONSTRUCT: flush_start - start, INSERT_TOTAL: end - start, INSERT_FLUSH: end - flush_start}


def load(data: BenchData) -> dict[str, float]:
    db = open_filled_database(data)
    with db_session:
        start = start_clock()
        users = db.User.select()[:]
        end = clock()
        expect(len(users), data.rows, "objects loaded")
    return {LOAD: end - start}


def memory(data: BenchData) -> dict[str, float]:
    db = open_filled_database(data)
    with db_session:
        per_object = measure_memory(lambda: db.User.select()[:], data.rows)
    return {MEMORY: per_object}


def sparse_update(data: BenchData) -> dict[str, float]:
    seconds = {}
    for label, load_all in [(SPARSE_FEW, False), (SPARSE_ALL, True)]:
        db = open_filled_database(data)
        User = db.User
        ages_before = scalar(db, "SELECT sum(age) FROM users")
        with db_session:
            if load_all:
                User.select()[:]  # every row becomes an object in the session's cache
            users = [User[key] for key in data.sparse_keys]
            for user in users:
                user.age = user.age + 1
            start = start_clock()
            flush()
            commit()
            seconds[label] = clock() - start
        added = scalar(db, "SELECT sum(age) FROM users") - ages_before
        expect(added, len(data.sparse_keys), "sum of ages added")
    return seconds


def dense_update(data: BenchData) -> dict[str, float]:
    db = open_filled_database(data)
    ages_before = scalar(db, "SELECT sum(age) FROM users")
    with db_session:
        users = db.User.select()[:]
        start = start_clock()
        for user in users:
            user.age = user.age + 1
        changes_end = clock()
        flush_start = start_clock()
        flush()
        commit()
        end = clock()
    expect(scalar(db, "SELECT sum(age) FROM users") - ages_before, data.rows, "sum of ages added")
    return {DENSE_CHANGES: changes_end - start, DENSE_FLUSH: end - flush_start}


def delete_tenth(data: BenchData) -> dict[str, float]:
    db = open_filled_database(data)
    User = db.User
    with db_session:
        User.select()[:]
        doomed = [User[key] for key in data.delete_keys]
        start = start_clock()
        for user in doomed:
            user.delete()
        calls_end = clock()
        flush_start = start_clock()
        flush()
        commit()
        end = clock()
    remaining = scalar(db, "SELECT count(*) FROM users")
    expect(remaining, data.rows - len(data.delete_keys), "rows after delete")
    return {DELETE_CALLS: calls_end - start, DELETE_FLUSH: end - flush_start}


def get_hits(data: BenchData) -> dict[str, float]:
    db = open_filled_database(data)
    User = db.User
    with db_session:
        loaded = User.select()[:]
        start = start_clock()
        for key in data.get_keys:
            User[key]
        end = clock()
        expect(len(loaded), data.rows, "objects loaded")
    return {GET_HITS: end - start}


def parents_and_children(data: BenchData) -> dict[str, float]:
    db = open_database()
    Parent, Child = db.Parent, db.Child
    parents = data.rows // CHILDREN_PER_PARENT
    with db_session:
        start = start_clock()
        for number in range(parents):
            parent = Parent(name=f"parent{number}")
            for child in range(CHILDREN_PER_PARENT):
                Child(name=f"child{child}", parent=parent)
        commit()
        end = clock()
    expect(scalar(db, "SELECT count(*) FROM children"), parents * CHILDREN_PER_PARENT, "children inserted")
    expect(scalar(db, PARENTS_WITH_ALL_CHILDREN), parents, "parents with all their children")
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
