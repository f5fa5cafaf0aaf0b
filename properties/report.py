"""``python -m properties.report``: run the conformance machine once and print a short report.

The implementation is the one ``UOW_IMPL`` names (default: uow), the settings are the Hypothesis
profile ``HYPOTHESIS_PROFILE`` names (default: ci).  The report lists the capabilities the
implementation declares where it differs from the specification (RULES.rst), each with the
adapter's reason, what the machine therefore does not draw, how many programs reached each rule
and each interesting situation, and the shrunk program of a failure, if there is one, followed by
the text of every rule the failure cites.  The exit status is 1 when the run failed.
"""

import collections
import io
import os
import sys
import time
import warnings

from hypothesis import settings
from hypothesis.reporting import with_reporter
from hypothesis.stateful import run_state_machine_as_test

from . import profiles  # noqa: F401  (registers the profiles)
from . import rules
from .adapter import load_adapter, skipped
from .relations_machine import build_machine


def main():
    profile = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    factory = load_adapter()
    adapter = factory()
    machine = build_machine(factory)
    tally = collections.Counter()
    programs = []

    def observe(seen):
        programs.append(set(seen))
        tally.update(seen)

    machine.observer = staticmethod(observe)
    output = io.StringIO()
    started = time.perf_counter()
    failure = None
    with with_reporter(lambda text: output.write(f"{text}\n")), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. SQLAlchemy's warnings about rows a DELETE missed
        try:
            run_state_machine_as_test(machine, settings=settings(settings.get_profile(profile)))
        except Exception as error:
            failure = error
    elapsed = time.perf_counter() - started

    print(f"Conformance of {adapter.name} ({machine.__name__}), profile {profile}: "
          f"{len(programs)} programs in {elapsed:.1f} s")
    print()
    print("Declared differences from the specification:")
    for name, value in sorted(adapter.capabilities.differences().items()):
        reason = adapter.reasons.get(name)
        print(f"  {name} = {value!r}  ({reason or 'no reason given'})")
    print("Not drawn, by capability:")
    for line in skipped(adapter.capabilities) or ["  (nothing)"]:
        print(f"  {line}")
    print()
    print("Programs reaching each rule:")
    for rule in sorted(rule.function.__name__ for rule in machine.setup_state().rules):
        reached = sum(1 for seen in programs if any(name.startswith(f"rule: {rule}") for name in seen))
        print(f"  {rule:16} {reached:6}")
    print("Programs reaching each situation:")
    for name, count in sorted(tally.items(), key=lambda item: (-item[1], item[0])):
        if not name.startswith("rule: "):
            print(f"  {count:6}  {name}")
    print()
    if failure is None:
        print("Result: PASSED")
        return 0
    print(f"Result: FAILED ({type(failure).__name__})")
    print(str(failure))
    for line in getattr(failure, "__notes__", []):
        print(line)
    print(output.getvalue().rstrip())
    print_rules(str(failure))
    return 1


def print_rules(text):
    """The id and text (RULES.rst) of every rule a failure's message cites."""
    written = rules.load()
    cited = [rule for rule in rules.cited(text) if rule in written]
    if not cited:
        return
    print()
    print("Rules cited (properties/RULES.rst):")
    for rule in cited:
        print(f"  {rule}  {written[rule]}")


if __name__ == "__main__":
    sys.exit(main())
