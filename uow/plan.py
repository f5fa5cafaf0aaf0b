"""The flush plan: which statements a flush runs, in which order, and why — as plain data.

Planning is separate from executing.  ``dependencies.build_plan`` turns the session's changes
into a :class:`FlushPlan`: a list of :class:`Step` records, each a batch of :class:`RowAction`s
(one row each) sent as one statement shape, and a list of :class:`Constraint` records, each an
ordering rule with its reason, such as::

    INSERT Order(new #7) after INSERT User(new #3): orders.user_id references users.id

Nothing here touches SQLite, so a plan can be printed, drawn (:meth:`FlushPlan.to_dot`,
:meth:`FlushPlan.to_mermaid`), compared in a test, or inspected before anything runs.

How the order is found:

1. Every row to write becomes an action; ``dependencies`` adds an edge for every reason one row
   must be written before another (a foreign key, a unique value changing hands).
2. The actions are scheduled in *waves*: each wave holds every action whose prerequisites are
   done.  A tree of rows in one table thus goes out one level per wave.
3. If no action is ready, the remaining ones form a cycle.  A cycle through a nullable foreign
   key is broken by inserting NULL and setting the key with a follow-up UPDATE (or clearing it
   with an UPDATE before a DELETE); a cycle with no nullable edge raises CycleError, before any
   SQL runs, listing the rows, columns and values involved.
4. Within a wave, actions are gathered per (kind, table); gatherings go UPDATEs that clear a
   reference, other UPDATEs (and row switches), INSERTs, follow-up UPDATEs, DELETEs, then by
   the order their first object entered the session, then by table name.  Rows inside a
   gathering keep session order.  UPDATEs that set the same columns (for the same purpose) are
   one step; for INSERTs and DELETEs each run of consecutive rows of the same shape is one
   step.  ``flush`` sends each step as a single ``executemany``.

The same operations in the same order always give the same plan.
"""

import dataclasses
import enum
import operator

from .errors import CycleError
from .graph import find_cycle


class StepKind(enum.Enum):
    """The statement a row action or step sends."""

    INSERT = "INSERT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"

    # Members are singletons compared by identity, so hashing by identity is consistent, and it
    # runs in C: the planner uses kinds in dictionary keys once per row of a flush.
    __hash__ = object.__hash__


# What an action is for, beyond its kind: the bookkeeping the flush must do afterwards differs.
WRITE = "write"                 # the user's insert, update or delete
ROW_SWITCH = "row switch"       # delete + add of one key, sent as a single UPDATE of the row
POST_UPDATE = "post-update"     # sets a foreign key left NULL at INSERT to break a cycle
CLEAR_REFERENCE = "clear reference"  # sets a foreign key to NULL before a DELETE, to break a cycle

_GROUP_RANK = {
    (StepKind.UPDATE, CLEAR_REFERENCE): 0,
    (StepKind.UPDATE, WRITE): 1,
    (StepKind.UPDATE, ROW_SWITCH): 1,
    (StepKind.INSERT, WRITE): 2,
    (StepKind.UPDATE, POST_UPDATE): 3,
    (StepKind.DELETE, WRITE): 4,
}


@dataclasses.dataclass(eq=False, slots=True)
class RowAction:
    """One row to write.

    ``columns`` are bound (INSERT) or set (UPDATE); ``returning`` are read back after an INSERT;
    ``sources`` maps a foreign-key column to ``(parent state, parent column)`` when its value is
    the key of a row written earlier in the same flush (possibly one the database numbers);
    ``null_columns`` are bound as NULL for now (a cycle broken by a later POST_UPDATE);
    ``switch_from`` is the deleted object whose row a ROW_SWITCH update takes over.
    """

    kind: StepKind
    state: object
    columns: tuple = ()
    returning: tuple = ()
    purpose: str = WRITE
    sources: dict = None
    null_columns: tuple = ()
    switch_from: object = None

    @property
    def mapper(self):
        return self.state.mapper

    def label(self):
        """``INSERT User(new #3)``: how constraints and errors name the action."""
        verb = self.kind.value
        if self.purpose in (POST_UPDATE, CLEAR_REFERENCE):
            verb = f"UPDATE ({self.purpose})"
        return f"{verb} {self.state.describe()}"


@dataclasses.dataclass(eq=False)
class Edge:
    """``before`` must run before ``after``.

    ``breakable`` names how a cycle through this edge can be broken: "post-update" (insert the
    child with NULL in ``foreign_key``'s columns and set them afterwards) or "clear-reference"
    (set them to NULL before the parent's DELETE); None when it cannot be broken.
    """

    before: RowAction
    after: RowAction
    reason: str
    breakable: str = None
    foreign_key: object = None


@dataclasses.dataclass(eq=False)
class Step:
    """One batch: rows of one table sent with the same statement shape."""

    kind: StepKind
    mapper: object
    actions: list
    columns: tuple = ()
    returning: tuple = ()
    purpose: str = WRITE

    @property
    def table(self):
        return self.mapper.table

    @property
    def states(self):
        return [action.state for action in self.actions]

    def row_labels(self):
        return [action.state.describe() for action in self.actions]

    def __str__(self):
        rows = f"{len(self.actions)} row{'s' if len(self.actions) != 1 else ''}"
        detail = f" ({', '.join(self.columns)})" if self.columns else ""
        if self.returning:
            detail += f" reading back ({', '.join(self.returning)})"
        purpose = f" [{self.purpose}]" if self.purpose != WRITE else ""
        return f"{self.kind.value} {self.table}{detail}{purpose}: {rows}"


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
    """The steps of a flush in order, and the edges that ordered them.

    ``constraints`` (the edges as readable :class:`Constraint` records) is computed when asked
    for: a bulk flush has an edge per row, and naming every row costs more than ordering them.
    """

    steps: list
    edges: list

    @property
    def constraints(self):
        return constraints_of(self.edges)

    def __bool__(self):
        return bool(self.steps)

    @property
    def row_count(self):
        return sum(len(step.actions) for step in self.steps)

    def __str__(self):
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

    def to_dot(self):
        """The plan as a Graphviz digraph: one node per step, and one arrow from a step to each step
        that must wait for it, labelled with the first reason found."""
        lines = ["digraph flush_plan {", "  rankdir=LR;", "  node [shape=box];"]
        for number, step in enumerate(self.steps, 1):
            lines.append(f'  s{number} [label="{number}. {_escape(str(step))}"];')
        for before, after, reason in self._step_edges():
            lines.append(f'  s{before} -> s{after} [label="{_escape(reason)}"];')
        lines.append("}")
        return "\n".join(lines)

    def to_mermaid(self):
        """The plan as Mermaid flowchart text."""
        lines = ["flowchart LR"]
        for number, step in enumerate(self.steps, 1):
            lines.append(f'  s{number}["{number}. {_escape(str(step))}"]')
        for before, after, reason in self._step_edges():
            lines.append(f'  s{before} -->|"{_escape(reason)}"| s{after}')
        return "\n".join(lines)

    def _step_edges(self):
        position = {}
        for number, step in enumerate(self.steps, 1):
            for action in step.actions:
                position[action.label()] = number
        seen = set()
        edges = []
        for constraint in self.constraints:
            pair = (position.get(constraint.before), position.get(constraint.after))
            if None in pair or pair[0] == pair[1] or pair in seen:
                continue
            seen.add(pair)
            edges.append((pair[0], pair[1], constraint.reason))
        return edges


def _escape(text):
    return text.replace('"', "'")


def schedule(actions, edges):
    """Order actions in waves, breaking nullable cycles; returns (steps, the edges kept).

    ``actions`` must be in session order (their position is the tie-break of last resort).
    """
    actions = list(actions)
    edges = list(edges)
    if not edges:
        return _group(actions), edges
    while True:
        waves, stuck = _waves(actions, edges)
        if not stuck:
            break
        actions, edges = _break_cycle(actions, edges, stuck)
    steps = []
    for wave in waves:
        steps.extend(_group(wave))
    return steps, edges


def _waves(actions, edges):
    """Kahn's algorithm, one whole level at a time; returns (waves, actions left in a cycle)."""
    waiting = {id(action): 0 for action in actions}
    successors = {id(action): [] for action in actions}
    for edge in edges:
        waiting[id(edge.after)] += 1
        successors[id(edge.before)].append(edge.after)
    ready = [action for action in actions if waiting[id(action)] == 0]
    position = {id(action): index for index, action in enumerate(actions)}
    waves = []
    done = 0
    while ready:
        waves.append(ready)
        done += len(ready)
        following = []
        for action in ready:
            for after in successors[id(action)]:
                waiting[id(after)] -= 1
                if waiting[id(after)] == 0:
                    following.append(after)
        following.sort(key=lambda action: position[id(action)])
        ready = following
    if done == len(actions):
        return waves, []
    return waves, [action for action in actions if waiting[id(action)] > 0]


_by_sequence = operator.attrgetter("state.sequence")


def _group(wave):
    """Split one wave into steps, in the documented order.

    Actions are gathered per (kind, table); inside each gathering, rows keep session order.
    UPDATEs are grouped by the set of columns they change; for INSERTs and DELETEs each run of
    consecutive rows with the same shape becomes one step (merging rows that are not
    consecutive would change the order in which one table's rows are inserted, and with it the
    keys SQLite hands out).
    """
    gatherings = {}
    for action in wave:
        gatherings.setdefault((_GROUP_RANK[(action.kind, action.purpose)], action.state.mapper), []).append(action)

    def order(item):
        (rank, mapper), members = item
        return (rank, min(map(_by_sequence, members)), mapper.table)

    steps = []
    for (_, mapper), members in sorted(gatherings.items(), key=order):
        members.sort(key=_by_sequence)
        by_columns = {}
        current = None
        previous = None
        for action in members:
            if action.kind is StepKind.UPDATE:
                # UPDATEs are grouped by the set of columns they change, wherever they stand:
                # their order within a table changes nothing.
                current = by_columns.get((action.columns, action.purpose, action.null_columns))
            elif previous is not None and not _same_shape(action, previous):
                current = None
            if current is None:
                current = Step(action.kind, mapper, [], action.columns, action.returning, action.purpose)
                by_columns[(action.columns, action.purpose, action.null_columns)] = current
                steps.append(current)
            previous = action
            current.actions.append(action)
    return steps


def _same_shape(one, other):
    """Can two rows of one table and kind go out as one executemany?  (Tuples compare by
    identity first, and rows of the usual shape share the mapper's tuples, so this is quick.)"""
    return (one.columns == other.columns and one.returning == other.returning
            and one.purpose == other.purpose and one.null_columns == other.null_columns)


def _find_cycle(stuck, edges):
    """One cycle among the stuck actions, as the list of edges that form it."""
    stuck_ids = {id(action) for action in stuck}
    successors = {id(action): [] for action in stuck}
    edge_between = {}
    for edge in edges:
        before, after = id(edge.before), id(edge.after)
        if before in stuck_ids and after in stuck_ids:
            successors[before].append(after)
            edge_between.setdefault((before, after), edge)
    nodes = find_cycle([id(action) for action in stuck], successors)
    return [edge_between[(a, b)] for a, b in zip(nodes, nodes[1:])]


def _break_cycle(actions, edges, stuck):
    """Break one cycle among the ``stuck`` actions at a nullable foreign key, or raise CycleError.

    Returns the actions and edges with the chosen edge replaced by a NULL now and a follow-up
    UPDATE (POST_UPDATE), or by an UPDATE to NULL before the parent's DELETE (CLEAR_REFERENCE).
    A row broken out of several cycles still gets one such UPDATE, setting all those columns.
    """
    cycle = _find_cycle(stuck, edges)
    breakable = [edge for edge in cycle if edge.breakable]
    if not breakable:
        if any(edge.foreign_key is not None for edge in cycle):
            why = "no foreign key in it is nullable, so no row can be written first and completed later"
            fix = "Make one of these foreign-key columns nullable, or write the rows in two flushes."
        else:
            why = "unique values change hands in a circle, so every row must be written before another"
            fix = ("Move one value out of the way first (set it to a temporary value and flush), "
                   "then finish the exchange in a second flush.")
        raise CycleError(
            f"cannot order this flush: these rows depend on each other in a cycle, and {why}:\n"
            + "\n".join(f"  {edge.after.label()} needs {edge.before.label()} first: {edge.reason}" for edge in cycle)
            + f"\n{fix}",
            cycle=[(edge.before.label(), edge.after.label(), edge.reason) for edge in cycle],
        )
    # Deterministic choice: the breakable edge whose child entered the session first.
    edge = min(breakable, key=lambda e: (e.after.state.sequence, e.before.state.sequence))
    edges = [other for other in edges if other is not edge]
    names = edge.foreign_key.column_names
    if edge.breakable == POST_UPDATE:
        child = edge.after
        child.null_columns = tuple(sorted(set(child.null_columns) | set(names)))
        sources = {name: child.sources.pop(name) for name in names if child.sources and name in child.sources}
        follow_up = _fix_up_of(actions, child.state, POST_UPDATE)
        if follow_up is None:
            follow_up = RowAction(StepKind.UPDATE, child.state, names, purpose=POST_UPDATE, sources=sources)
            actions.append(follow_up)
            edges.append(Edge(child, follow_up, "the row must exist before its foreign key is completed"))
        else:
            _add_columns(follow_up, names)
            follow_up.sources.update(sources)
        edges.append(Edge(edge.before, follow_up, edge.reason + " (set after the insert, to break a cycle)"))
    else:
        child = edge.before
        clear = _fix_up_of(actions, child.state, CLEAR_REFERENCE)
        first = clear is None
        if first:
            clear = RowAction(StepKind.UPDATE, child.state, names, purpose=CLEAR_REFERENCE)
            actions.append(clear)
        else:
            _add_columns(clear, names)
        edges.append(Edge(clear, edge.after, edge.reason + " (cleared before the delete, to break a cycle)"))
        if first:
            edges.append(Edge(clear, child, "the reference is cleared before the row is deleted"))
    return actions, edges


def _fix_up_of(actions, state, purpose):
    """The POST_UPDATE or CLEAR_REFERENCE action an earlier broken cycle gave this row, if any."""
    for action in actions:
        if action.purpose == purpose and action.state is state:
            return action
    return None


def _add_columns(action, names):
    action.columns += tuple(name for name in names if name not in action.columns)


def constraints_of(edges):
    """The edges as readable :class:`Constraint` records."""
    return [Constraint(edge.before.label(), edge.after.label(), edge.reason) for edge in edges]
