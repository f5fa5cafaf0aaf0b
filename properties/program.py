"""A program as data: the steps a conformance machine ran, replayed and pruned.

Hypothesis shrinks a failing program by editing the choices that drew it.  Some steps survive
that do nothing for the failure: removing one would shift every later choice (the first time a
rule is drawn also decides whether that rule may be drawn at all), so the shrinker cannot take it
out, and a shrunk program kept eleven ``boundary(action='flush')`` steps in eighteen.  The report
therefore prunes the program Hypothesis hands back: it replays it without one step at a time and
keeps each removal after which the same failure still happens, at the same place or sooner.

A replayed step must be one the machine could have drawn: its rule's preconditions hold, and
each argument drawn from the machine's own offer (see :func:`offered`) is still offered (a
handle by its name, a relationship by its description).  A step left out may not have created an
object a later step uses.  So the pruned program is a program Hypothesis itself could produce,
and it fails the same way: the same exception, the same rule ids cited, the same message once
numbers are set aside (keys and counters move when a step goes).

The machine records its steps through :func:`rule` and :func:`initialize`, Hypothesis's own
decorators that also append each call to ``machine.program``; :func:`note` and :func:`event`
are Hypothesis's, except during a replay, which has no Hypothesis test around it.
"""

import dataclasses
import functools
import re

import hypothesis
from hypothesis import stateful

from . import rules

# How each strategy that draws from the machine's offer was made: {strategy: (method, args)}.
_OFFERS = {}
# The notes of the replay that is running (None when Hypothesis runs the machine).
_replay_notes = None


@dataclasses.dataclass
class Step:
    """One rule call: its rule's name, the arguments it was drawn, and the names of the handles
    it made (``objects_3``), in the order it made them."""

    rule: str
    arguments: dict
    created: list = dataclasses.field(default_factory=list)
    several: bool = False  # the rule returned multiple(...), printed as ``(objects_3,) = ...``

    def __str__(self):
        """The step as Hypothesis prints it, ``objects_3 = state.create(table='ant', ...)``
        (a handle prints as its name)."""
        bundled = [name for name in self.created if name.startswith("objects_")]
        call = f"state.{self.rule}({', '.join(f'{key}={value!r}' for key, value in self.arguments.items())})"
        if not bundled:
            return call
        if not self.several:
            return f"{bundled[0]} = {call}"
        return f"({', '.join(bundled)},) = {call}" if len(bundled) == 1 else f"{', '.join(bundled)} = {call}"


class Named(str):
    """An object of a program written by hand, by its name: ``Named("objects_0")`` prints, and
    is replayed, as the handle of that name."""

    def __repr__(self):
        return str(self)


def offered(strategy, method, *args):
    """``strategy``, which draws one of what ``machine.method(*args)`` offers now (its handles,
    keys...), remembered so that a replay can check the machine still offers the value drawn."""
    _OFFERS[strategy] = (method, args)
    return strategy


def rule(**arguments):
    """``hypothesis.stateful.rule``; each call is also appended to the machine's ``program``."""
    return lambda function: stateful.rule(**arguments)(_recorded(function))


def initialize(**arguments):
    """``hypothesis.stateful.initialize``, recorded as :func:`rule` is."""
    return lambda function: stateful.initialize(**arguments)(_recorded(function))


def _recorded(function):
    @functools.wraps(function)
    def recorded(machine, **drawn):
        step = Step(function.__name__, drawn)
        machine.program.append(step)
        result = function(machine, **drawn)
        step.several = isinstance(result, stateful.MultipleResults)
        return result
    return recorded


def note(text):
    """``hypothesis.note``, or a line of the replay's printout."""
    if _replay_notes is not None:
        _replay_notes.append(text)
    else:
        hypothesis.note(text)


def event(name):
    """``hypothesis.event`` (a replay counts nothing)."""
    if _replay_notes is None:
        hypothesis.event(name)


@dataclasses.dataclass
class Replay:
    """What replaying a program did: ``lines`` (steps and notes, as printed), ``error`` raised by
    step ``at`` (None if the program ran through), or ``invalid``: why it is not a program the
    machine could have drawn."""

    lines: list
    error: BaseException | None = None
    at: int | None = None
    invalid: str | None = None


def replay(machine_class, steps):
    """Run ``steps`` on a new machine, checking the invariants after each, as Hypothesis would."""
    global _replay_notes
    machine = machine_class()
    machine.replayed = True
    declared = machine_class.setup_state()
    rules = {rule.function.__name__: rule for rule in declared.rules + declared.initializers}
    by_name = {}
    lines = [f"state = {machine_class.__name__}()"]
    _replay_notes = lines
    try:
        for index, step in enumerate(steps):
            rule = rules[step.rule]
            if not all(precondition(machine) for precondition in rule.preconditions):
                return Replay(lines, invalid=f"step {index}: {step.rule}'s precondition does not hold")
            arguments = {}
            for key, value in step.arguments.items():
                found = _still_offered(machine, rule.arguments.get(key), value, by_name)
                if found is _NOT_OFFERED:
                    return Replay(lines, invalid=f"step {index}: {step.rule}({key}={value!r}) is not offered")
                arguments[key] = found
            machine.reserved_names = list(step.created)
            before = len(machine.handles)
            done = Step(step.rule, arguments, list(step.created), step.several)
            lines.append(done)
            try:
                rule.function(machine, **arguments)
                for invariant in declared.invariants:
                    if all(precondition(machine) for precondition in invariant.preconditions):
                        invariant.function(machine)
            except Exception as error:
                return Replay(lines, error=error, at=index)
            made = [handle.name for handle in machine.handles[before:]]
            if made != step.created:
                return Replay(lines, invalid=f"step {index}: {step.rule} made {made}, not {step.created}")
            by_name.update((handle.name, handle) for handle in machine.handles[before:])
        return Replay(lines)
    finally:
        try:
            machine.teardown()
        finally:
            _replay_notes = None


_NOT_OFFERED = object()


def _still_offered(machine, strategy, value, by_name):
    """The value the machine offers now that prints as ``value`` did, or _NOT_OFFERED."""
    offer = _OFFERS.get(strategy)
    if offer is None:
        return value  # a constant strategy (sampled_from, booleans): any drawn value stays valid
    method, args = offer
    matches = [choice for choice in getattr(machine, method)(*args) if repr(choice) == repr(value)]
    return matches[0] if len(matches) == 1 else _NOT_OFFERED


def signature(error):
    """What makes two failures the same: the exception's class, the rule ids its message cites,
    and the message with every number set aside (keys and counters move when a step goes)."""
    message = str(error)
    return type(error).__name__, tuple(rules.cited(message)), re.sub(r"\d+", "#", message)


def prune(machine_class, steps, budget=300):
    """The shortest program found by leaving out steps of ``steps`` (which must fail) one at a time,
    from the last, until no step can go; ``budget`` bounds the replays.  Returns the final replay
    (of the pruned program) and the pruned steps, or (None, steps) if ``steps`` does not fail when
    replayed (a flaky implementation)."""
    first = replay(machine_class, steps)
    if first.error is None:
        return None, steps
    wanted = signature(first.error)
    kept = list(steps[:first.at + 1])
    best = first
    changed = True
    while changed and budget > 0:
        changed = False
        # Never the setup (step 0) nor the failing step itself.
        for index in reversed(range(1, len(kept) - 1)):
            if budget <= 0:
                break
            budget -= 1
            candidate = kept[:index] + kept[index + 1:]
            attempt = replay(machine_class, candidate)
            if attempt.error is not None and signature(attempt.error) == wanted:
                kept = candidate[:attempt.at + 1]
                best = attempt
                changed = True
    return best, kept
