"""Memory a session keeps after a large read, with the strong (default) and the weak identity map.

A batch job reads a table page by page and drops each page once it is done with it.  With the
strong map the session still holds every object it loaded; with ``weak_identity_map=True`` only
what the program still references.  This prints, for each, the memory the session holds at the
end of the read (and the peak during it), measured with tracemalloc after a full collection::

    PYTHONPATH=$PWD python -m bench.identity_memory            # 200,000 rows, pages of 1,000
    PYTHONPATH=$PWD python -m bench.identity_memory --rows 50000

Memory, not time, so one run is enough (tracemalloc slows the read; nothing here is timed).
"""

import argparse
import gc
import sqlite3
import tracemalloc

import uow
from uow import Column, Entity


class Base(Entity, abstract=True):
    pass


class Reading(Base, table="readings"):
    id: int = Column(primary_key=True)
    sensor: str
    value: float


def filled_database(rows: int) -> sqlite3.Connection:
    connection = uow.connect(":memory:")
    uow.create_all(connection, [Reading])
    connection.execute("BEGIN")
    connection.executemany("INSERT INTO readings (id, sensor, value) VALUES (?, ?, ?)",
                           ((i, f"sensor-{i % 97}", i * 0.5) for i in range(1, rows + 1)))
    connection.execute("COMMIT")
    return connection


def read_in_pages(connection: sqlite3.Connection, weak: bool, page: int) -> tuple[int, int, int, int]:
    """(bytes held after the read, peak bytes, objects left in the identity map, rows read)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        session = uow.Session(connection, weak_identity_map=weak)
        total = 0
        count = 0
        last = 0
        while True:
            readings = session.select(Reading).where(Reading.id > last).order_by(Reading.id).limit(page).all()
            if not readings:
                break
            total += sum(reading.value for reading in readings)  # the batch job's work
            count += len(readings)
            last = readings[-1].id
            del readings
        session.commit()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        peak = tracemalloc.get_traced_memory()[1] - before
        left = len(session.identity_map)
        session.close()
    finally:
        tracemalloc.stop()
    return held, peak, left, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--page", type=int, default=1000)
    options = parser.parse_args()
    connection = filled_database(options.rows)
    print(f"Reading {options.rows:,} rows in pages of {options.page:,}, each page dropped after use")
    print(f"{'identity map':<14}{'held after the read':>22}{'peak during it':>18}{'objects still mapped':>24}")
    for weak in (False, True):
        held, peak, left, count = read_in_pages(connection, weak, options.page)
        assert count == options.rows, (count, options.rows)
        label = "weak" if weak else "strong"
        print(f"{label:<14}{held / 2**20:>18.1f} MiB{peak / 2**20:>14.1f} MiB{left:>24,}")


if __name__ == "__main__":
    main()
