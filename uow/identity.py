"""The identity map: at most one object per row in a session.

Fowler's Identity Map: one dict per entity class, ``{key: object}``, its key the row's primary
key as SQLite stores and compares it (``Mapper.key_for``: the value itself for a one-column key,
``3``; a tuple for a composite key, ``(1, 'x')``; two Decimals equal in Python but stored as
different texts are two rows, so two keys), its value the one object that stands for that row.
Loading goes through it, so ``session.get(User, 3) is session.get(User, 3)``, and a query that
returns the row again returns the same object instead of a copy that could disagree with it.

Why a dict per class rather than one dict keyed by ``(User, (3,))`` (the shape SQLAlchemy's
``identity_key`` returns, which ``Session.identity_map`` and ``uow.identity_key`` still show):
every object keeps its key, and that pair of tuples cost each loaded object 104 bytes, and every
get() built one to look it up.  With a dict per class a get() hit is two lookups of values
already at hand, and an object keeps only the key value its row already holds.

By default it holds strong references: objects leave only through expunge, close, rollback, a
flushed delete or a new row taking a key SQLite handed out again, each of which is visible in the
code that calls it, and a unit of work is short.  ``Session(..., weak_identity_map=True)`` makes
each class's dict a ``WeakValueDictionary`` (SQLAlchemy 0.3's ``weak_identity_map``, 2.x's
default), for a batch job that reads more rows than it can keep: an object the program no
longer references leaves the map when the garbage collector frees it (an object and its state
record point at each other, so that is the cyclic collector's next pass, or ``gc.collect()``).
An object with work still to do cannot leave, because the registers hold it strongly: pending,
marked for deletion, assigned to since the last flush (the tracker's candidates), recorded by
the undo log of an open transaction, or with a JSON column (a change made in place, through a
dict the program still holds, cannot be seen any other way).

Reading is :meth:`IdentityMap.get` (or plain ``dict`` reading of one class's dict, ``of(cls)``,
which keeps a cache hit as cheap as a dictionary lookup); writing goes through :meth:`add` and
:meth:`discard`, which refuse to let two objects claim one row.  (The two hottest loops, building
loaded objects and applying a flush's inserts, write a class's dict directly, each after looking
at what the key already holds.)

Before a flush writes anything, :func:`refuse_duplicate_claims` applies the same rule to the
keys the flush is about to give objects: two objects may not claim one row.

Objects enter the map in batches of thousands, so :func:`collector_paused` lives here too: it
keeps the garbage collector from walking the whole program while a batch is built.
"""

import collections.abc
import contextlib
import gc
import typing
import weakref

from .errors import DuplicateIdentityError
from .states import STATE_ATTRIBUTE, InstanceState

BULK_ROWS = 1000


class IdentityMap:
    """``{entity class: {key: object}}`` with guarded writes; ``weak=True`` for weak references.

    A class's dict is made when its first object enters, and stays (empty) after its last leaves.
    """

    def __init__(self, weak=False):
        self.classes = {}  # {entity class: {key: object}}
        self._new_dict = weakref.WeakValueDictionary if weak else dict

    def of(self, cls):
        """The dict of ``cls``'s objects, ``{key: object}``: for loops that read or file many."""
        by_key = self.classes.get(cls)
        if by_key is None:
            by_key = self.classes[cls] = self._new_dict()
        return by_key

    def get(self, cls, key):
        """The object of ``cls`` held under ``key``, or None."""
        by_key = self.classes.get(cls)
        return None if by_key is None else by_key.get(key)

    def holder(self, state):
        """The object held under ``state``'s key (``state.key``), or None."""
        return self.get(state.mapper.cls, state.key)

    def add(self, state):
        """File ``state``'s object under its key; a different object already there is an error,
        not a replacement."""
        by_key = self.of(state.mapper.cls)
        obj = state.obj
        held = by_key.get(state.key, obj)
        if held is not obj:
            raise DuplicateIdentityError(
                f"{held!r} already holds the identity {format_key(state.mapper, state.key)} in this "
                f"session, so {obj!r} cannot; use session.merge(obj) to copy its values onto the held "
                f"object, or expunge one of them"
            )
        by_key[state.key] = obj

    def discard(self, state):
        """Forget ``state``'s key if (and only if) it maps to ``state``'s object."""
        by_key = self.classes.get(state.mapper.cls)
        if by_key is not None and by_key.get(state.key) is state.obj:
            del by_key[state.key]

    def values(self):
        """Every object held, as a new list (callers may change the map while they walk it)."""
        return [obj for by_key in list(self.classes.values()) for obj in list(by_key.values())]

    def __len__(self):
        return sum(len(by_key) for by_key in self.classes.values())


class IdentityMapView(collections.abc.Mapping):
    """``Session.identity_map``: the map read-only, under the public ``(cls, (stored values...))``
    keys (``uow.identity_key``'s shape, SQLAlchemy's), built as it is read."""

    def __init__(self, identity):
        self._identity = identity

    def __getitem__(self, identity_key):
        try:
            cls, values = identity_key
        except (TypeError, ValueError):
            raise KeyError(identity_key) from None
        mapper = getattr(cls, "__mapper__", None)
        if mapper is not None and type(values) is tuple and len(values) == len(mapper.pk_names):
            obj = self._identity.get(cls, values[0] if mapper.single_key else values)
            if obj is not None:
                return obj
        raise KeyError(identity_key)

    def __iter__(self):
        for cls, by_key in list(self._identity.classes.items()):
            mapper = cls.__mapper__
            for key in list(by_key.keys()):
                yield mapper.identity_key(key)

    def __len__(self):
        return len(self._identity)


def format_key(mapper, key):
    """``User(3)`` or ``Pair(1, 'x')``: a key of ``mapper``'s class as error messages print it."""
    # The key holds stored forms (the text of a Decimal key); show the values the user knows.
    return f"{mapper.cls.__name__}({', '.join(map(repr, mapper.key_values(key)))})"


class _KeyFromParent(typing.NamedTuple):
    """A key value the flush copies from a parent the database has not numbered yet."""

    parent: InstanceState  # the parent's state record
    position: int  # which of the parent's key columns

    def __repr__(self) -> str:
        return f"<{self.parent.mapper.pk_names[self.position]} of {self.parent.describe()}>"


def _claimed_key(state):
    """The identity a pending object claims before any SQL, or None when nothing can be said yet.

    A key column left None for a reference to fill from a pending parent's new key (an
    association row under two new parents) holds a stand-in for that parent's key: two rows
    under the same new parents claim one identity and are refused, rows under different parents
    do not collide.  The real key is taken once the parents' INSERTs ran (``flush``).
    None: the database generates the key, or a key column has no value at all (the value check
    names it).
    """
    mapper = state.mapper
    values = state.obj.__dict__
    if mapper.generated_key is not None and values.get(mapper.generated_key.name) is None:
        return None
    key = mapper.key_of(values)
    if mapper.key_is_complete(key):
        return key
    claimed = []
    for name, value in zip(mapper.pk_names, mapper.key_params(key)):
        if value is None:
            for reference in mapper.references_by_column.get(name, ()):
                target = values.get(reference.name)
                target_state = target.__dict__.get(STATE_ATTRIBUTE) if target is not None else None
                if target_state is not None:
                    value = _KeyFromParent(target_state, reference.column_names.index(name))
                    break
            else:
                return None
        claimed.append(value)
    return claimed[0] if mapper.single_key else tuple(claimed)


def refuse_duplicate_claims(identity, inserts, updates, deletes):
    """Two objects may not claim one natural key in a flush: say so before any SQL runs.

    ``identity`` is the session's map; ``inserts``, ``updates`` (``(state, changed names)``) and
    ``deletes`` are what the flush will write.  A key held by an object marked for deletion is
    free to take: the flush turns the DELETE and the INSERT into one UPDATE of the row (a "row
    switch").  An object whose key is changed to one another object holds is refused too
    (SQLite's UNIQUE error came after SQL), unless that other object's key changes in the same
    flush (a swap is the planner's to order, or refuse as a cycle).
    """
    _refuse_taken_keys(identity, updates, deletes)
    if not inserts:
        return
    # (class, key) -> its claimant; None: free to take once
    claimed = {(state.mapper.cls, state.key): None for state in deletes}
    for state in inserts:
        key = _claimed_key(state)
        if key is None:
            continue
        cls = state.mapper.cls
        if claimed.get((cls, key), False) is None:
            claimed[cls, key] = state.obj  # the first to take a deleted object's key
            continue
        other = claimed.get((cls, key))
        if other is None:
            other = identity.get(cls, key)
        if other is not None and other is not state.obj:
            raise DuplicateIdentityError(
                f"flush(): {state.obj!r} and {other!r} both claim the identity {format_key(state.mapper, key)}; "
                f"change one key, or expunge one of them"
            )
        claimed[cls, key] = state.obj


def _refuse_taken_keys(identity, updates, deletes):
    moving = {}
    for state, names in updates:
        mapper = state.mapper
        values = state.obj.__dict__
        if state.key is None or set(names).isdisjoint(mapper.pk_names) or not values.keys() >= set(mapper.pk_names):
            continue
        new_key = mapper.key_of(values)
        if new_key != state.key:
            moving[state] = new_key
    if not moving:
        return
    leaving = set(deletes) | set(moving)
    claimed: dict[tuple[type, object], object] = {}  # (class, key) -> the object moving there
    for state, new_key in moving.items():
        cls = state.mapper.cls
        other = claimed.get((cls, new_key))
        if other is None:
            holder = identity.get(cls, new_key)
            if holder is not None and holder.__dict__[STATE_ATTRIBUTE] not in leaving:
                other = holder
        if other is not None and other is not state.obj:
            raise DuplicateIdentityError(
                f"flush(): {state.describe()} changes its key to {format_key(state.mapper, new_key)}, which {other!r} "
                f"holds in this session; choose another key, or delete that object first"
            )
        claimed[cls, new_key] = state.obj


@contextlib.contextmanager
def collector_paused(rows):
    """Pause CPython's cyclic garbage collector while a batch of ``rows`` objects is built.

    Each loaded object and its state record point at each other, and building many of them
    triggers the cyclic collector every few hundred allocations; its full passes walk *every*
    object the program holds, so without this a load would get slower the more the program has
    in memory.  Nothing built in the batch is garbage, so there is nothing for the collector to
    find until the batch is done.  Small batches are left alone, and a collector the program
    disabled itself stays disabled.
    """
    if rows < BULK_ROWS or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
