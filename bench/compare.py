"""Time uow's workloads in two checkouts in one run, in CPU time, and print one table.

    python bench/compare.py BEFORE_DIR AFTER_DIR [--rows 100000] [--repeat 7] [--only load]

A change that should not cost speed (a restructuring, a refactor) is checked by this: the same
workloads (bench/uow_orm.py of each checkout) on the same data, the two checkouts taking turns
inside every repeat, so a drift of the shared machine lands on both.  Each turn is a fresh
interpreter whose `uow` and `bench` come from that checkout.  Times are CPU time of the process
(time.process_time), which another busy process on the machine disturbs far less than the wall
clock that bench/run.py shows; the table gives the median of the repeats and after/before.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

# The worker: run the checkout's uow workloads once with a CPU-time clock and print the seconds.
# bench.uow_orm imports start_clock and clock by name, so they are replaced before it is imported.
# (Written out, not bench.common.use_cpu_clock: the BEFORE checkout may be older than that helper.)
WORKER = """
import gc, json, sys, time
import bench.common as common
def start_clock():
    gc.collect()
    return time.process_time()
common.start_clock = start_clock
common.clock = time.process_time
from bench import uow_orm
data = common.make_data(int(sys.argv[1]))
seconds = {}
for name in sys.argv[2].split(","):
    seconds.update(uow_orm.WORKLOADS[name](data))
print(json.dumps(seconds))
"""


def run_once(checkout: Path, rows: int, names: list[str]) -> dict[str, float]:
    """One repeat of the named workloads in a fresh interpreter importing from `checkout`."""
    environment = dict(os.environ, PYTHONPATH=str(checkout))
    result = subprocess.run(
        [sys.executable, "-c", WORKER, str(rows), ",".join(names)],
        cwd=checkout, env=environment, capture_output=True, text=True, check=True,
    )
    return json.loads(result.stdout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="checkout to compare against")
    parser.add_argument("after", type=Path, help="checkout under test")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--only", action="append", help="a workload name (repeatable)")
    args = parser.parse_args(argv)
    names = args.only or ["insert", "load", "sparse", "dense", "delete", "get", "parents"]

    runs = {"before": {}, "after": {}}
    for repeat in range(args.repeat):
        print(f"repeat {repeat + 1}/{args.repeat} ...", file=sys.stderr, flush=True)
        # Alternate which checkout goes first, so neither always runs on a warmer machine.
        order = ["before", "after"] if repeat % 2 == 0 else ["after", "before"]
        for side in order:
            for label, seconds in run_once(getattr(args, side), args.rows, names).items():
                runs[side].setdefault(label, []).append(seconds)

    print(f"CPU ms, median of {args.repeat}, {args.rows:,} rows; before={args.before} after={args.after}")
    print(f"{'workload':32} {'before':>9} {'after':>9} {'after/before':>13}")
    for label, before_runs in runs["before"].items():
        before = statistics.median(before_runs)
        after = statistics.median(runs["after"][label])
        print(f"{label:32} {before * 1000:9.1f} {after * 1000:9.1f} {after / before:12.3f}x")


if __name__ == "__main__":
    main()
