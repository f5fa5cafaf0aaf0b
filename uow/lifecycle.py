"""Moving objects into and out of the session: add, delete and expunge, with their cascades.

:class:`Lifecycle` is the part of the session that makes the moves of the lifecycle table
(``states``) that users ask for: ``add`` (transient to pending, detached back to persistent),
``delete`` (marked for deletion, or a pending insert cancelled), ``expunge`` (out of the
session).  Each follows its cascade along relationships (``cascades``), and each can be taken
back: ``add`` or ``expunge`` of an object marked for deletion takes back the delete and what it
did to other objects, as a SQLAlchemy user sees (a delete touches nothing before the flush).

A refused operation changes nothing: :meth:`Lifecycle.refuse_to_add` walks everything an add
would bring in and raises before :meth:`Lifecycle.bring_in` changes anything.  The moves into
the identity map go through ``Registers.make_persistent``, the one place that makes an object
persistent.
"""

import threading
from typing import Any

from .errors import DuplicateIdentityError, InvalidStateError
from .identity import collector_paused, format_key
from .arguments import listed
from .mapper import mapper_of_object
from .registers import DELETE, SAVE_UPDATE, TAKEN_BACK
from .states import DELETED, DETACHED, PENDING, PERSISTENT, STATE_ATTRIBUTE, TRANSIENT, InstanceState

_get_ident = threading.get_ident


class Lifecycle:
    """The session's part for add, delete and expunge (see the module docstring).  It holds
    nothing of its own: it moves objects between the registers.  Called by the Session's facade,
    by the cascades (an object set or appended joins the session) and by ``features.merging``."""

    def __init__(self, session):
        self.session = session
        self.registers = session.registers
        self.guard = session.guard

    def add(self, obj):
        """The work of ``Session.add`` (its docstring states the rules a user relies on: re-attaching,
        taking a delete back, cascading from any state, refusing an object whose row is gone)."""
        self.guard.check("add")
        self._add_walked([obj], "add")

    def refuse_to_add(self, obj, operation="add", seen=None, claims=None, met=None):
        """Raise the error adding ``obj`` would meet -- for it or for any object its save-update
        cascade would bring in -- while changing nothing, so that a refused add() leaves the
        session as it was (it had made the first objects pending before meeting a bad one).
        Every path into :meth:`bring_in` calls this first.

        ``seen`` holds the ids of the objects whose cascade was walked already (add_all() shares
        it across its objects), so that a cycle of relationships ends; an object of a class
        without relationships has no cascade, and checking it twice would only repeat the checks.
        ``claims`` maps each detached object's identity met so far to it: two detached copies of
        one row reached by one add (two lists holding them, or add_all()) cannot both attach.
        ``met``, when given, gets ``(object, source, relationship)`` for each object the walk goes
        on to, in the order :meth:`bring_in` would bring them in (see :meth:`_add_walked`).
        """
        session = self.session
        if seen and id(obj) in seen:
            return
        mapper = mapper_of_object(obj, operation)
        values = obj.__dict__
        state = values.get(STATE_ATTRIBUTE)
        if state is not None and state.session is not None and state.session is not session:
            raise InvalidStateError(
                f"{operation}(): {obj!r} belongs to another session; expunge() it there first, "
                f"or merge() it into this one"
            )
        status = TRANSIENT if state is None else state.status
        if status is TRANSIENT:
            if not mapper.configured:
                mapper.configure()
            if mapper.generated_key is None or values.get(mapper.generated_key.name) is not None:
                given = tuple(values.get(name) for name in mapper.pk_names)
                # Checked as get() checks a key: True or 1.0 would find the identity of 1, and an
                # unhashable bytearray could not be looked up at all.  (A missing part of a key is
                # the flush's to refuse, with the NOT NULL message.)
                key = mapper.key_of(values) if None in given else mapper.checked_key(given)
                self._refuse_held_key(mapper, key, obj)
        elif status is DETACHED:
            if state.row_deleted:
                raise InvalidStateError(
                    f"{operation}(): the row of {obj!r} was deleted and the delete committed, so the object "
                    f"has no row to be attached to; merge() it to write a copy as a new row, or add a new object"
                )
            # A detached object is re-attached under its key: no row switch can make room for it.
            held = session.identity.holder(state)
            if held is not None and held is not obj:
                raise DuplicateIdentityError(
                    f"{operation}(): {held!r} already holds the identity {format_key(mapper, state.key)} in this session "
                    f"(even marked for deletion, its row is still there), so {obj!r} cannot be attached; "
                    f"flush the delete first, or use merge()"
                )
            if claims is None:
                claims = {}
            rival = claims.setdefault((mapper.cls, state.key), obj)
            if rival is not obj:
                raise DuplicateIdentityError(
                    f"{operation}(): {rival!r} and {obj!r} are both detached copies of the row "
                    f"{format_key(mapper, state.key)}, and this {operation}() would attach both; keep one "
                    f"(remove the other from the relationship that holds it), or merge() them"
                )
        elif status is DELETED:
            raise InvalidStateError(
                f"{operation}(): the row of {obj!r} was deleted in this transaction; rollback() to bring it back, "
                f"or add a new object"
            )
        if mapper.json_columns and (status is TRANSIENT or status is DETACHED):
            # bring_in() copies such an object's values for the undo log (as they are: it was in no
            # session), and a JSON value nested too deeply cannot be copied: refused now, not
            # halfway through an add_all().
            mapper.copy_values(values)
        # (An object already here, pending or persistent, is accepted as it is.)
        if mapper.references or mapper.collections:
            if seen is None:
                seen = set()
            seen.add(id(obj))
            if claims is None:
                claims = {}
            for relationship, related in session.cascades.along(obj, SAVE_UPDATE):
                related_state = related.__dict__.get(STATE_ATTRIBUTE)
                if id(related) not in seen and (related_state is None or related_state.session is not session):
                    if met is not None:
                        met.append((related, obj, relationship))
                    self.refuse_to_add(related, operation, seen, claims, met)

    def bring_in(self, obj, cause=None):
        """Bring ``obj`` (and its save-update cascade) in; :meth:`refuse_to_add` has checked it all.

        ``cause`` is ``(cascade, source state, relationship)`` when a cascade, not the user,
        brings a new object in: it is recorded for ``explain`` (see ``Registers.causes``).
        """
        session = self.session
        state = self._bring_one(obj, cause)
        mapper = state.mapper
        if mapper.references or mapper.collections:
            for relationship, related in session.cascades.along(obj, SAVE_UPDATE):
                related_state = related.__dict__.get(STATE_ATTRIBUTE)
                if related_state is None or related_state.session is not session:
                    # (objects already here brought in their own cascade)
                    self.bring_in(related, (SAVE_UPDATE, state, relationship))

    def _add_walked(self, objects, operation):
        """add() and add_all(), each cascade walked once: the fast path of :meth:`bring_in`'s walk.

        The walk that checks everything first (:meth:`refuse_to_add`) lists the objects each
        listed object's cascade goes on to, in the order bring_in()'s own walk would meet them,
        with the object and relationship each was reached from; they are then brought in from
        that list instead of walking again.  ``seen`` is shared across the objects, so each
        cascade is walked once however many objects reach it: the commonest add_all() lists
        parents and their children, and each side reaches the other.
        """
        seen: set[int] = set()
        claims: dict = {}
        starts = []  # the listed objects whose walk starts here (an object met before is here already)
        reached = {}  # id(listed object) -> [(object, source, relationship)] its walk went on to
        found: list = []
        bring_one = self._bring_one
        # (The lists are built in the first pass and the state records in the second: neither is
        # garbage, so the collector waits for both; see collector_paused.)
        with collector_paused(len(objects)):
            for obj in objects:
                if id(obj) not in seen:
                    starts.append(obj)
                    self.refuse_to_add(obj, operation, seen, claims, found)
                    if found:
                        reached[id(obj)] = found
                        found = []
            for obj in starts:
                bring_one(obj, None)
                if reached and id(obj) in reached:
                    for related, source, relationship in reached.pop(id(obj)):
                        bring_one(related, (SAVE_UPDATE, source.__dict__[STATE_ATTRIBUTE], relationship))

    def _bring_one(self, obj, cause):
        """:meth:`bring_in` of ``obj`` alone, not its cascade; returns its state record."""
        session = self.session
        mapper = type(obj).__mapper__
        values = obj.__dict__
        state = values.get(STATE_ATTRIBUTE)
        if state is None or state.status is TRANSIENT:
            # A transient object is in none of the session's collections: its memento is just
            # its values (cheaper than memento_of(), see UndoLog.record_transient).  They are
            # copied first: a value that cannot be copied is refused before anything changed.
            memento = mapper.copy_values(values)
            sequence = next(self.registers.sequence)
            if state is None:
                # A new object, the commonest add() (the bulk-insert path): its state record is
                # made, pending, with the object's first add.
                state = InstanceState(obj, mapper, PENDING, session, sequence=sequence)
                values[STATE_ATTRIBUTE] = state
            else:
                state.move(PENDING, "add")
                state.session = session
                state.sequence = sequence
            session.undo.record_transient(state, memento)
            self.registers.pending[state] = None
            if cause is not None:
                self.registers.causes[state] = cause
        elif state.status is DETACHED:
            session.undo.record(state)
            self.registers.make_persistent(state, state.key, state.committed, "add")
            session.tracker.note_assignment(state)  # changed while it was away, perhaps: compare it
        elif state in self.registers.marked:
            self.take_back_delete(state)
        return state

    def take_back_delete(self, state):
        """add() or expunge() of an object marked for deletion: it stays, and so does what its delete() took
        with it -- children its delete cascade deleted or cancelled, children whose reference
        to it was cleared -- unless they were changed since (a child pointed elsewhere keeps its
        new parent)."""
        session = self.session
        session.undo.record(state)
        obj = state.obj
        self.registers.causes.pop(state, None)
        for child, cleared in self.registers.marked.pop(state) or ():
            child_state = child.__dict__[STATE_ATTRIBUTE]
            if cleared is not None:
                values = child.__dict__
                if child_state.session is session and values.get(cleared.name) is None and \
                        all(values.get(name) is None for name in cleared.column_names):
                    setattr(child, cleared.name, obj)
            elif child_state in self.registers.marked:
                self.take_back_delete(child_state)
            elif child_state.status is TRANSIENT and child_state.session is None:
                # A pending child whose insert the cascade cancelled.  (Should its key have been
                # taken since, the refusal names it; what was taken back so far stays.)
                self.refuse_to_add(child)
                self.bring_in(child, (TAKEN_BACK, state, None))
                session.cascades.join_parents(child)

    def add_all(self, objects):
        """add() each object, in order; if any of them cannot be added, none is."""
        self.guard.check("add_all")
        objects = listed(objects, "add_all", "objects")  # (refuse_to_add checks each is an entity object)
        self._add_walked(objects, "add_all")

    def _refuse_held_key(self, mapper, key, obj):
        held = self.session.identity.get(mapper.cls, key)
        if held is not None and held.__dict__[STATE_ATTRIBUTE] in self.registers.marked:
            return  # the holder is being deleted: the flush will switch the row over (see planner.actions)
        if held is not None and held is not obj:
            raise DuplicateIdentityError(
                f"add(): {held!r} already holds the identity {format_key(mapper, key)} in this session, so {obj!r} "
                f"cannot; change the new object's key, or use merge() to copy its values onto the held object"
            )

    def delete(self, obj, cause=None):
        """Mark a persistent object for deletion; its row is DELETEd at the next flush.

        Deleting a pending object cancels its insert (it becomes transient again); deleting a
        detached object re-attaches it first.  Deleting a transient object is an error.
        ``cause`` is ``(cascade, source state, relationship)`` when a cascade deletes it (see
        :meth:`bring_in`).
        """
        session = self.session
        if _get_ident() != self.guard.ready_thread:
            self.guard.check("delete")  # another thread, or a failed or closed session: refused
        mapper_of_object(obj, "delete")
        state = obj.__dict__.get(STATE_ATTRIBUTE)
        if state is None or state.status is TRANSIENT:
            raise InvalidStateError(
                f"delete(): {obj!r} is transient, so there is no row to delete; add() and flush it first"
            )
        if state.session is not None and state.session is not session:
            raise InvalidStateError(f"delete(): {obj!r} belongs to another session")
        if state.status is DETACHED:
            self.refuse_to_add(obj, "delete")
            self.bring_in(obj)
        if state.status is PENDING:
            self.expunge(obj)
            session.cascades.leave_parents(obj)
        elif state.status is PERSISTENT and state not in self.registers.marked:
            session.undo.record(state)
            if cause is not None:
                self.registers.causes[state] = cause
            if not state.mapper.delete_reaches_others:
                self.registers.marked[state] = None  # it does nothing to other objects
                return
            # What this delete does to other objects, so that add() can take it all back:
            # (child, None) for a child it deletes, (child, reference) for one it unlinks.
            done: list[tuple[Any, Any]] = []
            self.registers.marked[state] = done
            try:  # (a read of the children that fails takes the delete back: a refused delete() marks nothing)
                # Loading the children must not autoflush: that would delete the parent before them.
                with session.no_autoflush:
                    for relationship, child in session.cascades.along(obj, DELETE):
                        child_state = child.__dict__[STATE_ATTRIBUTE]
                        if child_state.status is PENDING or child_state not in self.registers.marked:
                            done.append((child, None))
                        self.delete(child, (DELETE, state, relationship))
                    done.extend(session.cascades.unlink_children(obj))
            except BaseException:
                self.take_back_delete(state)
                raise

    # -- leaving the session --------------------------------------------------------------

    def expunge(self, obj):
        """Remove one object from the session: pending becomes transient, persistent becomes detached.

        An object marked for deletion and not yet flushed is not deleted after all, and neither is
        what its delete() did to other objects: expunge() takes it all back as add() does (see
        :meth:`take_back_delete`) before the object leaves.  That is what a SQLAlchemy user sees,
        where a delete touches nothing before the flush: expunging the object leaves its children's
        rows and references as they were (before, a child whose reference the delete had cleared
        stayed in the session and the next flush wrote NULL under a parent still there).  The
        children the expunge cascade reaches then leave with it; the others stay, unchanged.
        A delete already flushed is the transaction's: the object leaves, its row stays deleted.
        """
        session = self.session
        self.guard.check("expunge")
        state = self.guard.own_state(obj, "expunge")
        if state in self.registers.marked:
            self.take_back_delete(state)
        session.undo.record(state)
        self.registers.unindex(state)
        self.registers.detach(state)
        for related in session.cascades.related(obj, "expunge"):
            related_state = related.__dict__.get(STATE_ATTRIBUTE)
            if related_state is not None and related_state.session is session:
                self.expunge(related)

    def make_transient(self, state):
        """The session's side of :func:`make_transient`: the object leaves, as by expunge() without
        its cascade (the undo log records it, so rollback() brings it back as it was)."""
        self.guard.check("make_transient")
        if state in self.registers.marked:
            self.take_back_delete(state)
        self.session.undo.record(state)
        self.registers.unindex(state)
        self.registers.detach(state)  # (pending becomes transient, any other state detached)

    def expunge_all(self):
        """expunge() every object in the session (deletes not yet flushed are taken back first, as
        expunge() takes them back, so no detached child is left with a reference a delete cleared)."""
        session = self.session
        self.guard.check("expunge_all")
        for state in list(self.registers.marked):
            if state in self.registers.marked:  # taking back a parent's delete may have taken this one back
                self.take_back_delete(state)
        for state in self.registers.all_states():
            session.undo.record(state)
            self.registers.unindex(state)
            self.registers.detach(state)

