"""Time uow against raw sqlite3, the floor and the SQLAlchemy 2.x ORM, and print one table of medians.

    python bench/run.py [--rows 100000] [--repeat 5] [--only insert] [--json figures.json]

Each workload runs --repeat times per implementation on a fresh in-memory database; the table shows
the median time and its ratio to raw sqlite3 (for the identity-map row: to a dict lookup), with
uow's target next to it.  bench/README.rst says what each row measures.
"""

import argparse
import importlib
import json
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
from bench.common import (
    DELETE_FLUSH,
    DENSE_FLUSH,
    GET_HITS,
    INSERT_FLUSH,
    INSERT_TOTAL,
    LABELS,
    LOAD,
    PARENT_CHILD,
    SPARSE_ALL,
    SPARSE_FEW,
    make_data,
)

RAW = "raw sqlite3"
FLOOR = "floor"
UOW = "uow"
SQLALCHEMY = "SQLAlchemy"

# The largest uow / raw sqlite3 ratio each row may show (GET_HITS: uow / dict lookup).
TARGETS = {
    INSERT_TOTAL: 3.0,
    INSERT_FLUSH: 1.6,
    LOAD: 2.5,
    SPARSE_FEW: 2.0,
    SPARSE_ALL: 2.0,
    DENSE_FLUSH: 2.0,
    DELETE_FLUSH: 2.0,
    GET_HITS: 10.0,
    PARENT_CHILD: 3.0,
}
# A sparse flush must cost the same however many unchanged objects the session holds:
# the "all loaded" time may be at most this multiple of the "1% loaded" time.
SPARSE_SAME_TARGET = 1.5

WORKLOAD_NAMES = ["insert", "load", "sparse", "dense", "delete", "get", "parents"]


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
                for label, seconds in module.WORKLOADS[name](data).items():
                    runs.setdefault(label, {}).setdefault(implementation, []).append(seconds)
    return runs


def summarize(runs: dict) -> dict:
    """Medians, ratios to raw sqlite3 and target checks: the figures both outputs show."""
    workloads = {}
    for label in LABELS:
        if label not in runs:
            continue
        medians = {name: statistics.median(times) for name, times in runs[label].items()}
        ratios = {name: median / medians[RAW] for name, median in medians.items()}
        row = {"median_seconds": medians, "runs_seconds": runs[label], "ratio_to_raw": ratios}
        if label in TARGETS and UOW in ratios:
            row["target"] = TARGETS[label]
            row["passed"] = ratios[UOW] <= TARGETS[label]
        workloads[label] = row
    sparse_same = {}
    if SPARSE_FEW in workloads:
        few = workloads[SPARSE_FEW]["median_seconds"]
        every = workloads[SPARSE_ALL]["median_seconds"]
        ratios = {name: every[name] / few[name] for name in few if name != RAW}
        sparse_same = {"ratios": ratios}
        if UOW in ratios:
            sparse_same["target"] = SPARSE_SAME_TARGET
            sparse_same["passed"] = ratios[UOW] <= SPARSE_SAME_TARGET
    return {"workloads": workloads, "sparse_all_over_few": sparse_same}


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
    header = ["workload", "raw ms"]
    if FLOOR in implementations:
        header += ["floor/raw"]
    if UOW in implementations:
        header += ["uow ms", "uow/raw", "target", ""]
    if SQLALCHEMY in implementations:
        header += ["SQLAlchemy ms", "SA/raw"]
    body = []
    for label, row in summary["workloads"].items():
        medians = row["median_seconds"]
        ratios = row["ratio_to_raw"]
        cells = [label, format_ms(medians[RAW])]
        if FLOOR in implementations:
            cells += [f"{ratios[FLOOR]:.2f}x"]
        if UOW in implementations:
            target = f"<= {row['target']:.1f}x" if "target" in row else ""
            mark = ""
            if "passed" in row:
                mark = "pass" if row["passed"] else "MISS"
            cells += [format_ms(medians[UOW]), f"{ratios[UOW]:.2f}x", target, mark]
        if SQLALCHEMY in implementations:
            cells += [format_ms(medians[SQLALCHEMY]), f"{ratios[SQLALCHEMY]:.2f}x"]
        body.append(cells)
    lines = [title, "", rst_table(header, body), ""]
    if GET_HITS in summary["workloads"]:
        lines.append(f"For {GET_HITS!r} the raw column is a plain dict lookup d[k] over the same keys.")
    if FLOOR in implementations:
        lines.append("floor/raw: the least Python any session must run (bench/floor.py); "
                     "a target below it is out of reach of a pure-Python session.")
    sparse_same = summary["sparse_all_over_few"]
    if sparse_same:
        parts = []
        for name, ratio in sparse_same["ratios"].items():
            part = f"{name} {ratio:.2f}x"
            if name == UOW:
                mark = "pass" if sparse_same["passed"] else "MISS"
                part += f" (target <= {sparse_same['target']:.1f}x: {mark})"
            parts.append(part)
        lines.append("Sparse flush, all loaded / 1% loaded: " + ", ".join(parts) + ".")
    return "\n".join(lines)


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
    sqlalchemy_module = import_optional("bench.sqlalchemy_orm", "sqlalchemy")
    if sqlalchemy_module is not None:
        implementations[SQLALCHEMY] = sqlalchemy_module

    names = [args.only] if args.only else WORKLOAD_NAMES
    runs = measure(make_data(args.rows), names, args.repeat, implementations)
    summary = summarize(runs)

    versions = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    if sqlalchemy_module is not None:
        versions["sqlalchemy"] = sqlalchemy_module.VERSION
    title = f"Python {versions['python']}, SQLite {versions['sqlite']}"
    if sqlalchemy_module is not None:
        title += f", SQLAlchemy {versions['sqlalchemy']}"
    title += f"; {args.rows:,} rows, median of {args.repeat} runs, times in ms"
    print(report(summary, list(implementations), title))

    if args.json:
        figures = {**versions, "rows": args.rows, "repeat": args.repeat, **summary}
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
