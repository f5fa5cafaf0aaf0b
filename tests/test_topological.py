"""uow.planner.topological, the one topological sort (in waves) and the cycle finder that the
flush planner and create_all use.

White-box tests (``test_wb_*``, house rule 11): the module knows nothing about databases, so
these call it directly with plain strings as nodes.
"""

import collections

from uow.planner.topological import find_cycle, waves


class CountingSuccessors(dict):
    """A successors mapping that counts how often each node's successors are read."""

    def __init__(self, successors):
        super().__init__(successors)
        self.reads = collections.Counter()

    def __getitem__(self, node):
        self.reads[node] += 1
        return super().__getitem__(node)


def test_wb_nodes_free_together_form_one_wave_in_the_order_given():
    placed, stuck = waves(["c", "a", "b"], [])
    assert placed == [["c", "a", "b"]]
    assert stuck == []


def test_wb_a_node_waits_for_every_node_before_it():
    # "c" comes first in the given order, but goes only once both "a" and "b" are placed.
    placed, stuck = waves(["c", "a", "b"], [("a", "c"), ("b", "c")])
    assert placed == [["a", "b"], ["c"]]
    assert stuck == []


def test_wb_a_wave_keeps_the_given_order_whatever_order_its_nodes_were_freed_in():
    # "z" frees "d" before "y" frees "b", but "b" is given first, so it goes first in its wave.
    placed, _ = waves(["y", "z", "b", "d"], [("z", "d"), ("y", "b")])
    assert placed == [["y", "z"], ["b", "d"]]


def test_wb_the_same_edge_twice_is_waited_for_once_per_copy():
    placed, stuck = waves(["a", "b"], [("a", "b"), ("a", "b")])
    assert placed == [["a"], ["b"]]
    assert stuck == []


def test_wb_nodes_on_a_cycle_or_waiting_for_one_are_stuck():
    # "a" is placed; "b" and "c" wait for each other; "d" waits for "c".
    placed, stuck = waves(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("c", "b"), ("c", "d")])
    assert placed == [["a"]]
    assert stuck == ["b", "c", "d"]
    successors = {"a": ["b"], "b": ["c"], "c": ["b", "d"], "d": []}
    assert find_cycle(stuck, successors) == ["b", "c", "b"]


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
