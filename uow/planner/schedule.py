"""Scheduling a flush: row actions and their edges in, ordered steps out, cycles broken on the way.

1. The actions are sorted in *waves* by the one topological sort (``topological.waves``): each
   wave holds every action whose prerequisites are done, so a tree of rows in one table goes out
   one level per wave.
2. If actions are left over, they form a cycle.  A cycle through a nullable foreign key is broken
   by inserting NULL and setting the key with a follow-up UPDATE (POST_UPDATE), or by clearing it
   with an UPDATE before the parent's DELETE (CLEAR_REFERENCE); then the sort runs again.  A cycle
   with no nullable edge raises CycleError, before any SQL runs, listing the rows, columns and
   values involved.
3. Within a wave, actions are gathered per (kind, table); gatherings go UPDATEs that clear a
   reference, other UPDATEs (and row switches), INSERTs, follow-up UPDATEs, DELETEs, then by the
   order their first object entered the session, then by table name.  Rows inside a gathering
   keep session order.  UPDATEs that set the same columns (for the same purpose) are one step;
   for INSERTs and DELETEs each run of consecutive rows of the same shape is one step, which the
   flush sends as a single ``executemany``.

The same actions and edges, in the same order, always give the same steps.
"""

import itertools
import operator
from collections.abc import Iterable
from typing import Any

from ..errors import CycleError
from ..mapper import Mapper
from ..states import InstanceState, in_entry_order
from .records import (CLEAR_REFERENCE, DELETE, INSERT, POST_UPDATE, ROW_SWITCH, UPDATE, WRITE, Edge, RowAction, Step,
                      StepPurpose)
from .topological import find_cycle, waves


# Where a gathering of each (kind, purpose) goes within its wave (rule 3 above).
_GROUP_RANK = {
    (UPDATE, CLEAR_REFERENCE): 0,
    (UPDATE, WRITE): 1,
    (UPDATE, ROW_SWITCH): 1,
    (INSERT, WRITE): 2,
    (UPDATE, POST_UPDATE): 3,
    (DELETE, WRITE): 4,
}


def schedule(actions: Iterable[RowAction], edges: Iterable[Edge]) -> tuple[list[Step], list[Edge]]:
    """Order actions in steps, breaking nullable cycles; returns (steps, the edges kept).

    ``actions`` must be in session order (their position is the tie-break of last resort).
    """
    actions = list(actions)
    edges = list(edges)
    if not edges:
        return _group(actions), edges
    while True:
        placed, stuck = waves(actions, ((edge.before, edge.after) for edge in edges))
        if not stuck:
            break
        # Each round breaks one cycle; the edges it replaces cannot close that cycle again, so
        # this ends after at most one round per breakable edge.
        actions, edges = _break_cycle(actions, edges, stuck)
    steps = []
    for wave in placed:
        steps.extend(_group(wave))
    return steps, edges


# What gathers actions (rule 3 above) and what makes rows one statement, read in C: a flush
# passes every row it writes through both.
_gathering_of = operator.attrgetter("kind", "purpose", "state.mapper")
_shape_of = operator.attrgetter("columns", "purpose", "null_columns", "returning")


def _group(wave: list[RowAction]) -> list[Step]:
    """Split one wave into steps, in the documented order.

    Actions are gathered per (kind, table); inside each gathering, rows keep session order.
    UPDATEs are grouped by their shape -- the set of columns they change -- wherever they stand;
    for INSERTs and DELETEs each run of consecutive rows with the same shape becomes one step
    (merging rows that are not consecutive would change the order in which one table's rows are
    inserted, and with it the keys SQLite hands out).

    Rows come in runs (a wave of 10,000 deletes of one table is one run), so both groupings
    take whole runs (``itertools.groupby``) rather than deciding row by row.
    """
    gatherings: dict[tuple[int, Mapper], list[RowAction]] = {}
    for (kind, purpose, mapper), run in itertools.groupby(wave, _gathering_of):
        gatherings.setdefault((_GROUP_RANK[kind, purpose], mapper), []).extend(run)
    ordered = []
    for (rank, mapper), members in gatherings.items():
        members = in_entry_order(members, "state")
        # (Sorted, its first row is the one that entered the session first.)
        ordered.append(((rank, members[0].state.sequence, mapper.table), mapper, members))
    ordered.sort(key=operator.itemgetter(0))

    steps = []
    for _, mapper, members in ordered:
        by_shape: dict[tuple[Any, ...], Step] = {}
        for shape, run in itertools.groupby(members, _shape_of):
            first = next(run)
            step = by_shape.get(shape) if first.kind is UPDATE else None
            if step is None:
                step = Step(first.kind, mapper, [first], first.columns, first.returning, first.purpose)
                by_shape[shape] = step
                steps.append(step)
            else:
                step.actions.append(first)
            step.actions.extend(run)
    return steps


def _find_cycle(stuck: list[RowAction], edges: list[Edge]) -> list[Edge]:
    """One cycle among the stuck actions, as the list of edges that form it."""
    successors: dict[RowAction, list[RowAction]] = {action: [] for action in stuck}
    edge_between: dict[tuple[RowAction, RowAction], Edge] = {}
    for edge in edges:
        if edge.before in successors and edge.after in successors:
            successors[edge.before].append(edge.after)
            edge_between.setdefault((edge.before, edge.after), edge)
    nodes = find_cycle(stuck, successors)
    return [edge_between[pair] for pair in zip(nodes, nodes[1:])]


def _break_cycle(actions: list[RowAction], edges: list[Edge],
                 stuck: list[RowAction]) -> tuple[list[RowAction], list[Edge]]:
    """Break one cycle among the ``stuck`` actions at a nullable foreign key, or raise CycleError.

    Returns the actions and edges with the chosen edge replaced by a NULL now and a follow-up
    UPDATE (POST_UPDATE), or by an UPDATE to NULL before the parent's DELETE (CLEAR_REFERENCE).
    A row broken out of several cycles still gets one such UPDATE, setting all those columns.
    """
    cycle = _find_cycle(stuck, edges)
    breakable = [edge for edge in cycle if edge.breakable is not None]
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
    assert edge.foreign_key is not None  # only an edge along a foreign key is breakable
    names = edge.foreign_key.column_names
    if edge.breakable is POST_UPDATE:
        child = edge.after
        child.null_columns = tuple(sorted(set(child.null_columns) | set(names)))
        sources = {name: child.sources.pop(name) for name in names if child.sources and name in child.sources}
        follow_up = _fix_up_of(actions, child.state, POST_UPDATE)
        if follow_up is None:
            follow_up = RowAction(UPDATE, child.state, names, purpose=POST_UPDATE, sources=sources)
            actions.append(follow_up)
            edges.append(Edge(child, follow_up, "the row must exist before its foreign key is completed"))
        else:
            _add_columns(follow_up, names)
            assert follow_up.sources is not None  # a POST_UPDATE is made with its sources (above)
            follow_up.sources.update(sources)
        edges.append(Edge(edge.before, follow_up, edge.reason + " (set after the insert, to break a cycle)"))
    else:
        child = edge.before
        clear = _fix_up_of(actions, child.state, CLEAR_REFERENCE)
        first = clear is None
        if clear is None:
            clear = RowAction(UPDATE, child.state, names, purpose=CLEAR_REFERENCE)
            actions.append(clear)
        else:
            _add_columns(clear, names)
        edges.append(Edge(clear, edge.after, edge.reason + " (cleared before the delete, to break a cycle)"))
        if first:
            edges.append(Edge(clear, child, "the reference is cleared before the row is deleted"))
    return actions, edges


def _fix_up_of(actions: list[RowAction], state: InstanceState, purpose: StepPurpose) -> RowAction | None:
    """The POST_UPDATE or CLEAR_REFERENCE action an earlier broken cycle gave this row, if any."""
    for action in actions:
        if action.purpose is purpose and action.state is state:
            return action
    return None


def _add_columns(action: RowAction, names: tuple[str, ...]) -> None:
    action.columns += tuple(name for name in names if name not in action.columns)
