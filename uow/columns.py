"""The declaration objects a class body holds: :class:`Column` and :class:`ForeignKey`.

::

    class Order(Entity, table="orders"):
        id: int = Column(primary_key=True)
        user_id: int = Column(references=User)     # a one-column foreign key

A Column is filled in when its class is mapped (``declaration`` checks it, the ``mapper`` keeps
it); after that it never changes.  It is also the one piece of instrumentation a column needs
besides ``Entity.__setattr__``: a *non-data* descriptor, so reading a loaded value is an ordinary
instance-dict lookup, and the descriptor only runs when the value is missing, which is when an
expired attribute must be reloaded.  Read through the class (``User.age``) it gives the column's
``expressions.ColumnAttribute``, which query conditions are written with.

This module knows nothing about sessions: it reaches the session only through the object's state
record (``obj.__dict__[STATE_ATTRIBUTE]``, see ``states``), and then only through the declared
``hooks``.
"""

import functools
import typing
from collections.abc import Callable, Sequence
from typing import Any

from .errors import DetachedInstanceError, MappingError
from .expressions import ColumnAttribute
from .sentinels import MISSING
from .states import STATE_ATTRIBUTE

# In a class body a Column stands for the value its annotation names (``id: int =
# Column(primary_key=True)``), so a type checker must accept it wherever that value may go: to
# a type checker, Column derives from Any.  At run time it is a plain class (deriving from
# typing.Any itself would give Column Any's __new__, which refuses Column's arguments).
if typing.TYPE_CHECKING:
    _StandsForItsValue = Any
else:
    _StandsForItsValue = object


class Column(_StandsForItsValue):
    """Declares one column; also the descriptor that loads the attribute when it is missing.

    Use it as the default value of an annotated attribute when a plain default is not enough::

        id: int = Column(primary_key=True)
        email: str | None = Column(unique=True)
        created: str = Column(server_default="CURRENT_TIMESTAMP")
        owner_id: int = Column(references=User)

    ``default`` is a Python value used by the constructor, ``default_factory`` a callable
    called once per object, ``server_default`` an SQL expression that becomes the column's
    DEFAULT (uow reads the value back after the INSERT).  Nullability comes from the
    annotation (``str | None``).

    ``type`` gives a column type of your own, a :class:`~uow.customtypes.CustomType` instance, for
    a class uow does not store by itself (the annotation names that class).

    ``version=True`` makes an ``int`` column the row's version counter (optimistic concurrency):
    it starts at 1, every UPDATE and DELETE of the row checks it still holds the value this
    session loaded and increments it, and a mismatch raises StaleDataError instead of
    overwriting someone else's change.
    """

    def __init__(self, *, primary_key: bool = False, default: Any = MISSING,
                 default_factory: Callable[[], Any] | None = None, server_default: str | None = None,
                 unique: bool = False, references: type | str | None = None, version: bool = False,
                 type: Any = None) -> None:
        if default is not MISSING and default_factory is not None:
            raise MappingError("give a Column either default or default_factory, not both")
        self.primary_key = primary_key
        self.default = default
        self.default_factory = default_factory
        self.server_default = server_default
        self.unique = unique
        self.references = references
        self.version = version
        self.declared_type = type  # a CustomType, or None: the annotation says
        # Filled in when the class is mapped (None before; only the repr reads them then):
        self.name: Any = None     # str
        self.entity: Any = None   # the entity class
        self.type: Any = None     # its columntypes.ColumnType
        self.nullable = False
        self.index = -1
        self.generated = False
        # What ``User.age`` gives: one per column, so it compares equal to itself in lists and dicts.
        self.attribute = ColumnAttribute(self)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            # Read through the class: an object to write query conditions with (see expressions).
            return self.attribute
        # Only reached when the value is absent from the instance dict.
        state = obj.__dict__.get(STATE_ATTRIBUTE)
        if state is None or state.key is None:
            # A transient or pending object whose value the database will supply (a generated
            # key or an SQL DEFAULT) reads as None until it is flushed, as in SQLAlchemy.
            return None
        if state.session is None:
            raise DetachedInstanceError(
                f"{type(obj).__name__}.{self.name} of {state.describe()} was expired and the object has no "
                f"session to reload it from; add() it to a session first, or avoid expiring it"
            )
        state.session.hooks.load_expired(state)
        return obj.__dict__[self.name]

    @property
    def qualified_name(self) -> str:
        return f"{self.entity.__name__}.{self.name}" if self.entity else str(self.name)

    def __repr__(self):
        return f"Column({self.qualified_name})"


class ForeignKey:
    """A foreign key from one or more columns to another entity's primary key.

    Single-column keys are usually declared with ``Column(references=Target)``; a composite key
    is declared on the class::

        class Line(Entity, table="lines", foreign_keys=[ForeignKey(("order_a", "order_b"), Order)]):
            ...

    ``target`` may be the class or its name (for a class declared later, or the class itself).
    """

    def __init__(self, columns: str | Sequence[str], target: type | str) -> None:
        if isinstance(columns, str):
            columns = (columns,)
        if not isinstance(columns, (tuple, list)) or not columns or not all(isinstance(n, str) for n in columns):
            raise MappingError(f"ForeignKey({columns!r}, ...): name the column, or give a tuple of column names")
        if not isinstance(target, (str, type)):
            raise MappingError(f"ForeignKey({columns!r}, {target!r}): the target is an entity class or its name")
        self.column_names: tuple[str, ...] = tuple(columns)
        self._target = target
        self.entity: Any = None   # the entity class declaring the key, set when it is mapped
        self._description: str | None = None

    @property
    def target(self) -> Any:
        """The referenced entity class, resolved from its name on first use."""
        if isinstance(self._target, str):
            self._target = self.entity.__registry__.resolve(self._target, self)
        return self._target

    # The three below are asked for once per row of a flush, so each is worked out once: a
    # declared class and its mapper never change, and the target is resolved by the first call.

    @functools.cached_property
    def columns(self) -> tuple[Column, ...]:
        mapper = self.entity.__mapper__
        return tuple(mapper.column(name) for name in self.column_names)

    @functools.cached_property
    def nullable(self) -> bool:
        """True when every column of the key may be NULL, so a row can be written without it."""
        return all(column.nullable for column in self.columns)

    def target_key(self, values: Sequence[Any]) -> Any:
        """The key (``Mapper.key_for``) of the ``target`` row that the foreign-key column ``values``
        point at."""
        return self.target.__mapper__.key_for(values)

    def describe(self) -> str:
        """``orders.user_id references users.id``: the reason an ordering edge gives."""
        if self._description is None:
            target = self.target.__mapper__
            here = ", ".join(f"{self.entity.__mapper__.table}.{name}" for name in self.column_names)
            there = ", ".join(f"{target.table}.{column.name}" for column in target.primary_key)
            self._description = f"{here} references {there}"
        return self._description

    def __repr__(self):
        target = self._target if isinstance(self._target, str) else self._target.__name__
        return f"ForeignKey({self.column_names!r} -> {target})"
