"""The unit of work's registers: which objects the session holds, and in what role.

Fowler's Unit of Work keeps a register per role -- new, dirty, removed -- and one object per row
(the identity map).  :class:`Registers` holds them for one session, so every part (lifecycle,
loading, flush, rollback, cascades and the features) reads and changes the same facts through
one object instead of reaching into the session:

* ``pending`` -- the *new* register: objects added and not yet inserted, in the order they
  entered the session;
* ``marked`` -- the *removed* register: objects marked for deletion, each with what its delete
  did to other objects (see ``lifecycle``: add() or expunge() takes that back), or None when
  its class's delete reaches no other object;
* ``deleted_rows`` -- objects whose DELETE a flush wrote, until the commit makes it final or a
  rollback brings them back;
* the *dirty* register is the change tracker (``tracking``): dirty means "differs from the
  snapshot", so it is derived there, not kept here;
* ``identity`` -- the identity map (``identity``), one object per row;
* ``sequence`` -- numbers that order objects by when they entered the session (a flush's
  tie-break; the objects of one load share one);
* ``causes`` -- for a pending or marked object that a cascade (not the user's own add() or
  delete()) or a merge() brought into the unit of work, which one and from which object: what
  ``session.explain()`` (``explain``) answers "why is this row in the flush?" with.

The few moves every part makes on them live here once: :meth:`Registers.make_persistent` (the one
way an object becomes persistent), :meth:`Registers.hold`, :meth:`Registers.unindex` and
:meth:`Registers.detach`.  Beside them: :func:`identity_key`, the public ``(cls, (values...))``
form of the key the identity map files an object under, and :class:`SessionStats`, what ``session.stats()`` counts.
"""

import dataclasses
import itertools
from typing import Any

from .entity import Entity
from .mapper import mapper_of_class, mapper_of_object
from .states import DELETED, DETACHED, PENDING, PERSISTENT, STATE_ATTRIBUTE, TRANSIENT

# The cascades a cause names (the first entry of a ``Registers.causes`` value): how an object the
# user did not add or delete itself came into the unit of work.
SAVE_UPDATE = "save-update"      # a save-update relationship of the source holds it
DELETE = "delete"                # the source was deleted, and this object is its child
DELETE_ORPHAN = "delete-orphan"  # it was removed from the source's collection
TAKEN_BACK = "taken back"        # the source's delete had cancelled its insert; add() took that back
MERGE = "merge"                  # merge() found no row for the source (an object from outside the
                                 # session, kept as the source) and made this object as its copy

class Registers:
    """The registers of one session (see the module docstring).

    ``owner`` is the session whose objects these are: an object entering the registers gets it as
    ``state.session``, which is how an entity finds its session's hooks.
    """

    def __init__(self, owner, identity, tracker):
        self.owner = owner          # the Session an object held here belongs to (state.session)
        self.identity = identity    # the IdentityMap: {class: {key: object}} for persistent objects
        self.tracker = tracker      # the ChangeTracker: which persistent objects may have changed
        self.pending = {}           # {state: None}: added, not yet inserted (ordered by entry)
        self.marked = {}            # {state: what its delete did}: marked for deletion, not yet flushed
        self.deleted_rows = {}      # {state: None}: DELETE flushed, not yet committed
        self.sequence = itertools.count(1)  # next(sequence): when an object entered the session
        # {state: (cascade, source state, relationship)} for a pending or marked object a cascade
        # brought in (see CAUSES; for MERGE the source is the object merged, from outside the
        # session, and the relationship the merge cascade that reached it, or None for the
        # user's own merge()); an object the user added or deleted itself has no entry, so
        # add_all() of plain objects pays nothing for it.  Kept only while the object is pending
        # or marked: unindex() and a flush's clear() drop it.
        self.causes = {}

    def has_work(self):
        """True when a flush may have something to write (a JSON value may change unseen)."""
        tracker = self.tracker
        return bool(self.pending or self.marked or tracker.candidates or tracker.watched)

    def make_persistent(self, state, key, committed, operation):
        """The one way an object becomes persistent in this session: it moves to PERSISTENT under
        ``key`` with the snapshot ``committed``, enters the identity map (which refuses a second
        object for the row), and is watched when a JSON column can change in place (``tracking``).

        An object coming from outside the session (an attached, merged or upserted object) takes
        the next sequence number; a pending one keeps the number it was added with, so that
        flushes order objects by when they entered the session.  (An object made from a row is
        born persistent instead, in the loader's loop over rows: it does the same in one step.)
        """
        state.move(PERSISTENT, operation)
        if state.session is not self.owner:
            state.session = self.owner
            state.sequence = next(self.sequence)
        state.key = key
        state.committed = committed
        self.hold(state)

    def hold(self, state):
        """A persistent object enters the identity map under its key (which refuses a second
        object for the row) and, when a JSON column can change in place, is watched.  A rollback
        that puts a persistent object back does this too (``rollback``)."""
        self.identity.add(state)
        if state.mapper.json_columns:
            self.tracker.watch(state)

    def unindex(self, state):
        """Take an object out of every register (the identity map, pending, marked, deleted,
        tracked); its state record is left as it is, for the caller to move."""
        if state.key is not None:
            self.identity.discard(state)
        self.pending.pop(state, None)
        self.marked.pop(state, None)
        self.causes.pop(state, None)
        self.deleted_rows.pop(state, None)
        self.tracker.forget(state)

    def flushed(self):
        """A flush wrote every pending insert and marked delete: those registers start empty."""
        self.pending.clear()
        self.marked.clear()
        self.causes.clear()

    def detach(self, state):
        """An object leaves the session (after :meth:`unindex`): pending becomes transient, any
        other state detached, remembering whether its row was deleted."""
        if state.status is PENDING:
            state.move(TRANSIENT, "expunge")
        elif state.status is not DETACHED:
            state.row_deleted = state.status is DELETED
            state.move(DETACHED, "expunge")
        state.session = None

    def all_states(self):
        """Every object in the session: pending, persistent (the identity map), deleted rows."""
        states = list(self.pending)
        states.extend(obj.__dict__[STATE_ATTRIBUTE] for obj in self.identity.values())
        states.extend(self.deleted_rows)
        return states


def identity_key(entity: type[Entity] | None = None, ident: object = None, *,
                 instance: Entity | None = None) -> tuple[type[Entity], tuple[Any, ...]]:
    """``(Class, (key values...))``, an object's identity in its session, for a class and primary
    key or for an object (``instance=``)::

        identity_key(User, 5) == (User, (5,))
        identity_key(instance=user)   # the key the session knows it by, even if its key columns
                                      # were expired or changed and not flushed yet
    """
    if instance is not None:
        mapper = mapper_of_object(instance, "identity_key")
        state = instance.__dict__.get(STATE_ATTRIBUTE)
        if state is not None and state.key is not None:
            return mapper.identity_key(state.key)
        return mapper.identity_key(mapper.key_of(instance.__dict__))
    mapper = mapper_of_class(entity, "identity_key")
    return mapper.identity_key(mapper.checked_key(ident))


@dataclasses.dataclass(frozen=True)
class SessionStats:
    """Counts for ``session.stats()``: objects per state, and work done so far."""

    pending: int
    persistent: int
    marked_for_deletion: int
    deleted: int
    statements: int
    flushes: int
