"""The identity map: at most one object per row in a session.

Fowler's Identity Map in a dozen lines.  Its key is ``(EntityClass, (primary-key values...))``
(the same shape SQLAlchemy's ``identity_key`` returns), each value in the form SQLite stores and
compares it (``Mapper.key_for``: two Decimals equal in Python but stored as different texts are
two rows, so two keys), its value the one object that stands for
that row.  Loading goes through it, so ``session.get(User, 3) is session.get(User, 3)``, and a
query that returns the row again returns the same object instead of a copy that could
disagree with it.

By default it holds strong references: objects leave only through expunge, close, rollback, a
flushed delete or a new row taking a key SQLite handed out again, each of which is visible in the
code that calls it, and a unit of work is short.  ``Session(..., weak_identity_map=True)`` uses
:class:`WeakIdentityMap` instead (SQLAlchemy 0.3's ``weak_identity_map``, 2.x's default), for a
batch job that reads more rows than it can keep: an object the program no longer references
leaves the map when the garbage collector frees it (an object and its state record point at each
other, so that is the cyclic collector's next pass, or ``gc.collect()``).  An object with work
still to do cannot leave, because the registers hold it strongly: pending, marked for deletion,
assigned to since the last flush (the tracker's candidates), recorded by the undo log of an open
transaction, or with a JSON column (a change made in place, through a dict the program still
holds, cannot be seen any other way).

Reading is plain ``dict`` reading (``get``, ``in``, iteration), which keeps a cache hit as cheap
as a dictionary lookup; writing goes through :meth:`add` and :meth:`discard`, which refuse to
let two objects claim one row.  (The two hottest loops, building loaded objects and applying a
flush's inserts, write the dict directly, each after looking at what the key already holds.)

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


class _GuardedWrites(collections.abc.MutableMapping):
    """The writes both maps share: :meth:`add` and :meth:`discard` (reads and plain writes are the
    mapping's own: ``dict`` and ``WeakValueDictionary`` come first in each map's bases)."""

    def add(self, key, obj):
        """Map ``key`` to ``obj``; a different object already there is an error, not a replacement."""
        held = self.get(key, obj)
        if held is not obj:
            raise DuplicateIdentityError(
                f"{held!r} already holds the identity {format_key(key)} in this session, so {obj!r} "
                f"cannot; use session.merge(obj) to copy its values onto the held object, or expunge one of them"
            )
        self[key] = obj

    def discard(self, key, obj):
        """Forget ``key`` if (and only if) it maps to ``obj``."""
        if self.get(key) is obj:
            del self[key]


class IdentityMap(dict, _GuardedWrites):
    """``{identity key: object}`` with guarded writes, holding its objects (the default)."""


class WeakIdentityMap(weakref.WeakValueDictionary, _GuardedWrites):
    """``{identity key: object}`` with guarded writes, not keeping its objects alive (see the module)."""


def format_key(key):
    """``User(3)`` or ``Pair(1, 'x')``: an identity key as error messages print it."""
    cls = key[0]
    # The key holds stored forms (the text of a Decimal key); show the values the user knows.
    return f"{cls.__name__}({', '.join(map(repr, cls.__mapper__.key_values(key)))})"


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
    if None not in key[1]:
        return key
    claimed = []
    for name, value in zip(mapper.pk_names, key[1]):
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
    return (mapper.cls, tuple(claimed))


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
    claimed = {state.key: None for state in deletes}  # key -> its claimant; None: free to take once
    for state in inserts:
        key = _claimed_key(state)
        if key is None:
            continue
        if key in claimed and claimed[key] is None:
            claimed[key] = state.obj  # the first to take a deleted object's key
            continue
        other = claimed.get(key)
        if other is None:
            other = identity.get(key)
        if other is not None and other is not state.obj:
            raise DuplicateIdentityError(
                f"flush(): {state.obj!r} and {other!r} both claim the identity {format_key(key)}; "
                f"change one key, or expunge one of them"
            )
        claimed[key] = state.obj


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
    claimed: dict[tuple[object, ...], object] = {}
    for state, new_key in moving.items():
        other = claimed.get(new_key)
        if other is None:
            holder = identity.get(new_key)
            if holder is not None and holder.__dict__[STATE_ATTRIBUTE] not in leaving:
                other = holder
        if other is not None and other is not state.obj:
            raise DuplicateIdentityError(
                f"flush(): {state.describe()} changes its key to {format_key(new_key)}, which {other!r} "
                f"holds in this session; choose another key, or delete that object first"
            )
        claimed[new_key] = state.obj


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
