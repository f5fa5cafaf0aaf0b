"""The session hooks: the only calls an entity object makes on the session that holds it.

Entities, their columns and their relationships sit below the session (imports point one way),
yet a few things they do need the session: an assignment must be recorded for rollback and
change tracking, an expired column or a relationship must be loaded on first read, and a
collection that gains or loses an item must let the session's cascades follow.  Those calls are
declared here, once, as :class:`SessionHooks`; an object reaches them through its state record
(``state.session.hooks``), and nothing below the session calls anything else on it.

The session implements the protocol (``session.SessionHooks`` routes each hook to the part that
owns it); this module only says what each hook means, so that a reader of ``entity``,
``mapping`` or ``relationships`` knows exactly what they may ask of a session.
"""

import typing

from .relationships import Collection, Reference
from .states import InstanceState


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

    def orphaned(self, collection: Collection, item: object) -> None:
        """``item`` left ``collection``: delete-orphan deletes it."""
