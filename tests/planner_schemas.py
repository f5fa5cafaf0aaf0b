"""Random schemas and programs for the planner property test (``test_planner_properties``).

Everything here is plain data plus a dict-based model of the rows; nothing imports sqlite3 and
nothing asks uow how to order a flush.  The test module runs a program through uow and checks
it against :func:`expected_flush`, the oracle written here from the rows' foreign keys and
unique values alone.

A *schema* is a few tables named ``A``, ``B``, ``C``, ``D``.  Every table has

* a key: ``id: int`` (numbered by SQLite) or ``code: str`` (a natural key the program chooses),
* ``val: int = 0``, a plain column,
* optionally ``u: int | None = Column(unique=True)``,
* one column and one :class:`~uow.relationships.Reference` per foreign key (``a_id`` / ``a``, or
  ``parent_id`` / ``parent`` for a table that references itself), and, when that foreign key is
  drawn with a delete cascade, a ``Collection`` on the parent (``b_children``, or ``children``).

A *program* is a list of batches; each batch is a list of operations followed by a flush and,
sometimes, a commit.  Rows are named by labels (``a1``, ``b3``) that are also the variable
names of the rendered snippet (:func:`render`).
"""

import copy
import dataclasses

import hypothesis.strategies as st

FAMILIES = ("chain", "diamond", "tree", "cycle", "unique", "mixed")
CODES = ("k0", "k1", "k2")      # a small pool, so natural keys are often reused after a delete
UNIQUE_VALUES = (0, 1, 2)       # likewise for the unique column
CASCADE = "save-update, delete"


# -- schemas -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Fk:
    """One foreign key: ``column`` of the owning table references ``target``'s key."""

    column: str
    reference: str
    target: str
    nullable: bool
    cascade: bool


@dataclasses.dataclass(frozen=True)
class Table:
    name: str
    natural: bool
    unique: bool
    fks: tuple

    @property
    def key(self):
        return "code" if self.natural else "id"

    def fk(self, column):
        return next(fk for fk in self.fks if fk.column == column)


@dataclasses.dataclass(frozen=True)
class Schema:
    family: str
    tables: tuple

    def table(self, name):
        return next(table for table in self.tables if table.name == name)

    def collections(self, name):
        """``(collection name, child table, fk)`` for each cascading foreign key into ``name``."""
        found = []
        for child in self.tables:
            for fk in child.fks:
                if fk.target == name and fk.cascade:
                    title = "children" if child.name == name else child.name.lower() + "_children"
                    found.append((title, child, fk))
        return found


# Each family lists its tables as (name, [(target, forced nullable or None)]).
_SHAPES = {
    "chain": [("A", []), ("B", [("A", None)]), ("C", [("B", None)])],
    "diamond": [("A", []), ("B", [("A", None)]), ("C", [("A", None)]), ("D", [("B", None), ("C", None)])],
    "tree": [("A", [("A", True)])],
    "cycle": [("A", [("B", None)]), ("B", [("A", None)])],
    "unique": [("A", []), ("B", [("A", None)])],
}


@st.composite
def schemas(draw):
    family = draw(st.sampled_from(FAMILIES))
    if family == "mixed":
        names = ["A", "B", "C"][:draw(st.integers(1, 3))]
        shape = []
        for name in names:
            targets = [(target, None) for target in names if draw(st.booleans())]
            shape.append((name, targets))
    else:
        shape = _SHAPES[family]
    natural = {name: draw(st.booleans()) for name, _ in shape}
    tables = []
    for name, targets in shape:
        fks = []
        for target, nullable in targets:
            if nullable is None:
                nullable = draw(st.booleans())
            own = target == name
            suffix = "_code" if natural[target] else "_id"
            reference = "parent" if own else target.lower()
            fks.append(Fk(reference + suffix, reference, target, nullable, draw(st.booleans())))
        unique = True if family == "unique" else draw(st.booleans())
        tables.append(Table(name, natural[name], unique, tuple(fks)))
    return Schema(family, tuple(tables))


# -- operations ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class New:
    """Construct a row and add() it; ``refs`` are ``(column, target label, how)``."""

    label: str
    table: str
    code: str
    val: int
    u: int
    refs: tuple


@dataclasses.dataclass(frozen=True)
class Set:
    """Assign a plain column (``val`` or ``u``)."""

    label: str
    field: str
    value: int


@dataclasses.dataclass(frozen=True)
class Link:
    """Point a foreign key elsewhere: ``how`` is "object" (set the Reference) or "key" (set the column)."""

    label: str
    column: str
    target: str
    how: str


@dataclasses.dataclass(frozen=True)
class Delete:
    label: str


@dataclasses.dataclass(frozen=True)
class Batch:
    ops: tuple
    commit: bool


@dataclasses.dataclass(frozen=True)
class Program:
    schema: Schema
    batches: tuple

    def __repr__(self):
        return f"<a {self.schema.family} program of {len(self.batches)} batch(es); its snippet is printed below>"

    def _repr_pretty_(self, printer, cycle):
        printer.text(repr(self))


# -- the model -------------------------------------------------------------------------------

@dataclasses.dataclass
class Row:
    table: str
    code: str
    val: int
    u: int
    refs: dict      # fk column -> label of the referenced row, or None
    stored: bool    # the row is in the database (it was flushed)


class Model:
    """The rows a correct unit of work holds, by label, updated one operation at a time.

    Deleting a stored row cascades along foreign keys declared with a delete cascade, to the
    rows that reference it *now* (uow documents: "deleting a parent deletes its children,
    loaded or not").  Deleting a row that was never flushed just forgets it, as ``delete()`` of
    a pending object expunges it, without cascading.
    """

    def __init__(self, schema):
        self.schema = schema
        self.rows = {}

    def copy(self):
        other = Model(self.schema)
        other.rows = copy.deepcopy(self.rows)
        return other

    def table_of(self, label):
        return self.schema.table(self.rows[label].table)

    def live(self, table):
        return [label for label, row in self.rows.items() if row.table == table]

    def apply(self, op):
        if isinstance(op, New):
            refs = {fk.column: None for fk in self.schema.table(op.table).fks}
            refs.update({column: target for column, target, _ in op.refs})
            self.rows[op.label] = Row(op.table, op.code, op.val, op.u, refs, False)
        elif isinstance(op, Set):
            setattr(self.rows[op.label], op.field, op.value)
        elif isinstance(op, Link):
            self.rows[op.label].refs[op.column] = op.target
        elif isinstance(op, Delete):
            self._delete(op.label)

    def _delete(self, label):
        row = self.rows.pop(label, None)
        if row is None or not row.stored:
            return
        for child, fk in self.referrers(label):
            if fk.cascade:
                self._delete(child)

    def referrers(self, label):
        """``(child label, fk)`` for every row that references ``label`` now."""
        found = []
        for child, row in self.rows.items():
            for fk in self.schema.table(row.table).fks:
                if row.refs[fk.column] == label:
                    found.append((child, fk))
        return found

    def mark_stored(self):
        for row in self.rows.values():
            row.stored = True

    def identity(self, label):
        """What a foreign key to ``label`` holds: the natural key, or the row itself for an id."""
        if label is None:
            return None
        row = self.rows[label]
        if self.schema.table(row.table).natural:
            return ("code", row.table, row.code)
        return ("row", label)


# -- the oracle ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Need:
    """``before`` must run before ``after``; ``column`` names the foreign key, if one is the reason.

    ``breakable`` says how a correct planner may get around it in a cycle: "post-update" (insert
    the child with NULL, set the key later) or "clear reference" (set the key to NULL before the
    parent's DELETE); None when nothing can.
    """

    before: tuple
    after: tuple
    reason: str
    column: str = None
    breakable: str = None


@dataclasses.dataclass
class Expectation:
    actions: dict        # label -> "insert" | "update" | "delete" | "switch"
    changed: dict        # label -> set of columns an UPDATE must set
    switched: dict       # new label -> old label whose row it takes over
    needs: list
    unbreakable: list    # the action ids of a cycle no nullable foreign key can break, or []
    needs_break: bool    # the needs form a cycle, so a post-update or clear-reference is required


def expected_flush(schema, before, after):
    """What a correct planner must do to go from ``before`` (the database) to ``after`` (the session)."""
    actions = {}
    switched = {}
    changed = {}
    deleted = [label for label in before.rows if label not in after.rows]
    for label, row in after.rows.items():
        if label in before.rows:
            continue
        actions[label] = "insert"
        if schema.table(row.table).natural:
            old = next((d for d in deleted if before.rows[d].table == row.table
                        and before.rows[d].code == row.code), None)
            if old is not None:
                actions[label] = "switch"
                switched[label] = old
    replaced = {old: new for new, old in switched.items()}
    for label in deleted:
        if label not in replaced:
            actions[label] = "delete"
    for label, row in after.rows.items():
        if label not in before.rows:
            continue
        old = before.rows[label]
        columns = {name for name in ("val", "u") if getattr(old, name) != getattr(row, name)}
        for fk in schema.table(row.table).fks:
            if before.identity(old.refs[fk.column]) != after.identity(row.refs[fk.column]):
                columns.add(fk.column)
        if columns:
            actions[label] = "update"
            changed[label] = columns

    needs = []
    # A row's foreign key may only be written once the row it references exists.
    for label, row in after.rows.items():
        kind = actions.get(label)
        if kind not in ("insert", "update", "switch"):
            continue
        table = schema.table(row.table)
        for fk in table.fks:
            target = row.refs[fk.column]
            if target is None or actions.get(target) != "insert":
                continue
            if kind == "update" and fk.column not in changed[label]:
                continue
            if target == label and table.natural:
                continue  # one INSERT may reference its own natural key: SQLite checks after the row is in
            breakable = "post-update" if kind == "insert" and fk.nullable else None
            needs.append(Need(("insert", target), (kind, label), f"{label}.{fk.column} references {target}",
                              fk.column, breakable))
    # A row that references a deleted row is deleted, or re-pointed, before it.
    for label, old in before.rows.items():
        for fk in schema.table(old.table).fks:
            parent = old.refs[fk.column]
            if parent is None or parent == label or actions.get(parent) != "delete":
                continue
            reason = f"{label}.{fk.column} referenced {parent}"
            if actions.get(label) == "delete":
                breakable = "clear reference" if fk.nullable else None
                needs.append(Need(("delete", label), ("delete", parent), reason, fk.column, breakable))
            elif label in replaced:
                needs.append(Need(("switch", replaced[label]), ("delete", parent), reason, fk.column))
            elif fk.column in changed.get(label, ()):
                needs.append(Need(("update", label), ("delete", parent), reason, fk.column))
            else:
                raise AssertionError(f"the program leaves {label} pointing at deleted {parent}")
    # A unique value is freed before it is taken.
    slots = []   # (table, action id, old u, new u)
    for label, kind in actions.items():
        if kind == "insert":
            slots.append((after.rows[label].table, (kind, label), None, after.rows[label].u))
        elif kind == "delete":
            slots.append((before.rows[label].table, (kind, label), before.rows[label].u, None))
        elif kind == "switch":
            slots.append((after.rows[label].table, (kind, label), before.rows[switched[label]].u,
                          after.rows[label].u))
        else:
            slots.append((after.rows[label].table, (kind, label), before.rows[label].u, after.rows[label].u))
    for table, freer, old, new in slots:
        if old is None or old == new or not schema.table(table).unique:
            continue
        for other_table, taker, other_old, other_new in slots:
            if other_table == table and other_new == old and other_old != old:
                needs.append(Need(freer, taker, f"{table}.u = {old} is freed by {freer[1]}, taken by {taker[1]}"))
    return Expectation(actions, changed, switched, needs,
                       find_cycle([need for need in needs if need.breakable is None]),
                       bool(find_cycle(needs)))


def find_cycle(needs):
    """The nodes of one cycle among the needs (a list), or [] when they can be ordered."""
    successors = {}
    for need in needs:
        successors.setdefault(need.before, []).append(need.after)
    done = set()
    for start in list(successors):
        path = []
        on_path = set()
        stack = [(start, iter(successors.get(start, ())))]
        path.append(start)
        on_path.add(start)
        while stack:
            node, following = stack[-1]
            for nxt in following:
                if nxt in on_path:
                    return path[path.index(nxt):]
                if nxt not in done:
                    stack.append((nxt, iter(successors.get(nxt, ()))))
                    path.append(nxt)
                    on_path.add(nxt)
                    break
            else:
                stack.pop()
                on_path.discard(path.pop())
                done.add(node)
    return []


# -- drawing programs --------------------------------------------------------------------------

class _Drawer:
    """Draws valid operations against a model: every foreign key ends each batch pointing at a
    live row, and no two live rows share a natural key or a unique value at any point."""

    # Plain operations, then small scenarios made of them that random choices rarely line up:
    # a unique value changing hands, a natural key deleted and added again (a row switch), a row
    # deleted with a row it is linked to, and two rows pointing at each other.
    KINDS = ["insert", "update", "link", "delete", "move_unique", "replace", "delete_linked", "link_back",
             "delete_linked"]
    # Before anything is stored there is nothing to delete or replace: build rows and links.
    FIRST_KINDS = ["insert", "link", "link_back", "update", "insert", "link_back"]

    def __init__(self, draw, schema):
        self.draw = draw
        self.schema = schema
        self.model = Model(schema)
        self.numbers = {table.name: 0 for table in schema.tables}
        self.ops = []

    def emit(self, op):
        self.ops.append(op)
        self.model.apply(op)

    def batch(self):
        self.ops = []
        stored = any(row.stored for row in self.model.rows.values())
        for _ in range(self.draw(st.integers(0, 6))):
            kinds = self.KINDS if stored else self.FIRST_KINDS
            kind = self.draw(st.sampled_from(kinds if self.model.rows else ["insert"]))
            getattr(self, kind)()
        self.complete_references()
        return Batch(tuple(self.ops), self.draw(st.booleans()))

    def how(self, target):
        """Link by object, or by key when the target's key is known already."""
        row = self.model.rows[target]
        if self.schema.table(row.table).natural or row.stored:
            return self.draw(st.sampled_from(["object", "key"]))
        return "object"

    def free_codes(self, table):
        """Natural keys no live row of ``table`` holds: the free ones of the pool, or a fresh one."""
        used = {self.model.rows[label].code for label in self.model.live(table.name)}
        free = [code for code in CODES if code not in used]
        if free:
            return free
        number = len(CODES)
        while f"k{number}" in used:
            number += 1
        return [f"k{number}"]

    def free_values(self, table, owner=None):
        used = {self.model.rows[label].u for label in self.model.live(table.name) if label != owner}
        return [None] + [value for value in UNIQUE_VALUES if value not in used]

    def insert(self, table=None, code=None, u=None):
        table = table or self.draw(st.sampled_from(self.schema.tables))
        self.numbers[table.name] += 1
        label = f"{table.name.lower()}{self.numbers[table.name]}"
        if table.natural and code is None:
            code = self.draw(st.sampled_from(self.free_codes(table)))
        val = self.draw(st.integers(0, 2))
        if table.unique and u is None:
            u = self.draw(st.sampled_from(self.free_values(table)))
        refs = []
        for fk in table.fks:
            target = self.draw(st.sampled_from([None] + self.model.live(fk.target)))
            if target is not None:
                refs.append((fk.column, target, self.how(target)))
        self.emit(New(label, table.name, code, val, u, tuple(refs)))

    def update(self):
        label = self.draw(st.sampled_from(list(self.model.rows)))
        table = self.model.table_of(label)
        field = self.draw(st.sampled_from(["val", "u"] if table.unique else ["val"]))
        if field == "val":
            value = self.draw(st.integers(0, 2))
        else:
            value = self.draw(st.sampled_from(self.free_values(table, owner=label)))
        self.emit(Set(label, field, value))

    def link(self):
        linked = [label for label in self.model.rows if self.model.table_of(label).fks]
        if not linked:
            return
        label = self.draw(st.sampled_from(linked))
        fk = self.draw(st.sampled_from(self.model.table_of(label).fks))
        options = ([None] if fk.nullable else []) + self.model.live(fk.target)
        if not options:
            return
        target = self.draw(st.sampled_from(options))
        how = self.how(target) if target is not None else self.draw(st.sampled_from(["object", "key"]))
        self.emit(Link(label, fk.column, target, how))

    def delete(self):
        self.emit(Delete(self.draw(st.sampled_from(list(self.model.rows)))))
        self.fix_dangling()

    def move_unique(self):
        """A unique value leaves one row (update or delete) and another row takes it."""
        holders = [label for label, row in self.model.rows.items()
                   if row.stored and row.u is not None and self.model.table_of(label).unique]
        if not holders:
            return
        label = self.draw(st.sampled_from(holders))
        table = self.model.table_of(label)
        value = self.model.rows[label].u
        if self.draw(st.booleans()):
            others = [v for v in self.free_values(table, owner=label) if v != value]
            self.emit(Set(label, "u", self.draw(st.sampled_from(others))))
        else:
            self.emit(Delete(label))
            self.fix_dangling()
        takers = [other for other in self.model.live(table.name) if other != label]
        if takers and self.draw(st.booleans()):
            self.emit(Set(self.draw(st.sampled_from(takers)), "u", value))
        else:
            self.insert(table, u=value)

    def replace(self):
        """Delete a row with a natural key and add a new one with the same key."""
        stored = [label for label, row in self.model.rows.items()
                  if row.stored and self.model.table_of(label).natural]
        if not stored:
            return
        label = self.draw(st.sampled_from(stored))
        table = self.model.table_of(label)
        code = self.model.rows[label].code
        self.emit(Delete(label))
        self.fix_dangling()
        if code in self.free_codes(table):
            self.insert(table, code=code)

    def delete_linked(self):
        """Delete a row and a row it references, in either order."""
        pairs = [(label, row.refs[fk.column]) for label, row in self.model.rows.items()
                 for fk in self.model.table_of(label).fks
                 if row.refs[fk.column] not in (None, label) and row.stored]
        if not pairs:
            return
        pair = self.draw(st.sampled_from(pairs))
        if self.draw(st.booleans()):
            pair = pair[::-1]
        for label in pair:
            if label in self.model.rows:
                self.emit(Delete(label))
                self.fix_dangling()

    def link_back(self):
        """Make a row's parent point back at it (a cycle, through one table or two)."""
        options = [(label, row.refs[fk.column], back) for label, row in self.model.rows.items()
                   for fk in self.model.table_of(label).fks if row.refs[fk.column] is not None
                   for back in self.model.table_of(row.refs[fk.column]).fks if back.target == row.table]
        if not options:
            return
        label, parent, back = self.draw(st.sampled_from(options))
        self.emit(Link(parent, back.column, label, self.how(label)))

    def fix_dangling(self):
        """Rows left referencing a deleted row are re-pointed, cleared or deleted too."""
        while True:
            dangling = [(label, fk) for label, row in self.model.rows.items()
                        for fk in self.model.table_of(label).fks
                        if row.refs[fk.column] is not None and row.refs[fk.column] not in self.model.rows]
            if not dangling:
                return
            label, fk = dangling[0]
            candidates = self.model.live(fk.target)
            options = (["clear"] if fk.nullable else []) + (["repoint"] if candidates else []) + ["delete"]
            choice = self.draw(st.sampled_from(options))
            if choice == "clear":
                self.emit(Link(label, fk.column, None, self.draw(st.sampled_from(["object", "key"]))))
            elif choice == "repoint":
                target = self.draw(st.sampled_from(candidates))
                self.emit(Link(label, fk.column, target, self.how(target)))
            else:
                self.emit(Delete(label))

    def complete_references(self):
        """A NOT NULL foreign key left unset gets a target (a new row, if its table is empty)."""
        while True:
            missing = [(label, fk) for label, row in self.model.rows.items()
                       for fk in self.model.table_of(label).fks
                       if not fk.nullable and row.refs[fk.column] is None]
            if not missing:
                return
            label, fk = missing[0]
            candidates = self.model.live(fk.target)
            if candidates:
                target = self.draw(st.sampled_from(candidates))
                self.emit(Link(label, fk.column, target, self.how(target)))
            else:
                self.insert(self.schema.table(fk.target))


@st.composite
def programs(draw, schema_strategy=schemas()):
    """A schema and two to four batches; drawing stops after a batch that cannot be flushed."""
    schema = draw(schema_strategy)
    drawer = _Drawer(draw, schema)
    flushed = drawer.model.copy()
    batches = []
    for _ in range(draw(st.integers(2, 4))):
        batches.append(drawer.batch())
        if expected_flush(schema, flushed, drawer.model).unbreakable:
            break
        drawer.model.mark_stored()
        flushed = drawer.model.copy()
    return Program(schema, tuple(batches))


# -- rendering a program as a runnable snippet ----------------------------------------------------

def class_source(schema, table, names):
    """The class statement of one table (``names`` maps table names to class names)."""
    lines = [f'class {names[table.name]}(Base, table="{names[table.name].lower()}"):']
    lines.append(f"    {table.key}: {'str' if table.natural else 'int'} = Column(primary_key=True)")
    lines.append("    val: int = 0")
    if table.unique:
        lines.append("    u: int | None = Column(unique=True)")
    for fk in table.fks:
        kind = "str" if schema.table(fk.target).natural else "int"
        kind += " | None" if fk.nullable else ""
        lines.append(f'    {fk.column}: {kind} = Column(references="{names[fk.target]}")')
        lines.append(f'    {fk.reference} = Reference("{fk.column}")')
    for title, child, fk in schema.collections(table.name):
        lines.append(f'    {title} = Collection("{names[child.name]}", "{fk.reference}", cascade="{CASCADE}")')
    return "\n".join(lines)


def render(program):
    """The program as a plain Python snippet that runs it (and prints each plan)."""
    schema = program.schema
    names = {table.name: table.name for table in schema.tables}
    lines = [
        "import uow",
        "from uow import Column",
        "from uow.collection import Collection",
        "from uow.relationships import Reference",
        "",
        "class Base(uow.Entity, abstract=True):",
        "    pass",
        "",
    ]
    for table in schema.tables:
        lines.append(class_source(schema, table, names))
        lines.append("")
    lines += ['conn = uow.connect(":memory:")', "uow.create_all(conn, Base)", "session = uow.Session(conn)"]
    tables = {}
    for number, batch in enumerate(program.batches, 1):
        lines.append(f"# batch {number}")
        for op in batch.ops:
            lines.append(_op_source(schema, tables, op))
        lines.append("print(session.plan())")
        lines.append("session.flush()")
        if batch.commit:
            lines.append("session.commit()")
    return "\n".join(lines)


def _key_source(schema, tables, target):
    table = schema.table(tables[target])
    return f"{target}.{table.key}"


def _op_source(schema, tables, op):
    if isinstance(op, New):
        tables[op.label] = op.table
        table = schema.table(op.table)
        arguments = []
        if table.natural:
            arguments.append(f"code={op.code!r}")
        arguments.append(f"val={op.val}")
        if table.unique:
            arguments.append(f"u={op.u}")
        for column, target, how in op.refs:
            fk = table.fk(column)
            if how == "object":
                arguments.append(f"{fk.reference}={target}")
            else:
                arguments.append(f"{column}={_key_source(schema, tables, target)}")
        return f"{op.label} = {op.table}({', '.join(arguments)}); session.add({op.label})"
    if isinstance(op, Set):
        return f"{op.label}.{op.field} = {op.value}"
    if isinstance(op, Link):
        fk = schema.table(tables[op.label]).fk(op.column)
        if op.how == "object":
            return f"{op.label}.{fk.reference} = {op.target}"
        value = _key_source(schema, tables, op.target) if op.target is not None else "None"
        return f"{op.label}.{op.column} = {value}"
    return f"session.delete({op.label})"
