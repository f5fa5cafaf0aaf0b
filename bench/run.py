"""Time uow against raw sqlite3, the floor, SQLAlchemy, Pony and peewee; print one table of medians.

    python bench/run.py [--rows 100000] [--repeat 5] [--only insert] [--json figures.json]

Each workload runs --repeat times per implementation on a fresh in-memory database; the table shows
each one's median time for every phase a user pays for, the bytes per loaded object, and whether
uow meets its two goals on the row: within 1.5x of the floor, and ahead of every peer.  A peer whose
package is not installed (the `bench` extra) is left out.  bench/README.rst says what each row
measures.
"""

import argparse
import importlib
import json
import os
import platform
import sqlite3
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (python bench/run.py): make the repository root importable, so that
    # `bench` and `uow` resolve as they do under python -m bench.run.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import floor, raw_sqlite
from bench.common import GET_HITS, LABELS, MEMORY, PHASE_TOTALS, SPARSE_ALL, SPARSE_FEW, make_data

RAW = "raw sqlite3"
FLOOR = "floor"
UOW = "uow"
SQLALCHEMY = "SQLAlchemy"
PONY = "Pony"
PEEWEE = "peewee"
# The sessions a user would pick instead of uow: (column name, bench module, the package it needs).
PEERS = [
    (SQLALCHEMY, "bench.sqlalchemy_orm", "sqlalchemy"),
    (PONY, "bench.pony_orm", "pony"),
    (PEEWEE, "bench.peewee_orm", "peewee"),
]

# uow's goals on every row (issue 15): faster than every peer that does the work of the row, and
# at most FLOOR_GOAL times the floor's time; a loaded object under MEMORY_GOAL bytes
# (about twice a plain object with a __dict__).
FLOOR_GOAL = 1.5
MEMORY_GOAL = 630
# A sparse flush must cost the same however many unchanged objects the session holds:
# the "all loaded" time may be at most this multiple of the "1% loaded" time.
SPARSE_SAME_TARGET = 1.5

WORKLOAD_NAMES = ["insert", "load", "sparse", "dense", "delete", "get", "parents", "memory"]


def import_optional(module_name: str, requirement: str):
    """Import one of the bench modules, or return None if the package it needs is missing.

    Only a missing `requirement` is forgiven.  Any other import error, including one inside an
    installed `requirement`, is a bug and is raised.
    """
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != requirement:
            raise
        print(f"{requirement} is not importable ({error}); its column is left out.", file=sys.stderr)
        return None


def measure(data, names: list[str], repeat: int, implementations: dict) -> dict:
    """Run the named workloads and return {label: {implementation: [seconds per repeat]}}.

    The implementations take turns inside each repeat, so a slow drift of the machine (heat,
    another process) spreads over all of them instead of landing on one.
    """
    runs = {}
    for name in names:
        print(f"{name} ...", file=sys.stderr, flush=True)
        for _ in range(repeat):
            for implementation, module in implementations.items():
                if name not in module.WORKLOADS:
                    continue  # peewee has no identity map: no get-hit workload
                for label, seconds in module.WORKLOADS[name](data).items():
                    runs.setdefault(label, {}).setdefault(implementation, []).append(seconds)
    for total, (first, second) in PHASE_TOTALS.items():
        if first in runs and second in runs:
            runs[total] = {implementation: [a + b for a, b in zip(times, runs[second][implementation])]
                           for implementation, times in runs[first].items() if implementation in runs[second]}
    return runs


def phases_done_elsewhere(implementations: dict) -> dict:
    """{label: {implementation: why}} for rows where an implementation does the row's work in
    another phase (a module's ``DONE_ELSEWHERE``): its time there is shown, but it is no rival on
    that row; the row of the two phases' total compares it."""
    elsewhere: dict = {}
    for name, module in implementations.items():
        for label, why in getattr(module, "DONE_ELSEWHERE", {}).items():
            elsewhere.setdefault(label, {})[name] = why
    return elsewhere


def summarize(runs: dict, elsewhere: dict | None = None) -> dict:
    """Medians, ratios to raw sqlite3 and uow's goal checks: the figures both outputs show.
    ``elsewhere`` (see :func:`phases_done_elsewhere`) names the peers left out of a row's race."""
    elsewhere = elsewhere or {}
    workloads = {}
    peer_names = [name for name, _, _ in PEERS]
    for label in LABELS:
        if label not in runs:
            continue
        medians = {name: statistics.median(times) for name, times in runs[label].items()}
        row = {"median": medians, "runs": runs[label]}
        if RAW in medians:
            row["ratio_to_raw"] = {name: median / medians[RAW] for name, median in medians.items()}
        if UOW in medians:
            peers = {name: medians[name] for name in peer_names
                     if name in medians and name not in elsewhere.get(label, {})}
            if peers:
                row["ahead_of_peers"] = medians[UOW] < min(peers.values())
            if label == MEMORY:
                row["goal"] = f"< {MEMORY_GOAL} B"
                row["within_goal"] = medians[UOW] < MEMORY_GOAL
            elif FLOOR in medians:
                row["uow_over_floor"] = medians[UOW] / medians[FLOOR]
                row["goal"] = f"<= {FLOOR_GOAL}x floor"
                row["within_goal"] = row["uow_over_floor"] <= FLOOR_GOAL
        workloads[label] = row
    sparse_same = {}
    if SPARSE_FEW in workloads:
        few = workloads[SPARSE_FEW]["median"]
        every = workloads[SPARSE_ALL]["median"]
        ratios = {name: every[name] / few[name] for name in few if name != RAW}
        sparse_same = {"ratios": ratios}
        if UOW in ratios:
            sparse_same["target"] = SPARSE_SAME_TARGET
            sparse_same["passed"] = ratios[UOW] <= SPARSE_SAME_TARGET
    return {"workloads": workloads, "sparse_all_over_few": sparse_same, "done_elsewhere": elsewhere}


def format_ms(seconds: float) -> str:
    milliseconds = seconds * 1000
    if milliseconds < 10:
        return f"{milliseconds:,.2f}"
    return f"{milliseconds:,.1f}"


def rst_table(header: list[str], body: list[list[str]]) -> str:
    """A reStructuredText simple table: the first column left-aligned, the rest right-aligned."""
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]
    border = "  ".join("=" * width for width in widths)

    def format_line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:])]
        return "  ".join([first] + rest).rstrip()

    lines = [border, format_line(header), border]
    lines += [format_line(cells) for cells in body]
    lines.append(border)
    return "\n".join(lines)


def report(summary: dict, implementations: list[str], title: str) -> str:
    """The text to print: a title line, the table of medians, and the notes under it."""
    header = ["workload"] + [f"{name}" for name in implementations]
    if UOW in implementations:
        header += ["uow/floor", "<=1.5x floor", "ahead of peers"]
    body = []
    for label, row in summary["workloads"].items():
        medians = row["median"]
        cells = [label]
        for name in implementations:
            if name not in medians:
                cells.append("-")
            elif label == MEMORY:
                cells.append(f"{medians[name]:,.0f} B")
            else:
                cells.append(format_ms(medians[name]))
        if UOW in implementations:
            cells.append(f"{row['uow_over_floor']:.2f}x" if "uow_over_floor" in row else "")
            cells.append(mark(row.get("within_goal")) + (f" ({row['goal']})" if label == MEMORY else ""))
            cells.append(mark(row.get("ahead_of_peers")))
        body.append(cells)
    lines = [title, "", rst_table(header, body), ""]
    lines.append("Times in ms (median); '-': the implementation has no such phase (see bench/README.rst).")
    if GET_HITS in summary["workloads"]:
        lines.append(f"For {GET_HITS!r} the raw column is a plain dict lookup d[k] over the same keys.")
    if FLOOR in implementations:
        lines.append("floor: the least Python any session must run (bench/floor.py).")
    for label, why_by_name in summary["done_elsewhere"].items():
        if label in summary["workloads"]:
            for name, why in why_by_name.items():
                lines.append(f"{label!r}: {name} is not counted among the peers, since {why}.")
    sparse_same = summary["sparse_all_over_few"]
    if sparse_same:
        parts = []
        for name, ratio in sparse_same["ratios"].items():
            part = f"{name} {ratio:.2f}x"
            if name == UOW:
                part += f" (target <= {sparse_same['target']:.1f}x: {mark(sparse_same['passed'])})"
            parts.append(part)
        lines.append("Sparse flush, all loaded / 1% loaded: " + ", ".join(parts) + ".")
    return "\n".join(lines)


def mark(passed: bool | None) -> str:
    return {True: "yes", False: "MISS", None: ""}[passed]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows per table (default 100000)")
    parser.add_argument("--repeat", type=int, default=5, help="repeats per workload (default 5)")
    parser.add_argument("--only", choices=WORKLOAD_NAMES, help="run just this workload")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE as JSON")
    args = parser.parse_args(argv)
    if args.rows < 100 or args.repeat < 1:
        parser.error("--rows must be at least 100 and --repeat at least 1")

    implementations = {RAW: raw_sqlite, FLOOR: floor}
    uow_module = import_optional("bench.uow_orm", "uow")
    if uow_module is not None:
        implementations[UOW] = uow_module
    for name, module_name, requirement in PEERS:
        module = import_optional(module_name, requirement)
        if module is not None:
            implementations[name] = module

    names = [args.only] if args.only else WORKLOAD_NAMES
    runs = measure(make_data(args.rows), names, args.repeat, implementations)
    summary = summarize(runs, phases_done_elsewhere(implementations))

    versions = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for name, _, _ in PEERS:
        if name in implementations:
            versions[name] = implementations[name].VERSION
    title = ", ".join(f"{name} {version}" for name, version in versions.items())
    title = title.replace("python", "Python").replace("sqlite", "SQLite")
    title += f"; {platform.machine()}, {os.cpu_count()} cores; {args.rows:,} rows, median of {args.repeat} runs"
    print(report(summary, list(implementations), title))

    if args.json:
        figures = {**versions, "rows": args.rows, "repeat": args.repeat, **summary}
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
