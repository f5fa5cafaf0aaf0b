"""Conditions and orderings written on class attributes: ``User.age >= 18``, ``&``, ``|``, ``~``, ``.desc()``.

Reading a column through its class (``User.age``) gives a :class:`ColumnAttribute`, which builds
query conditions the way SQLAlchemy's, Storm's and peewee's do::

    (User.age >= 18) & User.name.like("a%")
    User.id.in_([1, 2, 3]) | User.email.is_(None)
    ~(User.name == "ann")
    User.age.desc()

Why a separate object and not the Column itself: a Column is a declaration, kept in sets and
dicts by the mapping (and by users); giving it an ``__eq__`` that builds a condition would make
``column in some_set`` ask a condition for its truth.  The attribute is hashable by identity, and
one attribute per column is made, and two attributes compared with ``==`` say whether they are
the same one, so ``User.age in [User.age, User.name]`` still works.

These objects are plain data: no SQL, no check of the values against the column's type.  Both
happen when a query runs (``query``), where the connection's limits are known, and before any
SQL is sent.  A condition has no truth value: ``a and b``, ``if User.age > 3:`` and chained
``1 < User.age < 3`` are refused with a ConditionError that says to write ``&`` and ``|``.
"""

import abc
from collections.abc import Iterable
from typing import Any

from .errors import ConditionError, UnknownFieldError
from .valuechecks import shown

# The comparison operators, by the SQL each becomes.
EQ, NE, LT, LE, GT, GE = "=", "!=", "<", "<=", ">", ">="
ORDERING_OPERATORS = (LT, LE, GT, GE)
IN, NOT_IN, LIKE, IS, IS_NOT = "IN", "NOT IN", "LIKE", "IS", "IS NOT"


class Condition(abc.ABC):
    """A condition a query's rows must meet; combine them with ``&`` (and), ``|`` (or), ``~`` (not).

    Abstract: the three kinds below (a comparison, AND/OR, NOT) are the only conditions there are.
    """

    def __and__(self, other: "Condition") -> "Condition":
        return Junction("AND", [self, _condition(other, "&")])

    def __or__(self, other: "Condition") -> "Condition":
        return Junction("OR", [self, _condition(other, "|")])

    def __rand__(self, other: object) -> "Condition":
        return Junction("AND", [_condition(other, "&"), self])

    def __ror__(self, other: object) -> "Condition":
        return Junction("OR", [_condition(other, "|"), self])

    def __invert__(self) -> "Condition":
        return Negation(self)

    def __bool__(self) -> bool:
        raise ConditionError(
            f"{self!r} is a query condition, which has no truth value until a query runs it: combine "
            f"conditions with & and | (not 'and' / 'or', and not chained comparisons like 1 < User.age < 9), "
            f"and pass them to select(...).where()"
        )

    @abc.abstractmethod
    def attributes(self) -> list["ColumnAttribute"]:
        """The class attributes the condition reads (a query checks that they belong to its class)."""


def _condition(value: object, operator: str) -> Condition:
    if not isinstance(value, Condition):
        raise ConditionError(
            f"{operator} combines query conditions, got {shown(value)} ({type(value).__name__}); write a "
            f"comparison on a class attribute, such as (User.age >= 18) {operator} (User.name == 'ann')"
        )
    return value


class Comparison(Condition):
    """``attribute operator value``: ``value`` is a Python value (a list for IN), or another
    attribute of the same class."""

    def __init__(self, attribute: "ColumnAttribute", operator: str, value: Any, escape: str | None = None) -> None:
        self.attribute = attribute
        self.operator = operator
        self.value = value
        self.escape = escape

    def attributes(self) -> list["ColumnAttribute"]:
        if isinstance(self.value, ColumnAttribute):
            return [self.attribute, self.value]
        return [self.attribute]

    def __bool__(self) -> bool:
        # Two attributes compared with == or != answer whether they are the same attribute (as
        # in SQLAlchemy), so ``User.name in [User.age, User.name]`` and list.index() work.
        if isinstance(self.value, ColumnAttribute) and self.operator in (EQ, NE):
            return (self.attribute is self.value) == (self.operator == EQ)
        return super().__bool__()

    def __repr__(self):
        value = self.value
        said = value.qualified_name if isinstance(value, ColumnAttribute) else shown(value)
        text = f"{self.attribute.qualified_name} {self.operator} {said}"
        return text if self.escape is None else f"{text} ESCAPE {self.escape!r}"


class Junction(Condition):
    """Conditions joined by AND or OR (nested junctions of the same kind are flattened)."""

    def __init__(self, operator: str, parts: Iterable[Condition]) -> None:
        self.operator = operator
        self.parts: list[Condition] = []
        for part in parts:
            if isinstance(part, Junction) and part.operator == operator:
                self.parts.extend(part.parts)
            else:
                self.parts.append(part)

    def attributes(self) -> list["ColumnAttribute"]:
        return [attribute for part in self.parts for attribute in part.attributes()]

    def __repr__(self):
        joint = " & " if self.operator == "AND" else " | "
        return joint.join(f"({part!r})" for part in self.parts)


class Negation(Condition):
    """NOT a condition."""

    def __init__(self, part: Condition) -> None:
        self.part = part

    def attributes(self) -> list["ColumnAttribute"]:
        return self.part.attributes()

    def __repr__(self):
        return f"~({self.part!r})"


class Ordering:
    """One term of ORDER BY: an attribute, ascending or descending (``User.age.desc()``)."""

    def __init__(self, attribute: "ColumnAttribute", descending: bool) -> None:
        self.attribute = attribute
        self.descending = descending

    def __repr__(self):
        return f"{self.attribute.qualified_name}.{'desc' if self.descending else 'asc'}()"


class ColumnAttribute:
    """What reading a column through its class gives (``User.age``): the column, as the left side
    of conditions and orderings (see the module docstring).  ``column`` is the declaring Column."""

    def __init__(self, column: Any) -> None:
        self.column = column

    @property
    def qualified_name(self) -> str:
        """``User.age``: how messages and reprs name the attribute."""
        return self.column.qualified_name

    def __hash__(self) -> int:
        return id(self)

    # Comparisons build conditions, as in SQLAlchemy; == None and != None become IS NULL / IS NOT NULL.
    def __eq__(self, value: object) -> Condition:  # type: ignore[override]
        return Comparison(self, IS if value is None else EQ, value)

    def __ne__(self, value: object) -> Condition:  # type: ignore[override]
        return Comparison(self, IS_NOT if value is None else NE, value)

    def __lt__(self, value: object) -> Condition:
        return Comparison(self, LT, value)

    def __le__(self, value: object) -> Condition:
        return Comparison(self, LE, value)

    def __gt__(self, value: object) -> Condition:
        return Comparison(self, GT, value)

    def __ge__(self, value: object) -> Condition:
        return Comparison(self, GE, value)

    def in_(self, values: Iterable[Any]) -> Condition:
        """The value is one of ``values`` (a list, tuple or set; empty matches nothing)."""
        return Comparison(self, IN, _listed(self, "in_", values))

    def not_in(self, values: Iterable[Any]) -> Condition:
        """The value is none of ``values`` (NULL is not matched, as in SQL)."""
        return Comparison(self, NOT_IN, _listed(self, "not_in", values))

    def like(self, pattern: str, escape: str | None = None) -> Condition:
        """SQL LIKE: ``%`` any text, ``_`` one character; SQLite ignores case for ASCII letters only.

        ``escape`` is one character that makes the ``%`` or ``_`` after it literal."""
        return Comparison(self, LIKE, pattern, escape)

    def is_(self, value: None) -> Condition:
        """IS NULL (``User.email.is_(None)``); the same as ``== None``."""
        return Comparison(self, IS, value)

    def is_not(self, value: None) -> Condition:
        """IS NOT NULL; the same as ``!= None``."""
        return Comparison(self, IS_NOT, value)

    def asc(self) -> Ordering:
        """Ascending order, for ``order_by`` (the same as the attribute itself)."""
        return Ordering(self, False)

    def desc(self) -> Ordering:
        """Descending order, for ``order_by``."""
        return Ordering(self, True)

    def __repr__(self):
        return self.qualified_name

    def __getattr__(self, name: str) -> Any:
        # Only names no attribute has reach here: a method another ORM's columns have
        # (User.name.startswith, .contains, .between...) is named with what uow writes instead,
        # not a bare AttributeError about ColumnAttribute.
        if name.startswith("__"):
            raise AttributeError(name)
        hint = _INSTEAD.get(name, "")
        raise UnknownFieldError(
            f"{self.qualified_name}.{name}: a class attribute in a query has no {name}(); conditions are written "
            f"with ==, !=, <, <=, >, >=, in_(), not_in(), like(), is_() and is_not(), joined with &, | and ~"
            + (f"; write {hint.format(self.qualified_name)}" if hint else ""))

    def _arithmetic(self, *other: object) -> Condition:
        raise ConditionError(
            f"{self.qualified_name}: a query compares a column with a value or another column of its class, "
            f"it does no arithmetic on columns (+, -, *, / ...); compute the value in Python instead "
            f"({self.qualified_name} >= limit - 1), or compare in Python after loading")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _arithmetic
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _arithmetic
    __pow__ = __rpow__ = __neg__ = __pos__ = __abs__ = _arithmetic


# What to write instead of another ORM's column methods (the attribute's name fills {}).
_INSTEAD = {
    "startswith": "{}.like('abc%')", "endswith": "{}.like('%abc')", "contains": "{}.like('%abc%')",
    "ilike": "{}.like(...) (SQLite's LIKE already ignores case for ASCII letters)",
    "between": "({0} >= low) & ({0} <= high)", "notin_": "{}.not_in([...])", "isnot": "{}.is_not(None)",
    "notlike": "~{}.like(...)",
}


def _listed(attribute: ColumnAttribute, operation: str, values: Iterable[Any]) -> list[Any]:
    """``in_()``'s values as a list; a string or a single value is refused, not read letter by letter.

    Any other iterable (a generator, a range, a dict, whose iteration gives only its keys) is
    refused too, so that what the condition holds is what the call plainly wrote; the refusal
    says how to pass what it yields: ``in_(list(...))``.
    """
    if isinstance(values, (str, bytes, ColumnAttribute)) or not isinstance(values, (list, tuple, set, frozenset)):
        name = f"{attribute.qualified_name}.{operation}"
        if isinstance(values, dict):
            fix = f"write {name}(list(d.keys())) or {name}(list(d.values())), whichever you mean"
        elif isinstance(values, Iterable) and not isinstance(values, (str, bytes, ColumnAttribute)):
            fix = f"write {name}(list(...)) to pass the values it yields"
        else:
            fix = f"write {name}([{shown(values)}]) for one value"
        raise ConditionError(f"{name}() takes a list, tuple or set of values, got {shown(values)}; {fix}")
    return list(values)
