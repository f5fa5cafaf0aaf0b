"""The session's side of relationships: setting references, and cascading operations along them.

:class:`Cascades` is a part the session composes.  ``relationships`` keeps the two sides of a
link in step in memory; this module adds what needs the session: a reference set on an object
of the session (recorded in the undo log, a change for the next flush), an object appended to a
collection joining the session (save-update), and the objects an add, delete, expunge or
refresh reaches along relationships whose ``cascade`` names that operation, and the parents'
loaded collections an insert cancelled (or taken back) leaves (or joins again).  The first four
methods are what a relationship asks of its session (the hooks declared in ``hooks``).
"""

from itertools import repeat
from typing import Any

from .errors import InvalidStateError, warn
from .loading import points_at
from .registers import DELETE_ORPHAN, SAVE_UPDATE
from .mementos import precaution_touched
from .relationships import set_reference
from .states import DELETED, PERSISTENT, STATE_ATTRIBUTE


class Cascades:
    """The session's relationship bookkeeping (see the module docstring).  It holds nothing of its
    own; entities call it through the hooks, and the lifecycle and loader ask it where a cascade
    leads."""

    def __init__(self, session):
        self.session = session
        self.registers = session.registers
        self.guard = session.guard
        # (collection, item): an object outside the session appended to a collection without
        # save-update since the last flush; the flush warns if it is still left out (warn_left_out).
        self.appended_outside = []

    def set_reference(self, state, reference, target):
        """``obj.user = target`` on an object of this session."""
        session = self.session
        self.guard.check("set " + reference.name)
        if target is not None:
            target_state = target.__dict__.get(STATE_ATTRIBUTE)
            if target_state is not None and target_state.session not in (None, session):
                raise InvalidStateError(
                    f"{state.describe()}.{reference.name} = {target!r}: that object belongs to another session"
                )
            if "save-update" in reference.cascade and (target_state is None or target_state.session is None):
                session.lifecycle.refuse_to_add(target)
                session.lifecycle.bring_in(target, (SAVE_UPDATE, state, reference))
        session.undo.record(state)
        set_reference(state.obj, reference, target)
        if state.status is PERSISTENT:
            session.tracker.note_assignment(state)
        elif state.status is DELETED:
            precaution_touched(session.transaction.levels, state)  # as an assignment (see hooks)

    def adopting(self, collection, item):
        """``item`` is about to be appended to a collection of an object in this session: refuse it
        now, before the list or the item changes, if the session cannot take it (the wrong
        thread, an object of another session...)."""
        self.guard.check("append to " + collection.name)
        item_state = item.__dict__.get(STATE_ATTRIBUTE)
        if "save-update" in collection.cascade and (item_state is None or item_state.session is None):
            self.session.lifecycle.refuse_to_add(item)

    def adopted(self, collection, item):
        """``item`` was appended to a collection of an object in this session: save-update brings it in."""
        values = item.__dict__
        item_state = values.get(STATE_ATTRIBUTE)
        if item_state is None or item_state.session is None:
            if "save-update" in collection.cascade:
                owner = values[collection.reference.name]  # (the append has just pointed the item at it)
                self.session.lifecycle.bring_in(item, (SAVE_UPDATE, owner.__dict__[STATE_ATTRIBUTE], collection))
            else:
                self.appended_outside.append((collection, item))

    def orphaned(self, collection, item, owner):
        """``item`` was removed from ``owner``'s collection: with delete-orphan it goes, otherwise
        it stays unlinked."""
        if "delete-orphan" not in collection.cascade:
            return
        state = item.__dict__.get(STATE_ATTRIBUTE)
        if state is not None and state.session is self.session:
            self.session.lifecycle.delete(item, (DELETE_ORPHAN, owner.__dict__[STATE_ATTRIBUTE], collection))

    def warn_left_out(self, inserts, updates):
        """Before a flush: warn (``UowWarning``) of each object reachable from what it writes only
        through a relationship without save-update, and not in this session.

        Such an object is not written, and its link is lost without a word: a reference to an object
        with no row writes NULL in the foreign key, and a child appended to a collection is not
        inserted.  SQLAlchemy warns here rather than fail (the relationship may be meant that way),
        and so does uow.  Only relationships without save-update are looked at (the others bring
        objects in), so a flush of classes without one costs nothing more.
        """
        session = self.session
        appended, self.appended_outside = self.appended_outside, []
        try:
            for collection, item in appended:
                owner = item.__dict__.get(collection.reference.name)
                held = owner.__dict__.get(collection.name) if owner is not None else None
                # (A pending owner is an insert: its whole list is looked at below.)
                if held is not None and not _outside(owner, session) and _outside(item, session) and \
                        owner.__dict__[STATE_ATTRIBUTE].key is not None and held._holds(item):
                    _warn_child(item, owner.__dict__[STATE_ATTRIBUTE], collection)
            # mapper -> its relationships without save-update, for the classes that have any (most
            # have none): found once per class, so the objects of the others are not looked at.
            states = inserts + [state for state, _ in updates]
            unsaved: dict[Any, list[Any]] = {}
            for mapper in {state.mapper for state in states}:
                relationships = [relationship for relationship in mapper.references + mapper.collections
                                 if "save-update" not in relationship.cascade]
                if relationships:
                    unsaved[mapper] = relationships
            if unsaved:
                for state in states:
                    if state.mapper in unsaved:
                        self._warn_unsaved(state, unsaved[state.mapper])
        except BaseException:
            self.appended_outside = appended + self.appended_outside  # (a warning made an error: warn again next time)
            raise

    def _warn_unsaved(self, state, relationships):
        session = self.session
        values = state.obj.__dict__
        for relationship in relationships:
            if relationship in state.mapper.references:
                target = values.get(relationship.name)
                target_state = target.__dict__.get(STATE_ATTRIBUTE) if target is not None else None
                if target is not None and _outside(target, session) and (target_state is None or target_state.key is None):
                    written = ", ".join(f"{name} = {'NULL' if values.get(name) is None else repr(values[name])}"
                                        for name in relationship.column_names)
                    warn(f"flush(): {state.describe()}.{relationship.name} holds {target!r}, which is not in this "
                         f"session and has no row; {relationship.entity.__name__}.{relationship.name} has no "
                         f"save-update cascade, so that object is left out of the flush (not inserted) and "
                         f"{written} is written. add() it, or give the reference cascade='save-update'")
            elif state.key is None:  # a new parent whose list was filled before it was added
                for item in values.get(relationship.name) or ():
                    if _outside(item, session):
                        _warn_child(item, state, relationship)

    def leave_parents(self, obj):
        """A cancelled insert (see ``Lifecycle.delete``): the object no longer shows in its parents' loaded collections."""
        for held in self._parents_collections(obj):
            held._remove_quietly(obj)

    def join_parents(self, obj):
        """A cancelled insert taken back: the object shows in its parents' loaded collections again."""
        for held in self._parents_collections(obj):
            if not held._holds(obj):
                held._append_quietly(obj)

    def _parents_collections(self, obj):
        """The loaded collections that list ``obj`` through its references."""
        found = []
        for reference in type(obj).__mapper__.references:
            parent = obj.__dict__.get(reference.name)
            collection = reference.collection
            if parent is not None and collection is not None:
                held = parent.__dict__.get(collection.name)
                if held is not None:
                    found.append(held)
        return found

    def related(self, obj, cascade):
        """The objects one step from ``obj`` along relationships whose cascade includes ``cascade``.

        Only what is already in memory is followed (a cached reference, a loaded collection),
        except for "delete", which finds every child, loaded or not (see :meth:`children_of`).
        """
        return [target for _, target in self.along(obj, cascade)]

    def along(self, obj, cascade):
        """:meth:`related`, each object with the relationship it was reached along:
        ``[(relationship, object)]``, for the causes a cascade records (see ``registers``)."""
        mapper = type(obj).__mapper__
        values = obj.__dict__
        related = []
        for reference in mapper.references:
            target = values.get(reference.name)
            if target is not None and cascade in reference.cascade:
                related.append((reference, target))
        for collection in mapper.collections:
            if cascade not in collection.cascade:
                continue
            if cascade == "delete":
                related.extend((collection, child) for child in self.children_of(obj, collection))
                continue
            held = values.get(collection.name)
            if held is not None:
                related.extend(zip(repeat(collection), held))  # (collection, item) for each item
        return related

    def children_of(self, obj, collection):
        """Every object of this session that points at ``obj`` through ``collection``'s reference now.

        A loaded collection can be stale (a child re-pointed by setting its key column, a child
        added by key after the list was loaded), and a delete must not miss or wrongly take a
        child, so this asks the database (rows as last flushed) and then the objects changed
        since (pending and modified ones), keeping those that point at ``obj`` in memory.
        """
        reference = collection.reference
        mapper = collection.target.__mapper__
        state = obj.__dict__[STATE_ATTRIBUTE]
        session = self.session
        candidates = []
        if state.key is not None:
            candidates.extend(session.loader.select_referring(mapper, reference, state, "delete()"))
        candidates.extend(other.obj for other in list(self.registers.pending) + list(session.tracker.candidates)
                          if other.mapper is mapper)
        candidates.extend(obj.__dict__.get(collection.name) or ())
        children: list[Any] = []
        met: set[int] = set()  # ids of the candidates looked at (the same child comes by several ways)
        for child in candidates:
            child_state = child.__dict__.get(STATE_ATTRIBUTE)
            if child_state is None or child_state.session is not session or id(child) in met:
                continue
            met.add(id(child))
            if points_at(child, reference, obj):
                children.append(child)
        return children

    def unlink_children(self, obj):
        """Children without delete cascade no longer point at a deleted parent, loaded or not.

        The children are looked up in the database too (one SELECT per collection), so that
        children never read into the session are found: a nullable reference is cleared; a NOT
        NULL one is left for the flush to refuse before any write, naming the child.  Returns
        ``(child, reference)`` for each reference cleared.
        """
        cleared = []
        # Every collection's children are read before any reference is cleared: a read that fails
        # (a lock, autobegin=False) then leaves nothing half done for delete() to take back.
        found = [(collection, self.children_of(obj, collection))
                 for collection in type(obj).__mapper__.collections if "delete" not in collection.cascade]
        for collection, children in found:
            for child in children:
                child_state = child.__dict__.get(STATE_ATTRIBUTE)
                if child_state is not None and child_state in self.registers.marked:
                    continue
                if collection.reference.nullable:
                    setattr(child, collection.reference.name, None)
                    cleared.append((child, collection.reference))
        return cleared


def _outside(obj, session):
    """True when ``obj`` is not in ``session`` (transient, detached, or another session's)."""
    state = obj.__dict__.get(STATE_ATTRIBUTE)
    return state is None or state.session is not session


def _warn_child(item, owner_state, collection):
    warn(f"flush(): {item!r} is in {owner_state.describe()}.{collection.name}, whose cascade has no save-update, "
         f"and is not in this session: it is not inserted, and its link to the parent is lost. add() it, or "
         f"give {collection.entity.__name__}.{collection.name} cascade='save-update'")
