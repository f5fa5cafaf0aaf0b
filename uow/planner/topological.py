"""The one topological sort of uow: deterministic, one whole level ("wave") at a time.

This module knows nothing about databases.  Two callers give it ``(before, after)`` pairs:

* ``schema`` orders CREATE TABLE statements (a referenced table before the tables that
  reference it), giving the tables sorted by name;
* the flush planner orders row actions (a parent row before its child), giving them in the
  order their objects entered the session.

Ties are broken by that given order, never by hashing or chance, so the same input always gives
the same order.  (An early SQLAlchemy docstring traced its hardest unit-of-work bugs to partial
orders that came out differently from run to run.)  Waves rather than a single sequence are what
the flush needs: every row of a wave can go in the same batch.
"""

from collections.abc import Container, Hashable, Iterable, Mapping
from typing import TypeVar

Node = TypeVar("Node", bound=Hashable)


def waves(nodes: Iterable[Node], edges: Iterable[tuple[Node, Node]]) -> tuple[list[list[Node]], list[Node]]:
    """Kahn's algorithm, one whole level at a time: ``(waves, stuck)``.

    ``nodes`` are hashable and given in tie-break order; ``edges`` are ``(before, after)`` pairs
    between them.  Each wave lists, in the given order, the nodes whose every predecessor is in
    an earlier wave::

        waves(["a", "b", "c"], [("a", "c"), ("b", "c")])  ==  ([["a", "b"], ["c"]], [])

    ``stuck`` lists (in the given order) the nodes that could not be placed because they sit on
    a cycle or wait for a node that does; it is empty when the edges have no cycle.
    """
    nodes = list(nodes)
    # Only nodes with an edge get an entry: most rows of a flush have none (a parent's children
    # wait for it; the children themselves have no successors), so this is as large as the edges.
    waiting: dict[Node, int] = {}  # node -> how many of its predecessors are not placed yet
    successors: dict[Node, list[Node]] = {}
    for before, after in edges:
        waiting[after] = waiting.get(after, 0) + 1
        later = successors.get(before)
        if later is None:
            successors[before] = [after]
        else:
            later.append(after)
    ready = [node for node in nodes if node not in waiting]
    placed = []
    count = 0
    position: dict[Node, int] | None = None
    while ready:
        placed.append(ready)
        count += len(ready)
        following = []
        # Walk the whole wave before sorting the next one: a node freed by the last node of a
        # wave must not go before one freed by the first merely because it was found later.
        for node in ready:
            for after in successors.get(node, ()):
                left = waiting[after] - 1
                waiting[after] = left
                if left == 0:
                    following.append(after)
        if len(following) > 1:
            if position is None:
                position = {node: index for index, node in enumerate(nodes)}
            following.sort(key=position.__getitem__)
        ready = following
    if count == len(nodes):
        return placed, []
    return placed, [node for node in nodes if waiting.get(node, 0) > 0]


def find_cycle(nodes: Iterable[Node], successors: Mapping[Node, Iterable[Node]],
               allowed: Container[Node] | None = None, explored: set[Node] | None = None) -> list[Node]:
    """One cycle among ``nodes`` as a list ``[a, b, ..., a]``, or ``[]`` (depth-first, deterministic).

    ``successors`` maps each node to the nodes that must come after it; nodes not in ``nodes``
    are ignored.  Each node's successors are read once, so this costs as much as the nodes and
    edges, not as much as the paths between them.

    A caller that breaks cycles one at a time (the flush planner) searches again after each and
    passes what stays true in between: ``allowed``, the nodes still to consider (the set it keeps
    of ``nodes``, which then need only be the starts, in order), and ``explored``, the nodes this
    search found no cycle reachable from, which it adds to (still true once edges or nodes are
    taken away, so a later search skips them instead of walking them again).
    """
    if allowed is None:
        nodes = list(nodes)
        allowed = set(nodes)
    if explored is None:
        explored = set()
    for start in nodes:
        if start in explored or start not in allowed:
            continue
        path = [start]
        on_path = {start: 0}
        iterators = [iter(successors[start])]
        while iterators:
            advanced = False
            for following in iterators[-1]:
                if following not in allowed or following in explored:
                    continue
                if following in on_path:
                    return path[on_path[following]:] + [following]
                on_path[following] = len(path)
                path.append(following)
                iterators.append(iter(successors[following]))
                advanced = True
                break
            if not advanced:
                # Every successor of the node at the end of the path was explored: it is on no
                # cycle, so it is never entered again (what keeps this linear).
                iterators.pop()
                finished = path.pop()
                del on_path[finished]
                explored.add(finished)
    return []
