"""The Session: the unit of work that users talk to.

A session stands between your objects and one SQLite connection.  It keeps

* an **identity map** (``identity``): one object per row, so loading a row twice gives the same object;
* **pending**, **marked-for-deletion** and **modified** objects: what the next flush must write;
* an **undo log** (``undo``): how every touched object looked when the transaction or savepoint began,
  so that a rollback can put objects back exactly, without SQL;
* a **transaction** (``transaction``): which BEGIN/SAVEPOINT is open on the connection.

A flush asks the planner for a :class:`~uow.plan.FlushPlan`, checks every value, runs the plan
inside a savepoint, and only when every statement has succeeded updates the objects.  If any
statement fails, the savepoint is rolled back, no object has been changed, and the session refuses
further work until ``rollback()`` (see ``transaction``).

The rules users can rely on are spelled out in the README and in docs/api-sketch.md; the most
important one: ``rollback()`` rolls the database back and puts every object the session touched
since the last commit back to exactly the state and values it had then.  Objects that entered by
``add`` become transient again; objects first loaded during the rolled-back transaction are
expired, so they reload on next access instead of keeping values the rollback undid.
"""

import contextlib
import dataclasses
import itertools
import sqlite3
import threading
import types

from .errors import (
    DuplicateIdentityError,
    FlushError,
    ObjectDeletedError,
    ReadOnlyError,
    InvalidStateError,
    TransactionError,
    WrongThreadError,
)
from .events import Listeners, dispatch
from .executor import Executor, capture_sql
from .bulk import BulkMixin
from .databases import DatabasesMixin
from .loading import LoadingMixin
from .merging import MergingMixin
from .flush import bind_plan, run_plan
from .identity import IdentityMap, collector_paused, format_key
from .mapping import NOT_LOADED, STATE_ATTRIBUTE, mapper_of
from .dependencies import build_plan
from .plan import CLEAR_REFERENCE, POST_UPDATE, ROW_SWITCH, StepKind
from .relationships import set_reference
from .states import InstanceState, ObjectState
from .tracking import ChangeTracker, changed_fields, original_value
from .transaction import Transaction, TransactionState
from .undo import UndoLog

_get_ident = threading.get_ident
PERSISTENT = ObjectState.PERSISTENT


class Memento:
    """How one object looked at the start of an undo scope (see ``undo``).

    ``values`` is a copy of the instance dict; the flags say which of the session's collections
    the object was in.
    """

    __slots__ = ("status", "session", "key", "committed", "sequence", "values", "pending",
                 "marked", "deleted_row", "candidate")

    def __init__(self, status, session, key, committed, sequence, values,
                 pending=False, marked=False, deleted_row=False, candidate=False):
        self.status = status
        self.session = session
        self.key = key
        self.committed = committed
        self.sequence = sequence
        self.values = values
        self.pending = pending
        self.marked = marked
        self.deleted_row = deleted_row
        self.candidate = candidate


@dataclasses.dataclass(frozen=True)
class SessionStats:
    """Counts for ``session.stats()``: objects per state, and work done so far."""

    pending: int
    persistent: int
    marked_for_deletion: int
    deleted: int
    statements: int
    flushes: int


class Session(LoadingMixin, MergingMixin, BulkMixin, DatabasesMixin):
    """A unit of work over one sqlite3 connection (open it with :func:`uow.connect`).

    ::

        session = Session(uow.connect("app.db"))
        user = session.get(User, 1)
        user.name = "Ann"
        session.commit()          # UPDATE "users" SET "name" = ? WHERE "users"."id" = ?

    ``autoflush`` (default True) flushes pending changes before a query, so queries see them.
    ``expire_on_commit`` (default False) would make every object reload after commit; uow keeps
    the values, which are exactly what this session just committed (see the README for why).

    Transaction options (see ``transaction``): ``begin_mode`` ("DEFERRED", "IMMEDIATE",
    "EXCLUSIVE"; by default reads begin DEFERRED and flushes IMMEDIATE), ``read_only``,
    ``busy_timeout`` in seconds, and ``isolation_level`` / ``deferrable``, which SQLite cannot
    honour except for "SERIALIZABLE" and are refused rather than ignored.
    """

    listeners = Listeners()  # listeners of every session; see uow.events

    def __init__(self, connection, *, autoflush=True, expire_on_commit=False, begin_mode=None,
                 read_only=False, busy_timeout=None, isolation_level=None, deferrable=None):
        self.executor = Executor(connection)
        self.transaction = Transaction(self.executor)
        self.transaction.configure(begin_mode=begin_mode, read_only=read_only,
                                   isolation_level=isolation_level, deferrable=deferrable)
        if busy_timeout is not None:
            self.transaction.set_busy_timeout(busy_timeout)
        self.listeners = Listeners()
        self.identity = IdentityMap()
        self.undo = UndoLog(self._capture)
        self.tracker = ChangeTracker()
        self.autoflush = autoflush
        self.expire_on_commit = expire_on_commit
        self._pending = {}
        self._marked = {}
        self._deleted_rows = {}
        self._sequence = itertools.count(1)
        self._owner_thread = _get_ident()
        # The owner's thread id while the session is usable, None while it is failed or closed:
        # get() decides "fast path or explain the problem" with a single comparison.
        self._ready_thread = self._owner_thread
        self._autoflush_blocked = 0
        self._flushing = False
        self._flush_count = 0

    # -- guards ---------------------------------------------------------------------------

    def _check(self, operation):
        if _get_ident() != self._owner_thread:
            raise WrongThreadError(
                f"{operation}(): this session belongs to thread {self._owner_thread}, but was called from "
                f"thread {_get_ident()}; create one session per thread"
            )
        state = self.transaction.state
        if state is TransactionState.FAILED or state is TransactionState.CLOSED:
            self.transaction.check_usable(operation)

    def _own_state(self, obj, operation):
        """The state of ``obj``, which must belong to this session."""
        mapper_of(obj)
        state = obj.__dict__.get(STATE_ATTRIBUTE)
        if state is None or state.session is not self:
            status = ObjectState.TRANSIENT if state is None else state.status
            where = "another session" if state is not None and state.session is not None else "no session"
            raise InvalidStateError(
                f"{operation}(): {obj!r} is {status.value} and belongs to {where}; "
                f"it must be in this session (add() it first)"
            )
        return state

    # -- adding and deleting --------------------------------------------------------------

    def add(self, obj):
        """Make a transient object pending (inserted at the next flush), or re-attach a detached one.

        Adding an object that is already in this session does nothing.  Adding an object held by
        another session, or one whose key another object in this session holds, is an error.
        """
        self._check("add")
        self._add(obj)

    def _add(self, obj):
        mapper = mapper_of(obj)
        values = obj.__dict__
        state = values.get(STATE_ATTRIBUTE)
        if state is None:
            mapper.configure()
            state = InstanceState(obj, mapper, ObjectState.TRANSIENT, None)
            values[STATE_ATTRIBUTE] = state
        elif state.session is not None and state.session is not self:
            raise InvalidStateError(
                f"add(): {obj!r} belongs to another session; expunge() it there first, "
                f"or merge() it into this one"
            )
        status = state.status
        if status is ObjectState.TRANSIENT:
            if mapper.generated_key is None or values.get(mapper.generated_key.name) is not None:
                self._refuse_held_key(mapper.key_of(values), obj)
            if mapper.references or mapper.collections:
                self._add_transient(state, mapper, values)
                for related in self._cascade(obj, "save-update"):
                    self._add(related)
                return
            # A transient object is in none of the session's collections: its memento is just
            # its values (cheaper than _capture, and add() is on the bulk-insert path).
            self.undo.record_memento(state, Memento(ObjectState.TRANSIENT, None, None, None, 0, mapper.copy_values(values)))
            state.move(ObjectState.PENDING, "add")
            state.session = self
            state.sequence = next(self._sequence)
            self._pending[state] = None
        elif status is ObjectState.DETACHED:
            self._refuse_held_key(state.key, obj)
            self.undo.record(state)
            state.move(ObjectState.PERSISTENT, "add")
            state.session = self
            state.sequence = next(self._sequence)
            self.identity.add(state.key, obj)
            self.tracker.note_assignment(state)
            if mapper.json_columns:
                self.tracker.watch(state)
        elif status is ObjectState.DELETED:
            raise InvalidStateError(
                f"add(): the row of {obj!r} was deleted in this transaction; rollback() to bring it back, "
                f"or add a new object"
            )

    def _add_transient(self, state, mapper, values):
        self.undo.record_memento(state, Memento(ObjectState.TRANSIENT, None, None, None, 0, mapper.copy_values(values)))
        state.move(ObjectState.PENDING, "add")
        state.session = self
        state.sequence = next(self._sequence)
        self._pending[state] = None

    def add_all(self, objects):
        """add() each object, in order."""
        self._check("add_all")
        objects = list(objects)
        add = self._add
        with collector_paused(len(objects)):
            for obj in objects:
                add(obj)

    def _refuse_held_key(self, key, obj):
        held = self.identity.get(key)
        if held is not None and held.__dict__[STATE_ATTRIBUTE] in self._marked:
            return  # the holder is being deleted: the flush will switch the row over (see dependencies)
        if held is not None and held is not obj:
            raise DuplicateIdentityError(
                f"add(): {held!r} already holds the identity {format_key(key)} in this session, so {obj!r} "
                f"cannot; change the new object's key, or use merge() to copy its values onto the held object"
            )

    def delete(self, obj):
        """Mark a persistent object for deletion; its row is DELETEd at the next flush.

        Deleting a pending object cancels its insert (it becomes transient again); deleting a
        detached object re-attaches it first.  Deleting a transient object is an error.
        """
        self._check("delete")
        mapper_of(obj)
        state = obj.__dict__.get(STATE_ATTRIBUTE)
        if state is None or state.status is ObjectState.TRANSIENT:
            raise InvalidStateError(
                f"delete(): {obj!r} is transient, so there is no row to delete; add() and flush it first"
            )
        if state.session is not None and state.session is not self:
            raise InvalidStateError(f"delete(): {obj!r} belongs to another session")
        if state.status is ObjectState.DETACHED:
            self._add(obj)
        if state.status is ObjectState.PENDING:
            self.expunge(obj)
        elif state.status is PERSISTENT and state not in self._marked:
            self.undo.record(state)
            self._marked[state] = None
            # Loading the children must not autoflush: that would delete the parent before them.
            with self.no_autoflush:
                for child in self._cascade(obj, "delete"):
                    self.delete(child)
                self._unlink_children(obj)

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

    def _around(self, event, operation, result_name=None, **info):
        """Run ``operation`` between the ``before_`` and ``after_`` events called ``event``.

        ``result_name``: the after-event also receives the operation's result under that name
        (``savepoint=`` for the NestedTransaction that begin_nested() creates).
        """
        dispatch(self, "before_" + event, **info)
        try:
            result = operation()
        except BaseException as error:
            dispatch(self, "after_" + event, error=error, **info)
            raise
        if result_name is not None:
            info[result_name] = result
        dispatch(self, "after_" + event, error=None, **info)
        return result

    def _begin(self, mode, for_writing=False, **options):
        self._around("begin", lambda: self.transaction.begin(mode, for_writing=for_writing, **options))

    # -- change tracking ------------------------------------------------------------------

    def _attribute_set(self, state, name, value):
        """Called by Entity.__setattr__ for objects in this session."""
        values = state.obj.__dict__
        if name not in state.mapper.init_names:
            object.__setattr__(state.obj, name, value)
            return
        if _get_ident() != self._owner_thread:
            self._check("set attribute")
        self.undo.record(state)
        values[name] = value
        references = state.mapper.references_by_column.get(name)
        if references:
            for reference in references:
                values.pop(reference.name, None)  # reloaded from the new key when next read
        if state.status is PERSISTENT:
            self.tracker.note_assignment(state)

    # -- relationships (see ``relationships``) --------------------------------------------

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

    def dirty_fields(self, obj):
        """Names of the fields whose value differs from the database's (empty for pending objects)."""
        return list(changed_fields(self._own_state(obj, "dirty_fields")))

    def original_value(self, obj, field):
        """The value ``field`` had when the object was loaded or last flushed (None if never)."""
        return original_value(self._own_state(obj, "original_value"), field)

    def is_modified(self, obj):
        """True when the object has a net change to write (or is pending)."""
        state = self._own_state(obj, "is_modified")
        return state.status is ObjectState.PENDING or bool(changed_fields(state))

    @property
    def new(self):
        """Pending objects: added, not yet inserted."""
        return frozenset(state.obj for state in self._pending)

    @property
    def dirty(self):
        """Persistent objects with at least one net change (not counting those marked for deletion)."""
        return frozenset(state.obj for state, _ in self.tracker.changed_states() if state not in self._marked)

    @property
    def deleted(self):
        """Objects marked for deletion whose DELETE has not been flushed yet."""
        return frozenset(state.obj for state in self._marked)

    @property
    def identity_map(self):
        """A read-only view of ``{identity key: object}``."""
        return types.MappingProxyType(self.identity)

    def identity_key(self, entity=None, ident=None, *, instance=None):
        """``(Class, (key values...))`` for a class and key, or for an object (``instance=``)."""
        if instance is not None:
            state = instance.__dict__.get(STATE_ATTRIBUTE)
            if state is not None and state.key is not None:
                return state.key
            return mapper_of(instance).key_of(instance.__dict__)
        return mapper_of(entity).identity_key(ident)

    def __contains__(self, obj):
        state = obj.__dict__.get(STATE_ATTRIBUTE)
        return state is not None and state.session is self

    # -- flush ----------------------------------------------------------------------------

    @property
    def no_autoflush(self):
        """``with session.no_autoflush:`` suspends autoflush inside the block."""
        return self._no_autoflush()

    @contextlib.contextmanager
    def _no_autoflush(self):
        self._autoflush_blocked += 1
        try:
            yield self
        finally:
            self._autoflush_blocked -= 1

    def _autoflush(self):
        if self.autoflush and not self._autoflush_blocked and not self._flushing:
            self._flush()

    def _collect_changes(self):
        self._reload_expired_snapshots()
        inserts = list(self._pending)
        updates = [(state, names) for state, names in self.tracker.changed_states() if state not in self._marked]
        deletes = list(self._marked)
        return inserts, updates, deletes

    def _reload_expired_snapshots(self):
        """Objects to update or delete whose snapshot was expired are read back first (one SELECT
        each): the planner orders rows by their foreign keys and unique values, and the net
        change of an assignment needs the value it replaces."""
        for state in list(self.tracker.candidates) + list(self._marked):
            if state.committed is not None and NOT_LOADED in state.committed and state.key is not None:
                try:
                    self._load_expired(state)
                except ObjectDeletedError:
                    pass  # the flush's UPDATE or DELETE will report the missing row

    def _held_states(self):
        return [obj.__dict__[STATE_ATTRIBUTE] for obj in self.identity.values()]

    def plan(self):
        """The FlushPlan the next flush would run, without running anything.

        It prints as a numbered listing with the reason for every ordering constraint, and
        renders as a graph with ``to_dot()`` or ``to_mermaid()``.  See also :meth:`dry_run`.
        """
        self._check("plan")
        return build_plan(*self._collect_changes(), held_states=self._held_states)

    def dry_run(self):
        """The exact statements the next flush would send, as a list of :class:`~uow.Statement`.

        The flush really runs — inside a savepoint that is then rolled back — so the list shows
        the statements and parameters SQLite would see, including keys it generates.  Nothing
        changes: not the database, not any object.  A flush that would fail raises its error here.
        """
        self._check("dry_run")
        inserts, updates, deletes = self._collect_changes()
        if not (inserts or updates or deletes):
            return []
        self._refuse_duplicate_keys(inserts, deletes)
        plan = build_plan(inserts, updates, deletes, held_states=self._held_states)
        bound = bind_plan(plan, self.executor.length_limit())
        began = not self.transaction.active
        if began:
            self.transaction.begin(None, for_writing=True)
        self.executor.execute('SAVEPOINT "uow_dry_run"')
        try:
            with capture_sql() as statements:
                run_plan(self.executor, plan, bound)
        finally:
            if self.executor.in_transaction:
                self.executor.execute('ROLLBACK TO "uow_dry_run"')
                self.executor.execute('RELEASE "uow_dry_run"')
            if began:
                self.transaction.rollback()
        return statements

    def flush(self):
        """Write pending INSERTs, UPDATEs and DELETEs to the database (inside the current transaction)."""
        self._check("flush")
        if self._flushing:
            raise TransactionError("flush() was called while a flush is running")
        self._flush()

    def _flush(self):
        if not (self._pending or self._marked or self.tracker.candidates or self.tracker.watched):
            return
        size = len(self._pending) + len(self.tracker.candidates) + len(self._marked)
        with collector_paused(size):
            self._around("flush", self._flush_changes)

    def _flush_changes(self):
        inserts, updates, deletes = self._collect_changes()
        if not (inserts or updates or deletes):
            self.tracker.clear()
            return
        if self.transaction.read_only or (not self.transaction.active and self.transaction.default_read_only):
            raise ReadOnlyError(
                f"flush(): this is a read-only transaction, and {len(inserts)} insert(s), {len(updates)} "
                f"update(s) and {len(deletes)} delete(s) are waiting; nothing was sent. Roll back, or use "
                f"a session without read_only=True"
            )
        self._refuse_duplicate_keys(inserts, deletes)
        plan = build_plan(inserts, updates, deletes, held_states=self._held_states)
        bound = bind_plan(plan, self.executor.length_limit())
        self._flushing = True
        try:
            if not self.transaction.active:
                self._begin_for_flush()
            try:
                filled, assigned = run_plan(self.executor, plan, bound)
            except BaseException as error:
                self.transaction.fail(error)
                self._ready_thread = None
                raise
            self._apply_flush(plan, filled, assigned)
        finally:
            self._flushing = False

    def _begin_for_flush(self):
        """Begin the transaction a flush writes in.

        A ``before_begin`` listener that raises aborts the flush cleanly: nothing has happened.
        A failure of BEGIN itself (a lock held past the busy timeout, an interrupt) is a failed
        flush, like a failure of any other statement of the flush.
        """
        attempted = []

        def begin():
            attempted.append(True)
            try:
                self.transaction.begin(None, for_writing=True)
            except sqlite3.Error as error:
                mode = self.transaction.default_mode or "IMMEDIATE"
                hint = ""
                if getattr(error, "sqlite_errorname", "").startswith("SQLITE_BUSY"):
                    hint = " (another connection held the write lock for longer than the busy timeout)"
                raise FlushError(f"BEGIN {mode} failed: {error}{hint}; nothing was written",
                                 statement=f"BEGIN {mode}") from error

        try:
            self._around("begin", begin)
        except BaseException as error:
            if attempted:
                self.transaction.fail(error)
                self._ready_thread = None
            raise

    def _refuse_duplicate_keys(self, inserts, deletes):
        """Two objects may not claim one natural key: say so before any SQL runs.

        A key held by an object marked for deletion is free to take: the flush turns the
        DELETE and the INSERT into one UPDATE of the row (a "row switch").
        """
        claimed = {state.key: None for state in deletes}
        for state in inserts:
            mapper = state.mapper
            values = state.obj.__dict__
            if mapper.generated_key is not None and values.get(mapper.generated_key.name) is None:
                continue
            key = mapper.key_of(values)
            if key in claimed and claimed[key] is None:
                claimed[key] = state
                continue
            other = claimed.get(key) or self.identity.get(key)
            if other is not None and other is not state.obj:
                other_obj = other.obj if isinstance(other, InstanceState) else other
                raise DuplicateIdentityError(
                    f"flush(): {state.obj!r} and {other_obj!r} both claim the identity {format_key(key)}; "
                    f"change one key, or expunge one of them"
                )
            claimed[key] = state

    def _apply_flush(self, plan, filled, assigned):
        """Bring the objects in line with what the flush wrote (runs only after every statement succeeded)."""
        record = self.undo.record
        new_keys = []
        for step in plan.steps:
            mapper = step.mapper
            if step.kind is StepKind.INSERT:
                self._apply_inserts(step, filled, assigned)
                continue
            if step.kind is StepKind.DELETE:
                for state in step.states:
                    record(state)
                    self.identity.discard(state.key, state.obj)
                    state.move(ObjectState.DELETED, "flush")
                    self._deleted_rows[state] = None
                continue
            version = mapper.version_column
            for action in step.actions:
                state = action.state
                if step.purpose == CLEAR_REFERENCE:
                    continue  # the row is deleted later in this flush; the object keeps its values
                record(state)
                values = state.obj.__dict__
                values.update(assigned.get(state, ()))
                if step.purpose == POST_UPDATE:
                    state.committed = mapper.snapshot_getter(values)
                    continue
                if step.purpose == ROW_SWITCH:
                    self._apply_row_switch(action, values)
                    continue
                if version is not None:
                    values[version.name] = state.committed[version.index] + 1
                new_key = mapper.key_of(values)
                if new_key != state.key:
                    new_keys.append((state.key, new_key))
                    self.identity.discard(state.key, state.obj)
                    state.key = new_key
                    self.identity.add(new_key, state.obj)
                state.committed = mapper.snapshot_getter(values)
        for old_key, new_key in new_keys:
            self._follow_new_key(old_key, new_key)
        self._pending.clear()
        self._marked.clear()
        self.tracker.clear()
        self._flush_count += 1

    def _apply_row_switch(self, action, values):
        """The new object takes over the deleted object's row (see ``dependencies``)."""
        state = action.state
        old = action.switch_from
        mapper = state.mapper
        self.undo.record(old)
        self.identity.discard(old.key, old.obj)
        old.move(ObjectState.DELETED, "flush")
        self._deleted_rows[old] = None
        if mapper.version_column is not None:
            values[mapper.version_column.name] = old.committed[mapper.version_column.index] + 1
        state.move(PERSISTENT, "flush")
        state.key = old.key
        state.committed = mapper.snapshot_getter(values)
        self.identity.add(state.key, state.obj)
        # Children loaded through the old object now belong to the row's new object.
        for collection in mapper.collections:
            for child in old.obj.__dict__.get(collection.name) or ():
                if child.__dict__.get(collection.reference.name) is old.obj:
                    child.__dict__[collection.reference.name] = state.obj

    def _follow_new_key(self, old_key, new_key):
        """A primary key changed: SQLite re-pointed the referencing rows (ON UPDATE CASCADE), so the
        loaded objects that referenced the old key now hold the new one, in memory and in their
        snapshots."""
        target = old_key[0]
        for obj in list(self.identity.values()):
            state = obj.__dict__[STATE_ATTRIBUTE]
            for foreign_key in state.mapper.foreign_keys:
                if foreign_key.target is not target:
                    continue
                values = obj.__dict__
                if tuple(values.get(name) for name in foreign_key.column_names) != old_key[1]:
                    continue
                self.undo.record(state)
                snapshot = list(state.committed)
                for column, value in zip(foreign_key.columns, new_key[1]):
                    values[column.name] = value
                    snapshot[column.index] = value
                state.committed = tuple(snapshot)

    def _apply_inserts(self, step, filled, assigned):
        """Inserted objects become persistent, with the values the database filled in.

        This is the hottest loop of a bulk insert, so the undo-log check and the identity-map
        insert are written out here rather than called; they do what ``UndoLog.record`` and
        ``IdentityMap.add`` do.  (Keys were checked for duplicates before any SQL ran.)
        """
        mapper = step.mapper
        cls = mapper.cls
        snapshot_of = mapper.snapshot_getter
        single_key = mapper.pk_names[0] if mapper.scalar_key_type is not None else None
        identity = self.identity
        scope = self.undo.scopes[-1]
        for state in step.states:
            if state.undo_scope is not scope:
                self.undo.record(state)
            obj = state.obj
            values = obj.__dict__
            if state in filled:
                names, read_back = filled[state]
                values.update(zip(names, read_back))
            if state in assigned:
                values.update(assigned[state])
            key = (cls, (values[single_key],)) if single_key is not None else mapper.key_of(values)
            state.move(PERSISTENT, "flush")
            state.key = key
            state.committed = snapshot_of(values)
            if identity.setdefault(key, obj) is not obj:
                identity.add(key, obj)  # raises DuplicateIdentityError, naming both objects
            if mapper.json_columns:
                self.tracker.watch(state)

    # -- transactions ---------------------------------------------------------------------

    def begin(self, mode=None, *, read_only=None, isolation_level=None, deferrable=None):
        """Begin a transaction now (otherwise the first database operation begins one).

        ``mode`` is SQLite's DEFERRED, IMMEDIATE or EXCLUSIVE; the options override the session's
        for this transaction.  Beginning while a transaction is open is a TransactionError.
        """
        self._check("begin")
        self._begin(mode, read_only=read_only, isolation_level=isolation_level, deferrable=deferrable)
        return self

    def begin_nested(self):
        """Open a savepoint; returns a NestedTransaction (also a context manager)."""
        self._check("begin_nested")

        def open_savepoint():
            self._autoflush()
            if not self.transaction.active:
                self._begin(None)
            nested = self.transaction.open_savepoint(self)
            self.undo.push()
            return nested

        return self._around("savepoint", open_savepoint, result_name="savepoint")

    def _end_nested(self, nested, commit):
        self.transaction.check_innermost(nested, "commit" if commit else "rollback")
        if commit:
            self._check("commit")

            def release():
                self._flush()
                self.transaction.release_savepoint(nested)
                self.undo.release()

            self._around("release_savepoint", release, savepoint=nested)
        else:
            def roll_back_to():
                self.transaction.rollback_to_savepoint(nested)
                self._restore(*self.undo.pop())

            self._around("rollback_to_savepoint", roll_back_to, savepoint=nested)

    def in_transaction(self):
        return self.transaction.state is not TransactionState.IDLE and self.transaction.state is not TransactionState.CLOSED

    def in_nested_transaction(self):
        return bool(self.transaction.savepoints)

    def commit(self):
        """Flush, then COMMIT.  If SQLite refuses the COMMIT, the transaction stays open and nothing is lost."""
        self._check("commit")
        self._around("commit", self._commit)

    def _commit(self):
        self._flush()
        if self.transaction.active:
            self.transaction.commit()
        for state in self._deleted_rows:
            state.move(ObjectState.DETACHED, "commit")
            state.session = None
        self._deleted_rows.clear()
        self.undo.forget()
        if self.expire_on_commit:
            for obj in self.identity.values():
                state = obj.__dict__[STATE_ATTRIBUTE]
                self._expire_state(state, state.mapper.columns)
            self.undo.forget()

    def rollback(self):
        """Roll the database back, and every object the session touched since the last commit with it."""
        if _get_ident() != self._owner_thread:
            self._check("rollback")
        if self.transaction.state is TransactionState.CLOSED:
            self.transaction.check_usable("rollback")
        self._around("rollback", self._rollback)

    def _rollback(self):
        self.transaction.rollback()
        self._ready_thread = self._owner_thread
        while self.undo.depth:
            self._restore(*self.undo.pop())
        self._restore(*self.undo.pop())

    # -- the undo log: capture and restore ------------------------------------------------

    def _capture(self, state):
        if state.session is None:
            return Memento(state.status, None, state.key, state.committed, state.sequence,
                           state.mapper.copy_values(state.obj.__dict__, state.committed))
        return Memento(
            state.status, state.session, state.key, state.committed, state.sequence,
            state.mapper.copy_values(state.obj.__dict__, state.committed),
            pending=state in self._pending,
            marked=state in self._marked,
            deleted_row=state in self._deleted_rows,
            candidate=state in self.tracker.candidates,
        )

    def _restore(self, scope, start_epoch):
        """Put every object of an undo scope back as its memento says, then expire the objects
        loaded since the scope began (their values may include what the rollback undid).

        An object that has since moved to another session is that session's now: it is left alone.
        """
        scope = {state: memento for state, memento in scope.items()
                 if state.session is None or state.session is self}
        for state in scope:
            self._unindex(state)
        for state, memento in scope.items():
            values = state.obj.__dict__
            for name in state.mapper.restorable_names:
                values.pop(name, None)
                if name in memento.values:
                    values[name] = memento.values[name]
            state.status = memento.status
            state.session = memento.session
            state.key = memento.key
            state.committed = memento.committed
            state.sequence = memento.sequence
        for state, memento in scope.items():
            if memento.session is not self:
                continue
            if memento.status is ObjectState.PENDING:
                self._pending[state] = None
            elif memento.status is PERSISTENT:
                held = self.identity.get(state.key)
                if held is not None and held is not state.obj:
                    # A copy of the row loaded during the rolled-back scope (after this object was
                    # expunged): the object the session held at the start of the scope wins.
                    held_state = held.__dict__[STATE_ATTRIBUTE]
                    self.identity.discard(state.key, held)
                    self.tracker.forget(held_state)
                    held_state.status = ObjectState.DETACHED
                    held_state.session = None
                self.identity.add(state.key, state.obj)
                if state.mapper.json_columns:
                    self.tracker.watch(state)
                if memento.marked:
                    self._marked[state] = None
                if memento.candidate:
                    self.tracker.note_assignment(state)
            elif memento.status is ObjectState.DELETED:
                self._deleted_rows[state] = None
        # Keep pending and marked objects in session order, which flushes rely on.
        if scope:
            self._pending = dict(sorted(self._pending.items(), key=lambda item: item[0].sequence))
            self._marked = dict(sorted(self._marked.items(), key=lambda item: item[0].sequence))
        for obj in self.identity.values():
            state = obj.__dict__[STATE_ATTRIBUTE]
            values = obj.__dict__
            if state.loaded_epoch >= start_epoch:
                for name in state.mapper.restorable_names:
                    values.pop(name, None)
                state.committed = (NOT_LOADED,) * len(state.mapper.columns)
            # Loaded collections are views of other objects' references, which the rollback may
            # have changed: drop them, and they reload (through the identity map) when next read.
            for collection in state.mapper.collections:
                values.pop(collection.name, None)
        for state in self._pending:
            for collection in state.mapper.collections:
                state.obj.__dict__.pop(collection.name, None)
        # A JSON value changed in place touched nothing the undo log could see; its snapshot
        # (JSON text) is what the object held when the scope began, so put that back.
        for state in self.tracker.watched:
            if state in scope or state.committed is None:
                continue
            values = state.obj.__dict__
            for column in state.mapper.json_columns:
                text = state.committed[column.index]
                if isinstance(text, str) and column.type.to_db(values.get(column.name)) != text:
                    values[column.name] = column.type.from_db(text)

    def _unindex(self, state):
        if state.key is not None:
            self.identity.discard(state.key, state.obj)
        self._pending.pop(state, None)
        self._marked.pop(state, None)
        self._deleted_rows.pop(state, None)
        self.tracker.forget(state)

    # -- leaving the session --------------------------------------------------------------

    def expunge(self, obj):
        """Remove one object from the session: pending becomes transient, persistent becomes detached."""
        self._check("expunge")
        state = self._own_state(obj, "expunge")
        self.undo.record(state)
        self._unindex(state)
        self._detach(state)
        for related in self._cascade(obj, "expunge"):
            related_state = related.__dict__.get(STATE_ATTRIBUTE)
            if related_state is not None and related_state.session is self:
                self.expunge(related)

    def expunge_all(self):
        """expunge() every object in the session."""
        self._check("expunge_all")
        for state in self._all_states():
            self.undo.record(state)
            self._unindex(state)
            self._detach(state)

    def _all_states(self):
        states = list(self._pending)
        states.extend(obj.__dict__[STATE_ATTRIBUTE] for obj in self.identity.values())
        states.extend(self._deleted_rows)
        return states

    def _detach(self, state):
        if state.status is ObjectState.PENDING:
            state.move(ObjectState.TRANSIENT, "expunge")
        elif state.status is not ObjectState.DETACHED:
            state.status = ObjectState.DETACHED
        state.session = None

    def reset(self):
        """rollback(), then detach every object; the session stays usable."""
        self.rollback()
        for state in self._all_states():
            self._unindex(state)
            self._detach(state)
        self.undo.forget()

    def close(self):
        """reset(), then refuse any further use.  Closing twice is fine."""
        if self.transaction.state is TransactionState.CLOSED:
            return
        self.reset()
        self.transaction.close()
        self._ready_thread = None

    def __enter__(self):
        return self

    def __exit__(self, error_type, error, traceback):
        if self.transaction.state is TransactionState.CLOSED:
            return False
        try:
            if error_type is None:
                self.commit()
            else:
                self.rollback()
        except BaseException:
            self.rollback()
            self.close()
            raise
        self.close()
        return False

    # -- introspection --------------------------------------------------------------------

    def stats(self):
        """Objects per state and the work done so far, as a SessionStats."""
        return SessionStats(
            pending=len(self._pending),
            persistent=len(self.identity),
            marked_for_deletion=len(self._marked),
            deleted=len(self._deleted_rows),
            statements=self.executor.statement_count,
            flushes=self._flush_count,
        )

    def __repr__(self):
        stats = self.stats()
        return (f"<Session {self.transaction.state.value}: {stats.pending} pending, "
                f"{stats.persistent} persistent, {stats.marked_for_deletion} marked for deletion>")
