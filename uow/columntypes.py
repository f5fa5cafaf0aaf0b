"""How each supported Python type is stored in SQLite and read back, unchanged.

SQLite has five storage classes and is forgiving: it turns NaN into NULL, ``True`` into ``1``,
``'123'`` into ``123`` in an INTEGER column, and refuses integers beyond 64 bits only when the
statement runs.  A unit of work that promises "nothing is lost" must therefore decide, per
Python type, how a value is bound, how it is converted back, and which values it refuses
*before* any SQL runs.  Each :class:`ColumnType` below holds those three decisions.

=========================  ==============  ===============================================
Python type                declared as     stored as
=========================  ==============  ===============================================
``int``                    INTEGER         64-bit integer (``bool`` is refused: it would come back as int)
``float``                  REAL            IEEE double (NaN and -0.0 refused; ints accepted when exact)
``str``                    TEXT            UTF-8 text (lone surrogates refused)
``bytes``                  BLOB            blob
``bool``                   BOOLEAN         0 or 1, converted back to ``bool``
``datetime.date``          TEXT            ``YYYY-MM-DD``
``datetime.datetime``      TEXT            ISO 8601 (naive, or with a fixed ``timezone`` offset)
``decimal.Decimal``        TEXT            ``str(value)``: every digit and the exponent kept
``dict``, ``list``         TEXT            JSON; in-place changes are detected at flush
=========================  ==============  ===============================================

Dates and decimals are declared TEXT rather than DATE or DECIMAL on purpose: those names give
the column NUMERIC affinity, and SQLite would then turn ``Decimal('1.10')`` into the REAL 1.1.

Validation runs over a whole column of values at once (``first_invalid``): a fast pass made of
C-level operations accepts the common case, and only when it fails does a per-value check find
the culprit for the error message.  That keeps flushing 100,000 rows cheap without giving up a
single check.
"""

import datetime
import decimal
import json
import math

INT64_MIN = -(2 ** 63)
INT64_MAX = 2 ** 63 - 1


class ColumnType:
    """The storage rules for one Python type.

    ``mutable`` is True for types whose values can change in place (JSON), which the change
    tracker must compare at every flush instead of waiting for an assignment.

    ``to_db`` converts a Python value to what sqlite3 binds (None when no conversion is needed),
    ``from_db`` converts a stored value back (None when sqlite3 already returns the right type),
    and ``problem`` returns why a single value cannot be stored unchanged, or None.
    """

    python_type = object
    sql_type = ""
    mutable = False
    to_db = None
    from_db = None

    def problem(self, value):
        """Why ``value`` cannot be stored and read back unchanged, or None when it can."""
        if type(value) is not self.python_type:
            return f"expected {self.python_type.__name__}, got {type(value).__name__}"
        return None

    def all_valid(self, values):
        """A fast check that every (non-None) value is acceptable; may only say True when it is."""
        return set(map(type, values)) <= {self.python_type}

    def __repr__(self):
        return f"{type(self).__name__}()"


class IntegerType(ColumnType):
    python_type = int
    sql_type = "INTEGER"

    def problem(self, value):
        if type(value) is not int:
            return f"expected int, got {type(value).__name__}"
        if not INT64_MIN <= value <= INT64_MAX:
            return "is outside SQLite's 64-bit integer range"
        return None

    def all_valid(self, values):
        if not set(map(type, values)) <= {int}:
            return False
        return not values or (min(values) >= INT64_MIN and max(values) <= INT64_MAX)


class FloatType(ColumnType):
    python_type = float
    sql_type = "REAL"

    def problem(self, value):
        if type(value) is int:
            # An int is welcome where a float is expected (as in Python's own typing), but only
            # when the double holds it exactly; 2**53 + 1 would come back as a different number.
            try:
                exact = float(value) == value
            except OverflowError:
                exact = False
            if not exact:
                return "cannot be stored exactly as a REAL (a double)"
            if not INT64_MIN <= value <= INT64_MAX:
                # sqlite3 binds an int as an INTEGER, which overflows past 64 bits.
                return f"is an int beyond 64 bits; write it as float({value})"
            return None
        if type(value) is not float:
            return f"expected float, got {type(value).__name__}"
        if math.isnan(value):
            return "is NaN, which SQLite silently stores as NULL"
        if value == 0.0 and math.copysign(1.0, value) < 0:
            return "is -0.0, which SQLite stores as 0.0, losing the sign; use 0.0"
        return None

    def all_valid(self, values):
        if not set(map(type, values)) <= {float}:
            return False
        # -0.0 is the only float equal to 0.0 that prints differently; NaN is caught by isnan.
        return not any(map(math.isnan, values)) and not any(v == 0.0 and math.copysign(1.0, v) < 0 for v in values)


class TextType(ColumnType):
    python_type = str
    sql_type = "TEXT"

    def problem(self, value):
        if type(value) is not str:
            return f"expected str, got {type(value).__name__}"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate, which cannot be stored as UTF-8 text"
        return None

    def all_valid(self, values):
        if not set(map(type, values)) <= {str}:
            return False
        # Only non-ASCII strings can hold a lone surrogate; isascii() is a C-speed scan.
        return all(map(str.isascii, values))


class BlobType(ColumnType):
    python_type = bytes
    sql_type = "BLOB"


class BooleanType(ColumnType):
    python_type = bool
    sql_type = "BOOLEAN"
    from_db = staticmethod(bool)


class DateType(ColumnType):
    python_type = datetime.date
    sql_type = "TEXT"
    to_db = staticmethod(datetime.date.isoformat)
    from_db = staticmethod(datetime.date.fromisoformat)


class DateTimeType(ColumnType):
    python_type = datetime.datetime
    sql_type = "TEXT"
    to_db = staticmethod(datetime.datetime.isoformat)
    from_db = staticmethod(datetime.datetime.fromisoformat)

    def problem(self, value):
        if type(value) is not datetime.datetime:
            return f"expected datetime, got {type(value).__name__}"
        if value.tzinfo is not None and type(value.tzinfo) is not datetime.timezone:
            # ISO text keeps the offset, not the zone's name or rules: a ZoneInfo would come
            # back as a fixed offset, so it would not be the value that was stored.
            return "has a tzinfo other than a fixed datetime.timezone offset; convert it with .astimezone(timezone.utc)"
        return None

    def all_valid(self, values):
        if not set(map(type, values)) <= {datetime.datetime}:
            return False
        return set(type(v.tzinfo) for v in values) <= {type(None), datetime.timezone}


class DecimalType(ColumnType):
    python_type = decimal.Decimal
    sql_type = "TEXT"
    to_db = staticmethod(decimal.Decimal.__str__)
    from_db = staticmethod(decimal.Decimal)

    def problem(self, value):
        if type(value) is not decimal.Decimal:
            return f"expected Decimal, got {type(value).__name__}"
        if value.is_nan():
            return "is a Decimal NaN, which never equals itself, so no change could ever be detected"
        return None

    def all_valid(self, values):
        if not set(map(type, values)) <= {decimal.Decimal}:
            return False
        return not any(v.is_nan() for v in values)


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
        except (TypeError, ValueError) as error:
            return f"cannot be stored as JSON ({error})"
        if not _same_json(json.loads(text), value):
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


COLUMN_TYPES = {
    int: IntegerType(),
    float: FloatType(),
    str: TextType(),
    bytes: BlobType(),
    bool: BooleanType(),
    datetime.date: DateType(),
    datetime.datetime: DateTimeType(),
    decimal.Decimal: DecimalType(),
    dict: JsonType(dict),
    list: JsonType(list),
}


def column_type_for(python_type):
    """The ColumnType for a Python type, or None when uow cannot store that type."""
    return COLUMN_TYPES.get(python_type)


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
