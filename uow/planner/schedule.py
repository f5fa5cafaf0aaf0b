"""Scheduling a flush: row actions and their edges in, ordered steps out, cycles broken on the way.

1. The actions are sorted in *waves* by the one topological sort (``topological.waves``): each
   wave holds every action whose prerequisites are done, so a tree of rows in one table goes out
   one level per wave.
2. If actions are left over, they form cycles, broken one at a time, each as the sort would meet
   it next (``_CycleBreaker``).  A cycle through a nullable foreign key is broken by inserting
   NULL and setting the key with a follow-up UPDATE (POST_UPDATE), or by clearing it with an
   UPDATE before the parent's DELETE (CLEAR_REFERENCE); once none is left the sort runs again.  A
   cycle with no nullable edge raises CycleError, before any SQL runs, listing the rows, columns
   and values involved.
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
    placed, stuck = waves(actions, ((edge.before, edge.after) for edge in edges))
    if stuck:
        edges = _CycleBreaker(actions, edges, stuck).break_all()
        placed, stuck = waves(actions, ((edge.before, edge.after) for edge in edges))
        assert not stuck  # (every cycle was broken, or CycleError was raised)
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


class _CycleBreaker:
    """Breaks every cycle among the actions the sort left ``stuck``, one at a time (rule 2 above).

    Each cycle is the one the sort would meet if it ran again after the last one was broken: the
    first found depth first among the actions still stuck, starting from the first of them in
    session order.  But the sort does not run again, nor is the edge list rebuilt, per cycle
    (that made a flush of 2,000 pairs of new rows pointing at each other take 7.6 s, four times
    as long per pair as 1,000): breaking an edge releases the actions that waited only on it,
    and those that waited on them (Kahn's count, kept for the stuck actions alone), and the
    search keeps the actions it found no cycle reachable from, which stays true as edges go.
    So breaking k cycles costs about one sort, not k.  (The actions a break adds never sit on
    a cycle -- a follow-up UPDATE only waits, a clearing UPDATE is only waited for -- so they
    are not tracked here; the final sort places them.)
    """

    def __init__(self, actions: list[RowAction], edges: list[Edge], stuck: list[RowAction]) -> None:
        self.actions = actions  # the flush's actions, to which fix-ups are added
        self.edges = edges      # the flush's edges, to which fix-ups' edges are added
        self.stuck = stuck      # in session order: where searches start
        self.remaining = set(stuck)  # the actions not placeable yet
        self.successors: dict[RowAction, list[RowAction]] = {action: [] for action in stuck}
        self.between: dict[tuple[RowAction, RowAction], list[Edge]] = {}  # the edges of each pair, in order
        self.waiting = dict.fromkeys(stuck, 0)  # how many unbroken edges from remaining actions
        for edge in edges:
            if edge.before in self.remaining and edge.after in self.remaining:
                self.successors[edge.before].append(edge.after)
                self.between.setdefault((edge.before, edge.after), []).append(edge)
                self.waiting[edge.after] += 1
        self.explored: set[RowAction] = set()  # no cycle can be reached from these
        self.broken: set[Edge] = set()
        self.fix_ups: dict[tuple[InstanceState, StepPurpose], RowAction] = {}  # a row's POST_UPDATE / CLEAR_REFERENCE
        self.first = 0  # stuck[:first] are released or explored: no search starts there again

    def break_all(self) -> list[Edge]:
        """Break every cycle (or raise CycleError); returns the edges, without those broken."""
        while True:
            cycle = self.next_cycle()
            if not cycle:
                return [edge for edge in self.edges if edge not in self.broken]
            self.break_one(cycle)

    def next_cycle(self) -> list[Edge]:
        """The next cycle among the remaining actions, as the list of edges that form it."""
        stuck = self.stuck
        while self.first < len(stuck) and (stuck[self.first] not in self.remaining or stuck[self.first] in self.explored):
            self.first += 1
        starts = (stuck[index] for index in range(self.first, len(stuck)))
        nodes = find_cycle(starts, self.successors, self.remaining, self.explored)
        # Between two actions, the first edge not broken (as in the flush's own order of edges).
        return [next(edge for edge in self.between[pair] if edge not in self.broken) for pair in zip(nodes, nodes[1:])]

    def break_one(self, cycle: list[Edge]) -> None:
        """Break ``cycle`` at a nullable foreign key, or raise CycleError.

        The chosen edge is replaced by a NULL now and a follow-up UPDATE (POST_UPDATE), or by an
        UPDATE to NULL before the parent's DELETE (CLEAR_REFERENCE).  A row broken out of several
        cycles still gets one such UPDATE, setting all those columns.
        """
        breakable = [edge for edge in cycle if edge.breakable is not None]
        if not breakable:
            raise _cycle_error(cycle)
        # Deterministic choice: the breakable edge whose child entered the session first.
        edge = min(breakable, key=lambda e: (e.after.state.sequence, e.before.state.sequence))
        self.broken.add(edge)
        self.successors[edge.before].remove(edge.after)  # (one of them, if two edges join the pair)
        self.release_edge(edge.after)
        actions = self.actions
        edges = self.edges
        assert edge.foreign_key is not None  # only an edge along a foreign key is breakable
        names = edge.foreign_key.column_names
        if edge.breakable is POST_UPDATE:
            child = edge.after
            child.null_columns = tuple(sorted(set(child.null_columns) | set(names)))
            sources = {name: child.sources.pop(name) for name in names if child.sources and name in child.sources}
            follow_up = self.fix_ups.get((child.state, POST_UPDATE))
            if follow_up is None:
                follow_up = RowAction(UPDATE, child.state, names, purpose=POST_UPDATE, sources=sources)
                self.fix_ups[child.state, POST_UPDATE] = follow_up
                actions.append(follow_up)
                edges.append(Edge(child, follow_up, "the row must exist before its foreign key is completed"))
            else:
                _add_columns(follow_up, names)
                assert follow_up.sources is not None  # a POST_UPDATE is made with its sources (above)
                follow_up.sources.update(sources)
            edges.append(Edge(edge.before, follow_up, edge.reason + " (set after the insert, to break a cycle)"))
        else:
            child = edge.before
            clear = self.fix_ups.get((child.state, CLEAR_REFERENCE))
            first = clear is None
            if clear is None:
                clear = RowAction(UPDATE, child.state, names, purpose=CLEAR_REFERENCE)
                self.fix_ups[child.state, CLEAR_REFERENCE] = clear
                actions.append(clear)
            else:
                _add_columns(clear, names)
            edges.append(Edge(clear, edge.after, edge.reason + " (cleared before the delete, to break a cycle)"))
            if first:
                edges.append(Edge(clear, child, "the reference is cleared before the row is deleted"))

    def release_edge(self, after: RowAction) -> None:
        """One edge into ``after`` is gone: release it if it waited on nothing else, and so on down."""
        waiting = self.waiting
        waiting[after] -= 1
        if waiting[after]:
            return
        released = [after]
        while released:
            action = released.pop()
            self.remaining.discard(action)
            for following in self.successors[action]:
                if following in self.remaining:
                    waiting[following] -= 1
                    if not waiting[following]:
                        released.append(following)


def _cycle_error(cycle: list[Edge]) -> CycleError:
    """The refusal of a cycle with no edge to break, listing its rows, columns and reasons."""
    if any(edge.foreign_key is not None for edge in cycle):
        why = "no foreign key in it is nullable, so no row can be written first and completed later"
        fix = "Make one of these foreign-key columns nullable, or write the rows in two flushes."
    else:
        why = "unique values change hands in a circle, so every row must be written before another"
        fix = ("Move one value out of the way first (set it to a temporary value and flush), "
               "then finish the exchange in a second flush.")
    return CycleError(
        f"cannot order this flush: these rows depend on each other in a cycle, and {why}:\n"
        + "\n".join(f"  {edge.after.label()} needs {edge.before.label()} first: {edge.reason}" for edge in cycle)
        + f"\n{fix}",
        cycle=[(edge.before.label(), edge.after.label(), edge.reason) for edge in cycle],
    )


def _add_columns(action: RowAction, names: tuple[str, ...]) -> None:
    action.columns += tuple(name for name in names if name not in action.columns)
