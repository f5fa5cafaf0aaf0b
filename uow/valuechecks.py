"""The one gate every value passes on its way to SQLite, and how a refused value is named.

Whatever the channel (a flush, a bulk write, upsert(), a get() key, a filter() condition), values
go through :func:`bind_column`: first each value's own check (its ``ColumnType.problem``: type,
range, NaN...), then the form it is bound in (UTF-8, the connection's length limit).  A refusal
is raised as :class:`Refusal`, which each channel turns into the uow error that names what the
user handed over (``binding`` does it for a flush plan).

Validation runs over a whole column of values at once (``first_invalid``): a fast pass made of
C-level operations accepts the common case, and only when it fails does a per-value check find
the culprit for the error message.  That keeps flushing 100,000 rows cheap without giving up a
single check.
"""

from collections.abc import Iterable
from typing import Any

SHOWN_DEPTH = 100  # deeper containers are named, not printed: no message needs a hundred brackets


def _nested_deeper_than(value, depth):
    """True when lists, tuples and dicts are nested in ``value`` more than ``depth`` levels deep.

    Iterative, because the values it guards against are too deep for a recursive walk.
    """
    waiting = [(value, 1)]
    while waiting:
        item, level = waiting.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if level > depth:
            return True
        waiting.extend((child, level + 1) for child in children)
    return False


def shown(value, limit=400):
    """``repr(value)`` for an error message, cut in the middle past ``limit`` characters.

    The values that must be refused are the ones repr handles worst: a string of a billion
    characters, or a list nested deeper than Python's recursion limit.  Whether repr can print
    such a list depends on the Python version (3.11 and 3.12 raise RecursionError, 3.13 prints
    it), so depth is measured here, the same way on every version, before repr is tried.
    """
    if _nested_deeper_than(value, SHOWN_DEPTH):
        return f"<a {type(value).__name__} nested too deeply to print>"
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit // 2]}...({len(text):,} characters)...{text[-limit // 4:]}"


def first_invalid(column_type, values, nullable):
    """Return ``(index, reason)`` for the first value that cannot be stored, or None.

    ``values`` is a list of every value one column is about to receive in a flush.
    """
    present = values
    if None in values:
        if not nullable:
            return values.index(None), "is None, but the column is NOT NULL"
        present = [value for value in values if value is not None]
    if column_type.all_valid(present):
        return None
    for index, value in enumerate(values):
        if value is None:
            continue
        reason = column_type.problem(value)
        if reason is not None:
            return index, reason
    return None


class Refusal(Exception):
    """Internal: value number ``index`` of a column cannot be bound, for ``reason``.

    Raised by :func:`bind_column`; every caller turns it into the uow error of its channel (a
    flush names the object, get() the key, filter() the condition), so the check is one.
    """

    def __init__(self, index, reason, size=None):
        super().__init__(reason)
        self.index = index
        self.reason = reason
        self.size = size  # set when the value is refused for its length alone

    def explain(self, name, value):
        """``User.name = 'x' is ...`` -- or, for a value refused for its length, its size instead of it."""
        if self.size is not None:
            return f"{name} is {self.reason}"
        return f"{name} = {shown(value)} {self.reason}"


def bind_column(column_type, values, nullable, max_length=None):
    """Check one column's values and return them as sqlite3 will bind them (None stays NULL).

    This is the one gate every value passes on its way to SQLite, whatever the channel (a
    flush, a bulk write, upsert(), a get() key, a filter() condition): first the value itself
    (``first_invalid``: type, range, NaN...), then the form it is bound in, which is where
    problems of converted values show (the JSON text of a dict holding a lone surrogate cannot be
    encoded; a long list's JSON, a long Decimal's text can exceed SQLite's length limit, which
    ``max_length`` is, in bytes).  Raises :class:`Refusal` for the first value that fails.
    """
    found = first_invalid(column_type, values, nullable)
    if found is not None:
        raise Refusal(*found)
    convert = column_type.to_db
    bound = values if convert is None else [None if value is None else convert(value) for value in values]
    texts = [value for value in bound if type(value) is str]
    blobs = [value for value in bound if type(value) is bytes]
    if texts and not all(map(str.isascii, texts)) or max_length is not None and (
            texts and max(map(len, texts)) * 4 > max_length or blobs and max(map(len, blobs)) > max_length):
        for index, value in enumerate(bound):
            refusal = bound_refusal(value, max_length)
            if refusal is not None:
                refusal.index = index
                raise refusal
    return bound


def bound_refusal(value, max_length=None):
    """The :class:`Refusal` SQLite's answer to one bound value would be (text that is not UTF-8, a
    value over ``max_length`` bytes), or None."""
    if type(value) is str:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            return Refusal(0, "contains a lone surrogate (in its stored text), which cannot be stored as UTF-8")
    elif type(value) is bytes:
        size = len(value)
    else:
        return None
    if max_length is not None and size > max_length:
        return Refusal(0, f"{size:,} bytes long, over this connection's limit of {max_length:,} "
                          f"(SQLITE_LIMIT_LENGTH)", size)
    return None
