"""The flush plan as plain data: row actions, ordering edges with their reasons, steps, the plan.

Nothing here orders or runs anything; these are the records the planner builds (``edges``,
``schedule``) and the flush runs (``writing``).  A plan can be printed, drawn
(:meth:`FlushPlan.to_dot`, :meth:`FlushPlan.to_mermaid`) or compared in a test::

    Flush plan:
      1. INSERT users (name) reading back (id): 1 row
           User(new #1)
      2. INSERT orders (user_id, total) reading back (id): 1 row
           Order(new #2): user_id = id of User(new #1)
    Because:
      - INSERT Order(new #2) after INSERT User(new #1): orders.user_id references users.id
"""

import dataclasses
import enum

from typing import Any

from ..columns import ForeignKey
from ..mapper import Mapper
from ..sentinels import MISSING, NOT_LOADED
from ..states import InstanceState
from ..tracking import snapshot_value
from ..valuechecks import shown


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
    ``switch_from`` is the deleted object whose row a ROW_SWITCH update takes over;
    ``before`` is the snapshot of the row a (WRITE) UPDATE changes, as it was when the plan was
    made, so that the plan shows old -> new even once the flush has moved the snapshot on.

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
    before: tuple[Any, ...] | None = None

    @property
    def mapper(self) -> Mapper:
        return self.state.mapper

    def changes(self) -> list["ColumnChange"]:
        """What this statement writes into the row that its step's line does not say, column by
        column: old -> new for an UPDATE (a row switch compares with the deleted object's row,
        and shows only what differs), and for any statement the foreign keys that take the key
        of a row written earlier in the flush (dependency processing) or NULL for now (a cycle
        broken).  New values are read from the object when asked."""
        values = self.state.obj.__dict__
        sources = self.sources or {}
        if self.purpose is ROW_SWITCH and self.switch_from is not None:
            old_row: tuple[Any, ...] | None = self.switch_from.committed
        elif self.purpose is WRITE:
            old_row = self.before
        else:
            old_row = self.state.committed  # (a follow-up UPDATE of a row inserted earlier, or one being deleted)
        changes = []
        for name in self.columns:
            if self.purpose is POST_UPDATE:
                old: Any = None  # its INSERT, earlier in this flush, wrote NULL
            elif self.kind is INSERT or old_row is None:
                old = MISSING
            else:
                old = snapshot_value(self.mapper, old_row, name)
            if name in sources:
                parent, parent_column = sources[name]
                new: Any = ParentKey(parent, parent_column)
            elif name in self.null_columns:
                new = NULL_FOR_NOW
            elif self.purpose is CLEAR_REFERENCE:
                new = None
            else:
                new = values.get(name, NOT_LOADED)
            if self.kind is INSERT and not (name in sources or name in self.null_columns):
                continue  # the values an INSERT binds are the object's own
            if self.purpose is ROW_SWITCH and not isinstance(new, ParentKey) and \
                    (old is new or (type(old) is type(new) and old == new)):
                continue
            changes.append(ColumnChange(name, old, new))
        for name in self.null_columns:
            if name not in self.columns:
                changes.append(ColumnChange(name, MISSING, NULL_FOR_NOW))
        return changes

    def label(self) -> str:
        """``INSERT User(new #3)``: how constraints and errors name the action."""
        verb = self.kind.value
        if self.purpose is POST_UPDATE or self.purpose is CLEAR_REFERENCE:
            verb = f"UPDATE ({self.purpose.value})"
        return f"{verb} {self.state.describe()}"


@dataclasses.dataclass(frozen=True)
class ParentKey:
    """The value of a foreign key that is the key of a row written earlier in the same flush --
    one the database may not have numbered yet when the plan is made."""

    parent: InstanceState
    column: str

    def __repr__(self) -> str:
        return f"{self.column} of {self.parent.describe()}"


class _NullForNow:
    """The value of a foreign key an INSERT leaves NULL to break a cycle (a POST_UPDATE sets it)."""

    def __repr__(self) -> str:
        return "NULL for now (a later UPDATE sets it)"


NULL_FOR_NOW = _NullForNow()


@dataclasses.dataclass(frozen=True)
class ColumnChange:
    """One column a row action writes: ``old`` (MISSING for an INSERT) and ``new`` (a value, or
    a :class:`ParentKey`).  Prints as ``name 'Ann' -> 'Annie'`` or ``user_id = id of User(new #1)``."""

    name: str
    old: Any
    new: Any

    def __str__(self) -> str:
        if isinstance(self.new, (ParentKey, _NullForNow)):
            new = repr(self.new)  # (words, not a value: never cut)
        else:
            new = "NULL" if self.new is None else shown(self.new, VALUE_WIDTH)
        if self.old is MISSING:
            return f"{self.name} = {new}"
        old = "NULL" if self.old is None else shown(self.old, VALUE_WIDTH)
        return f"{self.name} {old} -> {new}"


VALUE_WIDTH = 30    # a value in a plan's listing or an explanation is cut (in the middle) past this
LISTING_WIDTH = 100  # no line of a plan's listing is wider (a terminal, a diff, the walkthrough)


def row_line(action: RowAction, indent: str) -> str:
    """``User(id=3): name 'Ann' -> 'Annie'``: the row, and what its statement changes, cut to
    :data:`LISTING_WIDTH` columns (what is cut is counted: ``(+2 more)``)."""
    line = indent + action.state.describe()
    changes = [str(change) for change in action.changes()]
    for number, change in enumerate(changes):
        rest = len(changes) - number - 1
        room = LISTING_WIDTH - len(line) - 2 - len(change) - (len(f", (+{rest} more)") if rest else 0)
        if room < 0:
            line += f"{':' if number == 0 else ''} (+{len(changes) - number} more)"
            break
        line += f"{':' if number == 0 else ','} {change}"
    return line


@dataclasses.dataclass(eq=False, slots=True)
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
            for action in step.actions[:6]:
                lines.append(row_line(action, "       "))
            if len(step.actions) > 6:
                lines.append(f"       ... and {len(step.actions) - 6} more")
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
