"""AsyncSession: the session for asyncio programs, every call run on one worker thread of its own.

sqlite3 blocks, so an ``await``-able session must run its SQL somewhere other than the event
loop.  As aiosqlite does, each AsyncSession starts one worker thread, which opens the connection
and runs every call that may touch the database, one after the other; the event loop only waits::

    async with AsyncSession("app.db") as session:       # the worker opens the connection
        user = await session.get(User, 1)               # SELECT on the worker
        user.name = "Ann"                               # memory only: fine on the loop
        async with session.begin_nested():              # SAVEPOINT ... RELEASE
            session.add(Order(user=user))
    # COMMIT when the block ends (ROLLBACK if it raised), then the connection is closed

**The one-thread rule stays honest.**  The session underneath is a plain :class:`uow.Session`,
whose guard lets one thread at a time use it.  While a call is queued or running it belongs to the
worker; once the last one has finished, to the event loop's thread, so that assigning to objects,
``add()`` and the other calls that only touch memory work there without an ``await``.  Using the
session or its objects while a call is still in flight is refused (WrongThreadError), not raced.

**No implicit lazy loading.**  A load on the loop's thread would block it, so reading an expired
column, a collection not loaded yet, or a reference whose object the identity map does not hold
raises :class:`~uow.errors.LazyLoadError`, which names what to load: ``await
session.refresh(obj)``, ``await session.load_related(objects, name)``, ``load=[name]`` on
``all()``/``filter()``, or any code in ``await session.run_sync(function)``, which runs on the
worker with the plain session, where lazy loading works (``asynchooks``).

**Queries** are built without ``await`` and awaited for their results (``asyncquery``)::

    adults = session.select(User).where(User.age >= 18).order_by(User.name)
    first_page = await adults.limit(10).all()       # the sync query, run on the worker
    async for user in adults: ...

**Cancellation** is honoured between calls, never inside one (a flush or commit is all or nothing,
and stopping it half way would leave neither):

* a call still queued when its task is cancelled is withdrawn: it never runs;
* a call already running finishes on the worker; the task's CancelledError arrives once it has,
  so when your code sees the cancellation the session is idle and exactly as that call left it
  (as if it had returned or raised: a commit that ran is committed);
* the ends of ``async with`` blocks (commit or rollback of the session, a transaction or a
  savepoint) and ``close()`` are never withdrawn: they run, and the CancelledError follows;
* a cancellation is an exception like any other to ``async with AsyncSession(...)``: the session
  rolls back and closes, so nothing that was not committed survives it.
"""

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from ..entity import Entity
from ..errors import SessionClosedError, UowError, WrongThreadError
from ..connecting import connect
from . import Session
from .asynchooks import AsyncHooks, busy_message
from .asyncquery import AsyncSelect
from .asyncworker import Worker

E = TypeVar("E", bound=Entity)
R = TypeVar("R")
_get_ident = threading.get_ident


class AsyncSession:
    """A :class:`uow.Session` driven from asyncio (see the module docstring).

    ``database`` is a path (or ``":memory:"``), opened with :func:`uow.connect` on the worker, or a
    function the worker calls to open the connection itself (for connect() options, or to create
    the tables on a fresh ``":memory:"`` database).  ``options`` are the Session's.  The
    connection belongs to the AsyncSession, which closes it with the session.
    """

    def __init__(self, database: str | os.PathLike[str] | Callable[[], sqlite3.Connection], **options: Any) -> None:
        if not (isinstance(database, (str, os.PathLike)) or callable(database)):
            raise UowError(f"AsyncSession(): database must be a path or a function that returns a connection, "
                           f"got {database!r}")
        self._database = database
        self._options = options
        self._user_thread = _get_ident()  # the event loop's thread: the objects are used there
        self._session: Session | None = None
        self._open_error: BaseException | None = None
        self._worker: Worker | None = None  # started by the first call
        self._closing = False

    # -- the worker and the calls it runs -------------------------------------------------------

    def _handed_over(self, thread: int) -> None:
        """The worker's calls began (``thread`` is the worker's) or all ended (the loop's)."""
        if self._session is not None:
            self._session.guard.hand_over(thread)

    def _open(self) -> None:
        connection = None
        try:
            connection = self._database() if callable(self._database) else connect(self._database)
            session = Session(connection, **self._options)
        except BaseException as error:
            if isinstance(connection, sqlite3.Connection):
                connection.close()
            self._open_error = error
            raise
        session.hooks = AsyncHooks(session, self)  # entities find their session's hooks there
        self._session = session

    def _prepare(self, operation: str, function: Callable[[Session], R]) -> Callable[[], R]:
        """Check the call, start the worker if this is the first, and return what the worker will run."""
        self._check_thread(operation)
        if self._closing:
            raise SessionClosedError(f"{operation}(): this AsyncSession was closed; create a new one")
        if self._worker is None:
            self._worker = Worker(self._user_thread, self._handed_over)
            self._worker.submit(self._open)  # first: every call queued after it finds the session open

        def call() -> R:
            if self._session is None and operation == "open" and self._open_error is not None:
                raise self._open_error  # open() reports why, as Session(...) would
            if self._session is None:
                raise UowError(f"{operation}(): the AsyncSession could not be opened ({self._open_error!r}); "
                               f"create a new one") from self._open_error
            return function(self._session)

        return call

    async def _run(self, operation: str, function: Callable[[Session], R], *, cleanup: bool = False) -> R:
        """Run ``function(session)`` on the worker; a cancellation ends as ``asyncworker`` says."""
        call = self._prepare(operation, function)
        assert self._worker is not None
        return await self._worker.run(call, cleanup=cleanup)

    def _check_thread(self, operation: str) -> None:
        if _get_ident() != self._user_thread:
            raise WrongThreadError(
                f"{operation}(): this AsyncSession belongs to thread {self._user_thread} (its event loop's), but "
                f"was called from thread {_get_ident()}; create one AsyncSession per event loop")

    def _idle_session(self, operation: str) -> Session:
        """The session, for a call that only touches memory and so runs on the loop's thread now."""
        self._check_thread(operation)
        if self._session is None:
            raise UowError(f"{operation}(): the AsyncSession is not open yet; use `async with AsyncSession(...) "
                           f"as session`, or await open() first")
        if self._worker is not None and self._worker.in_flight:
            raise WrongThreadError(busy_message(operation))
        return self._session

    # -- opening and closing ------------------------------------------------------------------

    async def open(self) -> Self:
        """Start the worker and open the connection and session (the first call does it too)."""
        await self._run("open", lambda session: None)
        return self

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, error_type: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> Literal[False]:
        """COMMIT if the block succeeded, ROLLBACK if it raised (a cancellation too), then close."""
        if self._closing or self._worker is None:
            return False
        try:
            await self._run("__aexit__", lambda session: session.__exit__(error_type, error, traceback),
                            cleanup=True)
        finally:
            await self.close()
        return False

    async def close(self) -> None:
        """Roll back what was not committed, close the session and the connection, end the worker.
        Closing twice is fine."""
        if self._closing or self._worker is None:
            self._closing = True
            return

        def close(session: Session) -> None:
            connection = session.executor.connection
            try:
                session.close()
            finally:
                connection.close()

        try:
            if self._session is not None or self._open_error is None:
                await self._run("close", close, cleanup=True)
        finally:
            self._closing = True
            self._worker.stop()

    # -- calls that may run SQL: on the worker ------------------------------------------------

    async def run_sync(self, function: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """``function(session, *args, **kwargs)`` on the worker, with the plain Session: lazy loading works
        there, and so does every Session method this class does not repeat."""
        return await self._run("run_sync", lambda session: function(session, *args, **kwargs))

    async def get(self, entity: type[E], ident: object, *, populate_existing: bool = False,
                  with_for_update: bool | None = None) -> E | None:
        """Session.get(), awaited, with its options (``with_for_update=True`` takes SQLite's write
        lock on the worker before the row is read)."""
        return await self._run("get", lambda session: session.get(
            entity, ident, populate_existing=populate_existing, with_for_update=with_for_update))

    async def get_one(self, entity: type[E], ident: object, *, populate_existing: bool = False,
                      with_for_update: bool | None = None) -> E:
        """Session.get_one(), awaited, with get()'s options."""
        return await self._run("get_one", lambda session: session.get_one(
            entity, ident, populate_existing=populate_existing, with_for_update=with_for_update))

    async def all(self, entity: type[E], *, load: Iterable[str] = ()) -> list[E]:
        """Session.all(), awaited; ``load`` names relationships to load with the objects."""
        return await self._run("all", lambda session: session.all(entity, load=load))

    async def filter(self, entity: type[E], *, order_by: str | Sequence[str] | None = None, limit: int | None = None,
                     load: Iterable[str] = (), **equals: object) -> list[E]:
        """Session.filter(), awaited; ``load`` names relationships to load with the objects."""
        return await self._run("filter", lambda session: session.filter(
            entity, order_by=order_by, limit=limit, load=load, **equals))

    async def load_related(self, objects: Sequence[Entity], name: str) -> None:
        """Load relationship ``name`` of every object (one SELECT): the explicit load async needs."""
        await self._run("load_related", lambda session: session.load_related(objects, name))

    async def refresh(self, obj: Entity, fields: Iterable[str] | None = None) -> None:
        """Session.refresh(), awaited: also the way to load columns that were expired."""
        await self._run("refresh", lambda session: session.refresh(obj, fields))

    async def delete(self, obj: Entity) -> None:
        """Session.delete(), awaited (its cascade may load the children it deletes)."""
        await self._run("delete", lambda session: session.delete(obj))

    async def merge(self, obj: E, *, load: bool = True) -> E:
        """Session.merge(), awaited."""
        return await self._run("merge", lambda session: session.merge(obj, load=load))

    async def scalar(self, sql: str, params: Sequence[object] | Mapping[str, object] = ()) -> object:
        """Session.scalar(), awaited."""
        return await self._run("scalar", lambda session: session.scalar(sql, params))

    async def scalars(self, sql: str, params: Sequence[object] | Mapping[str, object] = ()) -> list[object]:
        """Session.scalars(), awaited."""
        return await self._run("scalars", lambda session: session.scalars(sql, params))

    async def flush(self) -> None:
        """Session.flush(), awaited."""
        await self._run("flush", lambda session: session.flush())

    async def commit(self) -> None:
        """Session.commit(), awaited."""
        await self._run("commit", lambda session: session.commit())

    async def rollback(self) -> None:
        """Session.rollback(), awaited: the database and every object back to the last commit."""
        await self._run("rollback", lambda session: session.rollback())

    async def reset(self) -> None:
        """Session.reset(), awaited."""
        await self._run("reset", lambda session: session.reset())

    def select(self, entity: type[E]) -> AsyncSelect[E]:
        """A query of ``entity``'s rows: built without await, its results awaited (``asyncquery``)::

            users = await session.select(User).where(User.age >= 18).order_by(User.name).all()
        """
        return AsyncSelect(self, self._idle_session("select").select(entity))

    def begin(self, mode: str | None = None, **options: Any) -> "AsyncTransaction":
        """``async with session.begin():`` (or ``await session.begin()``): Session.begin() on the worker."""
        return AsyncTransaction(self, "begin", lambda session: session.begin(mode, **options))

    def begin_nested(self) -> "AsyncTransaction":
        """``async with session.begin_nested():``: a savepoint; objects roll back with it."""
        return AsyncTransaction(self, "begin_nested", lambda session: session.begin_nested())

    def savepoint(self, name: str) -> "AsyncTransaction":
        """``async with session.savepoint("name"):``: begin_nested() with your own name (Session.savepoint)."""
        return AsyncTransaction(self, "savepoint", lambda session: session.savepoint(name))

    # -- calls that only touch memory: on the loop's thread, between calls ---------------------

    def add(self, obj: Entity) -> None:
        """Session.add(): memory only, no await."""
        self._idle_session("add").add(obj)

    def add_all(self, objects: Iterable[Entity]) -> None:
        """Session.add_all(): memory only, no await."""
        self._idle_session("add_all").add_all(objects)

    def expunge(self, obj: Entity) -> None:
        """Session.expunge(): memory only, no await."""
        self._idle_session("expunge").expunge(obj)

    def expire(self, obj: Entity, fields: Iterable[str] | None = None) -> None:
        """Session.expire(): the fields must then be loaded with ``await refresh(obj)`` before reading."""
        self._idle_session("expire").expire(obj, fields)

    def is_modified(self, obj: Entity, include_collections: bool = True) -> bool:
        """Session.is_modified(): no SQL, so not awaited (it reads the session's records only)."""
        return self._idle_session("is_modified").is_modified(obj, include_collections)

    def in_transaction(self) -> bool:
        """Session.in_transaction()."""
        return self._idle_session("in_transaction").in_transaction()

    @property
    def new(self) -> frozenset[Entity]:
        """Pending objects (Session.new)."""
        return self._idle_session("new").new

    @property
    def dirty(self) -> frozenset[Entity]:
        """Persistent objects with a net change (Session.dirty)."""
        return self._idle_session("dirty").dirty

    @property
    def deleted(self) -> frozenset[Entity]:
        """Objects marked for deletion (Session.deleted)."""
        return self._idle_session("deleted").deleted

    def __contains__(self, obj: object) -> bool:
        return obj in self._idle_session("__contains__")

    def __repr__(self) -> str:
        if self._closing:
            return "<AsyncSession closed>"
        in_flight = self._worker.in_flight if self._worker is not None else 0
        return f"<AsyncSession {'open' if self._session is not None else 'not open'}, {in_flight} in flight>"


class AsyncTransaction:
    """What ``begin()``, ``begin_nested()`` and ``savepoint()`` return: ``async with`` it, or ``await``
    it and call ``await commit()`` / ``await rollback()``.  The end of the block is a cleanup call:
    it is never withdrawn by a cancellation (see the module docstring)."""

    def __init__(self, owner: AsyncSession, operation: str, start: Callable[[Session], Any]) -> None:
        self._owner = owner
        self._operation = operation
        self._start = start
        self.scope: Any = None  # the SessionTransaction or NestedTransaction, once begun

    def __await__(self) -> Any:
        return self._begin().__await__()

    async def _begin(self) -> Self:
        if self.scope is None:
            self.scope = await self._owner._run(self._operation, self._start)
        return self

    @property
    def is_active(self) -> bool:
        return self.scope is not None and self.scope.is_active

    @property
    def name(self) -> str | None:
        """The savepoint's name (None for a transaction)."""
        return getattr(self.scope, "name", None)

    async def commit(self) -> None:
        """Commit the transaction, or release the savepoint."""
        await self._owner._run("commit", lambda session: self.scope.commit())

    async def rollback(self) -> None:
        """Roll back the transaction, or to the savepoint (objects too)."""
        await self._owner._run("rollback", lambda session: self.scope.rollback())

    async def __aenter__(self) -> Self:
        return await self._begin()

    async def __aexit__(self, error_type: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> Literal[False]:
        await self._owner._run("__aexit__", lambda session: self.scope.__exit__(error_type, error, traceback),
                               cleanup=True)
        return False
