"""The session hooks: the only calls an entity object makes on the session that holds it.

Entities, their columns and their relationships sit below the session (imports point one way),
yet a few things they do need the session: an assignment must be recorded for rollback and
change tracking, an expired column or a relationship must be loaded on first read, and a
collection that gains or loses an item must let the session's cascades follow.  Those calls are
declared here, once, as :class:`SessionHooks`; an object reaches them through its state record
(``state.session.hooks``), and nothing below the session calls anything else on it.

:class:`EntityHooks` implements the protocol for a session: it records an assignment itself
(the undo log first, then change tracking) and hands every other hook to the part that owns it
(loads to the session's ``Loader``, relationships to its ``Cascades``).  A reader of ``entity``,
``columns`` or ``relationships`` learns here exactly what they may ask of a session.
"""

import threading
import typing

from .collection import Collection
from .mementos import precaution_touched
from .relationships import Reference
from .states import DELETED, PERSISTENT, InstanceState

_get_ident = threading.get_ident


class SessionHooks(typing.Protocol):
    """What an entity object may ask of its session (``state.session.hooks``)."""

    def attribute_set(self, state: InstanceState, name: str, value: object) -> None:
        """``obj.name = value`` on an object of the session: record it for rollback, note it for the flush."""

    def load_expired(self, state: InstanceState) -> None:
        """An expired column was read: reload the object's missing columns from its row."""

    def load_reference(self, state: InstanceState, reference: Reference, key_values: tuple) -> object | None:
        """``obj.user`` is not cached: find the object its foreign key names (no SQL when it is held)."""

    def set_reference(self, state: InstanceState, reference: Reference, target: object | None) -> None:
        """``obj.user = target``: keep both sides in step, record it, and follow save-update."""

    def load_collection(self, state: InstanceState, collection: Collection) -> list:
        """``user.orders`` is not loaded: the objects that point at the owner now."""

    def adopting(self, collection: Collection, item: object) -> None:
        """``item`` is about to join ``collection``: refuse now, before anything changed, if it cannot."""

    def adopted(self, collection: Collection, item: object) -> None:
        """``item`` joined ``collection``: save-update brings it into the session."""

    def orphaned(self, collection: Collection, item: object, owner: object) -> None:
        """``item`` left ``owner``'s ``collection``: delete-orphan deletes it."""


class EntityHooks(SessionHooks):
    """The :class:`SessionHooks` of one session: an assignment is recorded here, every other hook
    is handed to the part that owns it (loads to the Loader, relationships to Cascades)."""

    def __init__(self, session):
        self.session = session
        self.guard = session.guard      # the owner-thread check
        # An assignment is recorded for rollback first (at the object's first touch in the undo
        # scope of the innermost level), then noted for the next flush's comparison: it is the
        # commonest thing a user does to a session's objects, so the hook reads the transaction's
        # levels and the tracker's candidates itself instead of calling the parts that own them.
        self.undo = session.undo
        self.levels = session.transaction.levels
        self.candidates = session.tracker.candidates  # what ChangeTracker.note_assignment fills

    def attribute_set(self, state, name, value):
        """``Entity.__setattr__`` on an object of this session."""
        mapper = state.mapper
        if name not in mapper.init_names:
            object.__setattr__(state.obj, name, value)
            return
        if _get_ident() != self.guard.owner_thread:
            self.guard.check("set attribute")
        if state not in self.levels[-1].undo.mementos:
            self.undo.record(state)  # the object's first touch in this undo scope
        values = state.obj.__dict__
        values[name] = value
        if name in mapper.references_by_column:
            for reference in mapper.references_by_column[name]:
                values.pop(reference.name, None)  # reloaded from the new key when next read
        if state.status is PERSISTENT:
            self.candidates[state] = None  # compared at the next flush (see tracking)
        elif state.status is DELETED:
            precaution_touched(self.levels, state)  # (a rare case: its DELETE is flushed)

    def load_expired(self, state):
        self.session.loader.load_expired(state)

    def load_reference(self, state, reference, key_values):
        return self.session.loader.load_reference(state, reference, key_values)

    def load_collection(self, state, collection):
        return self.session.loader.load_collection(state, collection)

    def set_reference(self, state, reference, target):
        self.session.cascades.set_reference(state, reference, target)

    def adopting(self, collection, item):
        self.session.cascades.adopting(collection, item)

    def adopted(self, collection, item):
        self.session.cascades.adopted(collection, item)

    def orphaned(self, collection, item, owner):
        self.session.cascades.orphaned(collection, item, owner)
