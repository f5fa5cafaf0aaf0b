"""The flush plan: which statements a flush runs, in which order, and why — as plain data.

Planning is separate from executing.  :func:`build_plan` turns the session's changes into a
:class:`FlushPlan`: a list of :class:`Step` records (kind, table, rows, columns) and a list of
:class:`Constraint` records, each an ordering rule with its reason.  Nothing here touches SQLite,
so a plan can be printed, compared in a test, or inspected before anything runs.

The ordering rules:

1. Tables are ordered by their foreign keys: a referenced ("parent") table is written before
   the tables that reference it, so a new child's reference is valid when its INSERT runs.
2. For each table in that order: its UPDATEs, then its INSERTs.
3. Then DELETEs, table by table in the *reverse* order, so a parent row is deleted only after
   the child rows that referenced it.
4. Ties are broken by the order objects entered the session, then by table name, so the same
   operations always give the same statements.

Consecutive rows of one table with the same shape (the same columns written) form one step,
which the executor sends as a single ``executemany``.
"""

import dataclasses
import enum

from .graph import CycleFound, topological_order
from .mapping import MISSING


class StepKind(enum.Enum):
    INSERT = "INSERT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


@dataclasses.dataclass(eq=False)
class Step:
    """One batch: the same statement shape, run once per row.

    ``columns`` are the columns bound (INSERT) or set (UPDATE); ``returning`` the columns whose
    values the database supplies and the flush reads back (a generated key, SQL DEFAULTs).
    """

    kind: StepKind
    mapper: object
    states: list
    columns: tuple = ()
    returning: tuple = ()

    @property
    def table(self):
        return self.mapper.table

    def row_labels(self):
        return [state.describe() for state in self.states]

    def __str__(self):
        rows = f"{len(self.states)} row{'s' if len(self.states) != 1 else ''}"
        detail = ""
        if self.columns:
            detail = f" ({', '.join(self.columns)})"
        if self.returning:
            detail += f" reading back ({', '.join(self.returning)})"
        return f"{self.kind.value} {self.table}{detail}: {rows}"


@dataclasses.dataclass(frozen=True)
class Constraint:
    """An ordering rule: ``before`` must run before ``after``, because of ``reason``."""

    before: str
    after: str
    reason: str

    def __str__(self):
        return f"{self.after} after {self.before}: {self.reason}"


@dataclasses.dataclass(eq=False)
class FlushPlan:
    steps: list
    constraints: list

    def __bool__(self):
        return bool(self.steps)

    @property
    def row_count(self):
        return sum(len(step.states) for step in self.steps)

    def __str__(self):
        if not self.steps:
            return "Flush plan: nothing to write"
        lines = ["Flush plan:"]
        for number, step in enumerate(self.steps, 1):
            lines.append(f"  {number}. {step}")
            for label in step.row_labels()[:6]:
                lines.append(f"       {label}")
            if len(step.states) > 6:
                lines.append(f"       ... and {len(step.states) - 6} more")
        if self.constraints:
            lines.append("Because:")
            for constraint in self.constraints:
                lines.append(f"  - {constraint}")
        return "\n".join(lines)


def insert_shape(state):
    """(columns bound, columns read back) for inserting one pending object."""
    mapper = state.mapper
    values = state.obj.__dict__
    if values.keys() >= mapper.init_names:
        # The common case, decided with one set comparison: every column has a value.
        key = mapper.generated_key
        if key is not None and values[key.name] is None:
            return mapper.shape_with_generated_key
        return mapper.shape_with_all_columns
    bound = []
    returning = []
    for column in mapper.columns:
        value = values.get(column.name, MISSING)
        if column.generated and value is None:
            returning.insert(0, column.name)
        elif value is MISSING:
            if column.server_default is not None:
                returning.append(column.name)
            else:
                bound.append(column.name)  # reads as None: an explicit NULL
        else:
            bound.append(column.name)
    return tuple(bound), tuple(returning)


def build_plan(inserts, updates, deletes):
    """Plan a flush.

    ``inserts``: pending states in session order; ``updates``: ``(state, changed names)`` pairs
    in session order; ``deletes``: states marked for deletion in session order.
    """
    first_seen = {}
    for state in inserts:
        first_seen.setdefault(state.mapper, state.sequence)
    for state, _ in updates:
        first_seen.setdefault(state.mapper, state.sequence)
        first_seen[state.mapper] = min(first_seen[state.mapper], state.sequence)
    for state in deletes:
        first_seen.setdefault(state.mapper, state.sequence)
        first_seen[state.mapper] = min(first_seen[state.mapper], state.sequence)
    mappers = list(first_seen)
    edges, reasons = _table_edges(mappers)
    tiebreak = lambda mapper: (first_seen[mapper], mapper.table)
    try:
        order = topological_order(mappers, edges, tiebreak)
    except CycleFound:
        # Tables that reference each other in a cycle: order them by the tie-break alone and
        # let SQLite's immediate foreign-key checks report any row that this cannot satisfy.
        order = sorted(mappers, key=tiebreak)

    inserts_by_table = _group_by_table(inserts)
    updates_by_table = _group_by_table(updates, key=lambda pair: pair[0].mapper)
    deletes_by_table = _group_by_table(deletes)
    steps = []
    for mapper in order:
        steps.extend(_update_steps(mapper, updates_by_table.get(mapper, [])))
        steps.extend(_insert_steps(mapper, inserts_by_table.get(mapper, [])))
    for mapper in reversed(order):
        if mapper in deletes_by_table:
            steps.append(Step(StepKind.DELETE, mapper, deletes_by_table[mapper]))

    constraints = []
    for parent, child in edges:
        reason = reasons[(parent, child)]
        if parent in inserts_by_table and child in inserts_by_table:
            constraints.append(Constraint(f"INSERT {parent.table}", f"INSERT {child.table}", reason))
        if parent in deletes_by_table and child in deletes_by_table:
            constraints.append(Constraint(f"DELETE {child.table}", f"DELETE {parent.table}", reason))
    return FlushPlan(steps, constraints)


def _table_edges(mappers):
    """``(parent, child)`` edges between the tables in this flush, with a reason for each."""
    present = set(mappers)
    edges = []
    reasons = {}
    for child in mappers:
        for foreign_key in child.foreign_keys:
            parent = foreign_key.target.__mapper__
            if parent in present and parent is not child and (parent, child) not in reasons:
                edges.append((parent, child))
                reasons[(parent, child)] = foreign_key.describe()
    return edges, reasons


def _group_by_table(items, key=lambda state: state.mapper):
    groups = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def _insert_steps(mapper, states):
    """Consecutive pending objects with the same shape share one step."""
    steps = []
    current = None
    for state in states:
        columns, returning = insert_shape(state)
        if current is None or current.columns != columns or current.returning != returning:
            current = Step(StepKind.INSERT, mapper, [], columns, returning)
            steps.append(current)
        current.states.append(state)
    return steps


def _update_steps(mapper, pairs):
    """UPDATEs grouped by the set of changed columns, groups in order of their first row."""
    groups = {}
    for state, names in pairs:
        if names not in groups:
            groups[names] = Step(StepKind.UPDATE, mapper, [], names)
        groups[names].states.append(state)
    return list(groups.values())
