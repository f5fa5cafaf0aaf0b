"""What an AsyncSession's objects refuse on the event loop's thread: implicit loads, and use mid-call.

A plain Session loads what is not loaded when it is read (an expired column, a collection, a
reference).  Under an AsyncSession that load would run SQL on the event loop's thread, blocking
every task, and on a connection the worker owns; so the hooks an entity calls on its session
(``hooks``) are replaced by :class:`AsyncHooks`, which refuse such a load with a LazyLoadError that
names the explicit way to load it, unless the identity map answers it without SQL.  They also
refuse an assignment while one of the session's calls is in flight on the worker
(WrongThreadError), since that call may be reading the very object.  On the worker (inside a call
or ``run_sync``) every hook behaves as the plain Session's.
"""

import threading
from typing import Any

from ..errors import LazyLoadError, WrongThreadError
from ..hooks import EntityHooks
from ..states import STATE_ATTRIBUTE

_get_ident = threading.get_ident


class AsyncHooks(EntityHooks):
    """The session's hooks under AsyncSession: a load asked for on any thread but the worker is refused
    (LazyLoadError) unless the identity map answers it without SQL; so is any use while a call is in
    flight (WrongThreadError, saying so)."""

    def __init__(self, session: Any, owner: Any) -> None:
        super().__init__(session)
        self.owner = owner  # the AsyncSession, whose worker says whether a call is in flight
        self.worker = _get_ident()  # made by the open call, on the worker

    def attribute_set(self, state: Any, name: str, value: object) -> None:
        if _get_ident() != self.worker and self.owner._worker is not None and self.owner._worker.in_flight:
            raise WrongThreadError(busy_message(f"setting {state.describe()}.{name}"))
        super().attribute_set(state, name, value)

    def load_expired(self, state: Any) -> None:
        if _get_ident() != self.worker:
            raise LazyLoadError(
                f"{state.describe()} has expired columns (expire(), expire_on_commit, a rollback); reading one would "
                f"load it on the event loop's thread. Load them first: await session.refresh(obj)")
        super().load_expired(state)

    def load_reference(self, state: Any, reference: Any, key_values: tuple[Any, ...]) -> object | None:
        if _get_ident() != self.worker:
            target = self.session.identity.get(reference.target, reference.foreign_key.target_key(list(key_values)))
            if target is not None and target.__dict__[STATE_ATTRIBUTE].mapper.pk_names[0] in target.__dict__:
                state.obj.__dict__[reference.name] = target  # held, not expired: no SQL needed
                return target
            raise LazyLoadError(not_loaded(state, reference.name))
        return super().load_reference(state, reference, key_values)

    def load_collection(self, state: Any, collection: Any) -> list[Any]:
        if _get_ident() != self.worker:
            raise LazyLoadError(not_loaded(state, collection.name))
        return super().load_collection(state, collection)


def not_loaded(state: Any, name: str) -> str:
    """Why ``state``'s relationship ``name`` was not loaded on the loop, and the ways to load it."""
    return (f"{state.describe()}.{name} is not loaded, and loading it would run SQL on the event loop's thread. "
            f"Load it first: await session.load_related([obj], {name!r}), or load=[{name!r}] in "
            f"await session.all()/filter(), or read it inside await session.run_sync(...)")


def busy_message(operation: str) -> str:
    """Why ``operation`` is refused while a call is in flight (the session is the worker's until it ends)."""
    return (f"{operation}: the AsyncSession is running a call on its worker thread; await that call before "
            f"using the session or its objects")
