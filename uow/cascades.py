"""The session's side of relationships: setting references, and cascading operations along them.

Part of the Session (assembled in ``session``).  ``relationships`` keeps the two sides of a
link in step in memory; this module adds what needs the session: a reference set on an object
of the session (recorded in the undo log, a change for the next flush), an object appended to a
collection joining the session (save-update), and the objects an add, delete, expunge or
refresh reaches along relationships whose ``cascade`` names that operation.
"""

from .errors import InvalidStateError
from .mapping import STATE_ATTRIBUTE
from .relationships import set_reference
from .states import ObjectState

PERSISTENT = ObjectState.PERSISTENT


class CascadesMixin:
    """The Session's relationship bookkeeping (see the module docstring)."""

    def _set_reference(self, state, reference, target):
        """``obj.user = target`` on an object of this session."""
        self._check("set " + reference.name)
        if target is not None:
            target_state = target.__dict__.get(STATE_ATTRIBUTE)
            if target_state is not None and target_state.session not in (None, self):
                raise InvalidStateError(
                    f"{state.describe()}.{reference.name} = {target!r}: that object belongs to another session"
                )
            if "save-update" in reference.cascade and (target_state is None or target_state.session is None):
                self._add(target)
        self.undo.record(state)
        set_reference(state.obj, reference, target)
        if state.status is PERSISTENT:
            self.tracker.note_assignment(state)

    def _adopted(self, collection, item):
        """``item`` was appended to a collection of an object in this session: save-update brings it in."""
        item_state = item.__dict__.get(STATE_ATTRIBUTE)
        if "save-update" in collection.cascade and (item_state is None or item_state.session is None):
            self._add(item)

    def _orphaned(self, collection, item):
        """``item`` was removed from a collection: with delete-orphan it goes, otherwise it stays unlinked."""
        if "delete-orphan" not in collection.cascade:
            return
        state = item.__dict__.get(STATE_ATTRIBUTE)
        if state is not None and state.session is self:
            self.delete(item)

    def _cascade(self, obj, cascade):
        """The objects one step from ``obj`` along relationships whose cascade includes ``cascade``.

        Only what is already in memory is followed (a cached reference, a loaded collection),
        except for "delete", which loads a collection that was not loaded yet.
        """
        mapper = type(obj).__mapper__
        values = obj.__dict__
        related = []
        for reference in mapper.references:
            target = values.get(reference.name)
            if target is not None and cascade in reference.cascade:
                related.append(target)
        for collection in mapper.collections:
            if cascade not in collection.cascade:
                continue
            held = values.get(collection.name)
            if held is None and cascade == "delete":
                held = getattr(obj, collection.name)
            if held is not None:
                related.extend(held)
        return related

    def _unlink_children(self, obj):
        """Children without delete cascade no longer point at a deleted parent, loaded or not.

        The collection is loaded (one SELECT) so that children never read into the session are
        found too: a nullable reference is cleared; a NOT NULL one is left for the flush to
        refuse before any write, naming the child.
        """
        for collection in type(obj).__mapper__.collections:
            if "delete" in collection.cascade:
                continue
            held = getattr(obj, collection.name)
            for child in list(held):
                child_state = child.__dict__.get(STATE_ATTRIBUTE)
                if child_state is not None and child_state in self._marked:
                    continue
                if collection.reference.nullable:
                    setattr(child, collection.reference.name, None)
