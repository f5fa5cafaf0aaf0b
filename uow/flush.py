"""The flush: collect, plan, write, apply -- one :class:`Flush` object per flush.

A flush goes:

1. **collect** the changes: pending objects, objects with a net change (``tracking``), objects
   marked for deletion -- reading back expired snapshots the planner needs;
2. **plan** them (``planner``): row actions in a safe order, each constraint with its reason;
   then check and convert every value (``binding.bind_plan``): any refusal happens here,
   before any SQL;
3. **write** the plan inside a savepoint (``writing.run_plan``): any failure undoes it;
4. **apply** what was written to the objects: pending objects become persistent with their new
   keys, snapshots are brought up to date, deleted objects become DELETED.

Only step 4 changes objects, and only after every statement has succeeded, which is what lets a
failed flush leave the session exactly as it was.  Everything one flush knows lives on its
:class:`Flush` object (as in SQLAlchemy's ``UOWTransaction``), and :meth:`Flush.run` reads as
the four steps in order.  The session's part that starts flushes and holds what outlives one
(the autoflush switch, the count of flushes, the plan and dry run) is ``flusher.Flusher``.

Each flush's plan listing is logged at DEBUG on the ``uow.flush`` logger just before it is
written (SQLAlchemy 0.3's ``echo_uow``), beside the statements on ``uow.sql``::

    logging.getLogger("uow.flush").setLevel(logging.DEBUG)
"""

import logging
from typing import Any

from .binding import bind_plan
from .errors import ReadOnlyError, StaleDataError
from .identity import refuse_duplicate_claims
from .sentinels import NOT_LOADED
from .planner import StepKind, StepPurpose, build_plan
from .states import DELETED, PERSISTENT, STATE_ATTRIBUTE
from .transaction import STATEMENTS_STAYED
from .writing import run_plan, statements_stayed

log = logging.getLogger("uow.flush")


class Flush:
    """Everything one flush knows, from the changes it collects to the values SQLite gave back."""

    def __init__(self, session, flusher):
        self.session = session  # the Session being flushed: its identity map, tracker, undo log
        self.flusher = flusher  # the session's Flusher (its ``running`` flag and flush count)
        self.registers = flusher.registers
        self.guard = flusher.guard
        self.observer = flusher.observer
        self.boundaries = flusher.boundaries
        self.inserts = []       # pending states, in the order they entered the session
        self.updates = []       # (persistent state, names of the columns that changed), session order
        self.deletes = []       # states marked for deletion, session order
        self.plan: Any = None   # the FlushPlan: steps in order, and the edges that ordered them
        self.bound: Any = None  # per step, its parameter rows, every value checked and converted
        self.filled = {}        # {state: (column names, values)} SQLite filled in at INSERT
        self.assigned = {}      # {state: {column: value}} foreign keys copied from a parent's new key
        self.new_keys = []      # (mapper, old key, new key) of each row whose primary key an UPDATE changed

    def run(self):
        """Collect, plan, write, apply (the session's before/after_flush events are around this)."""
        session = self.session
        # Collect and plan, every value checked: a refusal here leaves everything as it was.
        if not self.prepare():
            return
        # (A warning made an error by the application's filter stops the flush here, before any SQL.)
        session.cascades.warn_left_out(self.inserts, self.updates)
        self.guard.refuse_lost_transaction("flush")
        self.flusher.running = True
        try:
            if not session.transaction.active:
                self.boundaries.begin_for_flush()
                if self.observer.listens("before_begin", "after_begin"):
                    # Their listeners ran in the middle of this flush: what they staged or changed is
                    # part of it, so it is collected, planned and checked again (a refusal now
                    # leaves the transaction open with nothing written).
                    if not self.prepare():
                        return
            if log.isEnabledFor(logging.DEBUG):
                log.debug("flush %d of %r:\n%s", self.flusher.count + 1, session, self.plan,
                          extra={"uow_plan": self.plan})
            written = False
            session.undo.loading_epoch()  # writes before this flush count; its own, if undone below, do not
            try:
                # Write: the whole plan in one savepoint, so a failure takes back every statement.
                try:
                    self.filled, self.assigned = run_plan(session.executor, self.plan, self.bound)
                except BaseException as error:
                    if session.executor.in_transaction and not statements_stayed(error):
                        session.undo.writes_rolled_back()  # run_plan rolled back to its savepoint: nothing written
                    raise
                written = True
                # Apply: only now, with every statement done, do the objects change.
                self.apply()
            except BaseException as error:
                # (An error while applying, after every statement ran, has no savepoint left to
                # undo: like a failure of the SQL, it leaves rollback() as the way back, and the
                # refusal says the statements stayed.)
                self.guard.fail(error, aftermath=STATEMENTS_STAYED if written or statements_stayed(error) else None)
                raise
        finally:
            self.flusher.running = False

    # -- collect and plan -----------------------------------------------------------------------

    def prepare(self):
        """Collect and plan what is staged, every value checked; False when nothing is."""
        if not self.collect():
            self.session.tracker.clear()  # (candidates that turned out unchanged)
            return False
        transaction = self.session.transaction
        if transaction.read_only or (not transaction.active and transaction.default_read_only):
            raise ReadOnlyError(
                f"flush(): this is a read-only transaction, and {len(self.inserts)} insert(s), "
                f"{len(self.updates)} update(s) and {len(self.deletes)} delete(s) are waiting; nothing was "
                f"sent. Roll back, or use a session without read_only=True"
            )
        self.plan_and_check()
        return True

    def plan_and_check(self):
        """Plan the collected changes and check every value the plan writes (no SQL yet)."""
        refuse_duplicate_claims(self.session.identity, self.inserts, self.updates, self.deletes)
        self.plan = build_plan(self.inserts, self.updates, self.deletes, held_states=self.held_states)
        self.bound = bind_plan(self.plan, self.session.executor.length_limit())

    def collect(self):
        """Gather what the flush must write; False when there is nothing."""
        session = self.session
        self.reload_expired_snapshots()
        marked = self.registers.marked
        self.inserts = list(self.registers.pending)
        self.updates = [(state, names) for state, names in session.tracker.changed_states() if state not in marked]
        self.deletes = list(marked)
        return bool(self.inserts or self.updates or self.deletes)

    def held_states(self):
        """The session's persistent states (the planner reads them only for a delete)."""
        return [obj.__dict__[STATE_ATTRIBUTE] for obj in self.session.identity.values()]

    def reload_expired_snapshots(self):
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
        session = self.session
        marked = self.registers.marked
        found = []
        for state in list(session.tracker.candidates) + list(marked):
            committed = state.committed
            if committed is None or state.key is None or NOT_LOADED not in committed:
                continue
            version = state.mapper.version_column
            unknown_version = version is not None and committed[version.index] is NOT_LOADED
            if state not in marked and not unknown_version:
                values = state.obj.__dict__
                ordering = state.mapper.ordering_columns
                if not any(committed[column.index] is NOT_LOADED and column.name in values for column in ordering):
                    continue
            self.guard.check("load")
            row = session.loader.read_row(state, "flush()")
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
            session.loader.fill_expired(state, row)

    # -- apply ----------------------------------------------------------------------------------

    def apply(self):
        """Bring the objects in line with what the flush wrote (runs only after every statement succeeded)."""
        session = self.session
        # In the plan's order, so that each object ends with the snapshot of the last statement
        # that wrote its row (an INSERT, then the follow-up UPDATE that completes a foreign key).
        # The loop is chosen per step, not per row: a step is one statement shape.
        for step in self.plan.steps:
            purpose = step.purpose
            if step.kind is StepKind.INSERT:
                self.apply_inserts(step)
            elif step.kind is StepKind.DELETE:
                for state in step.states:
                    self.row_deleted(state)
            elif purpose is StepPurpose.CLEAR_REFERENCE:
                pass  # the row is deleted later in this flush; the object keeps its values
            elif purpose is StepPurpose.POST_UPDATE:
                self.apply_post_updates(step)
            elif purpose is StepPurpose.ROW_SWITCH:
                for action in step.actions:
                    self.apply_row_switch(action)
            else:
                self.apply_updates(step)
        # Loaded children follow a changed key once every step is applied: by then every row this
        # flush inserted is in the identity map as well, so none of them is missed.
        if self.new_keys:
            self.follow_new_keys()
        self.registers.flushed()
        session.tracker.clear()
        self.flusher.count += 1

    def apply_updates(self, step):
        """The user's UPDATEs: new snapshots, the version bumped, the identity moved with a new key."""
        mapper = step.mapper
        record = self.session.undo.record
        identity = self.session.identity
        assigned = self.assigned
        version = mapper.version_column
        # Only an UPDATE that wrote a key column can have moved the row to a new key (the key
        # columns may also be expired, not reassigned: then the key did not change).
        writes_key = not set(step.columns).isdisjoint(mapper.pk_names)
        for action in step.actions:
            state = action.state
            record(state)
            values = state.obj.__dict__
            if state in assigned:
                values.update(assigned[state])
            if version is not None:
                values[version.name] = state.committed[version.index] + 1
            if writes_key and values.keys() >= set(mapper.pk_names):
                new_key = mapper.key_of(values)
                if new_key != state.key:
                    self.new_keys.append((mapper, state.key, new_key))
                    identity.discard(state)
                    state.key = new_key
                    identity.add(state)
            state.committed = mapper.snapshot_getter(values)

    def apply_post_updates(self, step):
        """The follow-up UPDATEs that completed foreign keys left NULL to break a cycle."""
        mapper = step.mapper
        record = self.session.undo.record
        for action in step.actions:
            state = action.state
            record(state)
            values = state.obj.__dict__
            values.update(self.assigned.get(state, ()))
            state.committed = mapper.snapshot_getter(values)

    def apply_inserts(self, step):
        """Inserted objects become persistent, with the values the database filled in.

        (Keys were checked for duplicates before any SQL ran; a key already held here belongs to
        a stale object, see :meth:`evict_stale`.)

        The loop does what ``Registers.make_persistent`` does for one object, written out: it
        runs once per row inserted, and one call per row (a move check, ``IdentityMap.add``'s
        own lookup) made the flush of 100,000 inserts 3% slower (bench/compare.py).  The one
        ``setdefault`` is the identity map's guard and its insert at once.
        """
        session = self.session
        mapper = step.mapper
        snapshot_of = mapper.snapshot_getter
        single_key = mapper.pk_names[0] if mapper.scalar_key_type is not None else None
        identity = session.identity.of(mapper.cls)  # this class's {key: object}
        filled = self.filled
        assigned = self.assigned
        states = step.states
        session.undo.record_all(states)  # before the keys arrive: a rollback takes them back
        for state in states:
            obj = state.obj
            values = obj.__dict__
            if state in filled:
                names, read_back = filled[state]
                values.update(zip(names, read_back))
            if state in assigned:
                values.update(assigned[state])
            key = values[single_key] if single_key is not None else mapper.key_of(values)
            state.move(PERSISTENT, "flush")
            state.key = key
            state.committed = snapshot_of(values)
            # One lookup both enters the object and finds a stale one holding its key.
            if identity.setdefault(key, obj) is not obj:
                self.evict_stale(state)
            if mapper.json_columns:
                session.tracker.watch(state)

    def apply_row_switch(self, action):
        """The new object takes over the deleted object's row (see ``planner.actions``)."""
        state = action.state
        self.session.undo.record(state)
        values = state.obj.__dict__
        values.update(self.assigned.get(state, ()))
        old = action.switch_from
        mapper = state.mapper
        self.row_deleted(old)
        if mapper.version_column is not None:
            values[mapper.version_column.name] = old.committed[mapper.version_column.index] + 1
        self.registers.make_persistent(state, old.key, mapper.snapshot_getter(values), "flush")
        # Children loaded through the old object now belong to the row's new object.
        for collection in mapper.collections:
            for child in old.obj.__dict__.get(collection.name) or ():
                if child.__dict__.get(collection.reference.name) is old.obj:
                    child.__dict__[collection.reference.name] = state.obj

    def row_deleted(self, state):
        """The flush deleted (or, for a row switch, handed over) this object's row."""
        session = self.session
        session.undo.record(state)
        session.identity.discard(state)
        state.move(DELETED, "flush")
        self.registers.deleted_rows[state] = None
        # Its row is gone: nothing about it is for a later flush to write, not even the JSON
        # columns the tracker compared at every flush while it was persistent.
        session.tracker.forget(state)

    def follow_new_keys(self):
        """Primary keys changed: SQLite re-pointed the referencing rows (ON UPDATE CASCADE), so the
        loaded objects that referenced an old key now hold the new one, in memory and in their
        snapshots.

        One pass over the loaded objects of the classes that reference a re-keyed table, each
        foreign key looked up among the flush's changed keys: a pass over every loaded object per
        changed key made re-keying n rows with their children loaded cost n times n (2,000
        countries renamed, 10,000 cities loaded: 17.6 s).  An object is matched by the key it
        held before the flush, and follows at most one change: the plan wrote the changes in an
        order SQLite accepts (a key is freed before another row takes it), in which no row is
        re-pointed twice.
        """
        session = self.session
        identity = session.identity
        moved: dict[type, dict[Any, tuple[Any, ...]]] = {}  # {re-keyed class: {old key: new key values}}
        for mapper, old_key, new_key in self.new_keys:
            moved.setdefault(mapper.cls, {})[old_key] = mapper.key_values(new_key)
        for cls in list(identity.classes):
            following = [foreign_key for foreign_key in cls.__mapper__.foreign_keys if foreign_key.target in moved]
            if not following:
                continue
            for obj in list(identity.of(cls).values()):
                values = obj.__dict__
                for foreign_key in following:
                    pointed_at = foreign_key.target_key([values.get(name) for name in foreign_key.column_names])
                    new_values = moved[foreign_key.target].get(pointed_at)
                    if new_values is None:
                        continue
                    state = values[STATE_ATTRIBUTE]
                    session.undo.record(state)
                    snapshot = list(state.committed)
                    for column, value in zip(foreign_key.columns, new_values):
                        values[column.name] = value
                        snapshot[column.index] = value
                    state.committed = tuple(snapshot)

    def evict_stale(self, state):
        """SQLite gave a new row the key of an object this session holds (a natural key would have
        been refused before any SQL).  SQLite hands out the largest free rowid again, so that
        object's row was deleted by another connection after this session read it: the held
        object is stale.  It is detached, as if expunged, and the new object takes the key.
        (SQLAlchemy also replaces it, with a warning.)  rollback() puts both back."""
        session = self.session
        stale = session.identity.holder(state).__dict__[STATE_ATTRIBUTE]
        session.undo.record(stale)
        self.registers.unindex(stale)
        self.registers.detach(stale)
        session.identity.add(state)
