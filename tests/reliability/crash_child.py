"""The child process of the crash test (test_crash.py), and the rules for checking its database.

Run as ``python crash_child.py DATABASE``, then write "go" to its stdin: it commits generation
after generation through a uow session and prints each generation number once ``commit()`` has
returned, until it is killed.

Each generation is recognisable on disk.  The state after committing generation g is:

* rows ``g+1 .. g+WINDOW`` in ``crash_rows``, every one with ``gen = g`` and ``payload(id, g)``;
* the counter row with ``gen = g`` and ``version = g + 1``.

Committing g from g-1 deletes row g, updates the other rows, inserts row g+WINDOW inside a
savepoint that is released, and (every third generation) inserts and flushes a junk row inside a
savepoint that is then rolled back.  So a torn commit, a lost acknowledged commit, or a leaked
savepoint all show up as a state that matches no generation.
"""

import sqlite3
import sys

import uow
from uow import Column, Entity

WINDOW = 40


class CrashBase(Entity, abstract=True):
    pass


class CrashRow(CrashBase, table="crash_rows"):
    id: int = Column(primary_key=True)
    gen: int
    payload: str


class CrashCounter(CrashBase, table="crash_counter"):
    id: int = Column(primary_key=True)
    gen: int
    version: int = Column(version=True)


def payload(row_id, gen):
    return f"{row_id}:{gen}:" + "x" * 300


def create(path, journal_mode):
    conn = uow.connect(path)
    mode = conn.execute(f"PRAGMA journal_mode = {journal_mode}").fetchone()[0]
    assert mode.upper() == journal_mode.upper(), mode
    uow.create_all(conn, [CrashRow, CrashCounter])
    session = uow.Session(conn)
    session.add_all(CrashRow(id=i, gen=0, payload=payload(i, 0)) for i in range(1, WINDOW + 1))
    session.add(CrashCounter(id=1, gen=0))
    session.commit()
    session.close()
    conn.close()


def step(session, gen):
    """Commit generation ``gen`` (the database must hold generation gen - 1)."""
    counter = session.get(CrashCounter, 1)
    if counter.gen != gen - 1:
        raise AssertionError(f"expected generation {gen - 1} in the database, found {counter.gen}")
    for row in session.all(CrashRow):
        if row.id == gen:
            session.delete(row)
        else:
            row.gen = gen
            row.payload = payload(row.id, gen)
    with session.begin_nested():
        session.add(CrashRow(id=gen + WINDOW, gen=gen, payload=payload(gen + WINDOW, gen)))
    if gen % 3 == 0:
        discarded = session.begin_nested()
        session.add(CrashRow(id=10 ** 9 + gen, gen=-1, payload="rolled back"))
        session.flush()
        discarded.rollback()
    counter.gen = gen
    session.commit()


def committed_generation(path):
    """Check the database with plain sqlite3 and return the generation it holds.

    Raises AssertionError if integrity_check fails or the rows match no generation.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        check = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        assert check == ["ok"], f"integrity_check: {check}"
        (gen, version), = conn.execute("SELECT gen, version FROM crash_counter")
        rows = conn.execute("SELECT id, gen, payload FROM crash_rows ORDER BY id").fetchall()
        expected = [(i, gen, payload(i, gen)) for i in range(gen + 1, gen + WINDOW + 1)]
        assert version == gen + 1, f"counter at generation {gen} has version {version}"
        if rows != expected:
            wrong = [row[:2] for row in rows if row not in expected][:5]
            raise AssertionError(f"the rows match no generation (counter says {gen}): "
                                 f"{len(rows)} rows, unexpected {wrong}")
        return gen
    finally:
        conn.close()


def main(path):
    # The parent starts the next child while the current one runs, so the slow part (starting
    # Python, importing uow) overlaps; the database is opened only once the parent says "go".
    if sys.stdin.readline() != "go\n":
        return
    conn = uow.connect(path)
    session = uow.Session(conn)
    gen = session.get(CrashCounter, 1).gen + 1
    session.commit()
    print("ready", gen - 1, flush=True)
    while True:
        step(session, gen)
        print(gen, flush=True)
        gen += 1


if __name__ == "__main__":
    main(sys.argv[1])
