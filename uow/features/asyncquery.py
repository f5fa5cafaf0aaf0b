"""AsyncSelect: an AsyncSession's ``select(User)``, built without ``await``, its results awaited.

As with SQLAlchemy's AsyncSession, building a query only touches memory and running it is
awaited::

    adults = session.select(User).where(User.age >= 18).order_by(User.name)  # no await
    page = await adults.limit(10).offset(20).all()
    ann = await adults.where(User.name == "ann").one()
    await adults.count(), await adults.exists(), await adults.first()
    async for user in adults:
        ...

An AsyncSelect is a thin wrapper of the sync query (``querying.Select``), never a copy of it:
each building step is the sync query's step (its checks against the mapping run at once, on the
loop's thread, between calls), and each terminal runs the sync query's terminal as one call on
the session's worker, queued like every other call.  So the rows go through the identity map and
the query autoflushes exactly as the sync query does, the SQL runs on the thread that owns the
connection, and a cancellation ends as any call's does (``asyncworker``): a query still queued is
withdrawn, a running one finishes and its objects are in the identity map.

**``async for`` loads every row in one call, then yields them** (as the sync query's ``for``
does).  Pages fetched call by call would let the program, and other tasks, change the session and
the table between pages: each page would autoflush what changed, and an OFFSET over rows that
moved skips or repeats some.  A cursor kept open across awaits would hold the read open between
calls (a WAL snapshot, or in rollback-journal mode a lock that blocks every other commit).  To
read a large table in parts, say so: ``limit()``/``offset()`` on the key's order, one awaited
``all()`` per page.

A plain ``for`` over an AsyncSelect would run SQL on the event loop's thread, so it is refused
with a LazyLoadError that says to write ``async for`` or ``await query.all()``.
"""

import typing
from collections.abc import AsyncIterator, Callable, Iterator

from ..entity import Entity
from ..errors import ConditionError, LazyLoadError
from .querying import Select

E = typing.TypeVar("E", bound=Entity)
R = typing.TypeVar("R")


class AsyncSelect(typing.Generic[E]):
    """A query of one entity's rows for an AsyncSession (see the module docstring); made by
    ``AsyncSession.select``.  Each building step returns a new AsyncSelect."""

    def __init__(self, owner: typing.Any, query: Select[E]) -> None:
        self._owner = owner  # the AsyncSession: its worker runs the terminals
        self._query = query

    # -- building: no await, on the loop's thread between calls --------------------------------

    def _building(self, operation: str) -> Select[E]:
        self._owner._idle_session(operation)  # the loop's thread, no call in flight
        return self._query

    def where(self, *conditions: object) -> "AsyncSelect[E]":
        """Rows meeting every condition (``Select.where``)."""
        return AsyncSelect(self._owner, self._building("where").where(*conditions))

    def order_by(self, *terms: object) -> "AsyncSelect[E]":
        """Order by attributes (``Select.order_by``)."""
        return AsyncSelect(self._owner, self._building("order_by").order_by(*terms))

    def limit(self, count: int) -> "AsyncSelect[E]":
        """At most ``count`` rows (``Select.limit``)."""
        return AsyncSelect(self._owner, self._building("limit").limit(count))

    def offset(self, count: int) -> "AsyncSelect[E]":
        """Skip the first ``count`` rows (``Select.offset``)."""
        return AsyncSelect(self._owner, self._building("offset").offset(count))

    # -- running: awaited, on the worker ---------------------------------------------------------

    async def _run(self, operation: str, terminal: Callable[[], R]) -> R:
        return typing.cast(R, await self._owner._run(operation, lambda session: terminal()))

    async def all(self) -> list[E]:
        """Every matching object, in order (``Select.all``)."""
        return await self._run("all", self._query.all)

    async def first(self) -> E | None:
        """The first matching object, or None (``Select.first``: LIMIT 1)."""
        return await self._run("first", self._query.first)

    async def one(self) -> E:
        """The one matching object; none is a NotFoundError, more a MultipleResultsError (``Select.one``)."""
        return await self._run("one", self._query.one)

    async def one_or_none(self) -> E | None:
        """The one matching object or None; more is a MultipleResultsError (``Select.one_or_none``)."""
        return await self._run("one_or_none", self._query.one_or_none)

    async def count(self) -> int:
        """How many rows match, within limit and offset (``Select.count``)."""
        return await self._run("count", self._query.count)

    async def exists(self) -> bool:
        """Whether any row matches, within limit and offset (``Select.exists``)."""
        return await self._run("exists", self._query.exists)

    async def __aiter__(self) -> AsyncIterator[E]:
        for obj in await self.all():  # one call, then the objects (see the module docstring)
            yield obj

    # -- misuse, refused with the way to say it -------------------------------------------------

    def __iter__(self) -> Iterator[E]:
        raise LazyLoadError(
            f"for ... in {self!r}: iterating an AsyncSession's query with a plain for would run its SQL on the "
            f"event loop's thread; write `async for obj in query`, or `for obj in await query.all()`")

    def __await__(self) -> typing.Any:
        raise ConditionError(f"await {self!r}: a query is not awaited itself; await one of its results: "
                            f"await query.all(), .first(), .one(), .one_or_none(), .count() or .exists()")

    def __bool__(self) -> bool:
        raise ConditionError(f"{self!r} is a query, which has no truth value: use await query.exists(), "
                             f".first() or .count()")

    def __repr__(self) -> str:
        return repr(self._query)
