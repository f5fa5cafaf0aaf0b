"""One-to-many: a Collection, and the RelatedList behind it that keeps every child's reference in step.

::

    class User(Entity, table="users"):
        id: int = Column(primary_key=True)
        orders = Collection("Order", "user")        # the orders whose .user is me

A collection stores nothing of its own: the link between an order and its user is the order's
``user`` reference (``relationships``).  ``user.orders`` is loaded on first access (through the
session hooks) into a :class:`RelatedList`, a list whose every change sets or clears the
children's reference, so that both sides of the link stay in step in memory.

This module is apart from ``relationships`` because it is the other side of the link: it
imports the Reference it pairs with, and the reference side never needs to import it (setting a
reference reaches the paired collection through ``Reference.collection``), so imports point one
way.
"""

import collections.abc
from collections.abc import Iterable
from typing import Any, Generic, Self, SupportsIndex, overload

from .errors import DetachedInstanceError, MappingError
from .relationships import Reference, Relationship, Target
from .states import STATE_ATTRIBUTE


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
    """The list behind a Collection: every change sets or clears the children's Reference.

    It also counts the objects it holds by identity (``_held``, ``{id(item): times held}``), so
    that asking whether it holds an object, as every append does (a child is held once), costs
    as much for a parent of ten thousand children as for one of ten: a scan of the list there
    made building a large family quadratic.  Identity, not ``==``: an entity class may define
    ``__eq__``.  Each change goes through a method below, which keeps the count.
    """

    def __init__(self, owner: Any, collection: Collection[Target], items: Iterable[Target]) -> None:
        super().__init__(items)
        self.owner = owner
        self.collection = collection
        self._held = _identity_counts(self)

    def _holds(self, item: object) -> bool:
        """Whether ``item`` itself is in the list (one dict lookup, see the class docstring)."""
        return id(item) in self._held

    def _append_quietly(self, item: Target) -> None:
        super().append(item)
        self._count(item)

    def _remove_quietly(self, item: Target) -> None:
        if not self._holds(item):
            return
        for index, held in enumerate(self):
            if held is item:
                super().__delitem__(index)
                self._uncount(item)
                return

    def _count(self, item: object) -> None:
        key = id(item)
        self._held[key] = self._held.get(key, 0) + 1

    def _uncount(self, item: object) -> None:
        key = id(item)
        times = self._held[key]
        if times == 1:
            del self._held[key]
        else:
            self._held[key] = times - 1

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
        self._count(item)

    def remove(self, item: Target) -> None:
        if not self._holds(item):
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
        staying = _identity_counts(wanted)
        leaving = [item for item in self if id(item) not in staying]
        if leaving:
            # Out of the list in one pass (remove() would scan the list for each), then released.
            super().__setitem__(slice(None), [item for item in self if id(item) in staying])
            self._held = _identity_counts(self)
            for item in leaving:
                self._release(item)
        for item in wanted:
            if not self._holds(item):
                self._adopt(item)  # set_reference appends it to this (loaded) list
        super().__setitem__(slice(None), wanted)
        self._held = staying

    def __delitem__(self, index):
        items = self[index] if isinstance(index, slice) else [self[index]]
        for item in list(items):
            self.remove(item)

    # (list's own += takes any iterable while + takes a list; type checkers flag the pair in
    # every list subclass that defines __iadd__, typeshed's list included.)
    def __iadd__(self, items: Iterable[Target]) -> Self:  # type: ignore[override,misc]
        self.extend(items)
        return self

    def __imul__(self, times: SupportsIndex) -> Self:
        # As ``self[:] = self * times``: ``*= 0`` releases every child (list's own would only
        # empty the list, leaving each child pointing at the owner).
        self._become(list(self) * times)
        return self


def _identity_counts(items: Iterable[object]) -> dict[int, int]:
    """``{id(item): times held}`` for the objects in ``items`` (see :class:`RelatedList`)."""
    counts: dict[int, int] = {}
    for item in items:
        key = id(item)
        counts[key] = counts.get(key, 0) + 1
    return counts
