"""The flush scenarios the fault-injection tests run, and how a run of one is set up.

A run starts from the template database (see ``harness``): a session loads every seeded row and
commits, so "the last commit" is a known state with objects in the identity map.  A scenario's
``prepare`` then makes the changes that the flush under test writes.  ``prepare`` must be
repeatable on the same session after ``rollback()``: that is how the tests retry a failed flush.
"""

import dataclasses

import uow

from .harness import (CORE_MODELS, PLANT_ROW_SQL, Bulk, Child, Code, Item, Parent, Versioned,
                      column_values, fresh_db, raw)

PAYLOAD = "x" * 5000  # inserted rows need new (overflow) pages: the disk-full test relies on it


class Run:
    """One run of a scenario: its connection, its session, and the objects it created."""

    def __init__(self, conn, session):
        self.conn = conn
        self.session = session
        self.created = []

    def add(self, obj):
        """session.add(obj), remembering the object and its values at that moment."""
        self.session.add(obj)
        self.created.append((obj, column_values(obj)))
        return obj


@dataclasses.dataclass
class Scenario:
    name: str
    prepare: object
    seed: object = None
    grows: bool = False  # the flush needs new database pages


def start(scenario, path=":memory:", journal_mode=None):
    conn = fresh_db(path, journal_mode)
    if scenario.seed is not None:
        scenario.seed(conn)
    session = uow.Session(conn)
    for cls in CORE_MODELS:
        session.all(cls)
    session.commit()
    return Run(conn, session)


def insert_only(run):
    for i in range(1, 4):
        run.add(Item(tag=f"new-{i}", name=f"new {i}", qty=i, note=PAYLOAD))
    run.add(Code(code="dd", tag="code-dd", label="D"))
    run.add(Code(code="ee", tag="code-ee", label="E"))


def update_only(run):
    session = run.session
    session.filter(Item, qty=3)  # opens a DEFERRED read transaction: this flush sends no BEGIN
    first = session.get(Item, 1)
    first.name = "renamed"
    first.tag = "item-1b"
    session.get(Item, 2).qty = 99
    code = session.get(Code, "cc")
    code.label = "C!"
    code.tag = "code-cc2"
    session.get(Parent, 3).name = "p3!"


def delete_only(run):
    session = run.session
    for obj in (session.get(Item, 4), session.get(Item, 5), session.get(Code, "aa"), session.get(Child, 6)):
        session.delete(obj)


def mixed(run):
    session = run.session
    run.add(Item(tag="new-m1", name="m1", note=PAYLOAD))
    session.get(Item, 1).tag = "item-1m"
    session.delete(session.get(Item, 6))
    run.add(Child(tag="child-new", parent_id=1, name="cn"))
    session.delete(session.get(Child, 5))
    session.get(Parent, 3).name = "p3m"
    session.get(Versioned, 4).value = 41
    run.add(Item(tag="new-m2", name="m2", note=PAYLOAD))


def parent_child(run):
    """Children added before their parent, and a parent deleted before its children: the plan
    must insert the parent first and delete the children first."""
    session = run.session
    run.add(Child(id=100, tag="c-100", parent_id=100, name="c100"))
    run.add(Child(id=101, tag="c-101", parent_id=100, name="c101"))
    run.add(Parent(id=100, tag="p-100", name="p100"))
    session.delete(session.get(Parent, 2))
    session.delete(session.get(Child, 3))
    session.delete(session.get(Child, 4))


def pk_change(run):
    session = run.session
    code = session.get(Code, "bb")
    code.code = "zz"
    item = session.get(Item, 2)
    item.id = 200
    item.name = "moved"


def seed_bulk(conn):
    raw(conn, "BEGIN")
    conn_rows = [(i, f"bulk-{i}", i) for i in range(1, 1101)]
    for row in conn_rows:
        raw(conn, "INSERT INTO rel_bulk (id, tag, n) VALUES (?, ?, ?)", row)
    raw(conn, "COMMIT")


def var_limit(run):
    """More bound values than SQLite allows in one statement (999 here), in every kind of write."""
    import sqlite3

    run.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    session = run.session
    rows = session.all(Bulk)
    for obj in rows[:100]:
        obj.n += 1000
    for obj in rows[100:]:
        session.delete(obj)  # 1000 deletes: more keys than one statement may bind
    for i in range(2001, 2341):
        run.add(Bulk(id=i, tag=f"bulk-{i}", n=i))  # 340 rows x 3 columns = 1020 values


def nested(run):
    session = run.session
    session.begin_nested()
    session.get(Item, 1).name = "in savepoint"
    run.add(Item(tag="new-n1", name="n1", note=PAYLOAD))
    session.delete(session.get(Item, 3))


def second_flush(run):
    """The flush under test is the second of the transaction; the first one succeeded."""
    session = run.session
    early = run.add(Item(tag="new-s1", name="s1", note=PAYLOAD))
    session.get(Item, 2).qty = 22
    session.flush()
    early.name = "s1 changed"
    session.delete(session.get(Item, 4))
    run.add(Code(code="ff", tag="code-ff", label="F"))
    run.add(Item(tag="new-s2", name="s2", note=PAYLOAD))


def versioned(run):
    session = run.session
    session.get(Versioned, 1).value = 11
    session.get(Versioned, 2).value = 22
    session.delete(session.get(Versioned, 3))
    run.add(Versioned(tag="v-new", value=50))


SCENARIOS = {scenario.name: scenario for scenario in [
    Scenario("insert_only", insert_only, grows=True),
    Scenario("update_only", update_only),
    Scenario("delete_only", delete_only),
    Scenario("mixed", mixed, grows=True),
    Scenario("parent_child", parent_child),
    Scenario("pk_change", pk_change),
    Scenario("var_limit", var_limit, seed=seed_bulk, grows=True),
    Scenario("nested", nested, grows=True),
    Scenario("second_flush", second_flush, grows=True),
    Scenario("versioned", versioned),
]}


# -- the rows a flush writes, and conflicts planted against them ------------------------------

def planned_writes(session):
    """``(operation, table, tag before, object)`` for every row the next flush writes, in a
    deterministic order (the same in every run of a scenario)."""
    writes = []
    for obj in session.new:
        writes.append(("insert", obj.__mapper__.table, obj.tag, obj))
    for obj in session.dirty:
        writes.append(("update", obj.__mapper__.table, session.original_value(obj, "tag"), obj))
    for obj in session.deleted:
        writes.append(("delete", obj.__mapper__.table, obj.tag, obj))
    writes.sort(key=lambda write: write[:3])
    return writes


class Plant:
    """A raw SQL write made before the flush that makes one of its rows fail in SQLite."""

    def __init__(self, conn, kind, apply_sql, undo_sql, params, target):
        self.conn = conn
        self.kind = kind
        self.apply_sql = apply_sql
        self.undo_sql = undo_sql
        self.params = params
        self.target = target
        self.persisted = False

    def apply(self):
        # Outside a transaction the write commits at once and survives the session's rollback;
        # inside one it is part of that transaction and rollback() removes it.
        self.persisted = not self.conn.in_transaction
        raw(self.conn, self.apply_sql, self.params)

    def undo(self):
        if self.persisted:
            raw(self.conn, self.undo_sql, self.params)


def constraint_plant(conn, session, write):
    """The UNIQUE / FOREIGN KEY / version conflict for one write, or None if it has none."""
    operation, table, tag, obj = write
    mapper = obj.__mapper__
    if mapper.version_column is not None and operation != "insert":
        key = uow.identity_key(instance=obj)[1][0]
        return Plant(conn, "stale", f"UPDATE {table} SET version = version + 1 WHERE id = ?",
                     f"UPDATE {table} SET version = version - 1 WHERE id = ?", (key,), obj)
    if operation == "insert" or (operation == "update" and obj.tag != tag):
        return Plant(conn, "unique", PLANT_ROW_SQL[table], f"DELETE FROM {table} WHERE tag = ?", (obj.tag,), obj)
    key = uow.identity_key(instance=obj)[1][0]
    if operation == "delete" or (operation == "update" and uow.identity_key(instance=obj) != mapper.identity_key(mapper.key_of(obj.__dict__))):
        return Plant(conn, "pin", f"INSERT INTO rel_pins ({table}) VALUES (?)",
                     f"DELETE FROM rel_pins WHERE {table} = ?", (key,), obj)
    return None


def trigger_plant(conn, write, number, action):
    """A TEMP trigger that makes SQLite refuse exactly this row: RAISE(ABORT) fails the statement,
    RAISE(ROLLBACK) throws the whole transaction away."""
    operation, table, tag, obj = write
    row = "NEW" if operation == "insert" else "OLD"
    name = f"rel_poison_{number}"
    quoted = tag.replace("'", "''")
    sql = (f"CREATE TEMP TRIGGER {name} BEFORE {operation.upper()} ON {table} WHEN {row}.tag = '{quoted}' "
           f"BEGIN SELECT RAISE({action.upper()}, 'poisoned row {quoted}'); END")
    return Plant(conn, f"trigger_{action}", sql, f"DROP TRIGGER IF EXISTS temp.{name}", (), obj)
