"""Relationships between entities: a reference to one object, and a collection of objects.

::

    class Order(Entity, table="orders"):
        id: int = Column(primary_key=True)
        user_id: int = Column(references="User")
        user = Reference("user_id")                 # many-to-one, through the user_id column

    class User(Entity, table="users"):
        id: int = Column(primary_key=True)
        orders = Collection("Order", "user")        # one-to-many: the orders whose .user is me

The link between an order and its user is stored once: in the order's ``user`` reference (and its
``user_id`` column).  ``user.orders`` is a view of the orders that point at the user, kept in step
in memory both ways: setting ``order.user = ann`` puts the order in ``ann.orders`` (if that list is
loaded), and ``ann.orders.append(order)`` sets ``order.user``.

A reference to an object the database has not numbered yet (a pending user) is fine: the flush
inserts the user first and fills ``order.user_id`` from the key the database gave it.

Both sides load lazily on first access, through the identity map; ``session.filter(..., load=[...])``
loads them up front with one SELECT per relationship.

This module holds what both kinds share (the cascades below), the reference side, and
``set_reference``, which keeps a loaded collection in step when a reference moves.  The
collection side, ``Collection`` and the ``RelatedList`` behind it, is in ``collection``, which
imports this module (never the other way round).

**Cascades** say which operations travel along a relationship (``cascade="..."``, comma separated):

=================  ===========================================================================
``save-update``    adding an object (from any state) adds the objects it references or holds
                   that are not in the session yet (default on both)
``merge``          merging an object merges what it references or holds (loaded), and the
                   merged object then references or holds the merged copies (default on both)
``delete``         deleting a parent deletes its children, loaded or not (Collection only)
``delete-orphan``  a child removed from its parent's collection is deleted (Collection only)
``expunge``        expunging the parent expunges the objects it holds (default on Collection)
``refresh``        refreshing the parent refreshes the loaded objects it holds (default on Collection)
``all``            save-update, merge, delete, expunge and refresh
=================  ===========================================================================

For a type checker, annotate a relationship with the class it leads to: ``user: Reference[User]
= Reference("user_id")`` reads as a ``User | None``, ``orders: Collection["Order"] = ...`` as a
list of ``Order``, and both become checked keywords of the constructor.  (Unannotated, they are
not constructor keywords to a type checker, and read as ``Any``.)
"""

from collections.abc import Sequence
from typing import Any, Generic, TypeVar, overload

from .errors import DetachedInstanceError, MappingError
from .states import STATE_ATTRIBUTE

CASCADES = ("save-update", "merge", "delete", "delete-orphan", "expunge", "refresh")
MISSING_PAIR = object()

Target = TypeVar("Target")  # the entity class a relationship leads to


def _parse_cascade(text: object, owner: str, allowed: Sequence[str]) -> frozenset[str]:
    if not isinstance(text, str):
        raise MappingError(f"{owner}: cascade is a comma-separated string such as 'all, delete-orphan', not {text!r}")
    names: set[str] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if part == "all":
            names.update(("save-update", "merge", "delete", "expunge", "refresh"))
        elif part in CASCADES:
            names.add(part)
        else:
            raise MappingError(f"{owner}: unknown cascade {part!r}; use {', '.join(CASCADES)} or 'all'")
    wrong = names - set(allowed)
    if wrong:
        raise MappingError(f"{owner}: cascade {', '.join(sorted(wrong))} only applies to a Collection")
    return frozenset(names)


class Relationship:
    """What Reference and Collection share: an attribute of an entity class, and the cascades
    (``CASCADES`` above) that travel along it."""

    allowed_cascades: tuple[str, ...] = CASCADES

    def __init__(self, cascade: str) -> None:
        self._cascade_text = cascade
        # Filled in when the class is mapped (None before; only the repr reads them then):
        self.name: Any = None      # str
        self.entity: Any = None    # the entity class declaring it
        self.cascade: Any = None     # frozenset of the cascade names (see _parse_cascade)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def bind(self, entity: Any, name: str) -> None:
        """Called by the mapper when ``entity`` is declared: learn the class and read the cascades."""
        self.entity = entity
        self.name = name
        self.cascade = _parse_cascade(self._cascade_text, f"{entity.__name__}.{name}", self.allowed_cascades)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.entity.__name__ if self.entity else '?'}.{self.name})"


class Reference(Relationship, Generic[Target]):
    """Many-to-one: the object this one's foreign key points at.

    ``foreign_key`` names the column (or tuple of columns) of a ForeignKey declared on this class.
    """

    allowed_cascades = ("save-update", "merge", "expunge", "refresh")

    def __init__(self: "Reference[Any]", foreign_key: str | Sequence[str], *,
                 cascade: str = "save-update, merge") -> None:
        super().__init__(cascade)
        names = (foreign_key,) if isinstance(foreign_key, str) else foreign_key
        if not isinstance(names, (tuple, list)) or not names or not all(isinstance(n, str) for n in names):
            raise MappingError(f"Reference({foreign_key!r}): name the foreign-key column, or give a tuple of columns")
        self.column_names = tuple(names)
        self.foreign_key: Any = None   # the ForeignKey, found when the class is mapped (bind)
        self._collection: Any = MISSING_PAIR

    def bind(self, entity: Any, name: str) -> None:
        """Called by the mapper: also find the ForeignKey this reference travels along."""
        super().bind(entity, name)
        owner = f"{entity.__name__}.{name}"
        for foreign_key in entity.__mapper__.foreign_keys:
            if foreign_key.column_names == self.column_names:
                self.foreign_key = foreign_key
                break
        else:
            raise MappingError(
                f"{owner} = Reference({', '.join(self.column_names)}): no foreign key on those columns; "
                f"declare Column(references=...) (or a ForeignKey) for them"
            )

    @property
    def target(self) -> Any:
        return self.foreign_key.target

    @property
    def collection(self) -> Any:
        """The Collection on the target class that pairs with this reference, or None.

        Found on first use, once both classes exist (the target may be declared after this one).
        """
        if self._collection is MISSING_PAIR:
            self._collection = None
            for collection in self.target.__mapper__.collections:
                collection.configure()  # pairs with us if it names this reference
        return self._collection

    @collection.setter
    def collection(self, value: Any) -> None:
        self._collection = value

    @property
    def nullable(self) -> bool:
        return self.foreign_key.nullable

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> "Reference[Target]": ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> Target | None: ...

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        values = obj.__dict__
        if self.name in values:
            return values[self.name]
        state = values.get(STATE_ATTRIBUTE)
        expired = [name for name in self.column_names if name not in values]
        if expired and state is not None and state.key is not None and state.session is None:
            raise DetachedInstanceError(
                f"{self.entity.__name__}.{self.name} of {state.describe()} needs its foreign key "
                f"({', '.join(expired)}), which was expired, and the object has no session to reload it "
                f"from; add() it to a session first"
            )
        # An expired foreign-key column is not NULL: reading it through its Column reloads it
        # (a transient or pending object without the value reads None, as the column does).
        key_values = tuple(values[name] if name in values else getattr(obj, name) for name in self.column_names)
        if None in key_values:
            return None
        if state is None or state.session is None:
            if state is not None and state.key is not None:
                raise DetachedInstanceError(
                    f"{self.entity.__name__}.{self.name} of {state.describe()} is not loaded and the object "
                    f"has no session to load it from; add() it to a session first"
                )
            return None
        return state.session.hooks.load_reference(state, self, key_values)

    def __set__(self, obj: object, target: Target | None) -> None:
        if target is not None and not isinstance(target, self.target):
            raise MappingError(
                f"{self.entity.__name__}.{self.name} holds a {self.target.__name__} (or None), not {target!r}"
            )
        state = obj.__dict__.get(STATE_ATTRIBUTE)
        if state is not None and state.session is not None:
            state.session.hooks.set_reference(state, self, target)
        else:
            set_reference(obj, self, target)


def set_reference(obj: Any, reference: Reference[Any], target: Any) -> None:
    """Point ``obj``'s reference at ``target`` and keep loaded collections on both sides in step.

    The foreign-key columns are set from the target's key when it has one; a target the database
    has not numbered yet leaves them to the flush.
    """
    values = obj.__dict__
    old = values.get(reference.name)
    values[reference.name] = target
    collection = reference.collection
    if collection is not None:
        if old is not None and old is not target:
            held = old.__dict__.get(collection.name)
            if held is not None:
                held._remove_quietly(obj)
        if target is not None:
            held = target.__dict__.get(collection.name)
            if held is None and _has_no_row(target):
                # A parent without a row has nothing to load: its collection is exactly the
                # objects linked to it in memory, so start the list now.
                held = collection.__get__(target)
            if held is not None and not held._holds(obj):  # (held once; a dict lookup, not a scan)
                held._append_quietly(obj)
    for name, value in zip(reference.column_names, _key_values(target, reference)):
        values[name] = value


def _key_values(target: Any, reference: Reference[Any]) -> tuple[Any, ...]:
    """The key ``reference``'s foreign key should hold: the target's key columns, or, when they are
    expired, the key its identity records (None for no target, or one the database has not numbered)."""
    if target is None:
        return (None,) * len(reference.column_names)
    mapper = type(target).__mapper__  # (Reference.__set__ checked it is an object of reference.target)
    values = target.__dict__
    state = values.get(STATE_ATTRIBUTE)
    if state is not None and state.key is not None and not all(name in values for name in mapper.pk_names):
        return mapper.key_values(state.key)
    return tuple(map(values.get, mapper.pk_names))


def _has_no_row(obj: Any) -> bool:
    state = obj.__dict__.get(STATE_ATTRIBUTE)
    return state is None or state.key is None
