"""``dict`` and ``list`` columns, stored as JSON text, and how changes made in place are seen.

A JSON value is *mutable*: ``obj.tags.append("x")`` changes it without an assignment, so no
attribute hook hears of it.  uow therefore keeps the value's JSON text in the row's snapshot
(:func:`snapshot_entry`) and compares texts at every flush (see ``tracking``); and the undo log
never trusts the object's current dict or list, but keeps a copy (:func:`undo_copy`).
"""

import copy
import json

from .columntypes import ColumnType
from .errors import ColumnValueError


def _json_text(value):
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class JsonType(ColumnType):
    """A ``dict`` or ``list`` stored as JSON text.

    Such values are *mutable*: ``obj.tags.append("x")`` changes the value without an assignment,
    so the session compares these columns' JSON text with the snapshot at every flush (see
    ``tracking``).  Only values that JSON gives back equal and of the same types are accepted:
    tuples would come back as lists, integer dict keys as strings, NaN not at all.
    """

    sql_type = "TEXT"
    mutable = True
    to_db = staticmethod(_json_text)
    from_db = staticmethod(json.loads)

    def __init__(self, python_type):
        self.python_type = python_type

    def problem(self, value):
        if type(value) is not self.python_type:
            return f"expected {self.python_type.__name__}, got {type(value).__name__}"
        try:
            text = _json_text(value)
            same = _same_json(json.loads(text), value)
        except (TypeError, ValueError) as error:
            return f"cannot be stored as JSON ({error})"
        except RecursionError:
            return "is nested too deeply to be stored as JSON (Python gives up past its recursion limit); flatten it"
        if not same:
            return "would not come back the same from JSON (tuples become lists, dict keys become strings)"
        return None

    def all_valid(self, values):
        return all(self.problem(value) is None for value in values)


def _same_json(loaded, value):
    if type(loaded) is not type(value):
        return False
    if type(value) is dict:
        return loaded.keys() == value.keys() and all(_same_json(loaded[k], value[k]) for k in value)
    if type(value) is list:
        return len(loaded) == len(value) and all(map(_same_json, loaded, value))
    return loaded == value


# The JSON column types, by the annotation that declares them.
JSON_TYPES: dict[type, ColumnType] = {
    dict: JsonType(dict),
    list: JsonType(list),
}


class _Unencodable:
    """A snapshot entry for a value JSON cannot encode: it equals nothing."""

    def __eq__(self, other):
        return False

    __hash__ = object.__hash__


def snapshot_entry(column_type, value):
    """What the snapshot keeps for a (non-None) JSON value: its text, so that a change made in
    place shows as a difference.

    A value JSON cannot encode (NaN, a set) gets a marker that equals nothing, so the column
    counts as changed and the flush's value check names the problem.
    """
    try:
        return column_type.to_db(value)
    except (TypeError, ValueError, RecursionError):  # RecursionError: nested too deeply
        return _Unencodable()


def undo_copy(column, value, text):
    """A copy of a JSON column's ``value`` for the undo log, which the object cannot change in place.

    ``text`` is the column's snapshot entry: the JSON text of the row as loaded or last flushed,
    which is what the value was when the undo scope began (savepoints autoflush first).  Without
    a row's text (an object not yet flushed) the value itself is copied.
    """
    if isinstance(text, str):
        return column.type.from_db(text)
    if value is None:
        return None
    try:
        return copy.deepcopy(value)
    except RecursionError:
        raise ColumnValueError(
            f"{column.qualified_name}: the value is nested too deeply to be copied or stored as JSON "
            f"(Python gives up past its recursion limit); flatten it"
        ) from None
