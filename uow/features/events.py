"""Lifecycle events: functions called before and after each transaction and flush operation.

The events, in the order an operation emits them (Ormdantic's list)::

    before_begin, after_begin
    before_flush, after_flush
    before_commit, after_commit
    before_rollback, after_rollback
    before_savepoint, after_savepoint
    before_release_savepoint, after_release_savepoint
    before_rollback_to_savepoint, after_rollback_to_savepoint

A listener is registered on one session, or on the ``Session`` class for every session::

    def audit(session, *, error=None, **info):
        print("flushed" if error is None else f"flush failed: {error}")

    uow.listen(session, "after_flush", audit)
    uow.listen(uow.Session, "before_commit", check_invariants)

Listeners are called as ``listener(session, **info)``.  Every ``after_*`` event passes
``error=None`` when the operation succeeded and the exception when it failed.  The release and
rollback-to events pass ``savepoint=`` (the NestedTransaction); so does ``after_savepoint`` once
the savepoint exists (``before_savepoint`` comes before it does).  An exception raised by a
``before_*`` listener aborts the operation before it has changed anything, and propagates to
the caller.

**What a listener may do with its session.**  While a listener runs, the operation that emitted
its event is in progress.  The listener may read (``get``, ``filter``, ``execute``; queries do not
autoflush inside a listener) and stage work (``add``, ``delete``, changing objects).  It may not
begin or end a flush, a transaction or a savepoint (``flush``, ``commit``, ``rollback``,
``begin``, ``begin_nested``, a savepoint's ``commit``/``rollback``, ``close``, ``reset``, and
``upsert``, which flushes first): those
raise TransactionError naming the operation and the listener, and the error propagates out of
the operation that emitted the event (as a listener's own exception would).  Staged work goes
where the event sits: into the flush in progress (``before_flush``, and ``before_begin`` /
``after_begin`` of the transaction a flush begins: the flush is planned again), into the commit
in progress (``before_commit``, ``after_flush``: commit() flushes until nothing is left), into the
savepoint just opened, or to the next flush (``after_commit``, ``after_rollback``, ...); work
staged in ``before_rollback`` or ``before_rollback_to_savepoint`` is undone by that rollback.  A
``before_begin`` listener may not use the database at all: that would begin the very transaction
being begun (use ``after_begin``).

Class-wide listeners run before the session's own, each group in registration order.

The core session (``uow.session``) emits every event at the place it happens, through its
``observer``; in the core alone nobody listens.  ``uow.Session`` gives each session a
:class:`SessionEvents` as the listeners of its observer, which call the listeners registered here.
"""

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import UowError

EVENT_NAMES = (
    "before_begin", "after_begin",
    "before_flush", "after_flush",
    "before_commit", "after_commit",
    "before_rollback", "after_rollback",
    "before_savepoint", "after_savepoint",
    "before_release_savepoint", "after_release_savepoint",
    "before_rollback_to_savepoint", "after_rollback_to_savepoint",
)


class Listeners:
    """The listeners of one session, or of all sessions (kept on the Session class)."""

    def __init__(self) -> None:
        self.by_name: dict[str, list[Callable[..., object]]] = {}

    def add(self, name: str, listener: Callable[..., object]) -> None:
        self.by_name.setdefault(name, []).append(listener)

    def remove(self, name: str, listener: Callable[..., object]) -> None:
        try:
            self.by_name.get(name, []).remove(listener)
        except ValueError:
            raise UowError(f"remove_listener(): {listener!r} is not listening to {name!r}") from None

    def get(self, name: str) -> Sequence[Callable[..., object]]:
        return self.by_name.get(name, ())


def _check_name(name):
    if name not in EVENT_NAMES:
        raise UowError(f"there is no event {name!r}; the events are: {', '.join(EVENT_NAMES)}")


def _listeners_of(target, operation):
    listeners = getattr(target, "listeners", None)
    if not isinstance(listeners, Listeners):
        raise UowError(f"{operation}(): {target!r} is neither a Session nor the Session class")
    return listeners


def listen(target: object, name: str, listener: Callable[..., object]) -> None:
    """Call ``listener(session, **info)`` on event ``name`` of ``target`` (a Session, or the Session class)."""
    _check_name(name)
    if not callable(listener):
        raise UowError(f"listen(): the listener for {name!r} must be callable, got {listener!r}")
    _listeners_of(target, "listen").add(name, listener)


def remove_listener(target: object, name: str, listener: Callable[..., object]) -> None:
    """Undo listen()."""
    _check_name(name)
    _listeners_of(target, "remove_listener").remove(name, listener)


class SessionEvents:
    """The observer of one session (see ``observer``): the listeners of its class, then its own."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def listens(self, *names: str) -> bool:
        """True when any listener (the class's or the session's) listens to one of ``names``."""
        session = self.session
        class_listeners = type(session).listeners
        return any(class_listeners.get(name) or session.listeners.get(name) for name in names)

    def dispatch(self, name: str, info: dict[str, Any]) -> None:
        """Call every listener of ``name``: the class-wide ones first, then the session's."""
        session = self.session
        for listener in type(session).listeners.get(name):
            listener(session, **info)
        for listener in session.listeners.get(name):
            listener(session, **info)
