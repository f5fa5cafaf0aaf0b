"""Every open session of the process, for ``close_all_sessions()``.

SQLAlchemy's ``close_all_sessions()`` closes every session still open, typically at the end of a
test or before a process forks.  The sessions are held weakly (a session nobody references is
not kept alive for this), and a session leaves when it is closed or collected.

A session belongs to the thread that made it (``guard``), and its sqlite3 connection may be
unusable from any other; so ``close_all_sessions()`` closes the calling thread's sessions and
leaves the others' to their threads, with a :class:`~uow.errors.UowWarning` that says how many.
"""

import threading
import warnings
import weakref
from typing import Any

from .errors import UowWarning
from .transaction import TransactionState

_open: "weakref.WeakSet[Any]" = weakref.WeakSet()
_lock = threading.Lock()  # sessions are made in any thread; the set is read in another


def opened(session: Any) -> None:
    """A session was made: remember it (weakly) until close_all_sessions() or its collection."""
    with _lock:
        _open.add(session)


def close_all_sessions() -> int:
    """close() every open session of the calling thread; returns how many were closed.

    Sessions of other threads are left open (closing them here would use their connections from
    the wrong thread) and a UowWarning names how many; each thread closes its own.  A session
    whose close() fails (its connection was closed underneath it) does not stop the others from
    being closed; the first such error is raised at the end.
    """
    me = threading.get_ident()
    with _lock:
        sessions = [session for session in _open if session.transaction.state is not TransactionState.CLOSED]
    closed = 0
    failure: BaseException | None = None
    for session in sessions:
        if session.guard.owner_thread != me:
            continue
        try:
            session.close()
        except Exception as error:
            failure = failure or error
        else:
            closed += 1
        with _lock:
            _open.discard(session)
    others = [session for session in sessions if session.guard.owner_thread != me]
    if others:
        warnings.warn(
            f"close_all_sessions(): {len(others)} session(s) belong to other threads and were left open; "
            f"close each in the thread that made it",
            UowWarning, stacklevel=2,
        )
    if failure is not None:
        raise failure
    return closed
