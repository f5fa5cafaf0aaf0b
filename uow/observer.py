"""Where the session's events happen, and what a listener may not do while they run.

The core session emits an event before and after each flush, begin, commit, rollback and
savepoint move (:meth:`Observer.around`), whether or not anybody listens: where a listener may
run is part of how a flush or a commit proceeds, so it is visible in the core.  Who listens is
the ``listeners`` object: in the core, :data:`UNOBSERVED` (nobody); ``uow.Session`` gives each
session the listeners of ``features.events``.

While listeners run, the observer knows which event they belong to (``listening``): a listener
may stage work, but cannot begin or end a flush, transaction or savepoint, since the operation
that called it is in the middle of doing so (:meth:`Observer.refuse_in_listener`).  The session,
the flush and the transaction boundaries call it; it calls only the listeners.
"""

from typing import Any, Protocol

from .errors import TransactionError

# What is in progress while the listeners of each event run, for the re-entrancy refusal.
_IN_PROGRESS = {
    "begin": "beginning the transaction",
    "flush": "the flush",
    "commit": "the commit",
    "rollback": "the rollback",
    "savepoint": "begin_nested()",
    "release_savepoint": "the release of a savepoint",
    "rollback_to_savepoint": "the rollback of a savepoint",
}


class Listening(Protocol):
    """Whoever is told of a session's events: :class:`Unobserved` in the core, the listeners of
    ``features.events`` in ``uow.Session``."""

    def listens(self, *names: str) -> bool: ...

    def dispatch(self, name: str, info: dict[str, Any]) -> None: ...


class Unobserved:
    """The core session's listeners: nobody listens to its events.  ``uow.Session`` replaces them
    with the listeners of ``features.events``."""

    def listens(self, *names: str) -> bool:
        return False

    def dispatch(self, name: str, info: dict[str, Any]) -> None:
        pass


UNOBSERVED = Unobserved()


class Observer:
    """The events of one session (see the module docstring)."""

    def __init__(self):
        self.listeners: Listening = UNOBSERVED  # who is told of each event: listens(*names), dispatch(name, info)
        self.listening = None        # the event whose listeners are running now, or None

    def listens(self, *names: str) -> bool:
        """True when someone listens to one of the events ``names``."""
        return self.listeners.listens(*names)

    def around(self, event, operation, result_name=None, **info):
        """Run ``operation`` between the ``before_`` and ``after_`` events called ``event``.

        ``result_name``: the after-event also receives the operation's result under that name
        (``savepoint=`` for the NestedTransaction that begin_nested() creates).
        """
        self.dispatch("before_" + event, info)
        try:
            result = operation()
        except BaseException as error:
            self.dispatch("after_" + event, dict(info, error=error))
            raise
        if result_name is not None:
            info[result_name] = result
        self.dispatch("after_" + event, dict(info, error=None))
        return result

    def dispatch(self, name: str, info: dict[str, Any]) -> None:
        """Tell the listeners of event ``name``, remembering while they run which event they belong
        to, to refuse what a listener may not do."""
        if not self.listeners.listens(name):
            return
        outer = self.listening
        self.listening = name
        try:
            self.listeners.dispatch(name, info)
        finally:
            self.listening = outer

    def refuse_in_listener(self, operation):
        """A listener cannot begin or end a flush, transaction or savepoint (see features.events): the
        operation that called it is in the middle of doing so."""
        event = self.listening
        if event is not None:
            doing = _IN_PROGRESS[event.split("_", 1)[1]]
            article = "an" if event.startswith("after") else "a"
            raise TransactionError(
                f"{operation}() was called from {article} {event} listener, while {doing} is in progress; a listener "
                f"cannot begin or end a flush, transaction or savepoint. Stage work there instead (add(), "
                f"delete(), changing objects), or call {operation}() once {doing} has returned"
            )

    def refuse_in_before_begin(self):
        """The database was used from a before_begin listener: that would begin the very transaction
        being begun."""
        if self.listening == "before_begin":
            raise TransactionError(
                "the database was used from a before_begin listener (a query, execute() or a write); that "
                "would begin the very transaction being begun. Use an after_begin listener instead"
            )
