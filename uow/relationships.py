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

import collections.abc
from collections.abc import Iterable, Sequence
from typing import Any, Generic, Self, SupportsIndex, TypeVar, overload

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
            if held is not None and obj in held:
                held._remove_quietly(obj)
        if target is not None:
            held = target.__dict__.get(collection.name)
            if held is None and _has_no_row(target):
                # A parent without a row has nothing to load: its collection is exactly the
                # objects linked to it in memory, so start the list now.
                held = collection.__get__(target)
            if held is not None and not any(item is obj for item in held):
                held._append_quietly(obj)
    for name, value in zip(reference.column_names, _key_values(target, reference.target.__mapper__)):
        values[name] = value


def _key_values(target: Any, mapper: Any) -> tuple[Any, ...]:
    """The key the foreign key should hold: the target's key columns, or, when they are expired,
    the key its identity records (None for no target, or one the database has not numbered)."""
    if target is None:
        return (None,) * len(mapper.pk_names)
    values = target.__dict__
    state = values.get(STATE_ATTRIBUTE)
    if state is not None and state.key is not None and not all(name in values for name in mapper.pk_names):
        return mapper.key_values(state.key)
    return tuple(values.get(name) for name in mapper.pk_names)


def _has_no_row(obj: Any) -> bool:
    state = obj.__dict__.get(STATE_ATTRIBUTE)
    return state is None or state.key is None


class Collection(Relationship, Generic[Target]):
    """One-to-many: the objects of ``target`` whose Reference ``reference`` points at this one."""

    def __init__(self: "Collection[Any]", target: type | str, reference: str, *,
                 cascade: str = "save-update, merge, expunge, refresh") -> None:
        super().__init__(cascade)
        if not isinstance(target, (str, type)) or not isinstance(reference, str):
            raise MappingError(
                f"Collection({target!r}, {reference!r}): give the target entity class (or its name) and "
                f"the name of its Reference back to this class"
            )
        self._target: Any = target   # the class, once resolved from its name
        self.reference_name = reference
        self._reference: Any = None  # the target's Reference, once paired (configure)

    def configure(self) -> None:
        """Resolve the target class and pair with its Reference (once every class is declared)."""
        if self._reference is not None:
            return
        target = self._target
        if isinstance(target, str):
            target = self.entity.__registry__.resolve(target, self)
            self._target = target
        reference = getattr(target, self.reference_name, None)
        if not isinstance(reference, Reference) or reference.target is not self.entity:
            raise MappingError(
                f"{self.entity.__name__}.{self.name} = Collection({target.__name__}, {self.reference_name!r}): "
                f"{target.__name__}.{self.reference_name} must be a Reference to {self.entity.__name__}"
            )
        self._reference = reference
        reference.collection = self

    # The target and its Reference are found on first use, by whichever path uses them first
    # (a lazy load, a cascade, a flush), never by a step the user must remember to run first.

    # (Typed Any, as Reference.collection is: a type checker would read a property that returns
    # a descriptor as the descriptor's value on an object.)
    @property
    def reference(self) -> Any:
        """The target's Reference that this collection is the other side of."""
        self.configure()
        return self._reference

    @property
    def target(self) -> Any:
        self.configure()
        return self._target

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> "Collection[Target]": ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> "RelatedList[Target]": ...

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        values = obj.__dict__
        held = values.get(self.name)
        if held is not None:
            return held
        self.configure()
        state = values.get(STATE_ATTRIBUTE)
        if state is None or state.key is None:
            items = []
        elif state.session is None:
            raise DetachedInstanceError(
                f"{self.entity.__name__}.{self.name} of {state.describe()} is not loaded and the object "
                f"has no session to load it from; add() it to a session first"
            )
        else:
            items = state.session.hooks.load_collection(state, self)
        held = RelatedList(obj, self, items)
        values[self.name] = held
        return held

    def __set__(self, obj: object, items: Iterable[Target]) -> None:
        if not isinstance(items, collections.abc.Iterable):
            raise MappingError(
                f"{self.entity.__name__}.{self.name} holds a list of {self.target.__name__} objects; "
                f"assign a list, not {items!r}"
            )
        current = self.__get__(obj)
        current[:] = list(items)


class RelatedList(list[Target]):
    """The list behind a Collection: every change sets or clears the children's Reference."""

    def __init__(self, owner: Any, collection: Collection[Target], items: Iterable[Target]) -> None:
        super().__init__(items)
        self.owner = owner
        self.collection = collection

    def _append_quietly(self, item: Target) -> None:
        super().append(item)

    def _remove_quietly(self, item: Target) -> None:
        for index, held in enumerate(self):
            if held is item:
                super().__delitem__(index)
                return

    def _check_item(self, item: object) -> None:
        if not isinstance(item, self.collection.target):
            raise MappingError(
                f"{self.collection.entity.__name__}.{self.collection.name} holds {self.collection.target.__name__} "
                f"objects, not {item!r}"
            )

    def _adopt(self, item: Target) -> None:
        self._check_item(item)
        state = self.owner.__dict__.get(STATE_ATTRIBUTE)
        session = state.session if state is not None else None
        if session is not None:
            session.hooks.adopting(self.collection, item)  # refusals come before any change
        setattr(item, self.collection.reference.name, self.owner)
        if session is not None:
            session.hooks.adopted(self.collection, item)

    def _release(self, item: Target) -> None:
        if item.__dict__.get(self.collection.reference.name) is self.owner or \
                getattr(item, self.collection.reference.name) is self.owner:
            setattr(item, self.collection.reference.name, None)
        state = self.owner.__dict__.get(STATE_ATTRIBUTE)
        if state is not None and state.session is not None:
            state.session.hooks.orphaned(self.collection, item, self.owner)

    def append(self, item: Target) -> None:
        self._adopt(item)  # set_reference appends it to this (loaded) list

    def extend(self, items: Iterable[Target]) -> None:
        for item in list(items):
            self.append(item)

    def insert(self, index: SupportsIndex, item: Target) -> None:
        self._adopt(item)
        self._remove_quietly(item)
        super().insert(index, item)

    def remove(self, item: Target) -> None:
        if not any(held is item for held in self):
            # As list.remove() does; releasing it would unlink (or orphan) another parent's child.
            raise ValueError(f"{self.collection!r}.remove(x): x is not in the list, x = {item!r}")
        self._remove_quietly(item)
        self._release(item)

    def pop(self, index: SupportsIndex = -1) -> Target:
        item = self[index]
        self.remove(item)
        return item

    def clear(self) -> None:
        for item in list(self):
            self.remove(item)

    def __setitem__(self, index, value):
        # Work out the result with a plain list (negative indexes, any slice, the same errors),
        # then get there: children that leave are released, newcomers adopted.
        wanted = list(self)
        wanted[index] = value
        self._become(wanted)

    def _become(self, wanted: list[Target]) -> None:
        """Hold exactly ``wanted``, in that order, keeping both sides of every link in step."""
        for item in wanted:
            self._check_item(item)  # refuse a wrong object before changing anything
        for item in list(self):
            if not any(item is other for other in wanted):
                self.remove(item)
        for item in wanted:
            if not any(item is other for other in self):
                self._adopt(item)  # set_reference appends it to this (loaded) list
        super().__setitem__(slice(None), wanted)

    def __delitem__(self, index):
        items = self[index] if isinstance(index, slice) else [self[index]]
        for item in list(items):
            self.remove(item)

    # (list's own += takes any iterable while + takes a list; type checkers flag the pair in
    # every list subclass that defines __iadd__, typeshed's list included.)
    def __iadd__(self, items: Iterable[Target]) -> Self:  # type: ignore[override,misc]
        self.extend(items)
        return self
