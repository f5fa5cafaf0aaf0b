"""A deterministic topological sort over ``(before, after)`` edges, and a cycle finder.

This module knows nothing about databases.  ``schema`` describes "table X must be created
before table Y" as an edge and asks :func:`topological_order` for an order; when there is a
choice, it always takes the node with the smallest ``tiebreak`` key, so the same input always
gives the same order.  (An early SQLAlchemy docstring traced its hardest unit-of-work bugs to
partial orders that came out differently from run to run.)  The flush planner orders rows in
waves itself (see ``plan``) and uses :func:`find_cycle` to name the rows of a cycle.
"""

import heapq

from .errors import UowError


class CycleFound(UowError):
    """Raised by topological_order; ``cycle`` lists the nodes in order, first repeated last."""

    def __init__(self, cycle):
        super().__init__("cycle: " + " -> ".join(map(str, cycle)))
        self.cycle = cycle


def topological_order(nodes, edges, tiebreak):
    """Order ``nodes`` so that for every edge ``(a, b)``, ``a`` comes before ``b``.

    ``tiebreak(node)`` gives a sortable key; among nodes that are free to go next, the smallest
    goes first.  Raises :class:`CycleFound` when the edges contain a cycle.
    """
    successors = {node: [] for node in nodes}
    waiting_on = {node: 0 for node in nodes}
    for before, after in edges:
        successors[before].append(after)
        waiting_on[after] += 1
    ready = [(tiebreak(node), index, node) for index, node in enumerate(nodes) if waiting_on[node] == 0]
    heapq.heapify(ready)
    position = {node: index for index, node in enumerate(nodes)}
    order = []
    while ready:
        _, _, node = heapq.heappop(ready)
        order.append(node)
        for after in successors[node]:
            waiting_on[after] -= 1
            if waiting_on[after] == 0:
                heapq.heappush(ready, (tiebreak(after), position[after], after))
    if len(order) < len(nodes):
        remaining = [node for node in nodes if waiting_on[node] > 0]
        raise CycleFound(find_cycle(remaining, successors))
    return order


def find_cycle(nodes, successors):
    """Return one cycle among ``nodes`` as a list ``[a, b, ..., a]`` (depth-first, deterministic)."""
    allowed = set(nodes)
    explored = set()
    for start in nodes:
        if start in explored:
            continue
        path = [start]
        on_path = {start: 0}
        iterators = [iter(successors[start])]
        while iterators:
            advanced = False
            for nxt in iterators[-1]:
                if nxt not in allowed or nxt in explored:
                    continue
                if nxt in on_path:
                    return path[on_path[nxt]:] + [nxt]
                on_path[nxt] = len(path)
                path.append(nxt)
                iterators.append(iter(successors[nxt]))
                advanced = True
                break
            if not advanced:
                iterators.pop()
                finished = path.pop()
                del on_path[finished]
                explored.add(finished)
    return []
