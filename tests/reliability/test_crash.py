"""Crash test: SIGKILL a process in the middle of uow commits.

A child process (crash_child.py) commits generation after generation on a file database, printing
each one after ``commit()`` returns.  The parent kills it with SIGKILL at a random moment
20-150 ms after it is ready, then checks, every time:

* ``PRAGMA integrity_check`` is ok (hot-journal / WAL recovery worked);
* the database holds exactly the state of one generation, no older than the last acknowledged
  one and at most one newer (the commit in flight when the signal arrived);
* a new uow session on the recovered file can flush and commit the next generation.

30 kills per journal mode by default; set UOW_CRASH_KILLS to run more.
"""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

import uow

from . import crash_child

KILLS = int(os.environ.get("UOW_CRASH_KILLS", "30"))
CHILD = os.path.join(os.path.dirname(__file__), "crash_child.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


def _spawn(path):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # Unbuffered: the parent reads the "ready" line itself and the rest with communicate(), which
    # reads the pipe directly, so nothing may sit in a Python-side buffer in between.
    return subprocess.Popen([sys.executable, CHILD, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, bufsize=0)


def _kill_once(child, rng):
    """Let the (already started) child run, kill it after a random delay; return (generation it
    started from, acknowledged generations)."""
    try:
        child.stdin.write(b"go\n")
        child.stdin.flush()
        ready = child.stdout.readline()
        if not ready.startswith(b"ready"):
            child.kill()
            _, err = child.communicate()
            raise AssertionError(f"the child did not start: {ready!r} {err.decode()[-2000:]}")
        time.sleep(rng.uniform(0.020, 0.150))
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate()
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == -signal.SIGKILL, (
        f"the child stopped by itself (exit {child.returncode}) before it was killed:\n{err.decode()[-2000:]}")
    lines = out.split(b"\n")
    complete = lines[:-1]  # the last piece has no newline: a number cut off by the kill, or empty
    return int(ready.split()[1]), [int(line) for line in complete]


@pytest.mark.parametrize("journal_mode", ["DELETE", "WAL"])
def test_sigkill_during_commits(journal_mode, tmp_path):
    path = str(tmp_path / "crash.db")
    crash_child.create(path, journal_mode)
    rng = random.Random(f"uow-crash-{journal_mode}")
    acknowledged_total = 0
    last_acknowledged = 0
    waiting = _spawn(path)
    try:
        for kill in range(KILLS):
            child, waiting = waiting, (_spawn(path) if kill + 1 < KILLS else None)
            started_from, acknowledged = _kill_once(child, rng)
            assert started_from == last_acknowledged
            assert acknowledged == list(range(started_from + 1, started_from + 1 + len(acknowledged)))
            if acknowledged:
                last_acknowledged = acknowledged[-1]
            acknowledged_total += len(acknowledged)

            found = crash_child.committed_generation(path)
            assert found >= last_acknowledged, (
                f"kill {kill}: commit {last_acknowledged} was acknowledged but the database holds generation {found}")
            assert found <= last_acknowledged + 1, (
                f"kill {kill}: generation {found} is more than one commit past the last acknowledged one")

            # Reopen through uow: the recovered file accepts the next flush and commit.
            conn = uow.connect(path)
            session = uow.Session(conn)
            crash_child.step(session, found + 1)
            session.close()
            conn.close()
            assert crash_child.committed_generation(path) == found + 1
            last_acknowledged = found + 1
    finally:
        if waiting is not None:
            waiting.kill()
            waiting.communicate()
    # The kills must have landed among commits, not only before the first one.
    assert acknowledged_total >= KILLS, f"only {acknowledged_total} commits were acknowledged in {KILLS} runs"
