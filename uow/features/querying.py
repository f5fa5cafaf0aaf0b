"""Queries: ``session.select(User).where(User.age >= 18).order_by(User.name.desc()).limit(10)``.

:class:`Select` is what ``Session.select(entity)`` returns: a query of one entity's table,
built step by step and run when its results are asked for::

    adults = session.select(User).where(User.age >= 18, User.name.like("a%"))
    for user in adults.order_by(User.age.desc(), User.name).limit(10):
        ...
    adults.count()      # SELECT count(*) ...
    adults.exists()     # SELECT EXISTS (SELECT 1 ...)
    adults.first()      # LIMIT 1; None when there is no row
    adults.one()        # exactly one row, or NotFoundError / MultipleResultsError

Each step returns a new Select (the one it was called on is unchanged, as in SQLAlchemy 2.x), so
a query can be kept and refined.  Conditions are written on class attributes (``expressions``)
and turned into SQL with bound values by ``query``, which refuses what cannot be answered
before any SQL is sent.  Running a query autoflushes first, as every load does, and every row
goes through the identity map (``loading``): an object this session holds is returned as it is,
unflushed changes included (with autoflush off, a change not yet flushed is not what the
database matched).  Unless the query says otherwise, rows come in primary-key order, and the
key ends every ORDER BY, so ``limit``/``offset`` pages are stable.
"""

import typing
from collections.abc import Iterator

from ..entity import Entity
from ..expressions import Condition
from ..errors import ArgumentError, ConditionError, MultipleResultsError, NotFoundError
from ..identifiers import quote
from ..query import condition_sql, count_problem, order_terms, statement

E = typing.TypeVar("E", bound=Entity)


class Select(typing.Generic[E]):
    """A query of one entity's rows (see the module docstring); made by ``Session.select``."""

    def __init__(self, session: typing.Any, mapper: typing.Any) -> None:
        self.session = session
        self.mapper = mapper
        self.conditions: tuple[Condition, ...] = ()
        self.orders: tuple[str, ...] = ()  # ORDER BY terms, checked when given
        self.shown_orders: tuple[object, ...] = ()
        self.limit_value: int | None = None
        self.offset_value: int | None = None

    def _with(self, **changes: typing.Any) -> "Select[E]":
        copy: Select[E] = Select(self.session, self.mapper)
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(changes)
        return copy

    # -- building (each step checked now, before any SQL) ------------------------------------

    def where(self, *conditions: object) -> "Select[E]":
        """Rows meeting every condition (``User.age >= 18``, joined with ``&``, ``|``, ``~``).

        Several conditions, or several where() calls, must all hold."""
        self.session.guard.check("where")
        for condition in conditions:
            condition_sql(self.mapper, condition, "where", None, [])  # its shape and types, checked now
        return self._with(conditions=self.conditions + typing.cast(tuple[Condition, ...], conditions))

    def order_by(self, *terms: object) -> "Select[E]":
        """Order by attributes: ``User.name``, ``User.age.desc()``; each call adds terms after the earlier ones."""
        self.session.guard.check("order_by")
        if not terms:
            raise ArgumentError(f"order_by(): name at least one attribute of {self.mapper.cls.__name__}, "
                                f"such as {self.mapper.cls.__name__}.{self.mapper.pk_names[0]}.desc()")
        added = tuple(order_terms(self.mapper, list(terms), "order_by"))
        return self._with(orders=self.orders + added, shown_orders=self.shown_orders + terms)

    def limit(self, count: int) -> "Select[E]":
        """At most ``count`` rows."""
        return self._with(limit_value=self._count_argument("limit", count))

    def offset(self, count: int) -> "Select[E]":
        """Skip the first ``count`` rows (of the query's order)."""
        return self._with(offset_value=self._count_argument("offset", count))

    def _count_argument(self, operation: str, count: object) -> int:
        self.session.guard.check(operation)
        problem = count_problem(count)
        if problem is not None:
            raise ArgumentError(f"{operation}(): the count {problem}")
        return typing.cast(int, count)

    # -- running ----------------------------------------------------------------------------

    def all(self) -> list[E]:
        """Every matching object, in order."""
        return self._load("all", self.limit_value)

    def __iter__(self) -> Iterator[E]:
        return iter(self._load("select", self.limit_value))

    def first(self) -> E | None:
        """The first matching object, or None (sends LIMIT 1)."""
        objects = self._load("first", 1 if self.limit_value is None else min(self.limit_value, 1))
        return objects[0] if objects else None

    def one_or_none(self) -> E | None:
        """The one matching object, or None; more than one is a MultipleResultsError."""
        objects = self._load("one_or_none", 2 if self.limit_value is None else min(self.limit_value, 2))
        if len(objects) > 1:
            raise MultipleResultsError(f"one_or_none(): more than one {self!r}; narrow the query, or use first()")
        return objects[0] if objects else None

    def one(self) -> E:
        """The one matching object: none is a NotFoundError, more than one a MultipleResultsError."""
        objects = self._load("one", 2 if self.limit_value is None else min(self.limit_value, 2))
        if not objects:
            raise NotFoundError(f"one(): no row for {self!r}; use one_or_none() or first() when none may match")
        if len(objects) > 1:
            raise MultipleResultsError(f"one(): more than one row for {self!r}; narrow the query, or use first()")
        return objects[0]

    def count(self) -> int:
        """How many rows match (within limit and offset), counted by SQLite."""
        return typing.cast(int, self._scalar("count"))

    def exists(self) -> bool:
        """Whether any row matches (within limit and offset), without loading it."""
        return bool(self._scalar("exists"))

    def __bool__(self) -> bool:
        raise ConditionError(f"{self!r} is a query, which has no truth value: use .exists(), .first() or .count()")

    def _sql(self, operation: str, result: str, limit: int | None) -> tuple[str, list[typing.Any]]:
        session = self.session
        session.guard.check(operation)
        executor = session.executor
        orders = list(self.orders)
        if result == "rows":
            # The primary key ends every order, so equal values come in a stable order and pages
            # cut by limit/offset neither repeat nor skip a row.
            quoted = [f"{self.mapper.quoted_table}.{quote(name)}" for name in self.mapper.pk_names]
            written = {term.removesuffix(" DESC") for term in orders}
            orders += [term for term in quoted if term not in written]
        return statement(self.mapper, result, self.conditions, orders, limit, self.offset_value, operation,
                         executor.length_limit(), executor.variable_limit(), executor.like_pattern_limit())

    def _load(self, operation: str, limit: int | None) -> list[E]:
        sql, params = self._sql(operation, "rows", limit)
        loader = self.session.loader
        self.session.flusher.autoflush()
        return loader.load(self.mapper, loader.query(self.mapper, sql, params, f"{operation}()"))

    def _scalar(self, result: str) -> object:
        sql, params = self._sql(result, result, self.limit_value)
        loader = self.session.loader
        self.session.flusher.autoflush()
        return loader.query(self.mapper, sql, params, f"{result}()")[0][0]

    def __repr__(self):
        text = f"select({self.mapper.cls.__name__})"
        for condition in self.conditions:
            text += f".where({condition!r})"
        if self.shown_orders:
            text += f".order_by({', '.join(map(repr, self.shown_orders))})"
        if self.limit_value is not None:
            text += f".limit({self.limit_value})"
        if self.offset_value is not None:
            text += f".offset({self.offset_value})"
        return text
