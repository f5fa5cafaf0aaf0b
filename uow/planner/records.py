"""The flush plan as plain data: row actions, ordering edges with their reasons, steps, the plan.

Nothing here orders or runs anything; these are the records the planner builds (``edges``,
``schedule``) and the flush runs (``writing``).  A plan can be printed, drawn
(:meth:`FlushPlan.to_dot`, :meth:`FlushPlan.to_mermaid`) or compared in a test::

    Flush plan:
      1. INSERT users (name) reading back (id): 1 row
           User(new #1)
      2. INSERT orders (user_id, total) reading back (id): 1 row
           Order(new #2)
    Because:
      - INSERT Order(new #2) after INSERT User(new #1): orders.user_id references users.id
"""

import dataclasses
import enum

from ..columns import ForeignKey
from ..mapper import Mapper
from ..states import InstanceState


class StepKind(enum.StrEnum):
    """The statement a row action or step sends.

    A StrEnum, as :class:`StepPurpose` is: each member is its SQL verb, and hashes as a string
    does, in C (a plain Enum member hashes in Python, and the planner looks kinds up once per row).
    """

    INSERT = "INSERT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


class StepPurpose(enum.StrEnum):
    """What a row action is for, beyond its kind: the bookkeeping the flush does afterwards differs."""

    WRITE = "write"                      # the user's insert, update or delete
    ROW_SWITCH = "row switch"            # delete + add of one key, sent as a single UPDATE of the row
    POST_UPDATE = "post-update"          # sets a foreign key left NULL at INSERT, to break a cycle
    CLEAR_REFERENCE = "clear reference"  # sets a foreign key to NULL before a DELETE, to break a cycle


# The members under plain names too, for the planner's loops over every row action: on Python
# 3.11 reading ``StepKind.INSERT`` through the class costs about ten global reads (see
# ``states.PERSISTENT``).  The planner modules use these names only.
INSERT = StepKind.INSERT
UPDATE = StepKind.UPDATE
DELETE = StepKind.DELETE
WRITE = StepPurpose.WRITE
ROW_SWITCH = StepPurpose.ROW_SWITCH
POST_UPDATE = StepPurpose.POST_UPDATE
CLEAR_REFERENCE = StepPurpose.CLEAR_REFERENCE


@dataclasses.dataclass(eq=False, slots=True)
class RowAction:
    """One row to write.

    ``columns`` are bound (INSERT) or set (UPDATE); ``returning`` are read back after an INSERT;
    ``sources`` maps a foreign-key column to ``(parent state, parent column)`` when its value is
    the key of a row written earlier in the same flush (possibly one the database numbers);
    ``null_columns`` are bound as NULL for now (a cycle broken by a later POST_UPDATE);
    ``switch_from`` is the deleted object whose row a ROW_SWITCH update takes over.

    Compared by identity (``eq=False``): two actions are never "the same row action" by value,
    and the topological sort keys its tables by them.
    """

    kind: StepKind
    state: InstanceState
    columns: tuple[str, ...] = ()
    returning: tuple[str, ...] = ()
    purpose: StepPurpose = WRITE
    sources: dict[str, tuple[InstanceState, str]] | None = None
    null_columns: tuple[str, ...] = ()
    switch_from: InstanceState | None = None

    @property
    def mapper(self) -> Mapper:
        return self.state.mapper

    def label(self) -> str:
        """``INSERT User(new #3)``: how constraints and errors name the action."""
        verb = self.kind.value
        if self.purpose is POST_UPDATE or self.purpose is CLEAR_REFERENCE:
            verb = f"UPDATE ({self.purpose.value})"
        return f"{verb} {self.state.describe()}"


@dataclasses.dataclass(eq=False)
class Edge:
    """``before`` must run before ``after``, because of ``reason``.

    ``breakable`` names how a cycle through this edge can be broken: POST_UPDATE (insert the
    child with NULL in ``foreign_key``'s columns and set them afterwards) or CLEAR_REFERENCE
    (set them to NULL before the parent's DELETE); None when it cannot be broken.
    """

    before: RowAction
    after: RowAction
    reason: str
    breakable: StepPurpose | None = None
    foreign_key: ForeignKey | None = None


@dataclasses.dataclass(eq=False)
class Step:
    """One batch: rows of one table sent with the same statement shape."""

    kind: StepKind
    mapper: Mapper
    actions: list[RowAction]
    columns: tuple[str, ...] = ()
    returning: tuple[str, ...] = ()
    purpose: StepPurpose = WRITE

    @property
    def table(self) -> str:
        return self.mapper.table

    @property
    def states(self) -> list[InstanceState]:
        return [action.state for action in self.actions]

    def row_labels(self) -> list[str]:
        return [action.state.describe() for action in self.actions]

    def __str__(self) -> str:
        rows = f"{len(self.actions)} row{'s' if len(self.actions) != 1 else ''}"
        detail = f" ({', '.join(self.columns)})" if self.columns else ""
        if self.returning:
            detail += f" reading back ({', '.join(self.returning)})"
        purpose = f" [{self.purpose.value}]" if self.purpose is not WRITE else ""
        return f"{self.kind.value} {self.table}{detail}{purpose}: {rows}"


@dataclasses.dataclass(frozen=True)
class Constraint:
    """An ordering rule: ``before`` must run before ``after``, because of ``reason``."""

    before: str
    after: str
    reason: str

    def __str__(self) -> str:
        return f"{self.after} after {self.before}: {self.reason}"


@dataclasses.dataclass(eq=False)
class FlushPlan:
    """The steps of a flush in order, and the edges that ordered them.

    ``constraints`` (the edges as readable :class:`Constraint` records) is computed when asked
    for: a bulk flush has an edge per row, and naming every row costs more than ordering them.
    """

    steps: list[Step]
    edges: list[Edge]

    @property
    def constraints(self) -> list[Constraint]:
        return constraints_of(self.edges)

    def __bool__(self) -> bool:
        return bool(self.steps)

    @property
    def row_count(self) -> int:
        return sum(len(step.actions) for step in self.steps)

    def __str__(self) -> str:
        if not self.steps:
            return "Flush plan: nothing to write"
        lines = ["Flush plan:"]
        for number, step in enumerate(self.steps, 1):
            lines.append(f"  {number}. {step}")
            labels = step.row_labels()
            for label in labels[:6]:
                lines.append(f"       {label}")
            if len(labels) > 6:
                lines.append(f"       ... and {len(labels) - 6} more")
        if self.edges:
            lines.append("Because:")
            shown = constraints_of(self.edges[:20])
            for constraint in shown:
                lines.append(f"  - {constraint}")
            if len(self.edges) > len(shown):
                lines.append(f"  ... and {len(self.edges) - len(shown)} more")
        return "\n".join(lines)

    def to_dot(self) -> str:
        """The plan as a Graphviz digraph: one node per step, and one arrow from a step to each step
        that must wait for it, labelled with the first reason found."""
        lines = ["digraph flush_plan {", "  rankdir=LR;", "  node [shape=box];"]
        for number, step in enumerate(self.steps, 1):
            lines.append(f'  s{number} [label="{number}. {_escape(str(step))}"];')
        for before, after, reason in self._step_edges():
            lines.append(f'  s{before} -> s{after} [label="{_escape(reason)}"];')
        lines.append("}")
        return "\n".join(lines)

    def to_mermaid(self) -> str:
        """The plan as Mermaid flowchart text."""
        lines = ["flowchart LR"]
        for number, step in enumerate(self.steps, 1):
            lines.append(f'  s{number}["{number}. {_escape(str(step))}"]')
        for before, after, reason in self._step_edges():
            lines.append(f'  s{before} -->|"{_escape(reason)}"| s{after}')
        return "\n".join(lines)

    def _step_edges(self) -> list[tuple[int, int, str]]:
        position: dict[str, int] = {}
        for number, step in enumerate(self.steps, 1):
            for action in step.actions:
                position[action.label()] = number
        seen = set()
        edges = []
        for constraint in self.constraints:
            before = position.get(constraint.before)
            after = position.get(constraint.after)
            if before is None or after is None or before == after or (before, after) in seen:
                continue
            seen.add((before, after))
            edges.append((before, after, constraint.reason))
        return edges


def _escape(text: str) -> str:
    return text.replace('"', "'")


def constraints_of(edges: list[Edge]) -> list[Constraint]:
    """The edges as readable :class:`Constraint` records."""
    return [Constraint(edge.before.label(), edge.after.label(), edge.reason) for edge in edges]
