"""The conformance report: run the machine against one adapter and print what it found.

``python -m uow_conformance mypkg.adapter:Adapter [--profile ci]`` (installed), or in a checkout
of uow ``python -m properties ...`` and ``python -m properties.report ...``.  The adapter is
"module:factory" or a short name (uow, sqlalchemy, pony), default ``$UOW_IMPL`` or uow; the
settings are the Hypothesis profile named (see profiles.py), default ``$HYPOTHESIS_PROFILE`` or
ci.  The report lists the capabilities the implementation declares where it differs from the
specification (RULES.rst), what the machine therefore does not draw, how many of the generated
programs reached each rule and each interesting situation, and, for a failure, the shrunk and
pruned program (see program.py), the message, the text of each rule it cites, and the command
that reproduces it.  The exit status is 1 when the run failed.
"""

import argparse
import io
import os
import re
import sys
import time
import warnings

import hypothesis
from hypothesis import reproduce_failure, settings
from hypothesis.reporting import with_reporter
from hypothesis.stateful import get_state_machine_test

from . import profiles, program, rules
from .adapter import AdapterNotFound, SHIPPED, load_adapter, skipped
from .relations_machine import build_machine

_BLOB = re.compile(r"@reproduce_failure\('[^']+', b'([^']+)'\)")


def main(argv=None):
    """Parse the command line, run, print the report; the exit status."""
    command = f"python -m {__package__}"
    parser = argparse.ArgumentParser(
        prog=command, description="Run the conformance machine against a unit of work and print a report.")
    parser.add_argument("adapter", nargs="?", default=os.environ.get("UOW_IMPL") or "uow",
                        help=f"'package.module:factory', or one of {', '.join(SHIPPED)} "
                             "(default: $UOW_IMPL, else uow)")
    parser.add_argument("--profile", default=os.environ.get("HYPOTHESIS_PROFILE", "ci"), choices=profiles.NAMES,
                        help="Hypothesis settings (default: $HYPOTHESIS_PROFILE, else ci)")
    parser.add_argument("--reproduce", metavar="BLOB",
                        help="replay one failing program, as a report printed it, instead of searching")
    options = parser.parse_args(argv)
    try:
        factory = load_adapter(options.adapter)
    except AdapterNotFound as error:
        parser.error(str(error))
    return report(factory, options.adapter, options.profile, options.reproduce, command)


def report(factory, spec, profile, blob, command):
    """Run the machine for ``factory`` under ``profile`` (one program if ``blob``), print the report."""
    adapter = factory()
    machine = build_machine(factory)
    programs = []  # (events seen, steps, failed) of each program, in the order Hypothesis ran them
    machine.observer = staticmethod(lambda seen, steps, failed: programs.append((set(seen), steps, failed)))
    # print_blob: the failing program's choices, for the reproduction command.
    test = get_state_machine_test(machine, settings=settings(settings.get_profile(profile), print_blob=True))
    if blob is not None:
        test = reproduce_failure(hypothesis.__version__, blob.encode())(test)
    output = io.StringIO()
    started = time.perf_counter()
    failure = None
    with with_reporter(lambda text: output.write(f"{text}\n")), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. SQLAlchemy's warnings about rows a DELETE missed
        try:
            with profiles.fixed_draws():  # the programs CI's test_conformance draws (see profiles.fixed_draws)
                test()
        except Exception as error:
            failure = error
    elapsed = time.perf_counter() - started
    # Hypothesis stops generating at the first failing program (report_multiple_bugs is off in
    # every profile); the runs after it shrink that failure and are not counted as programs.
    first_failed = next((index for index, (_, _, failed) in enumerate(programs) if failed), len(programs) - 1)
    generated = programs[:first_failed + 1]

    what = "one program replayed" if blob is not None else f"{len(generated)} programs generated"
    shrinking = len(programs) - len(generated)
    print(f"Conformance of {adapter.name} ({machine.__name__}), profile {profile}: {what}"
          + (f" (and {shrinking} runs shrinking the failure)" if shrinking else "") + f", {elapsed:.1f} s")
    print()
    _print_declarations(adapter)
    print()
    _print_reach(machine, [seen for seen, _, _ in generated])
    print()
    if failure is None:
        print("Result: PASSED")
        return 0
    print(f"Result: FAILED ({type(failure).__name__})")
    _print_failure(machine, failure, programs[-1][1] if programs else [], output.getvalue())
    found = _BLOB.search(output.getvalue() + "\n".join(getattr(failure, "__notes__", [])))
    print()
    if found is not None:
        print(f"Reproduce it (Hypothesis {hypothesis.__version__}):")
        print(f"  {command} {spec} --profile {profile} --reproduce {found.group(1)}")
    return 1


def _print_declarations(adapter):
    print("Declared differences from the specification:")
    for name, value in sorted(adapter.capabilities.differences().items()):
        reason = adapter.reasons.get(name)
        print(f"  {name} = {value!r}" + (f"  ({reason})" if reason else ""))
    print("Not drawn, by capability:")
    for line in skipped(adapter.capabilities) or ["(nothing)"]:
        print(f"  {line}")


def _print_reach(machine, generated):
    print("Generated programs reaching each rule:")
    for rule in sorted(rule.function.__name__ for rule in machine.setup_state().rules):
        reached = sum(1 for seen in generated if any(name.startswith(f"rule: {rule}") for name in seen))
        print(f"  {rule:20} {reached:6}")
    tally = {}
    for seen in generated:
        for name in seen:
            if not name.startswith("rule: "):
                tally[name] = tally.get(name, 0) + 1
    print("Generated programs reaching each situation:")
    for name, count in sorted(tally.items(), key=lambda item: (-item[1], item[0])):
        print(f"  {count:6}  {name}")


def _print_failure(machine, failure, steps, hypothesis_output):
    """The pruned program and its message; Hypothesis's own printout if pruning cannot replay it."""
    final, kept = program.prune(machine, steps) if steps else (None, steps)
    if final is None:
        print("(the shrunk program did not fail again when replayed, so it is printed as Hypothesis ran it)")
        print(str(failure))
        print(hypothesis_output.rstrip())
        print_rules(str(failure))
        return
    left_out = len(steps) - len(kept)
    print(str(final.error))
    print_rules(str(final.error))
    print()
    print(f"The program: {len(kept)} steps (Hypothesis shrank it to {len(steps)}; each step left out changed "
          f"nothing for the failure):" if left_out else f"The program: {len(kept)} steps (as Hypothesis shrank it; "
          "leaving out any one step changes the failure):")
    for line in final.lines:
        print(f"  {line}" if isinstance(line, program.Step) or line.startswith("state =") else f"  # {line}")


def print_rules(text):
    """The id and text (RULES.rst) of every rule a failure's message cites: first each rule it
    broke (cited as ``[ID]``), then the rules the oracle applied in the step."""
    written = rules.load()
    cited = [rule for rule in rules.cited(text) if rule in written]
    if not cited:
        return
    broken = [rule for rule in cited if f"[{rule}]" in text]
    print()
    print("Rules cited (RULES.rst):")
    for rule in broken + [rule for rule in cited if rule not in broken]:
        print(f"  {rule}  {written[rule]}")

if __name__ == "__main__":
    sys.exit(main())
