"""Queries beyond equality as plain data: what the machine draws, each adapter translates, and
the oracle answers under SQL's rules.

A :class:`Query` of one table is conditions (all must hold), an order, paging and what it returns.
The conditions are a small tree of frozen records, written in the user's terms and naming
columns by name, so an adapter turns each into its own query language in a few lines (see
``uow_adapter.Select`` and ``sqlalchemy_adapter``):

* ``Compare(field, op, value)``  ``op`` one of ``== != < <= > >=``; ``value`` is never None
  (NULL is asked for with ``IsNull``) and is ordered only on columns whose stored form sorts as
  their values do (text and integers here: never JSON or Decimal, which are stored as text);
* ``In(field, values)``  the column holds one of ``values`` (never None, never empty);
* ``IsNull(field, negated)``  IS NULL, or IS NOT NULL;
* ``Like(field, pattern)``  SQL LIKE on a text column: ``%`` any text, ``_`` one character,
  ASCII letters compared without case (SQLite's LIKE), no escape character;
* ``And(parts)``, ``Or(parts)``, ``Not(part)``.

The oracle evaluates a condition against a row with SQL's three-valued logic (:func:`truth`):
a comparison with NULL is unknown, ``NOT`` unknown is unknown, and a row is returned only when
its conditions are true; so ``note != 'x'`` does not return a row whose note is NULL, nor does
``NOT (note == 'x')``.  The order is total: the machine always ends it with the key's fields, so
adapters pass the terms as they are and ``limit``/``offset`` cut the same rows everywhere.  NULL
sorts before every value ascending and after every value descending (SQLite's rule).

This module imports nothing from any ORM (see oracle.py for why).
"""

import dataclasses
import operator
import re

# The comparison operators, as the Python functions that answer them on two non-NULL values (an
# adapter whose expressions overload Python's operators applies the same functions to them).
OPERATORS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
             ">=": operator.ge}
RESULTS = ("all", "first", "count", "exists")


@dataclasses.dataclass(frozen=True)
class Compare:
    """``field op value``: a comparison with a value that is not None."""

    field: str
    op: str
    value: object


@dataclasses.dataclass(frozen=True)
class In:
    """``field IN (values)``."""

    field: str
    values: tuple


@dataclasses.dataclass(frozen=True)
class IsNull:
    """``field IS NULL``, or ``IS NOT NULL`` when ``negated``."""

    field: str
    negated: bool = False  # True: IS NOT NULL


@dataclasses.dataclass(frozen=True)
class Like:
    """``field LIKE pattern``."""

    field: str
    pattern: str


@dataclasses.dataclass(frozen=True)
class And:
    """Every part holds."""

    parts: tuple


@dataclasses.dataclass(frozen=True)
class Or:
    """Some part holds."""

    parts: tuple


@dataclasses.dataclass(frozen=True)
class Not:
    """``NOT part``."""

    part: object


@dataclasses.dataclass(frozen=True)
class Query:
    """``where``: conditions that must all hold; ``order_by``: ``(field, descending)`` pairs, the
    key's fields last; ``limit``, ``offset``: None or a count; ``result``: "all" (the objects, in
    order), "first" (the first object, or None), "count" (how many rows, within limit and offset)
    or "exists" (whether there is one, within limit and offset)."""

    where: tuple
    order_by: tuple
    limit: int | None = None
    offset: int | None = None
    result: str = "all"


def truth(condition, row):
    """True, False or None (unknown) for ``condition`` on ``row`` (stored form), as SQL says."""
    if isinstance(condition, And):
        found = [truth(part, row) for part in condition.parts]
        return False if False in found else (None if None in found else True)
    if isinstance(condition, Or):
        found = [truth(part, row) for part in condition.parts]
        return True if True in found else (None if None in found else False)
    if isinstance(condition, Not):
        found = truth(condition.part, row)
        return None if found is None else not found
    value = row[condition.field]
    if isinstance(condition, IsNull):
        return (value is not None) if condition.negated else (value is None)
    if value is None:
        return None  # NULL compared with anything is unknown
    if isinstance(condition, In):
        return value in condition.values
    if isinstance(condition, Like):
        return like_pattern(condition.pattern).fullmatch(value) is not None
    return OPERATORS[condition.op](value, condition.value)


def like_pattern(pattern):
    """SQLite's LIKE as a regular expression: ``%`` any text, ``_`` one character, ASCII letters
    without case (other letters keep theirs)."""
    parts = [".*" if char == "%" else "." if char == "_" else re.escape(char) for char in pattern]
    return re.compile("".join(parts), re.DOTALL | re.IGNORECASE | re.ASCII)


def answer(query, rows):
    """The keys of ``rows`` (``{key: row}``, stored form) that ``query`` returns, in its order,
    cut by its offset and limit (also for "count" and "exists")."""
    found = [(key, row) for key, row in rows.items() if all(truth(part, row) is True for part in query.where)]
    # One stable sort per term, the last term first; NULL is the smallest value (SQLite).
    for field, descending in reversed(query.order_by):
        found.sort(key=lambda item: (item[1][field] is not None, item[1][field]), reverse=descending)
    start = query.offset or 0
    end = None if query.limit is None else start + query.limit
    return [key for key, _ in found[start:end]]
