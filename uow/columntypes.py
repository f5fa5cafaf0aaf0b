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
``uuid.UUID``              TEXT            ``str(value)``: 36 characters, lower case, with hyphens (only)
an ``enum.Enum`` class     TEXT            the member's *name* (``Color.RED`` as ``'RED'``)
``dict``, ``list``         TEXT            JSON; in-place changes are detected at flush (``jsontype``)
=========================  ==============  ===============================================

A type of your own is declared with ``Column(type=...)`` and a :class:`~uow.customtypes.CustomType`
(``customtypes``), held to the same promise.

Dates and decimals are declared TEXT rather than DATE or DECIMAL on purpose: those names give
the column NUMERIC affinity, and SQLite would then turn ``Decimal('1.10')`` into the REAL 1.1.

The types are the rules; applying them is elsewhere: every value on its way to SQLite passes
one gate (``valuechecks.bind_column``), and a written row's size is checked against SQLite's
record limit (``rowsize``).  :func:`to_db` and :func:`from_db` are the one conversion each way.
"""

import datetime
import decimal
import enum
import functools
import math
import uuid
from collections.abc import Callable
from typing import Any, cast

from .errors import ColumnValueError

INT64_MIN = -(2 ** 63)
INT64_MAX = 2 ** 63 - 1


class ColumnType:
    """The storage rules for one Python type.

    ``mutable`` is True for types whose values can change in place (JSON), which the change
    tracker must compare at every flush instead of waiting for an assignment.

    ``to_db`` converts a Python value to what sqlite3 binds (None when no conversion is needed),
    ``from_db`` converts a stored value back (None when sqlite3 already returns the right type),
    and ``problem`` returns why a single value cannot be stored unchanged, or None.
    ``stored_type`` is the type of what ``to_db`` gives (the form an identity key holds).
    """

    python_type: type = object
    stored_type: type = object
    sql_type = ""
    mutable = False
    to_db: Callable[[Any], Any] | None = None
    from_db: Callable[[Any], Any] | None = None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` cannot be stored and read back unchanged, or None when it can."""
        if type(value) is not self.python_type:
            return f"expected {self.python_type.__name__}, got {type(value).__name__}"
        return None

    def all_valid(self, values: list[Any]) -> bool:
        """A fast check that every (non-None) value is acceptable; may only say True when it is."""
        return set(map(type, values)) <= {self.python_type}

    def check_sql(self, quoted_column: str) -> str | None:
        """The CHECK expression ``create_all`` declares on a column of this type, or None: for a
        type whose stored form must be one of many a program could write (a UUID's canonical text)."""
        return None

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
    stored_type = str
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
    stored_type = str
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
    # (ISO text with an offset is read back aware: the tzinfo is never None here.)
    back = cast(datetime.tzinfo, datetime.datetime.fromisoformat(
        datetime.datetime(2000, 1, 1, tzinfo=zone).isoformat()).tzinfo)
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
    stored_type = str
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


class UuidType(ColumnType):
    """A UUID as its canonical text (``'12345678-1234-5678-1234-567812345678'``), and only that.

    Text rather than a 16-byte blob so that the stored value reads the same in the sqlite3 shell
    as in Python.  Keys and queries compare the canonical text, so another form (upper case, 32 hex
    digits, a blob: another program wrote it) would be missed by ``get()``, and adding an object
    with that UUID would write a second row.  So ``create_all`` declares a CHECK that refuses other
    forms (:meth:`check_sql`), and reading one is a ColumnValueError naming the row and the fix.
    (SQLAlchemy's Uuid reads any form but finds only its own, 32 hex digits: the same two rows.)
    """

    python_type = uuid.UUID
    stored_type = str
    sql_type = "TEXT"
    to_db = staticmethod(uuid.UUID.__str__)
    # 8-4-4-4-12 lower-case hex digits: the text str(uuid.UUID) gives, as a GLOB pattern.
    CANONICAL_GLOB = "-".join("[0-9a-f]" * digits for digits in (8, 4, 4, 4, 12))

    @staticmethod
    def from_db(value: Any) -> uuid.UUID:
        """The UUID a stored canonical text stands for; any other stored form is refused (see above)."""
        parsed = uuid.UUID(value) if type(value) is str else None  # (text no UUID at all: read_back names it)
        if parsed is None or str(parsed) != value:
            raise ColumnValueError(
                f"{value!r} is not a UUID's canonical text (36 characters, lower case, with hyphens), which uow "
                f"stores and looks keys up by: get() would miss this row and a new object with its UUID would write "
                f"a second one. Rewrite the stored UUIDs in that form, or map the column with a CustomType")
        return parsed

    def check_sql(self, quoted_column: str) -> str | None:
        return f"{quoted_column} GLOB '{self.CANONICAL_GLOB}'"


class EnumType(ColumnType):
    """Members of one ``enum.Enum`` class, stored by *name*.

    The name rather than the value, as SQLAlchemy's Enum does: names are unique text, while
    values may be anything (tuples, objects, two members' aliases), and a value changed in the
    class would otherwise turn stored rows into another member.  Only members of exactly this
    class are accepted: ``'RED'`` or the IntEnum's ``1`` would come back as ``Color.RED``, not
    as what was stored.  ``enum.Flag`` classes are refused when the class is declared (a
    combination of flags has no single name to store).  One instance per enum class
    (:func:`enum_type`), so two columns of one enum have the same type, as a foreign key needs.
    """

    python_type: type[enum.Enum]
    stored_type = str
    sql_type = "TEXT"

    def __init__(self, enum_class: type[enum.Enum]) -> None:
        self.python_type = enum_class
        self.to_db = _member_name
        self.from_db = self.member

    def member(self, name: str) -> enum.Enum:
        """The member a stored name stands for; a name the class no longer has is an error."""
        try:
            return self.python_type[name]
        except KeyError:
            members = ", ".join(self.python_type.__members__)
            raise ColumnValueError(
                f"the stored name {name!r} is not a member of {self.python_type.__name__} ({members}); "
                f"a member was renamed or removed after the row was written: add it back, or update the rows"
            ) from None

    def __repr__(self):
        return f"EnumType({self.python_type.__name__})"


def _member_name(member: enum.Enum) -> str:
    return member.name


@functools.cache
def enum_type(enum_class: type[enum.Enum]) -> EnumType:
    """The one :class:`EnumType` of ``enum_class``."""
    return EnumType(enum_class)


# The types this module stores, by the annotation that declares them (the JSON types, dict and
# list, are ``jsontype``'s).
BUILT_IN_TYPES: dict[type, ColumnType] = {
    int: IntegerType(),
    float: FloatType(),
    str: TextType(),
    bytes: BlobType(),
    bool: BooleanType(),
    datetime.date: DateType(),
    datetime.datetime: DateTimeType(),
    decimal.Decimal: DecimalType(),
    uuid.UUID: UuidType(),
}


def to_db(column_type, value):
    """A value as sqlite3 binds it for a column of ``column_type`` (None stays NULL).

    The one conversion to the database (with :func:`bind_column`, which checks a whole column of
    values first): the flush, the loaders and merge all call it."""
    convert = column_type.to_db
    return convert(value) if convert is not None and value is not None else value


def read_back(column, value, row):
    """:func:`from_db` for ``column`` of the row ``row`` names (``User(id=3)``): a stored value its
    type cannot read (a row another program wrote, an enum member since removed) is a
    ColumnValueError naming the attribute and the row, not the conversion's own error."""
    try:
        return from_db(column.type, value)
    except Exception as error:
        raise ColumnValueError(
            f"{column.qualified_name} of the row {row} cannot be read: {error}; nothing was loaded "
            f"(fix the row, or the type, and read it again)"
        ) from error


def check_key_form(column, value, stored):
    """A loaded key must be stored as the text uow writes for its value, which get() looks keys up by:
    another form (a datetime keyed '2020-01-02 03:04:05' by another program) is missed by get(), even
    while the session holds it, and adding an object with that key writes a second row."""
    written = to_db(column.type, value)
    if written != stored:
        raise ColumnValueError(
            f"{column.qualified_name}: the key {stored!r} is stored in another form than uow writes and looks keys up "
            f"by ({written!r}), so get() would miss its row and a new object with that key would write a second "
            f"row; rewrite the stored keys in that form. Nothing was loaded")


def from_db(column_type, value):
    """A value read from SQLite back as the Python value of a column of ``column_type``."""
    if value is None:
        return None
    if type(column_type) is FloatType and type(value) is int:
        # RETURNING skips REAL affinity's conversion: 5.0 comes back as the integer 5.
        return float(value)
    convert = column_type.from_db
    return convert(value) if convert is not None else value
