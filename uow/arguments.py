"""Checking the plain arguments of public calls: lists, SQL text and parameters, paths, seconds,
savepoint names.

Why a module of its own: a wrong argument that reaches the code underneath fails there, far
from the call and in its words -- ``load_related(None, ...)`` as "'NoneType' object is not
iterable", ``execute(42)`` as sqlite3's "argument 1 must be str", ``attach("x", 42)`` not at all
(it attached a file called ``42``).  Each function here turns one kind of argument into what the
code underneath expects, or raises an :class:`~uow.errors.ArgumentError` that names the call,
the argument and the value, before anything has changed.  Entity classes and objects are
checked by ``mapper`` (``mapper_of``, ``mapper_of_object``, ``entity_objects`` for the bulk writes),
values bound to columns by ``valuechecks``.
"""

import collections.abc
import math
import os
from typing import Any

from .errors import ArgumentError
from .identifiers import check_identifier


def _shown(value: object) -> str:
    if isinstance(value, type):
        return f"the class {value.__name__}"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:50]}...{text[-7:]}"


def listed(value: Any, operation: str, what: str) -> list[Any]:
    """``list(value)`` for an argument that is a list (or other iterable) of things.

    Refused: None, a class (``create_all(conn, User)``), a string or bytes (iterable, but of characters),
    a dict (iterable, but of its keys), and anything not iterable.
    """
    if value is None or isinstance(value, (type, str, bytes, dict)) or not isinstance(value, collections.abc.Iterable):
        raise ArgumentError(f"{operation}(): {what} must be a list, got {_shown(value)}; pass [..] even for one")
    return list(value)


def true_or_false(value: object, operation: str, what: str) -> bool:
    """A flag: True or False itself (``1``, ``"no"`` or None would be read by truth, silently)."""
    if value is not True and value is not False:
        raise ArgumentError(f"{operation}(): {what} must be True or False, got {_shown(value)}")
    return value


def sql_text(sql: object, operation: str) -> str:
    """SQL handed to execute(): a string, checked before the autoflush that precedes it."""
    if not isinstance(sql, str):
        raise ArgumentError(f"{operation}(): the SQL must be a string, got {_shown(sql)}")
    return sql


def sql_params(params: object, operation: str) -> collections.abc.Sequence[Any] | dict[str, Any]:
    """Parameters for one statement: a sequence for ``?`` placeholders or a dict for ``:name``."""
    if isinstance(params, dict) or (isinstance(params, collections.abc.Sequence)
                                    and not isinstance(params, (str, bytes))):
        return params
    raise ArgumentError(
        f"{operation}(): params must be a tuple or list (for ? placeholders) or a dict (for :name), "
        f"got {_shown(params)}"
    )


def path(value: object, operation: str) -> str | os.PathLike[str]:
    """A file path (or ``":memory:"``): a str or an os.PathLike."""
    if not isinstance(value, (str, os.PathLike)):
        raise ArgumentError(f"{operation}(): the path must be a str or os.PathLike, got {_shown(value)}")
    return value


def seconds(value: object, operation: str, what: str) -> float:
    """A duration in seconds: an int or float, finite and not negative (True is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ArgumentError(f"{operation}(): {what} must be a number of seconds >= 0, got {_shown(value)}")
    return value


# Savepoints uow opens for itself (a flush, a bulk write, begin_nested(), a dry run) are named
# uow_...; SQLite's names are case-insensitive, and a user's savepoint of the same name would be
# the one uow's RELEASE or ROLLBACK TO reached.
RESERVED_SAVEPOINT_PREFIX = "uow_"


def savepoint_name(name: object, operation: str) -> str:
    """A savepoint's name: a plain identifier (it goes into the SQL, quoted), not one of uow's own."""
    check_identifier(name, f"{operation}(): the savepoint name", ArgumentError)
    assert isinstance(name, str)
    if name.lower().startswith(RESERVED_SAVEPOINT_PREFIX):
        raise ArgumentError(
            f"{operation}(): the savepoint name {name!r} starts with {RESERVED_SAVEPOINT_PREFIX!r}, which uow keeps "
            f"for the savepoints it opens itself; choose another name"
        )
    return name
