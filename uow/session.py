"""The Session: the unit of work that users talk to.

A session stands between your objects and one SQLite connection.  It is a facade over parts,
each an object given what it works with (as DBDB composes one object per layer); every public
method checks the call and hands the work to the part that owns it:

* ``identity`` (the identity map: one object per row) and ``tracker`` (what changed), kept in
  step with the ``registers``: pending, marked for deletion, deleted rows (``registers``);
* ``guard`` -- thread and state checks, and the failed state after a failed write (``guard``);
* ``observer`` -- the events, and what a listener may not do (``observer``);
* ``transaction`` -- the stack of BEGIN and SAVEPOINTs, each level owning its undo scope;
* ``lifecycle`` (add, delete, expunge), ``loader`` (get, filter, lazy loads), ``expiry``
  (expire, refresh), ``cascades`` (references set through the session, cascades along
  relationships), ``flusher`` (collect, plan, write, apply), ``undo`` (what a rollback puts back,
  exactly, without SQL) and ``boundaries`` (begin, savepoints, commit, rollback, close).

Entity objects reach the session only through the hooks declared in ``hooks``.  This is the core
session, the calls the pattern itself is made of.  ``uow.Session`` (``features``, which this module
never imports) adds the features as parts of their own (merge and upsert, bulk writes, raw SQL and
attached databases, eager loading, event listeners), and the conveniences built on this core:
SQLAlchemy's questions about the session (``is_active``, ``get_transaction()``, ``identity_map``
...), named savepoints, ``dry_run()`` and ``explain()``.  The rules users can rely on are spelled
out in the README and in each method's docstring.
"""

import sqlite3
import threading
import typing
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Literal, Self

from .boundaries import Boundaries
from .cascades import Cascades
from .entity import Entity
from .executor import Executor
from .expiry import Expiry
from .flusher import Flusher
from .guard import Guard
from .hooks import EntityHooks
from .identity import IdentityMap
from .lifecycle import Lifecycle
from .loading import Loader
from .mapper import mapper_of_class, mapper_of_object
from .observer import Observer
from .planner import FlushPlan
from .registers import Registers, SessionStats
from .rollback import UndoLog
from .states import PENDING, STATE_ATTRIBUTE
from . import opensessions
from .tracking import ChangeTracker, changed_fields, original_value
from .transaction import Transaction, TransactionState
from .transactionscopes import NestedTransaction, SessionTransaction
from .writelock import get_for_update

_get_ident = threading.get_ident
E = typing.TypeVar("E", bound=Entity)


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
    honour except for "SERIALIZABLE" and are refused rather than ignored.  ``autobegin=False``
    refuses every operation that needs a transaction until ``begin()`` is called (after each
    commit or rollback too), for code that wants each transaction to be visibly begun.

    ``weak_identity_map=True`` lets an object the program no longer references leave the identity
    map (unless it has work still to do: see ``identity``), for reading more rows than memory holds.
    """

    def __init__(self, connection: sqlite3.Connection, *, autoflush: bool = True, expire_on_commit: bool = False,
                 begin_mode: str | None = None, read_only: bool = False, busy_timeout: float | None = None,
                 isolation_level: str | None = None, deferrable: bool | None = None,
                 weak_identity_map: bool = False, autobegin: bool = True) -> None:
        self.executor = Executor(connection)
        self.transaction = Transaction(self.executor, self)
        self.transaction.configure(begin_mode=begin_mode, read_only=read_only,
                                   isolation_level=isolation_level, deferrable=deferrable, autobegin=autobegin)
        if busy_timeout is not None:
            self.executor.set_busy_timeout(busy_timeout)
        self.autoflush = autoflush
        self.expire_on_commit = expire_on_commit
        # The facts every part shares, each in the part that owns it.
        self.identity = IdentityMap(weak=weak_identity_map)
        self.tracker = ChangeTracker()
        self.registers = Registers(self, self.identity, self.tracker)  # pending, marked, deleted rows
        self.guard = Guard(self, self.transaction, self.executor)  # thread and state checks, failing
        self.observer = Observer()  # the events and who listens (see features.events)
        self.undo = UndoLog(self, self.transaction.levels)
        # The parts this session is composed of, each given the session whose parts it uses.
        self.boundaries = Boundaries(self)  # begin, savepoints, commit, rollback, close
        self.loader = Loader(self)
        self.expiry = Expiry(self)  # expire, expire_all, refresh
        self.flusher = Flusher(self)  # runs each flush (see flusher); autoflush, flush count
        self.cascades = Cascades(self)
        self.lifecycle = Lifecycle(self)
        self.hooks = EntityHooks(self)  # what entity objects may call (see uow.hooks)
        opensessions.opened(self)  # for close_all_sessions()
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
        self.guard.check("flush")
        self.observer.refuse_in_listener("flush")  # (a listener is the only code that runs during a flush)
        self.flusher.flush()

    def plan(self) -> FlushPlan:
        """The FlushPlan the next flush would run, without running anything.

        It prints as a numbered listing with the reason for every ordering constraint, and
        renders as a graph with ``to_dot()`` or ``to_mermaid()``.  ``uow.Session.dry_run()`` sends
        the plan's statements inside a savepoint it rolls back, to show them exactly.
        """
        self.guard.check("plan")
        return self.flusher.plan()

    @property
    def no_autoflush(self) -> typing.ContextManager["Session"]:
        """``with session.no_autoflush:`` suspends autoflush inside the block."""
        return self.flusher.no_autoflush()

    # -- loading (the Loader does the work) and expiry (the Expiry part) ------------------

    def get(self, entity: type[E], ident: object, populate_existing: bool = False,
            with_for_update: bool | None = None) -> E | None:
        """The object with this primary key (scalar, tuple or dict), or None if there is no such row.

        An object already in the identity map is returned without any SQL, unless it was expired
        (its key among the expired fields: expire(), a rollback, expire_on_commit): then get()
        reloads it with one SELECT, and if its row is gone (another connection deleted it) the
        object leaves the session, as if expunged, and get() returns None, as for a key it does
        not hold.  rollback() brings the object back.

        ``populate_existing=True`` reads the row even when the object is held, and overwrites
        every column with what the row holds now, unflushed changes to them included (as
        refresh() does, without its cascade and without autoflush); a row that is gone is
        treated as for an expired object.

        ``with_for_update=True`` (SQLAlchemy's ``SELECT ... FOR UPDATE``) first takes SQLite's write lock,
        which keeps every other connection from writing until this transaction ends, and reads the row
        under it (over a held object, unless it has unflushed changes): see ``writelock``.

        Pass both options by keyword (not keyword-only: CPython fills a missing keyword-only default
        with a dict lookup per call, ~20 ns for two, on the hottest call).
        """
        if _get_ident() != self.guard.ready_thread or populate_existing or with_for_update is not None:
            self.guard.check("get")
            if with_for_update is not None:
                return get_for_update(self, entity, ident, with_for_update, populate_existing)
            if populate_existing:
                return self.loader.get_fresh(entity, ident)
        # The fast path for a hit, with no SQL: a key of the column's own type is the identity
        # map's key as it is (Mapper.key_for), found in the class's dict.  (Not for float keys:
        # -0.0 equals 0.0 in a dict, and checked_key refuses it.  Any other key, a miss or an
        # expired object is the Loader's general path.)
        mapper = getattr(entity, "__mapper__", None)
        if mapper is not None and type(ident) is mapper.scalar_key_type is not float:
            by_key = self.identity.classes.get(entity)  # IdentityMap.get(), written out
            obj = by_key.get(ident) if by_key is not None else None
            if obj is not None and mapper.pk_names[0] in obj.__dict__:
                return obj
        return self.loader.get(entity, ident)

    def all(self, entity: type[E]) -> list[E]:
        """Every row of the entity's table, as objects, ordered by primary key."""
        self.guard.check("all")
        return self.filter(entity)

    def filter(self, entity: type[E], *, order_by: str | Sequence[str] | None = None, limit: int | None = None,
               **equals: object) -> list[E]:
        """Objects whose columns equal the given values, ordered and limited::

            session.filter(User, name="ann")
            session.filter(User, active=True, order_by="-score", limit=10)

        ``order_by`` is a field name (``"-name"`` for descending), an attribute (``User.name``,
        ``User.name.desc()``) or a list of them; the default is the primary key.  For conditions
        other than equality, see ``select()``.  ``None`` matches NULL.  Results go through the identity map.
        """
        self.guard.check("filter")
        return self.loader.filter(mapper_of_class(entity, "filter"), order_by, limit, equals)

    def refresh(self, obj: Entity, fields: Iterable[str] | None = None) -> None:
        """Reload ``fields`` (default: all) from the database now, discarding unflushed changes to them.

        refresh() does not autoflush: it exists to throw local changes away.  The refresh cascade
        reaches each object once, also when the loaded collections form a cycle (a node that is
        its own child, or two that hold each other).
        """
        self.expiry.refresh(obj, fields, set())

    def expire(self, obj: Entity, fields: Iterable[str] | None = None) -> None:
        """Forget ``fields`` (default: all) of a persistent object; they reload when next read.

        Unflushed changes to those fields are discarded.
        """
        self.guard.check("expire")
        self.expiry.expire(obj, fields)

    def expire_all(self) -> None:
        """expire() every object in the identity map."""
        self.guard.check("expire_all")
        self.expiry.expire_all()

    # -- change tracking ------------------------------------------------------------------

    def dirty_fields(self, obj: Entity) -> list[str]:
        """Names of the fields whose value differs from the database's (empty for pending objects)."""
        return list(changed_fields(self.guard.own_state(obj, "dirty_fields")))

    def original_value(self, obj: Entity, field: str) -> Any:
        """The value ``field`` had when the object was loaded or last flushed (None if never)."""
        return original_value(self.guard.own_state(obj, "original_value"), field)

    def is_modified(self, obj: Entity) -> bool:
        """True when the object has a net change to write (or is pending)."""
        state = self.guard.own_state(obj, "is_modified")
        return state.status is PENDING or bool(changed_fields(state))

    @property
    def new(self) -> frozenset[Entity]:
        """Pending objects: added, not yet inserted."""
        return frozenset(state.obj for state in self.registers.pending)

    @property
    def dirty(self) -> frozenset[Entity]:
        """Persistent objects with at least one net change (not counting those marked for deletion)."""
        marked = self.registers.marked
        return frozenset(state.obj for state, _ in self.tracker.changed_states() if state not in marked)

    @property
    def deleted(self) -> frozenset[Entity]:
        """Objects marked for deletion whose DELETE has not been flushed yet."""
        return frozenset(state.obj for state in self.registers.marked)

    def __contains__(self, obj: object) -> bool:
        """``obj in session``: True when the object is pending, persistent or deleted in this session."""
        mapper_of_object(obj, "__contains__")
        state = obj.__dict__.get(STATE_ATTRIBUTE)
        return state is not None and state.session is self

    # -- transactions (the Boundaries part does the work) -----------------------------------

    def begin(self, mode: str | None = None, *, read_only: bool | None = None, isolation_level: str | None = None,
              deferrable: bool | None = None) -> SessionTransaction:
        """Begin a transaction now (otherwise the first database operation begins one); return its
        :class:`~uow.SessionTransaction`.

        ``with session.begin():`` commits that transaction when the block ends (rolls it back if
        the block raises) and leaves the session open.  ``mode`` is SQLite's DEFERRED, IMMEDIATE or
        EXCLUSIVE; the options override the session's for this transaction.  Beginning while a
        transaction is open is a TransactionError.
        """
        self.guard.check("begin")
        self.observer.refuse_in_listener("begin")
        self.boundaries.begin_transaction(mode, "begin()", explicit=True, read_only=read_only,
                                          isolation_level=isolation_level, deferrable=deferrable)
        return self.transaction.scope

    def begin_nested(self) -> NestedTransaction:
        """Open a savepoint; returns a NestedTransaction (also a context manager).

        Whatever autoflush says, it flushes first: rolling back to the savepoint restores
        objects from their snapshots, which must hold everything done before it.
        """
        self.guard.check("begin_nested")
        self.observer.refuse_in_listener("begin_nested")
        return self.boundaries.begin_nested()

    def commit(self) -> None:
        """Flush, then COMMIT.  If SQLite refuses the COMMIT, the transaction stays open and nothing is lost."""
        self.guard.check("commit")
        self.observer.refuse_in_listener("commit")
        self.boundaries.commit()

    def rollback(self) -> None:
        """Roll the database back, and every object the session touched since the last commit with it."""
        self.guard.check_rollback()
        self.observer.refuse_in_listener("rollback")
        self.boundaries.rollback()

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

    def reset(self) -> None:
        """rollback(), then detach every object; the session stays usable."""
        self.observer.refuse_in_listener("reset")
        self.rollback()
        self.boundaries.detach_all()

    def close(self) -> None:
        """reset(), then refuse any further use.  Closing twice is fine."""
        if self.transaction.state is TransactionState.CLOSED:
            return
        self.observer.refuse_in_listener("close")
        self.reset()
        self.boundaries.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, error_type: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> Literal[False]:
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

    def stats(self) -> SessionStats:
        """Objects per state and the work done so far, as a SessionStats."""
        return SessionStats(
            pending=len(self.registers.pending),
            persistent=len(self.identity),
            marked_for_deletion=len(self.registers.marked),
            deleted=len(self.registers.deleted_rows),
            statements=self.executor.statement_count,
            flushes=self.flusher.count,
        )

    def __repr__(self):
        stats = self.stats()
        return (f"<Session {self.transaction.state.value}: {stats.pending} pending, "
                f"{stats.persistent} persistent, {stats.marked_for_deletion} marked for deletion>")
