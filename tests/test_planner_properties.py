"""Property test of the row-level flush planner, on a real sqlite3 database.

Hypothesis draws a schema (a chain, a diamond, a tree, a two-table cycle, tables with unique
columns, or a random mix; see ``planner_schemas``) and a program: batches of inserts, updates,
re-parentings and deletes, each ending with a flush and sometimes a commit.  The program runs
through a Session on ``uow.connect(":memory:")``, whose foreign keys are immediate, and every
flush is checked against an oracle that reads only the rows' foreign keys and unique values,
never uow's own dependency edges:

1. **Every plan respects every dependency.**  In ``session.plan()`` (and in the statements the
   flush then sends, captured with ``uow.capture_sql()``), a referenced row is inserted before
   the row that references it, a referencing row is deleted or re-pointed before its parent, and
   a row that frees a unique value is written before the row that takes it.  Post-updates and
   cleared references appear only where the rows form a cycle.
2. **The database ends as the model says**: every table, read back with raw SQL, holds exactly
   the rows of a dict-based model (generated keys taken from the objects after the flush).
3. **Unbreakable cycles are reported before any SQL**: flush() raises CycleError, sends no
   statement at all, and leaves the session as it was.
4. **Determinism**: the same program on two fresh databases sends the same SQL.

A failing example prints its program as a runnable Python snippet.
"""

import itertools
import os
import types

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis.errors import InvalidArgument

import uow
from uow import Column
from uow.planner import StepKind, StepPurpose
from uow.collection import Collection
from uow.relationships import Reference

from .helpers import folded, verb_and_table
from .planner_schemas import CASCADE, Delete, Link, Model, New, Set, expected_flush, programs, render

# -- settings ---------------------------------------------------------------------------------

# HYPOTHESIS_PROFILE names the profile properties/profiles.py registers; this file scales its own
# example count with it (an example takes a few milliseconds: about 6 s for "dev", 22 s for "ci"
# while nothing fails), and inherits the rest of the profile when it is registered.  Only one
# failure is shrunk and reported: shrinking several takes minutes, and the example tests at the
# end of this file name each known failure on its own.
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "dev")
EXAMPLES = {"dev": 600, "ci": 2500, "thorough": 20000, "mutation": 100}


def _settings():
    try:
        parent = settings.get_profile(PROFILE)
    except InvalidArgument:
        parent = None  # properties/profiles.py was not imported (this file run on its own)
    suppressed = {HealthCheck.too_slow, HealthCheck.data_too_large}
    if parent is not None:
        suppressed.update(parent.suppress_health_check)
    options = dict(max_examples=EXAMPLES.get(PROFILE, EXAMPLES["dev"]), deadline=None, report_multiple_bugs=False,
                   suppress_health_check=sorted(suppressed, key=lambda check: check.value))
    if PROFILE in ("ci", "mutation"):
        options.update(derandomize=True, database=None)
    return settings(parent, **options)


# -- building classes --------------------------------------------------------------------------

_tags = itertools.count(1)

_ACTION_NAMES = {
    (StepKind.INSERT, StepPurpose.WRITE): "insert",
    (StepKind.UPDATE, StepPurpose.WRITE): "update",
    (StepKind.DELETE, StepPurpose.WRITE): "delete",
    (StepKind.UPDATE, StepPurpose.ROW_SWITCH): "switch",
    (StepKind.UPDATE, StepPurpose.POST_UPDATE): "post-update",
    (StepKind.UPDATE, StepPurpose.CLEAR_REFERENCE): "clear reference",
}


def build_classes(schema):
    """Declare the schema's entity classes on a fresh abstract base, with names no other
    example uses (``A7`` on table ``a7``).  Returns ``{table name: class}``."""
    tag = next(_tags)

    class Base(uow.Entity, abstract=True):
        pass

    names = {table.name: f"{table.name}{tag}" for table in schema.tables}
    classes = {}
    for table in schema.tables:
        namespace = {"__annotations__": {}}
        annotations = namespace["__annotations__"]
        annotations[table.key] = str if table.natural else int
        namespace[table.key] = Column(primary_key=True)
        annotations["val"] = int
        namespace["val"] = 0
        if table.unique:
            annotations["u"] = int | None
            namespace["u"] = Column(unique=True)
        for fk in table.fks:
            kind = str if schema.table(fk.target).natural else int
            annotations[fk.column] = kind | None if fk.nullable else kind
            namespace[fk.column] = Column(references=names[fk.target])
            namespace[fk.reference] = Reference(fk.column)
        for title, child, fk in schema.collections(table.name):
            namespace[title] = Collection(names[child.name], fk.reference, cascade=CASCADE)
        classes[table.name] = types.new_class(names[table.name], (Base,), {"table": names[table.name].lower()},
                                              lambda body, namespace=namespace: body.update(namespace))
    return classes


# -- running a program ---------------------------------------------------------------------------

class Run:
    """One program on one fresh database, checked flush by flush; ``trace`` is what it sent."""

    def __init__(self, program, classes):
        self.schema = program.schema
        self.program = program
        self.classes = classes
        self.connection = uow.connect(":memory:")
        uow.create_all(self.connection, list(classes.values()))
        self.session = uow.Session(self.connection)
        self.objects = {}
        self.tables = {}   # label -> table name, for rows deleted from the model too
        self.model = Model(self.schema)
        self.trace = []

    def run(self):
        flushed = self.model.copy()
        committed = self.model.copy()
        try:
            with uow.capture_sql() as statements:
                for batch in self.program.batches:
                    for op in batch.ops:
                        self.perform(op)
                        self.model.apply(op)
                    expected = expected_flush(self.schema, flushed, self.model)
                    if expected.unbreakable:
                        self.check_cycle_refused(expected, statements)
                        self.session.rollback()
                        self.check_database(committed)
                        break
                    self.flush(expected, statements)
                    self.model.mark_stored()
                    flushed = self.model.copy()
                    if batch.commit:
                        self.session.commit()
                        committed = self.model.copy()
                        self.check_database(committed)
                        self.check_states(committed=True)
            self.trace.extend(folded(statements))
        finally:
            self.session.close()
            self.connection.close()
        return self.trace

    def perform(self, op):
        if isinstance(op, New):
            table = self.schema.table(op.table)
            values = {"val": op.val}
            if table.natural:
                values["code"] = op.code
            if table.unique:
                values["u"] = op.u
            for column, target, how in op.refs:
                fk = table.fk(column)
                if how == "object":
                    values[fk.reference] = self.objects[target]
                else:
                    values[column] = self.key_of(target)
            obj = self.classes[op.table](**values)
            self.session.add(obj)
            self.objects[op.label] = obj
            self.tables[op.label] = op.table
        elif isinstance(op, Set):
            setattr(self.objects[op.label], op.field, op.value)
        elif isinstance(op, Link):
            obj = self.objects[op.label]
            fk = self.schema.table(self.tables[op.label]).fk(op.column)
            if op.how == "object":
                setattr(obj, fk.reference, self.objects[op.target] if op.target is not None else None)
            else:
                setattr(obj, op.column, self.key_of(op.target) if op.target is not None else None)
        elif isinstance(op, Delete):
            self.session.delete(self.objects[op.label])

    def key_of(self, label):
        """The key value a foreign key to ``label`` holds (read from the object: ids come from SQLite)."""
        table = self.schema.table(self.tables[label])
        value = self.objects[label].__dict__.get(table.key)
        assert value is not None, f"{label} has no key yet"
        return value

    def label_of(self, obj):
        return next(label for label, held in self.objects.items() if held is obj)

    # -- one flush -----------------------------------------------------------------------------

    def flush(self, expected, statements):
        plan = self.session.plan()
        self.trace.append(str(plan))
        mark = len(statements)
        try:
            self.session.flush()
        except Exception as error:
            raise AssertionError(f"the flush failed with {type(error).__name__}: {error}\n{plan}") from error
        sent = statements[mark:]
        for step in plan.steps:
            if step.purpose is not StepPurpose.WRITE:
                event(f"plan has a {step.purpose.value} step")
        if any(need.column is None for need in expected.needs):
            event("a unique value changes hands")
        self.check_plan(plan, expected)
        self.check_sql(plan, sent)
        self.check_database(self.model)
        self.check_states(committed=False)

    def check_plan(self, plan, expected):
        """The plan holds exactly the expected row actions, in an order that meets every need."""
        position = {}
        actions = {}
        for step_number, step in enumerate(plan.steps):
            for row_number, action in enumerate(step.actions):
                kind = _ACTION_NAMES[(action.kind, action.purpose)]
                node = (kind, self.label_of(action.state.obj))
                assert node not in position, f"{kind} {node[1]} appears twice in the plan\n{plan}"
                position[node] = (step_number, row_number)
                actions[node] = action
        main = {node for node in position if node[0] in ("insert", "update", "delete", "switch")}
        wanted = {(kind, label) for label, kind in expected.actions.items()}
        assert main == wanted, (f"plan actions differ from the model's changes: missing {sorted(wanted - main)}, "
                                f"unexpected {sorted(main - wanted)}\n{plan}")
        for label, columns in expected.changed.items():
            assert set(actions[("update", label)].columns) == columns, \
                f"UPDATE {label} sets {actions[('update', label)].columns}, the model changed {sorted(columns)}\n{plan}"
        for label, old in expected.switched.items():
            assert actions[("switch", label)].switch_from.obj is self.objects[old], plan
        completed = {}
        for (kind, label), action in actions.items():
            if kind not in ("post-update", "clear reference"):
                continue
            owner = "insert" if kind == "post-update" else "delete"
            assert (owner, label) in position, f"{kind} of {label}, which is not being {owner}ed\n{plan}"
            table = self.schema.table(self.tables[label])
            for column in action.columns:
                assert table.fk(column).nullable, f"{kind} of {label} sets NOT NULL column {column}\n{plan}"
            if kind == "post-update":
                completed[label] = set(action.columns)
        for (kind, label), action in actions.items():
            if kind == "insert":
                later = completed.get(label, set())
                assert set(action.null_columns) == later, \
                    f"INSERT {label} binds NULL for {action.null_columns}, completed later: {sorted(later)}\n{plan}"
        broken = [node for node in position if node[0] in ("post-update", "clear reference")]
        if expected.needs_break:
            assert broken, f"the rows form a cycle, yet the plan has no post-update or clear-reference step\n{plan}"
        else:
            assert not broken, f"no cycle among the rows, yet the plan breaks one: {broken}\n{plan}"
        for need in expected.needs:
            self.check_need(need, position, actions, plan)

    def check_need(self, need, position, actions, plan):
        before, after = need.before, need.after
        if need.column is not None and after[0] != "delete":
            # A foreign key written by `after`: by its INSERT, or by the post-update that completes it.
            if after[0] == "insert" and need.column in actions[after].null_columns:
                completion = ("post-update", after[1])
                assert position[after] < position[completion], f"{completion} before {after}\n{plan}"
                after = completion
        elif need.column is not None and before[0] == "delete":
            # A reference to a deleted row: gone with its row, or cleared first.
            clear = ("clear reference", before[1])
            if clear in actions and need.column in actions[clear].columns:
                assert position[clear] < position[before], f"{clear} after {before}\n{plan}"
                before = clear
        assert position[before] < position[after], \
            f"{before[0]} {before[1]} must come before {after[0]} {after[1]} ({need.reason})\n{plan}"

    def check_sql(self, plan, sent):
        """The statements sent are the plan's steps, in order, one parameter row per action; an
        INSERT binds NULL exactly where the plan completes the key later."""
        if not plan.steps:
            assert sent == [], f"nothing to write, yet the flush sent {[statement.sql for statement in sent]}"
            return
        dml = [(sql, params) for sql, params in folded(sent) if sql.startswith(("INSERT", "UPDATE", "DELETE"))]
        assert sent[-1].sql == 'RELEASE "uow_flush"', [statement.sql for statement in sent]
        for step in plan.steps:
            rows = []
            while len(rows) < len(step.actions):
                assert dml, f"step {step} sent no statement"
                sql, params = dml.pop(0)
                assert verb_and_table(sql) == (step.kind.value, step.table), f"{sql} where the plan has {step}"
                rows.extend(params if isinstance(params, list) else [params])  # a list: an executemany's rows
            assert len(rows) == len(step.actions), f"{step}: {len(rows)} rows sent"
            if step.kind is StepKind.INSERT:
                for action, row in zip(step.actions, rows):
                    for column in action.null_columns:
                        assert row[step.columns.index(column)] is None, f"{sql} {row}"
        assert not dml, f"statements beyond the plan: {[sql for sql, _ in dml]}"

    def check_database(self, model):
        """Every table holds exactly the model's rows."""
        for table in self.schema.tables:
            columns = [table.key, "val"] + (["u"] if table.unique else []) + [fk.column for fk in table.fks]
            quoted = ", ".join(f'"{column}"' for column in columns)
            name = self.classes[table.name].__mapper__.table
            found = sorted(self.connection.execute(f'SELECT {quoted} FROM "{name}"').fetchall(), key=repr)
            wanted = []
            for label in model.live(table.name):
                row = model.rows[label]
                values = [self.key_of(label), row.val] + ([row.u] if table.unique else [])
                values += [self.key_of(row.refs[fk.column]) if row.refs[fk.column] is not None else None
                           for fk in table.fks]
                wanted.append(tuple(values))
            wanted.sort(key=repr)
            assert found == wanted, f"table {table.name}: database has {found}, the model says {wanted}"

    def check_states(self, committed):
        session = self.session
        assert not (session.new or session.dirty or session.deleted), \
            (session.new, session.dirty, session.deleted)
        gone = {uow.ObjectState.TRANSIENT, uow.ObjectState.DETACHED}
        if not committed:
            gone.add(uow.ObjectState.DELETED)
        for label, obj in self.objects.items():
            state = uow.state_of(obj)
            if label in self.model.rows:
                assert state is uow.ObjectState.PERSISTENT, f"{label} is {state.value}"
            else:
                assert state in gone, f"{label} was deleted, but is {state.value}"

    # -- an unbreakable cycle ------------------------------------------------------------------

    def check_cycle_refused(self, expected, statements):
        """CycleError from plan() and flush(), no statement sent, and the session as it was."""
        session = self.session
        before = (session.new, session.dirty, session.deleted)
        states = {label: (uow.state_of(obj), _columns(obj)) for label, obj in self.objects.items()}
        cycle = " -> ".join(f"{kind} {label}" for kind, label in expected.unbreakable)
        event("an unbreakable cycle")
        with pytest.raises(uow.errors.CycleError):
            session.plan()
        mark = len(statements)
        try:
            session.flush()
        except uow.errors.CycleError as error:
            assert error.cycle, f"CycleError names no rows: {error}"
        except Exception as error:
            raise AssertionError(f"expected CycleError for {cycle}, got {type(error).__name__}: {error}") from error
        else:
            raise AssertionError(f"the flush succeeded, but the rows form a cycle no nullable key breaks: {cycle}")
        assert statements[mark:] == [], f"SQL was sent before the CycleError: {statements[mark:]}"
        assert (session.new, session.dirty, session.deleted) == before
        assert {label: (uow.state_of(obj), _columns(obj)) for label, obj in self.objects.items()} == states


def _columns(obj):
    return {name: obj.__dict__.get(name) for name in type(obj).__mapper__.column_names}


def run_program(program):
    """Run a program twice on fresh databases; both runs are checked and must send the same SQL."""
    classes = build_classes(program.schema)
    first = Run(program, classes).run()
    second = Run(program, classes).run()
    assert first == second, "the same program sent different SQL on a second database"


# -- the property ----------------------------------------------------------------------------------

@_settings()
@given(programs())
def test_flush_plans_respect_every_dependency(program):
    note(render(program))
    run_program(program)


# -- the shortest reproductions of what the property found ------------------------------------------
#
# Each test below is one failure the property found, shrunk by hand to a few lines and written
# as a user would meet it.

def _database(base):
    connection = uow.connect(":memory:")
    uow.create_all(connection, base)
    return connection, uow.Session(connection)


def _parents_and_children():
    """A(id) and B(id, a_id NOT NULL); deleting an A deletes its Bs (``A.bs``, cascade delete)."""

    class Base(uow.Entity, abstract=True):
        pass

    class A(Base, table="a"):
        id: int = Column(primary_key=True)
        bs = Collection("B", "a", cascade=CASCADE)

    class B(Base, table="b"):
        id: int = Column(primary_key=True)
        val: int = 0
        a_id: int = Column(references="A")
        a = Reference("a_id")

    return Base, A, B


def test_a_breakable_cycle_is_broken_when_one_of_its_rows_has_another_child():
    class Base(uow.Entity, abstract=True):
        pass

    class A(Base, table="a"):
        id: int = Column(primary_key=True)
        b_id: int | None = Column(references="B")
        b = Reference("b_id")

    class B(Base, table="b"):
        id: int = Column(primary_key=True)
        a_id: int = Column(references="A")
        a = Reference("a_id")

    connection, session = _database(Base)
    a = A()
    other = B(a=a)
    b = B(a=a)
    session.add_all([a, other, b])
    a.b = b             # a <-> b is a cycle; a.b_id is nullable, so a post-update breaks it
    session.flush()
    assert connection.execute('SELECT "id", "b_id" FROM "a"').fetchall() == [(a.id, b.id)]


def test_a_cycle_error_names_the_rows_of_the_cycle():
    class Base(uow.Entity, abstract=True):
        pass

    class A(Base, table="a"):
        id: int = Column(primary_key=True)
        b_code: str = Column(references="B")
        b = Reference("b_code")

    class B(Base, table="b"):
        code: str = Column(primary_key=True)
        a_id: int = Column(references="A")
        a = Reference("a_id")

    connection, session = _database(Base)
    other = A()
    a = A()
    b = B(code="k0", a=a)
    session.add_all([other, a, b])
    other.b = b
    a.b = b             # a <-> b: no nullable key, so CycleError, naming a and b
    with uow.capture_sql() as statements:
        with pytest.raises(uow.errors.CycleError) as caught:
            session.flush()
    assert statements == []
    assert sorted(reason for _, _, reason in caught.value.cycle) == \
        ["a.b_code references b.code", "b.a_id references a.id"]


def test_a_row_may_reference_its_own_natural_key_through_its_reference():
    class Base(uow.Entity, abstract=True):
        pass

    class Node(Base, table="nodes"):
        code: str = Column(primary_key=True)
        parent_code: str = Column(references="Node")
        parent = Reference("parent_code")

    connection, session = _database(Base)
    root = Node(code="root")
    root.parent = root  # as root.parent_code = "root", which already works: one INSERT
    session.add(root)
    assert [str(step) for step in session.plan().steps] == ["INSERT nodes (code, parent_code): 1 row"]
    session.flush()
    assert connection.execute('SELECT * FROM "nodes"').fetchall() == [("root", "root")]


@pytest.mark.parametrize("also_change_val", [False, True], ids=["alone", "with another change"])
def test_re_pointing_a_loaded_row_at_a_new_parent_is_written(also_change_val):
    """parent_id reads None before and until the new parent has a key, but it did change; with
    another column changed too, the flush once failed inside (a KeyError for parent_id)."""
    class Base(uow.Entity, abstract=True):
        pass

    class Node(Base, table="nodes"):
        id: int = Column(primary_key=True)
        val: int = 0
        parent_id: int | None = Column(references="Node")
        parent = Reference("parent_id")

    connection, session = _database(Base)
    child = Node()
    session.add(child)
    session.commit()
    parent = Node()
    session.add(parent)
    if also_change_val:
        child.val = 1
    child.parent = parent
    session.commit()
    assert connection.execute('SELECT "val", "parent_id" FROM "nodes" WHERE "id" = ?', (child.id,)).fetchall() == \
        [(1 if also_change_val else 0, parent.id)]


def test_a_row_switch_may_replace_a_row_whose_parent_is_deleted():
    class Base(uow.Entity, abstract=True):
        pass

    class A(Base, table="a"):
        id: int = Column(primary_key=True)

    class C(Base, table="c"):
        code: str = Column(primary_key=True)
        a_id: int = Column(references="A")
        a = Reference("a_id")

    connection, session = _database(Base)
    old_parent = A()
    old = C(code="k1", a=old_parent)
    session.add_all([old_parent, old])
    session.commit()
    session.delete(old)
    session.delete(old_parent)
    new_parent = A()
    new = C(code="k1", a=new_parent)   # takes over row k1, which must leave old_parent first
    session.add(new)
    session.commit()
    assert connection.execute('SELECT * FROM "c"').fetchall() == [("k1", new_parent.id)]
    assert connection.execute('SELECT "id" FROM "a"').fetchall() == [(new_parent.id,)]


def test_referencing_a_row_switched_key_needs_no_cycle_break():
    class Base(uow.Entity, abstract=True):
        pass

    class A(Base, table="a"):
        id: int = Column(primary_key=True)
        b_code: str = Column(references="B")
        b = Reference("b_code")

    class B(Base, table="b"):
        code: str = Column(primary_key=True)
        a_id: int | None = Column(references="A")
        a = Reference("a_id")

    connection, session = _database(Base)
    old = B(code="k0")
    session.add(old)
    session.commit()
    session.delete(old)
    new = B(code="k0")    # a row switch: row k0 stays in place, so a can reference it at once
    a = A(b=new)
    session.add_all([new, a])
    new.a = a
    session.commit()      # this once raised CycleError
    assert connection.execute('SELECT * FROM "b"').fetchall() == [("k0", a.id)]


def test_a_child_re_pointed_by_its_key_column_is_not_deleted_with_its_old_parent():
    Base, A, B = _parents_and_children()
    connection, session = _database(Base)
    old, new = A(), A()
    child = B(a=old)      # old.bs is now the loaded list [child]
    session.add_all([old, new, child])
    session.commit()
    child.a_id = new.id
    session.delete(old)
    assert child not in session.deleted
    session.commit()
    assert connection.execute('SELECT "id", "a_id" FROM "b"').fetchall() == [(child.id, new.id)]


def test_a_child_pointed_at_its_parent_by_key_column_is_deleted_with_it():
    Base, A, B = _parents_and_children()
    connection, session = _database(Base)
    parent = A()
    first = B(a=parent)   # parent.bs is now the loaded list [first]
    session.add_all([parent, first])
    session.commit()
    second = B(a_id=parent.id)
    session.add(second)
    session.commit()
    session.delete(parent)
    assert session.deleted == {parent, first, second}
    session.commit()
    assert connection.execute('SELECT * FROM "b"').fetchall() == []


def test_a_pending_child_pointed_at_its_parent_by_key_column_goes_with_it():
    Base, A, B = _parents_and_children()
    connection, session = _database(Base)
    parent = A()
    session.add(parent)
    session.commit()
    child = B(a_id=parent.id)
    session.add(child)
    session.delete(parent)   # a pending child reached by the cascade is expunged
    assert uow.state_of(child) is uow.ObjectState.TRANSIENT
    session.commit()         # this once raised FlushError: FOREIGN KEY constraint failed
    assert connection.execute('SELECT * FROM "a"').fetchall() == []


def test_deleting_a_parent_after_cancelling_a_child_insert():
    Base, A, B = _parents_and_children()
    connection, session = _database(Base)
    parent = A()
    child = B(a=parent)       # parent.bs is now the loaded list [child]
    session.add_all([parent, child])
    session.delete(child)     # pending: this cancels its insert; child is transient again
    session.commit()
    session.delete(parent)    # this once raised InvalidStateError: "delete(): B(...) is transient"
    session.commit()
    assert connection.execute('SELECT * FROM "a"').fetchall() == []


def test_a_row_switch_and_a_plain_update_of_the_same_columns_stay_separate_steps():
    """Regression (found by the property test): UPDATEs are grouped by changed columns, but a
    row switch must never share a step with a plain UPDATE, whose bookkeeping differs."""
    class Base(uow.Entity, abstract=True):
        pass

    class A(Base, table="a"):
        code: str = Column(primary_key=True)
        val: int = 0
        u: int | None = Column(unique=True)

    connection, session = _database(Base)
    a1 = A(code="k0", val=0, u=0)
    a2 = A(code="k1", val=1, u=1)
    session.add_all([a1, a2])
    session.flush()
    session.delete(a1)
    a4 = A(code="k0", val=0, u=0)
    session.add(a4)
    a2.val = 0
    a2.u = None
    session.add(A(code="k5", val=0, u=1))
    purposes = [step.purpose for step in session.plan().steps]
    assert purposes.count(StepPurpose.ROW_SWITCH) == 1 and purposes.count(StepPurpose.WRITE) == 2
    session.flush()
    assert session.get(A, "k0") is a4
    assert connection.execute("SELECT code, val, u FROM a ORDER BY code").fetchall() == [
        ("k0", 0, 0), ("k1", 0, None), ("k5", 0, 1)]


def test_pointing_back_at_a_new_object_with_the_same_natural_key_writes_nothing():
    """Found by the property (default profile): b.a moved from a1 to a pending a2 and then to a
    pending a3 that takes over a1's deleted row (a row switch, same key 'k0').  b's foreign key
    ends where it started, yet the plan held an UPDATE of it, because any reference to an object
    without a row counted as a change even when its key was known and already held."""

    class Base(uow.Entity, abstract=True):
        pass

    class A(Base, table="a"):
        code: str = Column(primary_key=True)
        val: int = 0

    class B(Base, table="b"):
        id: int = Column(primary_key=True)
        a_code: str = Column(references="A")
        a = Reference("a_code")

    connection, session = _database(Base)
    a1 = A(code="k0")
    b = B(a=a1)
    session.add_all([a1, b])
    session.flush()
    a2 = A(code="k1")
    session.add(a2)
    session.delete(a1)
    b.a = a2
    assert session.dirty_fields(b) == ["a_code"]
    a3 = A(code="k0", val=1)
    session.add(a3)
    b.a = a3
    assert session.dirty_fields(b) == []
    assert [(step.kind.value, step.table) for step in session.plan().steps] == [("UPDATE", "a"), ("INSERT", "a")]
    session.flush()
    assert connection.execute("SELECT code, val FROM a ORDER BY code").fetchall() == [("k0", 1), ("k1", 0)]
    assert connection.execute("SELECT id, a_code FROM b").fetchall() == [(b.id, "k0")]
    # A pending parent whose key changes after it was pointed at is still followed at the flush.
    a4 = A(code="k2")
    session.add(a4)
    b.a = a4
    a4.code = "k3"
    assert session.dirty_fields(b) == ["a_code"]
    session.flush()
    assert connection.execute("SELECT a_code FROM b").fetchall() == [("k3",)]
