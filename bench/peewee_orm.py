"""The workloads through peewee, each the way peewee's documentation writes it.

peewee has no unit of work: a model instance is a row with values, ``save()`` writes it at once,
and nothing tracks which loaded objects changed except each instance's own set of dirty fields.
So each workload does what peewee's documentation recommends for that work: ``bulk_create`` in
batches inside ``atomic()`` for many new rows (peewee does not read generated keys back from
SQLite there), ``save()`` of the changed objects inside one ``atomic()`` for updates (saving only
the dirty fields), ``delete_instance()`` inside ``atomic()`` for deletions -- so peewee's
"delete()" row holds its DELETE statements and its flush+commit row is the COMMIT -- and for
parents with children, ``save()`` per parent (to learn its key) and ``bulk_create`` of the
children.  It has no add (no add_all row) and no identity map (no get-hit row: ``get_by_id``
always runs a SELECT).
"""

import peewee
from peewee import BooleanField, CharField, FloatField, ForeignKeyField, IntegerField, Model, SqliteDatabase

from bench.common import (
    CHILDREN_PER_PARENT,
    DELETE_CALLS,
    DELETE_FLUSH,
    DENSE_CHANGES,
    DENSE_FLUSH,
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
    count_rows,
    expect,
    measure_memory,
    start_clock,
    sum_of_ages,
)

VERSION = peewee.__version__

# SQLite allows 32,766 bound values per statement; 5 columns a row in batches of 1,000 stay below.
BATCH = 1000

# peewee has no unit of work: delete_instance() sends its DELETE at once, so the delete workload's
# "flush+commit" phase is peewee's COMMIT alone (bench/run.py leaves it out of that row's race and
# compares it on the row of both phases' total).
DONE_ELSEWHERE = {DELETE_FLUSH: "its DELETEs run in delete_instance(), so this phase is its COMMIT alone"}


class User(Model):
    name = CharField()
    email = CharField()
    score = FloatField()
    age = IntegerField()
    active = BooleanField()

    class Meta:
        table_name = "users"


class Parent(Model):
    name = CharField()

    class Meta:
        table_name = "parents"


class Child(Model):
    parent = ForeignKeyField(Parent, backref="children", column_name="parent_id")
    name = CharField()

    class Meta:
        table_name = "children"


MODELS = [User, Parent, Child]


def open_database() -> SqliteDatabase:
    """A fresh in-memory database with the three tables, the models bound to it."""
    database = SqliteDatabase(":memory:", pragmas={"foreign_keys": 1})
    database.bind(MODELS)
    database.connect()
    database.create_tables(MODELS)
    return database


def open_filled_database(data: BenchData) -> SqliteDatabase:
    database = open_database()
    with database.atomic():
        database.connection().executemany(INSERT_SQL, data.fields)
    return database


def insert(data: BenchData) -> dict[str, float]:
    database = open_database()
    start = start_clock()
    users = [
        User(name=name, email=email, score=score, age=age, active=active)
        for name, email, score, age, active in data.fields
    ]
    flush_start = clock()
    with database.atomic():
        User.bulk_create(users, batch_size=BATCH)
    end = clock()
    expect(count_rows(database.connection()), data.rows, "rows after insert")
    return {INSERT_CONSTRUCT: flush_start - start, INSERT_TOTAL: end - start, INSERT_FLUSH: end - flush_start}


def load(data: BenchData) -> dict[str, float]:
    open_filled_database(data)
    start = start_clock()
    users = list(User.select())
    end = clock()
    expect(len(users), data.rows, "objects loaded")
    return {LOAD: end - start}


def memory(data: BenchData) -> dict[str, float]:
    open_filled_database(data)
    return {MEMORY: measure_memory(lambda: list(User.select()), data.rows)}


def save_changed(database: SqliteDatabase, users: list) -> None:
    """peewee's way to write changed objects: save() each, only its dirty fields, in one transaction."""
    with database.atomic():
        for user in users:
            user.save(only=user.dirty_fields)


def sparse_update(data: BenchData) -> dict[str, float]:
    seconds = {}
    for label, load_all in [(SPARSE_FEW, False), (SPARSE_ALL, True)]:
        database = open_filled_database(data)
        ages_before = sum_of_ages(database.connection())
        if load_all:
            # Without a session, loaded objects are just the caller's list; the changed ones are
            # the caller's to find (here by key, as a dict of the loaded objects).
            by_key = {user.id: user for user in User.select()}
            users = [by_key[key] for key in data.sparse_keys]
        else:
            users = list(User.select().where(User.id.in_(data.sparse_keys)))
        for user in users:
            user.age = user.age + 1
        start = start_clock()
        save_changed(database, users)
        seconds[label] = clock() - start
        expect(sum_of_ages(database.connection()) - ages_before, len(data.sparse_keys), "ages added")
    return seconds


def dense_update(data: BenchData) -> dict[str, float]:
    database = open_filled_database(data)
    ages_before = sum_of_ages(database.connection())
    users = list(User.select())
    start = start_clock()
    for user in users:
        user.age = user.age + 1
    changes_end = clock()
    flush_start = start_clock()
    save_changed(database, users)
    end = clock()
    expect(sum_of_ages(database.connection()) - ages_before, data.rows, "sum of ages added")
    return {DENSE_CHANGES: changes_end - start, DENSE_FLUSH: end - flush_start}


def delete_tenth(data: BenchData) -> dict[str, float]:
    database = open_filled_database(data)
    by_key = {user.id: user for user in User.select()}
    doomed = [by_key[key] for key in data.delete_keys]
    transaction = database.atomic()
    transaction.__enter__()
    start = start_clock()
    for user in doomed:
        user.delete_instance()
    calls_end = clock()
    flush_start = start_clock()
    transaction.__exit__(None, None, None)
    end = clock()
    expect(count_rows(database.connection()), data.rows - len(data.delete_keys), "rows after delete")
    return {DELETE_CALLS: calls_end - start, DELETE_FLUSH: end - flush_start}


def parents_and_children(data: BenchData) -> dict[str, float]:
    database = open_database()
    parents = data.rows // CHILDREN_PER_PARENT
    start = start_clock()
    with database.atomic():
        children = []
        for number in range(parents):
            parent = Parent(name=f"parent{number}")
            parent.save()  # the key is needed before a child can refer to this parent
            for child in range(CHILDREN_PER_PARENT):
                children.append(Child(name=f"child{child}", parent=parent))
        Child.bulk_create(children, batch_size=BATCH)
    end = clock()
    connection = database.connection()
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
    "parents": parents_and_children,
    "memory": memory,
}
