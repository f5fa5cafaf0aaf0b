"""The session's side of a flush: what to write, and how the objects change once it is written.

Part of the Session (assembled in ``session``).  A flush goes:

1. **collect** the changes: pending objects, objects with a net change (``tracking``), objects
   marked for deletion — reading back expired snapshots the planner needs;
2. **plan** them (``dependencies`` and ``plan``): row actions in a safe order, with reasons;
3. **bind and check** every value (``flush.bind_plan``) — any refusal happens here, before SQL;
4. **run** the plan inside a savepoint (``flush.run_plan``) — any failure undoes it;
5. **apply** what was written to the objects: pending objects become persistent with their new
   keys, snapshots are brought up to date, deleted objects become DELETED.

Only step 5 changes objects, and only after every statement has succeeded, which is what lets a
failed flush leave the session exactly as it was.  ``flush.py`` is the other half: it turns a
plan into SQL.
"""

import contextlib
import sqlite3
import typing

from .dependencies import build_plan
from .errors import (
    DuplicateIdentityError,
    FlushError,
    ReadOnlyError,
    StaleDataError,
)
from .executor import capture_sql
from .flush import bind_plan, run_plan, statements_stayed
from .identity import collector_paused, format_key
from .mapping import NOT_LOADED
from .plan import CLEAR_REFERENCE, POST_UPDATE, ROW_SWITCH, StepKind
from .states import STATE_ATTRIBUTE, ObjectState
from .transaction import STATEMENTS_STAYED

PERSISTENT = ObjectState.PERSISTENT


class _KeyFromParent(typing.NamedTuple):
    """A key value the flush copies from a parent the database has not numbered yet."""

    parent: object  # the parent's InstanceState
    position: int  # which of the parent's key columns

    def __repr__(self):
        return f"<{self.parent.mapper.pk_names[self.position]} of {self.parent.describe()}>"


def _claimed_key(state):
    """The identity a pending object claims before any SQL, or None when nothing can be said yet.

    A key column left None for a reference to fill from a pending parent's new key (an
    association row under two new parents) holds a stand-in for that parent's key: two rows
    under the same new parents claim one identity and are refused, rows under different parents
    do not collide.  The real key is taken once the parents' INSERTs ran (``_apply_inserts``).
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


class FlushingMixin:
    """The Session's flush (see the module docstring)."""

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
        # Not inside a listener: the operation that called it is flushing, or has flushed, or is
        # ending the transaction (see features.events); a query there must not start a flush of its own.
        if self.autoflush and not self._autoflush_blocked and not self._flushing and self._listening is None:
            self._flush()

    def _reload_expired_snapshots(self):
        """Read back the expired snapshot entries the planner needs (one SELECT per object).

        An object to delete needs the foreign keys and unique values its row holds now, to be
        ordered correctly; an object whose expired key, foreign key or unique column was
        assigned needs the value it replaces; and a versioned object whose version is expired
        needs the version its UPDATE checks (as SQLAlchemy, uow reads the row's version then:
        the object never read one to compare with).  Other expired objects stay expired: they
        reload when read, not because a flush happened.

        Every row is read before any is applied: a versioned row found gone is a stale error, and
        the refused flush then leaves every object as it was (none half reloaded).
        """
        found = []
        for state in list(self.tracker.candidates) + list(self._marked):
            committed = state.committed
            if committed is None or state.key is None or NOT_LOADED not in committed:
                continue
            version = state.mapper.version_column
            unknown_version = version is not None and committed[version.index] is NOT_LOADED
            if state not in self._marked and not unknown_version:
                values = state.obj.__dict__
                ordering = state.mapper.ordering_columns
                if not any(committed[column.index] is NOT_LOADED and column.name in values for column in ordering):
                    continue
            self._check("load")
            row = self.loader.read_row(state)
            if row is not None:
                found.append((state, row))
            elif unknown_version:
                raise StaleDataError(
                    f"flush(): {state.describe()} was expired and its row is gone: another session deleted "
                    f"it, so there is no {version.qualified_name} to check. Nothing was written; "
                    f"expunge() the object, or rollback()",
                    obj=state.obj, expected=None, found=None,
                )
            # (no row and no version: the flush's UPDATE or DELETE will report the missing row)
        for state, row in found:
            self.loader.fill_expired(state, row)

    def _collect_changes(self):
        self._reload_expired_snapshots()
        inserts = list(self._pending)
        updates = [(state, names) for state, names in self.tracker.changed_states() if state not in self._marked]
        deletes = list(self._marked)
        return inserts, updates, deletes

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
        changes: not the database, not any object.  A flush that would fail raises its error here;
        if SQLite itself ended the whole transaction (a trigger's ``RAISE(ROLLBACK)``), the session
        then refuses other work until ``rollback()``, as after a failed flush.
        """
        self._check("dry_run")
        inserts, updates, deletes = self._collect_changes()
        if not (inserts or updates or deletes):
            return []
        self._refuse_duplicate_keys(inserts, updates, deletes)
        plan = build_plan(inserts, updates, deletes, held_states=self._held_states)
        bound = bind_plan(plan, self.executor.length_limit())
        self._refuse_lost_transaction("dry_run")
        began = not self.transaction.active
        if began:
            self.transaction.begin(None, for_writing=True)
        self.undo.loading_epoch()  # writes before the dry run count; its own are undone below
        self.executor.execute('SAVEPOINT "uow_dry_run"')
        try:
            with capture_sql() as statements:
                run_plan(self.executor, plan, bound)
        except BaseException as error:
            if not began:  # (one the dry run began itself is ended below, whatever SQLite did)
                self._fail_if_transaction_lost(error, "dry_run()")
            raise
        finally:
            if self.executor.in_transaction:
                self.executor.execute('ROLLBACK TO "uow_dry_run"')
                self.executor.execute('RELEASE "uow_dry_run"')
                self.undo.writes_rolled_back()
            if began:
                self.transaction.rollback()
        return statements

    def flush(self):
        """Write pending INSERTs, UPDATEs and DELETEs to the database (inside the current transaction)."""
        self._check("flush")
        self._refuse_in_listener("flush")  # (a listener is the only code that runs during a flush)
        self._flush()

    def _flush(self):
        if not (self._pending or self._marked or self.tracker.candidates or self.tracker.watched):
            return
        size = len(self._pending) + len(self.tracker.candidates) + len(self._marked)
        with collector_paused(size):
            self._around("flush", self._flush_changes)

    def _flush_changes(self):
        planned = self._plan_flush()
        if planned is None:
            return
        self._refuse_lost_transaction("flush")
        self._flushing = True
        try:
            if not self.transaction.active:
                self._begin_for_flush()
                if self.observer.listens("before_begin", "after_begin"):
                    # Their listeners ran in the middle of this flush: what they staged or changed is
                    # part of it, so it is planned and checked again (a refusal now leaves the
                    # transaction open with nothing written).
                    planned = self._plan_flush()
                    if planned is None:
                        return
            plan, bound = planned
            ran = False
            self.undo.loading_epoch()  # writes before this flush count; its own, if undone below, do not
            try:
                try:
                    filled, assigned = run_plan(self.executor, plan, bound)
                except BaseException as error:
                    if self.executor.in_transaction and not statements_stayed(error):
                        self.undo.writes_rolled_back()  # run_plan rolled back to its savepoint: nothing written
                    raise
                ran = True
                self._apply_flush(plan, filled, assigned)
            except BaseException as error:
                # (An error while applying, after every statement ran, has no savepoint left to
                # undo: like a failure of the SQL, it leaves rollback() as the way back, and the
                # refusal says the statements stayed.)
                self._fail(error, aftermath=STATEMENTS_STAYED if ran or statements_stayed(error) else None)
                raise
        finally:
            self._flushing = False

    def _plan_flush(self):
        """``(plan, bound rows)`` for what is staged, every value checked; None when nothing is."""
        inserts, updates, deletes = self._collect_changes()
        if not (inserts or updates or deletes):
            self.tracker.clear()
            return None
        if self.transaction.read_only or (not self.transaction.active and self.transaction.default_read_only):
            raise ReadOnlyError(
                f"flush(): this is a read-only transaction, and {len(inserts)} insert(s), {len(updates)} "
                f"update(s) and {len(deletes)} delete(s) are waiting; nothing was sent. Roll back, or use "
                f"a session without read_only=True"
            )
        self._refuse_duplicate_keys(inserts, updates, deletes)
        plan = build_plan(inserts, updates, deletes, held_states=self._held_states)
        return plan, bind_plan(plan, self.executor.length_limit())

    def _begin_for_flush(self):
        """Begin the transaction a flush writes in.

        A listener of the begin that raises aborts the flush cleanly: nothing was written (after
        ``after_begin`` the transaction stays open, as after ``begin()``).  A failure of BEGIN
        itself (a lock held past the busy timeout, an interrupt) is a failed flush, like a failure
        of any other statement of the flush.
        """
        failed = []

        def begin():
            try:
                self.transaction.begin(None, for_writing=True)
            except sqlite3.Error as error:
                failed.append(True)
                mode = self.transaction.default_mode or "IMMEDIATE"
                hint = ""
                if getattr(error, "sqlite_errorname", "").startswith("SQLITE_BUSY"):
                    hint = " (another connection held the write lock for longer than the busy timeout)"
                raise FlushError(f"BEGIN {mode} failed: {error}{hint}; nothing was written",
                                 statement=f"BEGIN {mode}") from error
            except BaseException:
                failed.append(True)
                raise

        try:
            self._around("begin", begin)
        except BaseException as error:
            if failed:
                self._fail(error)
            raise

    def _refuse_duplicate_keys(self, inserts, updates, deletes):
        """Two objects may not claim one natural key: say so before any SQL runs.

        A key held by an object marked for deletion is free to take: the flush turns the
        DELETE and the INSERT into one UPDATE of the row (a "row switch").  An object whose key
        is changed to one another object holds is refused too (SQLite's UNIQUE error came after
        SQL), unless that other object's key changes in the same flush (a swap is the planner's
        to order, or refuse as a cycle).
        """
        self._refuse_taken_keys(updates, deletes)
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
                other = self.identity.get(key)
            if other is not None and other is not state.obj:
                raise DuplicateIdentityError(
                    f"flush(): {state.obj!r} and {other!r} both claim the identity {format_key(key)}; "
                    f"change one key, or expunge one of them"
                )
            claimed[key] = state.obj

    def _refuse_taken_keys(self, updates, deletes):
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
        claimed = {}
        for state, new_key in moving.items():
            other = claimed.get(new_key)
            if other is None:
                holder = self.identity.get(new_key)
                if holder is not None and holder.__dict__[STATE_ATTRIBUTE] not in leaving:
                    other = holder
            if other is not None and other is not state.obj:
                raise DuplicateIdentityError(
                    f"flush(): {state.describe()} changes its key to {format_key(new_key)}, which {other!r} "
                    f"holds in this session; choose another key, or delete that object first"
                )
            claimed[new_key] = state.obj

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
                    self._row_deleted(state)
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
                # Only an UPDATE that wrote a key column can have moved the row to a new key (the
                # key columns may also be expired, not reassigned: then the key did not change).
                new_key = state.key
                if values.keys() >= set(mapper.pk_names) and not set(step.columns).isdisjoint(mapper.pk_names):
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
        self._row_deleted(old)
        if mapper.version_column is not None:
            values[mapper.version_column.name] = old.committed[mapper.version_column.index] + 1
        self._make_persistent(state, old.key, mapper.snapshot_getter(values), "flush")
        # Children loaded through the old object now belong to the row's new object.
        for collection in mapper.collections:
            for child in old.obj.__dict__.get(collection.name) or ():
                if child.__dict__.get(collection.reference.name) is old.obj:
                    child.__dict__[collection.reference.name] = state.obj

    def _row_deleted(self, state):
        """The flush deleted (or, for a row switch, handed over) this object's row."""
        self.undo.record(state)
        self.identity.discard(state.key, state.obj)
        state.move(ObjectState.DELETED, "flush")
        self._deleted_rows[state] = None
        # Its row is gone: nothing about it is for a later flush to write, not even the JSON
        # columns the tracker compared at every flush while it was persistent.
        self.tracker.forget(state)


    def _follow_new_key(self, old_key, new_key):
        """A primary key changed: SQLite re-pointed the referencing rows (ON UPDATE CASCADE), so the
        loaded objects that referenced the old key now hold the new one, in memory and in their
        snapshots."""
        target = old_key[0]
        new_values = target.__mapper__.key_values(new_key)
        for obj in list(self.identity.values()):
            state = obj.__dict__[STATE_ATTRIBUTE]
            for foreign_key in state.mapper.foreign_keys:
                if foreign_key.target is not target:
                    continue
                values = obj.__dict__
                if foreign_key.target_key([values.get(name) for name in foreign_key.column_names]) != old_key:
                    continue
                self.undo.record(state)
                snapshot = list(state.committed)
                for column, value in zip(foreign_key.columns, new_values):
                    values[column.name] = value
                    snapshot[column.index] = value
                state.committed = tuple(snapshot)

    def _evict_stale(self, key, obj):
        """SQLite gave a new row the key of an object this session holds (a natural key would have
        been refused before any SQL).  SQLite hands out the largest free rowid again, so that
        object's row was deleted by another connection after this session read it: the held
        object is stale.  It is detached, as if expunged, and the new object takes the key.
        (SQLAlchemy also replaces it, with a warning.)  rollback() puts both back."""
        stale = self.identity[key].__dict__[STATE_ATTRIBUTE]
        self.undo.record(stale)
        self._unindex(stale)
        self._detach(stale)
        self.identity.add(key, obj)

    def _apply_inserts(self, step, filled, assigned):
        """Inserted objects become persistent, with the values the database filled in.

        This is the hottest loop of a bulk insert, so the undo log records the whole step in one
        call, and the identity-map insert is written out here rather than called; it does what
        ``IdentityMap.add`` does.  (Keys were checked for duplicates before any SQL ran.)
        """
        mapper = step.mapper
        cls = mapper.cls
        snapshot_of = mapper.snapshot_getter
        single_key = mapper.pk_names[0] if mapper.scalar_key_type is not None else None
        identity = self.identity
        self.undo.record_all(step.states)  # before the keys arrive: a rollback takes them back
        for state in step.states:
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
                self._evict_stale(key, obj)
            if mapper.json_columns:
                self.tracker.watch(state)
