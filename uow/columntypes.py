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
``datetime.datetime``      TEXT            ISO 8601 (naive or a fixed unnamed offset; fold=0)
``decimal.Decimal``        TEXT            ``str(value)``: every digit and the exponent kept
``dict``, ``list``         TEXT            JSON; in-place changes are detected at flush
=========================  ==============  ===============================================

Dates and decimals are declared TEXT rather than DATE or DECIMAL on purpose: those names give
the column NUMERIC affinity, and SQLite would then turn ``Decimal('1.10')`` into the REAL 1.1.

Every channel that sends values to SQLite (a flush, the bulk writes, upsert, a get() key, a
filter() condition) passes them through one gate, :func:`bind_column`: the value's own check,
then the check of its bound form (UTF-8, the connection's length limit), and for writes
:func:`oversized_row`, since SQLite's length limit also caps a whole row's record.

Validation runs over a whole column of values at once (``first_invalid``): a fast pass made of
C-level operations accepts the common case, and only when it fails does a per-value check find
the culprit for the error message.  That keeps flushing 100,000 rows cheap without giving up a
single check.
"""

import datetime
import decimal
import functools
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
    """A datetime, naive or with a fixed offset, stored as ISO 8601 text.

    The text holds the wall time and the offset, nothing else, so only values it gives back
    exactly are accepted (uow's change check compares them strictly, so anything lost would also
    count as a change after every reload): no zone other than a fixed ``timezone``, no name on
    that offset (``timezone(timedelta(hours=1), "CET")`` would come back unnamed), no ``fold=1``
    (the text has no place for it), and no offset that the text does not give back as it was
    (CPython 3.11 reads an offset under one second, "+00:00:00.500000", as UTC: the instant moved).
    """

    python_type = datetime.datetime
    sql_type = "TEXT"
    to_db = staticmethod(datetime.datetime.isoformat)
    from_db = staticmethod(datetime.datetime.fromisoformat)

    def problem(self, value):
        if type(value) is not datetime.datetime:
            return f"expected datetime, got {type(value).__name__}"
        if value.fold:
            return ("has fold=1, which ISO 8601 text cannot hold (it would come back as fold=0); "
                    "use .replace(fold=0), or store it in UTC")
        if value.tzinfo is not None:
            return _offset_problem(value.tzinfo)
        return None

    def all_valid(self, values):
        if not set(map(type, values)) <= {datetime.datetime}:
            return False
        if any(value.fold for value in values):
            return False
        return not any(_offset_problem(value.tzinfo) for value in values if value.tzinfo is not None)


def _offset_problem(zone):
    """Why a datetime carrying ``zone`` would not come back from its ISO text as it was, or None."""
    if type(zone) is not datetime.timezone:
        # ISO text keeps the offset, not the zone's name or rules: a ZoneInfo would come
        # back as a fixed offset, so it would not be the value that was stored.
        return "has a tzinfo other than a fixed datetime.timezone offset; convert it with .astimezone(timezone.utc)"
    # Keyed by repr, which shows offset and name: timezone objects compare by offset alone.
    return _fixed_offset_problem(repr(zone), zone)


@functools.lru_cache(maxsize=1024)
def _fixed_offset_problem(text, zone):
    # (zone is only read on a cache miss; text alone is the cache key's meaning.)
    offset = zone.utcoffset(None)
    back = datetime.datetime.fromisoformat(datetime.datetime(2000, 1, 1, tzinfo=zone).isoformat()).tzinfo
    if back.utcoffset(None) != offset:
        return (f"has the UTC offset {offset!r}, which this Python reads back from ISO text as "
                f"{back.utcoffset(None)!r} (the instant would move); round the offset to whole seconds or minutes")
    if repr(back) != repr(zone):
        # Equal offsets (timezone compares only those), but a name given to the offset is lost.
        return (f"has an offset named {zone.tzname(None)!r}, but ISO text keeps only the offset, so it would "
                f"come back as {back!r}; use that instead")
    return None


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


SHOWN_DEPTH = 100  # deeper containers are named, not printed: no message needs a hundred brackets


def _nested_deeper_than(value, depth):
    """True when lists, tuples and dicts are nested in ``value`` more than ``depth`` levels deep.

    Iterative, because the values it guards against are too deep for a recursive walk.
    """
    waiting = [(value, 1)]
    while waiting:
        item, level = waiting.pop()
        if isinstance(item, dict):
            children = item.values()
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


def to_db(column_type, value):
    """A value as sqlite3 binds it for a column of ``column_type`` (None stays NULL).

    The one conversion to the database (with :func:`bind_column`, which checks a whole column of
    values first): the flush, the loaders and merge all call it."""
    convert = column_type.to_db
    return convert(value) if convert is not None and value is not None else value


def from_db(column_type, value):
    """A value read from SQLite back as the Python value of a column of ``column_type``."""
    if value is None:
        return None
    if type(column_type) is FloatType and type(value) is int:
        # RETURNING skips REAL affinity's conversion: 5.0 comes back as the integer 5.
        return float(value)
    convert = column_type.from_db
    return convert(value) if convert is not None else value


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


def _varint_size(number):
    size = 1
    while number >= 0x80 and size < 9:
        number >>= 7
        size += 1
    return size


def _integer_size(value):
    """The bytes SQLite's record format takes for an integer (0 and 1 take none)."""
    if value in (0, 1):
        return 0
    for size, bits in ((1, 8), (2, 16), (3, 24), (4, 32), (6, 48)):
        if -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
            return size
    return 8


def record_size_floor(bound_row, integers=False):
    """The least number of bytes SQLite's record of a row holding ``bound_row`` can take.

    SQLite refuses a row whose record (a header of one type code per column, then the text and
    blob bytes) exceeds the length limit, even when every value fits on its own.  Numbers are
    counted as taking no bytes, and columns not given as taking one header byte, so the result
    never exceeds the real size: a row refused by this measure would surely be refused by SQLite.
    ``integers=True`` counts integers' bytes too: right for the row a RETURNING clause hands
    back (SQLite builds a record of it), where an INTEGER PRIMARY KEY is a stored value; in the
    table's own record that key takes no bytes, so it is not counted there.
    """
    header = 0
    body = 0
    for value in bound_row:
        if type(value) is str:
            size = len(value.encode("utf-8", "surrogatepass"))
            header += _varint_size(2 * size + 13)
        elif type(value) is bytes:
            size = len(value)
            header += _varint_size(2 * size + 12)
        elif integers and type(value) is int:
            size = _integer_size(value)
            header += 1
        else:
            size = 0
            header += 1
        body += size
    return header + _varint_size(header) + body


def oversized_row(bound_columns, max_length, integers=False):
    """``(index, size)`` of the first row whose record surely exceeds ``max_length``, or None.

    ``bound_columns`` holds one list of bound values per column (all of the same length).
    """
    if max_length is None or not bound_columns:
        return None
    # Four bytes per character and nine per column bound every record from above: when the
    # widest values of each column fit together, no row needs to be measured.
    rough = 9
    for values in bound_columns:
        sized = [value for value in values if type(value) is str or type(value) is bytes]
        rough += 9 + (max(map(len, sized)) * 4 if sized else 0)
    if rough <= max_length:
        return None
    for index, row in enumerate(zip(*bound_columns)):
        size = record_size_floor(row, integers)
        if size > max_length:
            return index, size
    return None
