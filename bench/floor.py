"""The floor: the least Python any unit of work must run, written as directly as Python allows.

A session keeps objects, not tuples.  Whatever else it does, it must at least: read each changed
object's attributes into a parameter row, find which objects changed, put keys the database
generates into the objects, remember what each row now holds (the snapshot change tracking
compares against), and keep the identity map.  This module does exactly that and nothing else:
no checks, no states, no undo log, no plan, no errors — a program nobody should use, but a
measure of what the targets ask for.

Read its column next to uow's: where the floor's ratio to raw sqlite3 is already above a target,
no pure-Python session can meet that target; the gap between the floor and uow is what uow's
guarantees (checked values, exact rollback, ordering with reasons, failed flushes undone) cost.

The objects here track changes the cheapest correct way: an assignment records the object in the
session's dirty set (so a flush is O(changed)), and the flush compares values against the snapshot
(so setting a value back is no change).

The calls a user makes per object are the least a real session's are, and no less: ``add()``,
``delete()`` and ``get()`` are each one method call per object (a bare list append or dict
lookup in the user's loop would be below any session, and a floor that uow beats is no floor).
``add()`` gives the object its session and queues it once; ``delete()`` marks it once (so a second
add or delete of the same object is recognized and changes nothing); ``get()`` finds the class's
identity map, then the key in it.
"""

import collections
import contextlib
import gc
from operator import is_, itemgetter

from bench import raw_sqlite
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

USER_COLUMNS = ("id", "name", "email", "score", "age", "active")
snapshot_of = itemgetter(*USER_COLUMNS)


@contextlib.contextmanager
def collector_paused():
    """Creating many objects that live on would make CPython's cyclic collector run again and
    again for nothing; uow pauses it the same way while it builds a large batch."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Session:
    """Identity maps, a dirty set, the new objects and the objects to delete: the state every
    session keeps.

    ``identity`` holds one map per class, ``{key: object}``.  Each object keeps its own snapshot,
    and its session, in its __dict__ next to its values.
    """

    def __init__(self, connection):
        self.connection = connection
        self.identity = collections.defaultdict(dict)
        self.dirty = {}
        self.doomed = {}
        self.new = {}

    def add(self, obj):
        """The least add() any session runs: the object is the session's from now on (the mark
        another session, or a rollback, would read), and a flush will INSERT it; a second add()
        changes nothing."""
        obj.__dict__["session"] = self
        self.new[obj] = None

    def add_all(self, objects):
        add = self.add
        for obj in objects:
            add(obj)

    def delete(self, obj):
        """The least delete() any session runs: the object is marked for the flush's DELETE, once
        (a second delete() changes nothing)."""
        self.doomed[obj] = None

    def get(self, cls, key):
        """The least get() any session runs: the class's identity map, then the key in it."""
        return self.identity[cls].get(key)


class Tracked:
    """An object whose assignments mark it dirty in its session (the cheapest O(changed) tracking).

    Objects with no session yet (constructed, not added) or only added (their INSERT will write
    whatever they hold) need no tracking; the flush skips objects without a snapshot.
    """

    session = None

    def __setattr__(self, name, value):
        self.__dict__[name] = value
        if self.session is not None:
            self.session.dirty[self] = None


class User(Tracked):
    def __init__(self, **values):
        self.__dict__.update(values)


def share_attribute_names(cls, names):
    """Give CPython every name an object of ``cls`` will hold, once, before any object exists.

    On Python 3.11 and 3.12 ``__dict__.update(values)`` into a new object copies ``values``' own
    key table, so the class's shared key table never learns the names, and stops taking any after
    about 30 objects: every object loaded later carries a full dict (about 120 B more).  uow
    guards against it the same way (``entity._share_attribute_names``); without it the floor's
    memory row would depend on whether its construct phase ran first.
    """
    throwaway = cls.__new__(cls)
    for name in names:
        throwaway.__dict__[name] = None


share_attribute_names(User, USER_COLUMNS + ("snapshot", "session"))


def insert_users(session, users):
    """INSERT the new objects in one executemany, read their generated keys back, file them."""
    connection = session.connection
    rows = list(map(itemgetter("name", "email", "score", "age", "active"), map(vars, users)))
    connection.execute("BEGIN")
    before = connection.execute("SELECT max(rowid) FROM users").fetchone()[0] or 0
    connection.executemany(INSERT_SQL, rows)
    keys = connection.execute("SELECT id FROM users WHERE rowid > ? ORDER BY rowid", (before,)).fetchall()
    connection.execute("COMMIT")
    identity = session.identity[User]
    with collector_paused():
        for user, (key,) in zip(users, keys):
            values = user.__dict__
            values["id"] = key
            values["snapshot"] = snapshot_of(values)
            identity[key] = user
    session.new.clear()


def load_users(session):
    """Every row through the identity map: an object per new key, the held object otherwise."""
    identity = session.identity[User]
    users = []
    new = User.__new__
    with collector_paused():
        for row in session.connection.execute(raw_sqlite.SELECT_SQL).fetchall():
            user = identity.get(row[0])
            if user is None:
                user = new(User)
                values = user.__dict__
                values.update(zip(USER_COLUMNS, row))
                values["snapshot"] = row
                values["session"] = session
                identity[row[0]] = user
            users.append(user)
    return users


def flush_updates(session):
    """UPDATE the columns that differ from the snapshot, one executemany per set of columns."""
    by_columns = {}
    for user in session.dirty:
        values = user.__dict__
        before = values.get("snapshot")
        if before is None:
            continue  # added, not inserted yet: its INSERT writes what it holds
        now = snapshot_of(values)
        if all(map(is_, now, before)):
            continue
        changed = tuple(index for index, (a, b) in enumerate(zip(now, before)) if a is not b and a != b)
        if changed:
            by_columns.setdefault(changed, []).append((user, now))
    connection = session.connection
    connection.execute("BEGIN")
    for changed, members in by_columns.items():
        assignments = ", ".join(f"{USER_COLUMNS[index]} = ?" for index in changed)
        getter = itemgetter(*changed, 0)
        connection.executemany(f"UPDATE users SET {assignments} WHERE id = ?",
                               [getter(now) for _, now in members])
    connection.execute("COMMIT")
    for members in by_columns.values():
        for user, now in members:
            user.__dict__["snapshot"] = now
    session.dirty.clear()


def flush_deletes(session):
    connection = session.connection
    connection.execute("BEGIN")
    connection.executemany(raw_sqlite.DELETE_SQL, [(user.id,) for user in session.doomed])
    connection.execute("COMMIT")
    identity = session.identity[User]
    for user in session.doomed:
        del identity[user.id]
    session.doomed.clear()


def insert(data: BenchData) -> dict[str, float]:
    connection = raw_sqlite.open_database()
    session = Session(connection)
    start = start_clock()
    users = [User(name=name, email=email, score=score, age=age, active=active)
             for name, email, score, age, active in data.fields]
    add_start = clock()
    session.add_all(users)
    flush_start = clock()
    insert_users(session, list(session.new))
    end = clock()
    expect(count_rows(connection), data.rows, "rows after insert")
    expect(users[-1].id, data.rows, "key of the last object")
    return {INSERT_CONSTRUCT: add_start - start, INSERT_ADD: flush_start - add_start,
            INSERT_TOTAL: end - start, INSERT_FLUSH: end - flush_start}


def load(data: BenchData) -> dict[str, float]:
    session = Session(raw_sqlite.open_filled_database(data))
    start = start_clock()
    users = load_users(session)
    end = clock()
    expect(len(users), data.rows, "objects loaded")
    return {LOAD: end - start}


def memory(data: BenchData) -> dict[str, float]:
    session = Session(raw_sqlite.open_filled_database(data))
    return {MEMORY: measure_memory(lambda: load_users(session), data.rows)}


def sparse_update(data: BenchData) -> dict[str, float]:
    seconds = {}
    for label, load_all in [(SPARSE_FEW, False), (SPARSE_ALL, True)]:
        session = Session(raw_sqlite.open_filled_database(data))
        ages_before = sum_of_ages(session.connection)
        if load_all:
            load_users(session)
            users = [session.get(User, key) for key in data.sparse_keys]
        else:
            wanted = set(data.sparse_keys)
            users = [user for user in load_users(session) if user.id in wanted]
            session.identity[User] = {user.id: user for user in users}
        for user in users:
            user.age = user.age + 1
        start = start_clock()
        flush_updates(session)
        seconds[label] = clock() - start
        expect(sum_of_ages(session.connection) - ages_before, len(data.sparse_keys), "ages added")
    return seconds


def dense_update(data: BenchData) -> dict[str, float]:
    session = Session(raw_sqlite.open_filled_database(data))
    ages_before = sum_of_ages(session.connection)
    users = load_users(session)
    start = start_clock()
    for user in users:
        user.age = user.age + 1
    changes_end = clock()
    flush_start = start_clock()
    flush_updates(session)
    end = clock()
    expect(sum_of_ages(session.connection) - ages_before, data.rows, "sum of ages added")
    return {DENSE_CHANGES: changes_end - start, DENSE_FLUSH: end - flush_start}


def delete_tenth(data: BenchData) -> dict[str, float]:
    session = Session(raw_sqlite.open_filled_database(data))
    load_users(session)
    doomed = [session.get(User, key) for key in data.delete_keys]
    start = start_clock()
    for user in doomed:
        session.delete(user)
    calls_end = clock()
    flush_start = start_clock()
    flush_deletes(session)
    end = clock()
    expect(count_rows(session.connection), data.rows - len(data.delete_keys), "rows after delete")
    return {DELETE_CALLS: calls_end - start, DELETE_FLUSH: end - flush_start}


def get_hits(data: BenchData) -> dict[str, float]:
    session = Session(raw_sqlite.open_filled_database(data))
    load_users(session)
    start = start_clock()
    for key in data.get_keys:
        session.get(User, key)
    end = clock()
    return {GET_HITS: end - start}


class Parent(Tracked):
    def __init__(self, name):
        self.__dict__.update(name=name, children=[])


class Child(Tracked):
    def __init__(self, name, parent):
        self.__dict__.update(name=name, parent=parent)
        parent.children.append(self)  # both sides of the link, as a session keeps them


def parents_and_children(data: BenchData) -> dict[str, float]:
    """Parents numbered by the database, each child's parent_id filled from its parent's new key."""
    connection = raw_sqlite.open_parent_child_database()
    session = Session(connection)
    parents = data.rows // CHILDREN_PER_PARENT
    start = start_clock()
    objects = []
    for number in range(parents):
        parent = Parent(f"parent{number}")
        objects.append(parent)
        for child in range(CHILDREN_PER_PARENT):
            objects.append(Child(f"child{child}", parent))
    session.add_all(objects)
    new_parents = [obj for obj in session.new if type(obj) is Parent]
    new_children = [obj for obj in session.new if type(obj) is Child]
    connection.execute("BEGIN")
    for cls, table, members, row_of in [
        (Parent, "parents (name) VALUES (?)", new_parents, lambda parent: (parent.name,)),
        (Child, "children (parent_id, name) VALUES (?, ?)", new_children,
         lambda child: (child.parent.id, child.name)),
    ]:
        # (Parents go first because children need their keys: the one ordering rule of this flush.)
        name = table.split()[0]
        held = session.identity[cls]
        before = connection.execute(f"SELECT max(rowid) FROM {name}").fetchone()[0] or 0
        rows = list(map(row_of, members))
        connection.executemany(f"INSERT INTO {table}", rows)
        keys = connection.execute(f"SELECT id FROM {name} WHERE rowid > ? ORDER BY rowid", (before,)).fetchall()
        with collector_paused():
            for obj, row, (key,) in zip(members, rows, keys):
                values = obj.__dict__
                values["id"] = key
                values["snapshot"] = (key, *row)
                held[key] = obj
    connection.execute("COMMIT")
    session.new.clear()
    end = clock()
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
