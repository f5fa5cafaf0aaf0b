"""uow.graph, the deterministic topological sort and cycle finder the planner and create_all use.

White-box tests (``test_wb_*``, house rule 11): the module knows nothing about databases, so
these call it directly with plain strings as nodes.
"""

import collections

import pytest

from uow.graph import CycleFound, find_cycle, topological_order


class CountingSuccessors(dict):
    """A successors mapping that counts how often each node's successors are read."""

    def __init__(self, successors):
        super().__init__(successors)
        self.reads = collections.Counter()

    def __getitem__(self, node):
        self.reads[node] += 1
        return super().__getitem__(node)


def test_wb_ties_go_to_the_smallest_tiebreak_key():
    order = topological_order(["c", "a", "b"], [], str)
    assert order == ["a", "b", "c"]


def test_wb_a_node_waits_for_every_node_before_it():
    # "c" has the smallest key, so it goes as soon as it is free: only after both "a" and "b".
    rank = {"c": 0, "a": 1, "b": 2}
    order = topological_order(["a", "b", "c"], [("a", "c"), ("b", "c")], rank.get)
    assert order == ["a", "b", "c"]


def test_wb_a_cycle_is_reported_with_its_nodes_in_order_first_repeated_last():
    with pytest.raises(CycleFound) as caught:
        topological_order(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "b")], str)
    assert caught.value.cycle == ["b", "c", "b"]
    assert str(caught.value) == "cycle: b -> c -> b"


def test_wb_the_cycle_is_searched_among_the_nodes_that_could_not_be_ordered():
    # "a" was ordered before the sort got stuck; the report starts at "b", the first stuck node.
    with pytest.raises(CycleFound) as caught:
        topological_order(["a", "b", "c"], [("a", "c"), ("b", "c"), ("c", "b")], str)
    assert caught.value.cycle == ["b", "c", "b"]


def test_wb_find_cycle_returns_only_the_cycle_not_the_path_to_it():
    successors = {"a": ["b"], "b": ["c"], "c": ["b"]}
    assert find_cycle(["a", "b", "c"], successors) == ["b", "c", "b"]


def test_wb_find_cycle_goes_on_after_a_start_that_leads_to_no_cycle():
    successors = {"a": ["b"], "b": [], "c": ["d"], "d": ["c"]}
    assert find_cycle(["a", "b", "c", "d"], successors) == ["c", "d", "c"]


def test_wb_find_cycle_ignores_cycles_through_nodes_it_was_not_given():
    successors = {"a": ["b"], "b": ["c"], "c": ["b"]}
    assert find_cycle(["a"], successors) == []


def test_wb_find_cycle_reads_each_nodes_successors_once():
    # A ladder of 12 levels, every node pointing at both nodes of the next level: 2**12 paths,
    # 24 nodes.  The planner runs find_cycle over every row left stuck in a flush, so it must
    # cost as much as the nodes and edges, not as much as the paths.
    levels = [[f"{level}a", f"{level}b"] for level in range(12)]
    successors = {node: list(following) for level, following in zip(levels, levels[1:]) for node in level}
    successors.update({node: [] for node in levels[-1]})
    counting = CountingSuccessors(successors)
    assert find_cycle([node for level in levels for node in level], counting) == []
    assert set(counting.reads) == set(successors)
    assert max(counting.reads.values()) == 1
