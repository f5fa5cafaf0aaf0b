"""The Session: the unit of work that users talk to.

A session stands between your objects and one SQLite connection.  It keeps

* an **identity map** (``identity``): one object per row, so loading a row twice gives the same object;
* **pending**, **marked-for-deletion** and **modified** objects: what the next flush must write;
* an **undo log** (``undo``): how every touched object looked when the transaction or savepoint began,
  so that a rollback can put objects back exactly, without SQL;
* a **transaction** (``transaction``): the stack of BEGIN and SAVEPOINTs open on the connection, each
  level owning the undo log's scope for it.

The Session is a facade over parts, one per concern, each an object given the session it works
for (as DBDB composes one object per layer): ``lifecycle`` (add, delete, expunge), ``loading``
(get, filter, refresh, expire, lazy loads), ``cascades`` (references set through the session,
cascades along relationships), ``flush`` (collect, plan, write, apply) and ``rollback``
(what a rollback puts back).  This module keeps the facts they share -- the object sets, the
identity map, the tracker, the undo log, the transaction -- and the few operations on them that
every part uses: the guards, ``_make_persistent`` (the one way an object becomes persistent),
``_unindex`` and ``_detach``, and the transaction methods.  Entity objects reach the session only
through the hooks declared in ``hooks``.

This is the core session; ``uow.Session`` adds the features (merge and upsert, bulk writes, raw
SQL and attached databases, eager loading, event listeners) as parts of their own: see
``features``, which this module never imports.  (The core emits its events all the same, through
its ``observer``: where a listener may run is part of how a flush or a commit proceeds.)

The rules users can rely on are spelled out in the README; the most
important one: ``rollback()`` rolls the database back and puts every object the session touched
since the last commit back to exactly the state and values it had then.  Objects that entered by
``add`` become transient again; objects first loaded during the rolled-back transaction after its
first write are expired, so they reload on next access instead of keeping values the rollback
undid, while objects read before anything was written keep what they read (so close() after
reading leaves usable detached objects; see ``rollback``).
"""

import contextlib
import dataclasses
import itertools
import threading
import types
import typing
from collections.abc import Iterable, Sequence

from .cascades import Cascades
from .entity import Entity
from .errors import InvalidStateError, TransactionError, WrongThreadError
from .executor import Executor, Statement
from .flush import Flusher
from .hooks import EntityHooks
from .identity import IdentityMap
from .lifecycle import Lifecycle
from .loading import Loader
from .mapper import mapper_of_class, mapper_of_object
from .planner import FlushPlan
from .rollback import UndoLog
from .states import STATE_ATTRIBUTE, ObjectState
from .tracking import ChangeTracker, changed_fields, original_value
from .transaction import ENDED_UNSEEN, ROLLED_BACK, Transaction, TransactionState

_get_ident = threading.get_ident
E = typing.TypeVar("E", bound=Entity)
PERSISTENT = ObjectState.PERSISTENT

# What is in progress while the listeners of each event run, for the re-entrancy refusal.
_IN_PROGRESS = {
    "begin": "beginning the transaction",
    "flush": "the flush",
    "commit": "the commit",
    "rollback": "the rollback",
    "savepoint": "begin_nested()",
    "release_savepoint": "the release of a savepoint",
    "rollback_to_savepoint": "the rollback of a savepoint",
}

# How many times commit() flushes work that after_flush listeners keep staging before it gives up.
COMMIT_FLUSH_ROUNDS = 100


def identity_key(entity=None, ident=None, *, instance=None):
    """``(Class, (key values...))``, the key of the identity map, for a class and primary key or
    for an object (``instance=``)::

        identity_key(User, 5) == (User, (5,))
        identity_key(instance=user)   # the key the session knows it by, even if its key columns
                                      # were expired or changed and not flushed yet
    """
    if instance is not None:
        mapper = mapper_of_object(instance, "identity_key")
        state = instance.__dict__.get(STATE_ATTRIBUTE)
        if state is not None and state.key is not None:
            return state.key
        return mapper.key_of(instance.__dict__)
    return mapper_of_class(entity, "identity_key").identity_key(ident)


class Unobserved:
    """The core session's observer: nobody listens to its events.  ``uow.Session`` replaces it
    with the listeners of ``features.events``; the core emits its events all the same, so the
    places where a listener may run are visible here."""

    def listens(self, *names):
        return False

    def dispatch(self, name, info):
        pass


UNOBSERVED = Unobserved()


@dataclasses.dataclass(frozen=True)
class SessionStats:
    """Counts for ``session.stats()``: objects per state, and work done so far."""

    pending: int
    persistent: int
    marked_for_deletion: int
    deleted: int
    statements: int
    flushes: int


class Session:
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

    def __init__(self, connection, *, autoflush=True, expire_on_commit=False, begin_mode=None,
                 read_only=False, busy_timeout=None, isolation_level=None, deferrable=None):
        self.executor = Executor(connection)
        self.transaction = Transaction(self.executor, self)
        self.transaction.configure(begin_mode=begin_mode, read_only=read_only,
                                   isolation_level=isolation_level, deferrable=deferrable)
        if busy_timeout is not None:
            self.executor.set_busy_timeout(busy_timeout)
        self.observer = UNOBSERVED  # who is told of each event (see _dispatch)
        self.identity = IdentityMap()
        self.undo = UndoLog(self, self.transaction.levels)
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
        self._listening = None  # the event whose listeners are running (see features.events)
        # The parts this session is composed of, each given the session it works for.  (The
        # collections above are the facts they share: pending, marked for deletion with what each
        # delete did (see lifecycle), deleted rows not yet committed, and the sequence numbers
        # that order objects by when they entered the session.)
        self.loader = Loader(self)
        self.flusher = Flusher(self)  # runs each flush (see flush); autoflush, flush count
        self.cascades = Cascades(self)
        self.lifecycle = Lifecycle(self)
        self.hooks = EntityHooks(self)  # what entity objects may call (see uow.hooks)

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
        mapper_of_object(obj, operation)
        state = obj.__dict__.get(STATE_ATTRIBUTE)
        if state is None or state.session is not self:
            status = ObjectState.TRANSIENT if state is None else state.status
            where = "another session" if state is not None and state.session is not None else "no session"
            raise InvalidStateError(
                f"{operation}(): {obj!r} is {status.value} and belongs to {where}; "
                f"it must be in this session (add() it first)"
            )
        return state

    def _persistent_state(self, obj, operation):
        """The state of ``obj``, which must be persistent in this session."""
        state = self._own_state(obj, operation)
        if state.status is not PERSISTENT:
            raise InvalidStateError(
                f"{operation}(): {obj!r} is {state.status.value}; only persistent objects have a row to "
                f"{operation} from"
            )
        return state

    # -- adding and deleting (the Lifecycle part does the work) ------------------------------

    def add(self, obj: Entity) -> None:
        """Make a transient object pending (inserted at the next flush), or re-attach a detached one.

        Adding an object that is already in this session changes nothing, except that an object
        marked for deletion is not deleted after all: add() takes the delete back, and what the
        delete did to other objects, as SQLAlchemy and Storm do.  Adding an object held by another
        session, or one whose key another object in this session holds, is an error.

        Whatever state the object comes from, add() follows its save-update references and loaded
        collections and adds what they hold that is not in this session yet: a detached object
        may have been given new children while it was away, and they must not be left out.

        An object whose row was deleted and the delete committed is refused (SQLAlchemy's rule,
        not Storm's re-insert): the object says it mirrors a row that is gone, and quietly
        turning it into a new INSERT could bring back a row someone meant to remove (a cascade
        from a re-added parent would do it without a word).  ``merge(obj)`` writes a copy of it
        as a new row when that is what is wanted.
        """
        self.lifecycle.add(obj)

    def add_all(self, objects: Iterable[Entity]) -> None:
        """add() each object, in order; if any of them cannot be added, none is."""
        self.lifecycle.add_all(objects)

    def delete(self, obj: Entity) -> None:
        """Mark a persistent object for deletion; its row is DELETEd at the next flush.

        Deleting a pending object cancels its insert (it becomes transient again); deleting a
        detached object re-attaches it first.  Deleting a transient object is an error.  The
        delete cascade marks the children too, loaded or not; children without it have a
        nullable reference to the object cleared.
        """
        self.lifecycle.delete(obj)

    # -- flushing (the Flusher does the work) -------------------------------------------------

    def flush(self) -> None:
        """Write pending INSERTs, UPDATEs and DELETEs to the database (inside the current transaction)."""
        self._check("flush")
        self._refuse_in_listener("flush")  # (a listener is the only code that runs during a flush)
        self.flusher.flush()

    def plan(self) -> FlushPlan:
        """The FlushPlan the next flush would run, without running anything.

        It prints as a numbered listing with the reason for every ordering constraint, and
        renders as a graph with ``to_dot()`` or ``to_mermaid()``.  See also :meth:`dry_run`.
        """
        self._check("plan")
        return self.flusher.plan()

    def dry_run(self) -> list[Statement]:
        """The exact statements the next flush would send, as a list of :class:`~uow.Statement`.

        The flush really runs -- inside a savepoint that is then rolled back -- so the list shows
        the statements and parameters SQLite would see, including keys it generates.  Nothing
        changes: not the database, not any object.  A flush that would fail raises its error here;
        if SQLite itself ended the whole transaction (a trigger's ``RAISE(ROLLBACK)``), the session
        then refuses other work until ``rollback()``, as after a failed flush.
        """
        self._check("dry_run")
        return self.flusher.dry_run()

    @property
    def no_autoflush(self) -> typing.ContextManager["Session"]:
        """``with session.no_autoflush:`` suspends autoflush inside the block."""
        return self.flusher.no_autoflush()

    def _flush(self):
        self.flusher.flush()

    def _autoflush(self):
        self.flusher.autoflush()

    # -- events -----------------------------------------------------------------------------

    def _around(self, event, operation, result_name=None, **info):
        """Run ``operation`` between the ``before_`` and ``after_`` events called ``event``.

        ``result_name``: the after-event also receives the operation's result under that name
        (``savepoint=`` for the NestedTransaction that begin_nested() creates).
        """
        self._dispatch("before_" + event, info)
        try:
            result = operation()
        except BaseException as error:
            self._dispatch("after_" + event, dict(info, error=error))
            raise
        if result_name is not None:
            info[result_name] = result
        self._dispatch("after_" + event, dict(info, error=None))
        return result

    def _dispatch(self, name, info):
        """Tell the observer of event ``name``.  The core session has none (``Unobserved``);
        ``uow.Session`` calls its listeners (``features.events``).  While they run, the session
        knows which event they belong to, to refuse what a listener may not do."""
        if not self.observer.listens(name):
            return
        outer = self._listening
        self._listening = name
        try:
            self.observer.dispatch(name, info)
        finally:
            self._listening = outer

    def _refuse_in_listener(self, operation):
        """A listener cannot begin or end a flush, transaction or savepoint (see features.events): the
        operation that called it is in the middle of doing so."""
        event = self._listening
        if event is not None:
            doing = _IN_PROGRESS[event.split("_", 1)[1]]
            article = "an" if event.startswith("after") else "a"
            raise TransactionError(
                f"{operation}() was called from {article} {event} listener, while {doing} is in progress; a listener "
                f"cannot begin or end a flush, transaction or savepoint. Stage work there instead (add(), "
                f"delete(), changing objects), or call {operation}() once {doing} has returned"
            )

    def _begin(self, mode, for_writing=False, **options):
        if self._listening == "before_begin":
            raise TransactionError(
                "the database was used from a before_begin listener (a query, execute() or a write); that "
                "would begin the very transaction being begun. Use an after_begin listener instead"
            )
        self._around("begin", lambda: self.transaction.begin(mode, for_writing=for_writing, **options))

    # -- the identity map and change tracking ----------------------------------------------

    def _make_persistent(self, state, key, committed, operation):
        """The one way an object becomes persistent in this session: it moves to PERSISTENT under
        ``key`` with the snapshot ``committed``, enters the identity map (which refuses a second
        object for the row), and is watched when a JSON column can change in place (``tracking``).

        An object coming from outside the session (an attached, merged or upserted object) takes
        the next sequence number; a pending one keeps the number it was added with, so that
        flushes order objects by when they entered the session.  (An object made from a row is
        born persistent instead, in the loader's loop over rows: it does the same in one step.)
        """
        state.move(PERSISTENT, operation)
        if state.session is not self:
            state.session = self
            state.sequence = next(self._sequence)
        state.key = key
        state.committed = committed
        self._hold(state)

    def _hold(self, state):
        """A persistent object enters the identity map under its key (which refuses a second
        object for the row) and, when a JSON column can change in place, is watched.  A rollback
        that puts a persistent object back does this too (``rollback``)."""
        self.identity.add(state.key, state.obj)
        if state.mapper.json_columns:
            self.tracker.watch(state)

    def _unindex(self, state):
        """Take an object out of every set of this session (the identity map, pending, marked,
        deleted, tracked); its state record is left as it is, for the caller to move."""
        if state.key is not None:
            self.identity.discard(state.key, state.obj)
        self._pending.pop(state, None)
        self._marked.pop(state, None)
        self._deleted_rows.pop(state, None)
        self.tracker.forget(state)

    def _detach(self, state):
        """An object leaves the session (after :meth:`_unindex`): pending becomes transient, any
        other state detached, remembering whether its row was deleted."""
        if state.status is ObjectState.PENDING:
            state.move(ObjectState.TRANSIENT, "expunge")
        elif state.status is not ObjectState.DETACHED:
            state.row_deleted = state.status is ObjectState.DELETED
            state.move(ObjectState.DETACHED, "expunge")
        state.session = None

    # -- loading (the Loader does the work) -----------------------------------------------

    def get(self, entity: type[E], ident: object) -> E | None:
        """The object with this primary key (scalar, tuple or dict), or None if there is no such row.

        An object already in the identity map is returned without any SQL, unless it was expired
        (its key among the expired fields: expire(), a rollback, expire_on_commit): then get()
        reloads it with one SELECT, and if its row is gone (another connection deleted it) the
        object leaves the session, as if expunged, and get() returns None, as for a key it does
        not hold.  rollback() brings the object back.
        """
        if _get_ident() != self._ready_thread:
            self._check("get")
        # The identity map first, with no SQL: a key of the column's own type found as it is.
        # (Not for float keys: -0.0 equals 0.0 in a dict, and identity_key refuses it.  Any other
        # key, a miss or an expired object is the Loader's.)
        mapper = getattr(entity, "__mapper__", None)
        if mapper is not None and type(ident) is mapper.scalar_key_type is not float:
            obj = self.identity.get((entity, (ident,)))
            if obj is not None and mapper.pk_names[0] in obj.__dict__:
                return obj
        return self.loader.get(entity, ident)

    def get_one(self, entity: type[E], ident: object) -> E:
        """Like get(), but a missing row raises NotFoundError."""
        return self.loader.get_one(entity, ident)

    def all(self, entity: type[E]) -> list[E]:
        """Every row of the entity's table, as objects, ordered by primary key."""
        self._check("all")
        return self.filter(entity)

    def filter(self, entity: type[E], *, order_by: str | Sequence[str] | None = None, limit: int | None = None,
               **equals: object) -> list[E]:
        """Objects whose columns equal the given values, ordered and limited::

            session.filter(User, name="ann")
            session.filter(User, active=True, order_by="-score", limit=10)

        ``order_by`` is a field name (``"-name"`` for descending) or a list of them; the default
        is the primary key.  ``None`` matches NULL.  Results go through the identity map.
        """
        self._check("filter")
        return self.loader.filter(mapper_of_class(entity, "filter"), order_by, limit, equals)

    def refresh(self, obj: Entity, fields: Iterable[str] | None = None) -> None:
        """Reload ``fields`` (default: all) from the database now, discarding unflushed changes to them.

        refresh() does not autoflush: it exists to throw local changes away.  The refresh cascade
        reaches each object once, also when the loaded collections form a cycle (a node that is
        its own child, or two that hold each other).
        """
        self.loader.refresh(obj, fields, set())

    def expire(self, obj: Entity, fields: Iterable[str] | None = None) -> None:
        """Forget ``fields`` (default: all) of a persistent object; they reload when next read.

        Unflushed changes to those fields are discarded.
        """
        self._check("expire")
        self.loader.expire(obj, fields)

    def expire_all(self) -> None:
        """expire() every object in the identity map."""
        self._check("expire_all")
        for obj in list(self.identity.values()):
            state = obj.__dict__[STATE_ATTRIBUTE]
            self.loader.expire_state(state, state.mapper.columns)

    # -- change tracking ------------------------------------------------------------------

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
        """``(Class, (key values...))`` for a class and key, or for an object: see :func:`identity_key`."""
        return identity_key(entity, ident, instance=instance)

    def __contains__(self, obj):
        """``obj in session``: True when the object is pending, persistent or deleted in this session."""
        mapper_of_object(obj, "__contains__")
        state = obj.__dict__.get(STATE_ATTRIBUTE)
        return state is not None and state.session is self

    # -- transactions ---------------------------------------------------------------------

    def begin(self, mode=None, *, read_only=None, isolation_level=None, deferrable=None):
        """Begin a transaction now (otherwise the first database operation begins one); return its
        :class:`~uow.transaction.SessionTransaction`.

        ``with session.begin():`` commits that transaction when the block ends (rolls it back if
        the block raises) and leaves the session open.  ``mode`` is SQLite's DEFERRED, IMMEDIATE or
        EXCLUSIVE; the options override the session's for this transaction.  Beginning while a
        transaction is open is a TransactionError.
        """
        self._check("begin")
        self._refuse_in_listener("begin")
        self._begin(mode, read_only=read_only, isolation_level=isolation_level, deferrable=deferrable)
        return self.transaction.scope

    def begin_nested(self):
        """Open a savepoint; returns a NestedTransaction (also a context manager)."""
        self._check("begin_nested")
        self._refuse_in_listener("begin_nested")

        def open_savepoint():
            # Always, whatever autoflush says (as in SQLAlchemy): rolling back to the savepoint
            # restores objects from their snapshots, which must hold everything done before it.
            self._flush()
            if not self.transaction.active:
                self._begin(None)
            # With nothing to flush, no flush has checked: a SAVEPOINT outside any transaction would
            # begin one that the savepoint's RELEASE commits at once.
            self._refuse_lost_transaction("begin_nested")
            nested = self.transaction.open_savepoint(self.undo.new_scope(), self._end_nested)
            self.undo.remember_deleted_json()
            return nested

        return self._around("savepoint", open_savepoint, result_name="savepoint")

    def _end_nested(self, nested, commit):
        """What ``nested.commit()`` and ``nested.rollback()`` ask of the session (see NestedTransaction)."""
        self._refuse_in_listener("commit" if commit else "rollback")
        self.transaction.check_innermost(nested, "commit" if commit else "rollback")
        if commit:
            self._check("commit")

            def release():
                self._flush()
                self._refuse_lost_transaction("release of a savepoint")  # (unchecked if nothing was flushed)
                self.transaction.release_savepoint(nested)  # its undo scope joins the enclosing level's

            self._around("release_savepoint", release, savepoint=nested)
        else:
            def roll_back_to():
                try:
                    self.transaction.rollback_to_savepoint(nested)
                finally:
                    # Rolled back, even if an exception arrived just after: the objects follow.
                    if not nested.is_active:
                        self.undo.roll_back_scope(nested.undo)
                if self.transaction.active:  # a failure inside the savepoint is undone with it
                    self._ready_thread = self._owner_thread

            self._around("rollback_to_savepoint", roll_back_to, savepoint=nested)

    def in_transaction(self):
        """True while a transaction is begun (including a failed one that awaits rollback())."""
        return self.transaction.state is not TransactionState.IDLE and self.transaction.state is not TransactionState.CLOSED

    def in_nested_transaction(self):
        """True while a savepoint (begin_nested()) is open."""
        return len(self.transaction.levels) > 1

    def get_transaction(self):
        """The session's SessionTransaction while one is begun (or failed), else None."""
        return self.transaction.scope

    def get_nested_transaction(self):
        """The innermost open NestedTransaction, or None."""
        levels = self.transaction.levels
        return levels[-1] if len(levels) > 1 else None

    @property
    def is_active(self):
        """False after a failed flush (until rollback()) and after close(); True otherwise."""
        return self.transaction.state in (TransactionState.IDLE, TransactionState.ACTIVE)

    def commit(self):
        """Flush, then COMMIT.  If SQLite refuses the COMMIT, the transaction stays open and nothing is lost."""
        self._check("commit")
        self._refuse_in_listener("commit")
        self._around("commit", self._commit)

    def _commit(self):
        self._flush()
        levels = list(self.transaction.levels)  # what the COMMIT makes final
        rounds = 1
        while self._pending or self._marked or self.tracker.candidates:
            # after_flush listeners staged more work: the commit writes that too (as SQLAlchemy's does).
            if rounds == COMMIT_FLUSH_ROUNDS:
                raise TransactionError(
                    f"commit(): listeners staged new work after each of {rounds} flushes; nothing was committed. "
                    f"An after_flush listener that stages work must stop doing so at some point"
                )
            self._flush()
            rounds += 1
        if self.transaction.active:
            self._refuse_lost_transaction("commit")
            try:
                self.transaction.commit()
                self._forget_committed(levels)
            except BaseException as error:
                # The transaction moved to IDLE exactly when COMMIT ran: then the work is committed,
                # even if an exception arrived just after, and must not be rolled back in memory.
                if self.transaction.state is TransactionState.IDLE:
                    self._forget_committed(levels)
                elif not self.executor.in_transaction:
                    self._fail(error, "commit")  # COMMIT failed and SQLite rolled back (an I/O error)
                raise
        else:
            self._forget_committed(levels)

    def _forget_committed(self, levels):
        """What a COMMIT makes final; safe to run twice (an interrupt may stop it half way)."""
        while self._deleted_rows:
            state = next(iter(self._deleted_rows))
            if state.status is not ObjectState.DETACHED:
                state.move(ObjectState.DETACHED, "commit")
            state.session = None
            state.row_deleted = True
            del self._deleted_rows[state]
        self.undo.forget(levels)
        if self.expire_on_commit:
            for obj in self.identity.values():
                state = obj.__dict__[STATE_ATTRIBUTE]
                self.loader.expire_state(state, state.mapper.columns)
            self.undo.forget(self.transaction.levels)

    def rollback(self):
        """Roll the database back, and every object the session touched since the last commit with it."""
        if _get_ident() != self._owner_thread:
            self._check("rollback")
        if self.transaction.state is TransactionState.CLOSED:
            self.transaction.check_usable("rollback")
        self._refuse_in_listener("rollback")
        self._around("rollback", self._rollback)

    def _rollback(self):
        failure = self.transaction.failure  # the rollback forgets it
        levels = list(self.transaction.levels)  # the rollback ends them all
        try:
            self.transaction.rollback()
        finally:
            # SQLite rolled back (even if an exception arrived just after ROLLBACK ran): the objects follow.
            if not self.executor.in_transaction:
                self._ready_thread = self._owner_thread
                self.undo.roll_back(levels, failure)

    # -- leaving the session --------------------------------------------------------------

    def expunge(self, obj: Entity) -> None:
        """Remove one object from the session: pending becomes transient, persistent becomes detached.

        An object marked for deletion and not yet flushed is not deleted after all, and neither is
        what its delete() did to other objects: expunge() takes it all back as add() does before
        the object leaves.  That is what a SQLAlchemy user sees, where a delete touches nothing
        before the flush.  The children the expunge cascade reaches then leave with it; the others
        stay, unchanged.  A delete already flushed is the transaction's: the object leaves, its
        row stays deleted.
        """
        self.lifecycle.expunge(obj)

    def expunge_all(self) -> None:
        """expunge() every object in the session (deletes not yet flushed are taken back first)."""
        self.lifecycle.expunge_all()

    def _all_states(self):
        states = list(self._pending)
        states.extend(obj.__dict__[STATE_ATTRIBUTE] for obj in self.identity.values())
        states.extend(self._deleted_rows)
        return states

    def reset(self):
        """rollback(), then detach every object; the session stays usable."""
        self._refuse_in_listener("reset")
        self.rollback()
        for state in self._all_states():
            self._unindex(state)
            self._detach(state)
        self.undo.forget(self.transaction.levels)

    def _fail(self, error, write="flush", aftermath=None):
        """A write failed: refuse everything but rollback() until it is called (see ``transaction``).

        The refusal says what SQLite did: whether it kept the transaction (only the failed write
        was undone) or ended the whole of it by itself, earlier flushes included; ``aftermath``
        says it when the caller knows better (the write's statements stayed).
        """
        if aftermath is None and not self.executor.in_transaction:
            aftermath = ROLLED_BACK
        self.transaction.fail(error, write, aftermath=aftermath)
        self._ready_thread = None

    def _fail_if_transaction_lost(self, error, write):
        """The one check every path that writes makes when it fails.

        A failed upsert, bulk write, dry run or raw statement is undone by SQLite (or by its own
        savepoint) and the transaction goes on, unless SQLite rolled the whole transaction back by
        itself (a trigger's RAISE(ROLLBACK), a full disk, an interrupt): then objects flushed
        earlier hold rows that are gone, and a later write would run outside any transaction and
        be committed at once.  Only rollback() puts the session back in step, so the session
        refuses other work until it is called, as after a failed flush.
        """
        if self.transaction.active and not self.executor.in_transaction:
            self._fail(error, write)

    def _refuse_lost_transaction(self, write):
        """Before writing: the transaction this session began must still be open in SQLite.

        SQLite can end it unseen (the raw connection, a statement whose error was caught by the
        caller).  Writing then would run outside any transaction, committed at once; the session
        fails instead, as if the write had failed, and nothing is sent.
        """
        if self.transaction.active and not self.executor.in_transaction:
            self.executor.check_open()  # a connection closed underneath has its own error
            self.transaction.fail(TransactionError(
                "SQLite has no transaction open although this session began one: SQLite rolled it back by "
                "itself, or the connection was used directly"), write, aftermath=ENDED_UNSEEN)
            self._ready_thread = None
            self.transaction.check_usable(write)

    @contextlib.contextmanager
    def _writing(self, write):
        """Around a write outside a flush (upsert, bulk writes, raw SQL): refuse to write when the
        transaction is gone, and notice when the write made SQLite end it."""
        self._refuse_lost_transaction(write)
        try:
            yield
        except BaseException as error:
            self._fail_if_transaction_lost(error, write)
            raise

    def close(self):
        """reset(), then refuse any further use.  Closing twice is fine."""
        if self.transaction.state is TransactionState.CLOSED:
            return
        self._refuse_in_listener("close")
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
            flushes=self.flusher.count,
        )

    def __repr__(self):
        stats = self.stats()
        return (f"<Session {self.transaction.state.value}: {stats.pending} pending, "
                f"{stats.persistent} persistent, {stats.marked_for_deletion} marked for deletion>")

