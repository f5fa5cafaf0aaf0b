"""The report a failure prints: the pruned program, names that agree, the reproduction command.

Deliberately broken adapters stand in for implementations with a bug in session.dirty.
"""

import re

from hypothesis import Phase, settings

from . import program, report
from .program import Named, Step
from .relations_machine import build_machine
from .uow_adapter import UowAdapter


class BrokenAdapter(UowAdapter):
    """uow, except that session.dirty forgets objects with a note once a savepoint rolled back."""

    name = "broken"
    rolled_back = False

    def dirty_objects(self):
        found = list(super().dirty_objects())
        if self.rolled_back:
            return [obj for obj in found if obj.__dict__.get("note") is None]
        return found

    def rollback_nested(self, token):
        self.rolled_back = True
        return super().rollback_nested(token)


SETUP = Step("setup", dict(shape="single", names=("ant", "bee", "cow", "doe"), generated=(True, False, False, False),
                           unique=(False, False, False, False), seeded=1, autoflush=True,
                           versioned=(False, False, False, False), declared=(None, None, None, None)))


def _failing_program(noise):
    """The shortest program that shows the bug, with ``noise`` steps before each of its steps."""
    steps = [SETUP]
    for step in (Step("get", dict(pick=("ant", (1,))), ["objects_0"], several=True),
                 Step("savepoint", dict(action="begin")),
                 Step("savepoint", dict(action="rollback")),
                 Step("set_text", dict(field="note", handle=Named("objects_0"), value="ann"))):
        steps.extend(noise)
        steps.append(step)
    return steps


def test_wb_prune_leaves_out_steps_that_change_nothing():
    machine = build_machine(BrokenAdapter)
    noise = [Step("boundary", dict(action="flush")), Step("get", dict(pick=("ant", (0,))))]
    pruned, kept = program.prune(machine, _failing_program(noise))
    assert [str(step) for step in kept] == [str(step) for step in _failing_program([])]
    assert str(pruned.error) == ("the implementation disagrees with the oracle:\n"
                                 "  [TRK-2] session.dirty holds []; oracle [objects_0]\n"
                                 "  rules the oracle applied in this step: TRK-5")


def test_wb_a_step_the_machine_could_not_have_drawn_is_not_replayed():
    """A handle that no step made is not offered: the program is refused, not run."""
    machine = build_machine(BrokenAdapter)
    steps = [SETUP, Step("get", dict(pick=("ant", (1,))), ["objects_0"], several=True),
             Step("set_text", dict(field="note", handle=Named("objects_7"), value="ann"))]
    replayed = program.replay(machine, steps)
    assert replayed.error is None
    assert replayed.invalid == "step 2: set_text(handle=objects_7) is not offered"


class NoBobAdapter(UowAdapter):
    """uow, except that session.dirty never holds an object named 'bob' (found in a few programs)."""

    name = "nobob"

    def dirty_objects(self):
        return [obj for obj in super().dirty_objects() if obj.__dict__.get("name") != "bob"]


# The search without shrinking, to keep the test short: the report prunes what it is given.
settings.register_profile("test_report", settings.get_profile("mutation"), phases=[Phase.generate])


def test_the_reproduction_command_of_a_report_prints_the_same_failure(capsys):
    assert report.report(NoBobAdapter, "nobob", "test_report", None, "python -m kit") == 1
    first = capsys.readouterr().out
    command = re.search(r"\n  python -m kit nobob --profile test_report --reproduce (\S+)\n", first)
    assert command is not None, first
    assert report.report(NoBobAdapter, "nobob", "test_report", command.group(1), "python -m kit") == 1
    again = capsys.readouterr().out
    assert again.startswith("Conformance of nobob (NobobConformance), profile test_report: one program replayed")
    failure = first[first.index("Result: FAILED"):first.index("Reproduce it")]
    assert failure == again[again.index("Result: FAILED"):]
    # The message names objects as the program does, and the program is pruned.
    message, printed = failure.split("The program: ")
    assert re.search(r"Hypothesis shrank it to \d+", printed) or "as Hypothesis shrank it" in printed
    made = set(re.findall(r"(objects_\d+)\b[^\n]*= state\.", printed))
    assert set(re.findall(r"objects_\d+", message)) <= made != set()
