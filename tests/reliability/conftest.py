"""The reliability suite's figures, printed at the end of a run.

Each searching module counts what it tried in a ``TALLY`` (faults per kind and statement, names
per position and outcome, pairs, bad inputs, values per channel and outcome); the summary shows
them so that a CI log says how much was searched, not only that nothing failed.
"""

import sys

MODULES = ["test_fault_after_statement", "test_fault_in_read", "test_declared_names", "test_key_pairs", "test_entry_points",
           "test_value_limits", "test_transaction_ended"]


def pytest_terminal_summary(terminalreporter):
    tallies = []
    for name in MODULES:
        module = sys.modules.get(f"{__package__}.{name}")
        tally = getattr(module, "TALLY", None)
        if tally:
            tallies.append((name, tally))
    if not tallies:
        return
    terminalreporter.section("reliability figures")
    for name, tally in tallies:
        terminalreporter.write_line(f"{name}: {sum(tally.values())} tried")
        for key, count in sorted(tally.items(), key=lambda item: str(item[0])):
            terminalreporter.write_line(f"    {key}: {count}")
