"""A column type of your own: a Python class stored as one of SQLite's values, exactly.

SQLAlchemy's ``TypeDecorator`` converts a value on its way in and on its way out and trusts the
two conversions to agree.  uow promises more of every column: a value is stored and read back
unchanged, or refused before any SQL runs.  So a :class:`CustomType` gives the two conversions,
and uow checks, for every value it is about to write, that they do agree::

    class Point:                      # immutable, with __eq__ (a dataclass(frozen=True) will do)
        ...

    class PointType(uow.CustomType):
        python_type = Point           # what the attribute holds
        stored_type = str             # what SQLite holds: int, float, str or bytes

        def to_stored(self, value: Point) -> str:
            return f"{value.x},{value.y}"

        def from_stored(self, stored: str) -> Point:
            x, y = stored.split(",")
            return Point(int(x), int(y))

    class Place(Entity, table="places"):
        id: int = Column(primary_key=True)
        where: Point = Column(type=PointType())

Before a value is bound, uow requires that it is of exactly ``python_type``, that ``to_stored``
gives exactly ``stored_type`` (which the built-in type then checks: no NaN, no lone surrogate,
64-bit integers), and that ``from_stored`` gives back a value equal to it, of the same type,
whose stored form is the same again; anything else is refused with a ColumnValueError naming the
attribute, the value and what came back.  A failing conversion (``to_stored`` raising) is a
refusal too.

Stored forms are what SQLite compares, so a custom type can be a primary key, unique, or a
foreign key (to a key of the same CustomType class) when equal values have equal stored forms.
Values must be immutable, like ``Decimal`` or ``UUID``: a change made in place is not seen by the
change tracker (assign a new value instead).  A class uow already stores (int, str, date...)
cannot be given a custom type: its storage is part of uow's promise.
"""

from typing import Any

from .columntypes import BUILT_IN_TYPES, ColumnType
from .errors import ColumnValueError, MappingError

# What a custom type may store as, and the declared SQL type each gets (the affinity SQLite
# then applies leaves these four storage classes as they are).
STORED_TYPES = {int: "INTEGER", float: "REAL", str: "TEXT", bytes: "BLOB"}


class CustomType(ColumnType):
    """Subclass it with ``python_type``, ``stored_type`` and the two conversions (see the module)."""

    python_type: type = object
    stored_type: type = object

    # The two conversions are the protocol a subclass fills in.  They are not abc abstract methods
    # on purpose: an incomplete subclass must be refused with a MappingError naming what is missing
    # when a class declares a column of it (declaration_problem), not with abc's bare TypeError
    # at the first MyType() call.  These bodies are only reached by calling them directly, and
    # say the same thing in the same uow error.

    def to_stored(self, value: Any) -> Any:
        """The stored form (of ``stored_type``) of a value of ``python_type``."""
        raise MappingError(f"{type(self).__name__} must define to_stored(self, value): see uow.CustomType")

    def from_stored(self, stored: Any) -> Any:
        """The value of ``python_type`` a stored form stands for."""
        raise MappingError(f"{type(self).__name__} must define from_stored(self, stored): see uow.CustomType")

    def __init__(self) -> None:
        self.sql_type = STORED_TYPES.get(self.stored_type, "")
        self.to_db = self.to_stored
        self.from_db = self._from_db

    def declaration_problem(self) -> str | None:
        """Why this type cannot be used for a column, or None; asked when a class declares it."""
        name = type(self).__name__
        if getattr(self, "from_db", None) != self._from_db:
            return f"{name}.__init__ must call super().__init__(), which sets up the conversions"
        if not isinstance(self.python_type, type) or self.python_type is object:
            return f"{name}.python_type must be the class its values have"
        if self.stored_type not in STORED_TYPES:
            return (f"{name}.stored_type must be one of int, float, str, bytes (how SQLite holds the value), "
                    f"not {self.stored_type!r}")
        if self.python_type in BUILT_IN_TYPES or self.python_type in (dict, list):
            return (f"{name}.python_type is {self.python_type.__name__}, which uow already stores "
                    f"(its storage is part of uow's promise); wrap the value in a class of your own")
        if type(self).to_stored is CustomType.to_stored or type(self).from_stored is CustomType.from_stored:
            return f"{name} must define both to_stored(self, value) and from_stored(self, stored)"
        return None

    def problem(self, value: Any) -> str | None:
        if type(value) is not self.python_type:
            return f"expected {self.python_type.__name__}, got {type(value).__name__}"
        name = type(self).__name__
        try:
            stored = self.to_stored(value)
        except Exception as error:
            return f"cannot be stored: {name}.to_stored raised {type(error).__name__}: {error}"
        if type(stored) is not self.stored_type:
            return (f"was turned by {name}.to_stored into {stored!r}, a {type(stored).__name__}, "
                    f"not the declared stored_type {self.stored_type.__name__}")
        reason = BUILT_IN_TYPES[self.stored_type].problem(stored)
        if reason is not None:
            return f"has the stored form {stored!r}, which {reason}"
        try:
            back = self.from_stored(stored)
            again = self.to_stored(back) if type(back) is self.python_type else None
            same = type(back) is self.python_type and back == value and again == stored
        except Exception as error:
            return (f"cannot be read back: {name}.from_stored({stored!r}) raised "
                    f"{type(error).__name__}: {error}")
        if not same:
            return (f"would not come back the same: {name} stores it as {stored!r}, which reads back as "
                    f"{back!r}; a custom type must give back an equal value of the same type")
        return None

    def all_valid(self, values: list[Any]) -> bool:
        return all(self.problem(value) is None for value in values)

    def _from_db(self, stored: Any) -> Any:
        if self.stored_type is float and type(stored) is int:
            # RETURNING skips REAL affinity's conversion (as for the built-in float; see from_db).
            stored = float(stored)
        try:
            return self.from_stored(stored)
        except Exception as error:
            # A row this type did not write (another program, an older version of the type): the
            # user's conversion's own error would escape raw, naming neither the type nor the value.
            raise ColumnValueError(
                f"the stored value {stored!r} is not one {type(self).__name__} can read: from_stored raised "
                f"{type(error).__name__}: {error}; fix the row, or make from_stored read that form"
            ) from error

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def same_column_type(one: ColumnType, other: ColumnType) -> bool:
    """Two columns hold the same kind of value (a foreign key and the key it references): the
    built-in types and enum types are one object per type; two instances of one CustomType class
    for one Python class are the same type too."""
    if one is other:
        return True
    return isinstance(one, CustomType) and type(one) is type(other) and one.python_type is other.python_type

