"""SELECT text from the mapping and from conditions: what ``filter()`` and ``select()`` send.

uow is a unit of work, not a query language: a query returns whole objects of one entity (or
their count, or whether there is one), with conditions on that entity's own columns
(``expressions``).  Everything the caller names is checked against the mapping before any SQL
is written: an unknown field is an UnknownFieldError, an attribute of another class or an
operator the column's type cannot answer a ConditionError, a value the column cannot hold a
ColumnValueError (the same gate a flushed value passes, ``valuechecks.bind_column``).  Every
column is qualified with its table (so a typo can never become SQLite's double-quoted string
literal), and every value is a bound parameter, never text in the SQL.
"""

import datetime
from collections.abc import Sequence
from typing import Any

from .columns import Column
from .columntypes import INT64_MAX
from .errors import ColumnValueError, ConditionError, UnknownFieldError
from .expressions import (
    EQ, IN, IS, IS_NOT, LIKE, NOT_IN, ORDERING_OPERATORS,
    ColumnAttribute, Comparison, Condition, Junction, Negation, Ordering,
)
from .identifiers import quote
from .mapper import Mapper
from .valuechecks import Refusal, bind_column, bound_refusal, shown

# The Python types whose stored form sorts as the values do, so that SQLite's < answers Python's.
# Decimal is stored as text ('10' < '9'), JSON as text, and the others uow may store have no
# order SQLite knows.  (A datetime is ISO text: it sorts as time among values of one UTC offset,
# naive or aware, which is how datetimes are usually stored; README says so.)
ORDERED_TYPES = frozenset({int, float, str, bytes, bool, datetime.date, datetime.datetime})


def select_sql(mapper: Mapper, equals: dict[str, Any], order_by: object, limit: int | None,
               max_length: int | None = None) -> tuple[str, list[Any]]:
    """``(sql, params)`` for ``filter()``: the entity's rows where each named column equals its value
    (None: IS NULL), in ``order_by``'s order (default: the primary key)."""
    conditions = [column.attribute == value for column, value in
                  ((mapper.column(name), value) for name, value in equals.items())]
    if limit is not None:
        paging_problem = count_problem(limit)
        if paging_problem is not None:
            raise ColumnValueError(f"filter(): limit {paging_problem}")
    return statement(mapper, "rows", conditions, order_terms(mapper, order_by, "order_by"), limit, None,
                     "filter", max_length)


def count_problem(count: object) -> str | None:
    """Why ``count`` cannot be a LIMIT or OFFSET, or None: SQLite binds it as a 64-bit integer
    (one past that would fail in sqlite3 after the query was sent)."""
    if type(count) is not int or count < 0:
        return f"must be a non-negative int, got {shown(count)} ({type(count).__name__})"
    if count > INT64_MAX:
        return f"must be at most {INT64_MAX:,} (SQLite's largest integer), got {count:,}"
    return None


def statement(mapper: Mapper, result: str, conditions: Sequence[Condition], orders: Sequence[str],
              limit: int | None, offset: int | None, operation: str, max_length: int | None,
              variable_limit: int | None = None, like_limit: int | None = None) -> tuple[str, list[Any]]:
    """``(sql, params)`` of a query of ``mapper``'s table: ``result`` is ``"rows"`` (every column),
    ``"count"`` or ``"exists"``; ``orders`` are ORDER BY terms from :func:`order_terms`.

    Every condition is checked here, before any SQL: see the module docstring.  The limits are the
    connection's (None: not checked): the longest value in bytes, how many values one statement
    may bind, the longest LIKE pattern in bytes."""
    table = mapper.quoted_table
    params: list[Any] = []
    where = ""
    if conditions:
        alone = len(conditions) == 1  # (an OR among several conditions keeps its parentheses)
        where = " WHERE " + " AND ".join(condition_sql(mapper, c, operation, max_length, params, alone, like_limit)
                                         for c in conditions)
    if variable_limit is not None and len(params) + 2 > variable_limit:
        raise ConditionError(
            f"{operation}(): the query binds {len(params):,} values, over this connection's limit of "
            f"{variable_limit:,} (SQLITE_LIMIT_VARIABLE_NUMBER); split the in_() list over several queries"
        )
    paging = ""
    if limit is not None or offset is not None:
        # SQLite takes OFFSET only after a LIMIT; -1 is its "no limit".
        paging = " LIMIT ?"
        params.append(-1 if limit is None else limit)
        if offset is not None:
            paging += " OFFSET ?"
            params.append(offset)
    if result == "rows":
        return f"SELECT {mapper.select_list} FROM {table}{where} ORDER BY {', '.join(orders)}{paging}", params
    inner = f"SELECT 1 FROM {table}{where}{paging}"
    if result == "exists":
        return f"SELECT EXISTS ({inner})", params
    if paging:
        return f"SELECT count(*) FROM ({inner})", params
    return f"SELECT count(*) FROM {table}{where}", params


def condition_sql(mapper: Mapper, condition: object, operation: str, max_length: int | None,
                  params: list[Any], outermost: bool = False, like_limit: int | None = None) -> str:
    """The SQL of one condition on ``mapper``'s columns, its values appended to ``params`` (bound,
    checked by the column's type)."""
    if isinstance(condition, Junction):
        joint = f" {condition.operator} "
        text = joint.join(condition_sql(mapper, part, operation, max_length, params, False, like_limit)
                          for part in condition.parts)
        return text if outermost else f"({text})"
    if isinstance(condition, Negation):
        return f"NOT ({condition_sql(mapper, condition.part, operation, max_length, params, True, like_limit)})"
    if isinstance(condition, Comparison):
        return _comparison_sql(mapper, condition, operation, max_length, params, like_limit)
    raise ConditionError(
        f"{operation}(): expected a condition on {mapper.cls.__name__}'s attributes, such as "
        f"{mapper.cls.__name__}.{mapper.pk_names[0]} == 1, got {shown(condition)} ({type(condition).__name__})"
        + ("; a comparison that gave True or False was made on something other than a class attribute"
           if type(condition) is bool else "")
    )


def _comparison_sql(mapper, comparison, operation, max_length, params, like_limit):
    column = own_column(mapper, comparison.attribute, operation, comparison)
    left = f"{mapper.quoted_table}.{quote(column.name)}"
    operator = comparison.operator
    value = comparison.value
    name = column.qualified_name
    at = f"{operation}(): in {comparison!r},"  # how each refusal below names the condition
    if operator is IS or operator is IS_NOT:
        if value is not None:
            raise ConditionError(f"{at} is_() and is_not() compare with None only, got {shown(value)}; "
                                 f"write {name} == {shown(value)}")
        return f"{left} {operator} NULL"
    if operator in ORDERING_OPERATORS:
        _refuse_unordered(column, operator, at)
        if value is None:
            raise ConditionError(f"{at} {operator} None matches no row (NULL has no order); "
                                 f"write {name}.is_(None) to find NULL")
    if isinstance(value, ColumnAttribute):
        other = own_column(mapper, value, operation, comparison)
        if other.type.python_type is not column.type.python_type:
            raise ConditionError(
                f"{at} {name} ({column.type.python_type.__name__}) and {other.qualified_name} "
                f"({other.type.python_type.__name__}) hold different types; SQLite would compare their stored "
                f"forms, not their values")
        return f"{left} {operator} {mapper.quoted_table}.{quote(other.name)}"
    if operator == LIKE:
        return _like_sql(column, left, comparison, operation, at, max_length, params, like_limit)
    if operator == IN or operator == NOT_IN:
        if any(item is None for item in value):
            raise ColumnValueError(
                f"{operation}(): {name}.{'in_' if operator == IN else 'not_in'}({shown(value)}) holds None, which no "
                f"IN list can match (NULL equals nothing in SQL); add | {name}.is_(None) instead")
        params.extend(_bound(column, value, operation, max_length))
        return f"{left} {operator} ({', '.join('?' * len(value))})"
    params.extend(_bound(column, [value], operation, max_length, operator))
    return f"{left} {operator} ?"


def _like_sql(column, left, comparison, operation, at, max_length, params, like_limit):
    name = column.qualified_name
    pattern = comparison.value
    if column.type.python_type is not str:
        raise ConditionError(f"{at} like() matches text, but {name} holds "
                             f"{column.type.python_type.__name__} values; compare it with == or in_()")
    if type(pattern) is not str:
        raise ConditionError(f"{at} like() takes a str pattern, got {shown(pattern)}")
    bound = _bound(column, [pattern], operation, max_length, "LIKE")
    # SQLite answers a longer pattern with "LIKE or GLOB pattern too complex", after the query was
    # sent (the pattern is valid UTF-8 here: the gate above refused a lone surrogate).
    if like_limit is not None and len(pattern.encode("utf-8")) > like_limit:
        raise ConditionError(
            f"{at} the pattern is {len(pattern.encode('utf-8')):,} bytes long, over this connection's limit of "
            f"{like_limit:,} for a LIKE pattern (SQLITE_LIMIT_LIKE_PATTERN_LENGTH); use a shorter pattern, "
            f"or == for an exact match")
    params.extend(bound)
    escape = comparison.escape
    if escape is None:
        return f"{left} LIKE ?"
    if type(escape) is not str or len(escape) != 1 or bound_refusal(escape) is not None:
        raise ConditionError(f"{at} like(escape=) is one character that can be stored as UTF-8 text, "
                             f"got {shown(escape)}")
    params.append(escape)
    return f"{left} LIKE ? ESCAPE ?"


def _refuse_unordered(column, operator, at):
    if column.type.python_type not in ORDERED_TYPES:
        raise ConditionError(
            f"{at} {operator} cannot be answered by SQLite: "
            f"{column.qualified_name} holds {column.type.python_type.__name__} values, whose stored form does "
            f"not sort as the values do; compare with == or in_(), or compare in Python after loading")


def _bound(column, values, operation, max_length, operator=EQ):
    """``values`` as sqlite3 binds them for ``column``, through the one gate (``bind_column``)."""
    try:
        # (nullable: None never gets here, and a value that merely compares equal to None must be
        # checked for its type, not refused as None.)
        return bind_column(column.type, values, True, max_length)
    except Refusal as refusal:
        value = values[refusal.index]
        if operator == EQ or refusal.size is not None:
            said = refusal.explain(column.qualified_name, value)
        else:
            said = f"{column.qualified_name} {operator} {shown(value)}: the value {refusal.reason}"
        raise ColumnValueError(f"{operation}(): {said}") from None


def own_column(mapper: Mapper, attribute: object, operation: str, comparison: Comparison | None = None) -> Column:
    """The Column an attribute (``User.age``) reads, which must be one of ``mapper``'s class (in
    ``comparison``, which the message names)."""
    if not isinstance(attribute, ColumnAttribute):
        raise ConditionError(f"{operation}(): expected an attribute of {mapper.cls.__name__} such as "
                             f"{mapper.cls.__name__}.{mapper.pk_names[0]}, got {shown(attribute)}")
    column = attribute.column
    if column.entity is not mapper.cls:
        found_in = f"{comparison!r} compares {attribute.qualified_name}, which" if comparison is not None \
        else attribute.qualified_name
        raise ConditionError(
            f"{operation}(): {found_in} is not a column of {mapper.cls.__name__}; a query reads "
            f"one class's table (there are no joins: query {column.entity.__name__} on its own, or follow a "
            f"relationship)")
    return column


def order_terms(mapper: Mapper, order_by: object, operation: str) -> list[str]:
    """ORDER BY terms: ``User.name`` or ``User.name.desc()``, a field name (``"-name"`` descending),
    a Column, or a list of those; None orders by the primary key."""
    if order_by is None:
        return [f"{mapper.quoted_table}.{quote(name)}" for name in mapper.pk_names]
    if isinstance(order_by, (str, Column, ColumnAttribute, Ordering)):
        order_by = [order_by]
    if not isinstance(order_by, (list, tuple)):
        raise UnknownFieldError(
            f"{operation}: expected a field name of {mapper.cls.__name__}, an attribute such as "
            f"{mapper.cls.__name__}.{mapper.pk_names[0]}.desc(), or a list of them, got {shown(order_by)}"
        )
    terms = []
    for item in order_by:
        descending = False
        if isinstance(item, Ordering):
            descending = item.descending
            item = item.attribute
        if isinstance(item, Column):
            item = item.attribute
        if isinstance(item, ColumnAttribute):
            if item.column.entity is not mapper.cls:
                raise UnknownFieldError(f"{operation}: {shown(item)} is not a column of {mapper.cls.__name__}")
            name = item.column.name
        elif isinstance(item, str):
            descending = item.startswith("-")
            name = item[1:] if descending else item
        else:
            raise UnknownFieldError(f"{operation}: expected a field name or attribute of {mapper.cls.__name__}, "
                                    f"got {shown(item)}")
        mapper.column(name)
        terms.append(f"{mapper.quoted_table}.{quote(name)}{' DESC' if descending else ''}")
    return terms
