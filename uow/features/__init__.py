"""Features layered on the core session: each a part of its own, which the core never imports.

The core (``session`` and what it composes: the identity map, change tracking, the flush and its
planner, exact rollback, transactions, loading and cascades) is the Unit of Work pattern itself,
and reads without any of this.  The session users import, ``uow.Session``, is the core session
with these parts added, each given the session it works for:

=================  ======================================================================
``eager``          load a relationship of many objects with one SELECT (``load=``)
``merging``        objects from elsewhere: merge, upsert, update, save_or_update, mark_dirty
``bulk``           many rows per statement, outside the unit of work
``databases``      raw SQL, and several SQLite files attached to one connection
``events``         listeners called before and after each flush, transaction and savepoint
``querying``       ``select(User).where(User.age >= 18)``: conditions, order, paging, count
``asyncio``        AsyncSession: this Session driven from asyncio, on one worker thread
``asyncworker``    that worker thread: calls in order, and what a cancellation does to one
``asynchooks``     what an AsyncSession's objects refuse on the loop: implicit loads, mid-call use
``asyncquery``     an AsyncSession's ``select()``: built without await, its results awaited
=================  ======================================================================

Besides the parts, the calls built on the core for the program's convenience are here, so that the
core session holds only the calls the pattern is made of: SQLAlchemy's questions about the session
and its transaction (``is_active``, ``in_transaction()``, ``get_transaction()``, ``identity_map``
...), savepoints with the program's own names, and the next flush rehearsed (``dry_run()``) and
explained (``explain()``).  The methods below only check the session and hand over to the part
that does the work: read the part's module for how each works.
"""

import os
import sqlite3
import threading
import typing
from collections.abc import Iterable, Mapping, Sequence

from .. import session as core
from ..entity import Entity
from ..arguments import listed, savepoint_name, true_or_false
from ..declaration import Registry
from ..errors import ArgumentError, TransactionError
from ..executor import Statements
from ..identity import IdentityMapView
from ..explain import Explanation, explain
from ..mapper import mapper_of_class, mapper_of_object
from ..registers import identity_key
from ..states import STATE_ATTRIBUTE
from ..tracking import changed_collections
from ..transaction import TransactionState
from ..transactionscopes import NestedTransaction, SessionTransaction
from ..valuechecks import shown
from .bulk import BulkWriter
from .databases import Databases
from .eager import EagerLoader
from .events import Listeners, SessionEvents
from .merging import Merger
from .querying import Select

E = typing.TypeVar("E", bound=Entity)

# Why prepare() and twophase=True are refused, said once for both.
NO_TWO_PHASE = (
    "SQLite has no two-phase commit (no PREPARE TRANSACTION), so a transaction cannot be prepared and "
    "committed later by a coordinator"
)


class Session(core.Session):
    """A unit of work over one sqlite3 connection, with every feature (see :class:`uow.session.Session`
    for the core, and the module docstring for the parts).

    ``info`` is a dict for the application (uow never reads it), as in SQLAlchemy; ``info=`` gives
    its first contents (copied).  ``binds={Class: path}`` calls bind_mapper() for each (see
    ``features.databases``).  ``twophase=True`` is refused: SQLite has no two-phase commit.
    """

    listeners = Listeners()  # listeners of every session; see features.events

    def __init__(self, connection: sqlite3.Connection, *, twophase: bool = False,
                 info: Mapping[typing.Any, typing.Any] | None = None,
                 binds: Mapping[type[Entity], str | os.PathLike[str]] | None = None, **options: typing.Any) -> None:
        # Both checked before the core opens anything, so a refused session leaves nothing behind.
        if twophase is not False:
            if twophase is True:
                raise TransactionError(f"Session(twophase=True): {NO_TWO_PHASE}; leave twophase out and commit(), "
                                       "which is atomic across the files of one connection in rollback-journal mode")
            raise ArgumentError(f"Session(twophase=...) must be True or False, got {shown(twophase)}")
        if info is not None and not isinstance(info, Mapping):
            raise ArgumentError(f"Session(info=...) must be a dict (or None), got {type(info).__name__}")
        super().__init__(connection, **options)
        self.info: dict[typing.Any, typing.Any] = {} if info is None else dict(info)
        self.listeners = Listeners()  # this session's own
        self.observer.listeners = SessionEvents(self)
        self.eager = EagerLoader(self)
        self.merger = Merger(self)
        self.bulk = BulkWriter(self)
        self.databases = Databases(self)
        if binds is not None:
            try:
                self.databases.bind_all(binds)
            except BaseException:
                self.close()  # (nothing began: the refused session just ends)
                raise

    # -- SQLAlchemy's session surface -------------------------------------------------------

    @staticmethod
    def object_session(obj: Entity) -> "core.Session | None":
        """The Session ``obj`` belongs to, or None (``Session.object_session(obj)``, as in SQLAlchemy)."""
        return object_session(obj)

    def prepare(self) -> typing.NoReturn:
        """Refused: SQLite has no two-phase commit (see the README on attached databases)."""
        self.guard.check("prepare")
        raise TransactionError(
            f"prepare(): {NO_TWO_PHASE}; commit() it, which is atomic across the files "
            "of one connection in rollback-journal mode (not in WAL mode)"
        )

    def invalidate(self) -> None:
        """Close the session and its connection without sending anything on the connection again.

        For a connection known to be broken or unsafe (after a crash of code holding it, an
        interrupt at a bad moment): the objects are rolled back in memory from the undo log, as by
        rollback(), and detached; the session is closed; the sqlite3 connection is closed, which
        makes SQLite roll back whatever transaction it had open.  No event is emitted.
        """
        if self.transaction.state is TransactionState.CLOSED:
            return
        if threading.get_ident() != self.guard.owner_thread:
            self.guard.check("invalidate")
        self.observer.refuse_in_listener("invalidate")
        self.boundaries.invalidate()

    def commit(self) -> None:
        """Flush, then COMMIT (see the core's commit); with files attached, warn first when the
        COMMIT cannot be atomic across them (WAL; see ``features.databases``)."""
        if self.databases.attached_any:
            self.guard.check("commit")
            self.observer.refuse_in_listener("commit")
            self.flush()  # (what the commit writes must be written before its files are judged)
            self.databases.check_atomic_commit()
        super().commit()

    def flush(self, objects: object = None) -> None:
        """Write pending INSERTs, UPDATEs and DELETEs (see the core's flush).

        ``flush(objects)``, SQLAlchemy's flush of some objects only (deprecated in its 2.1, "not
        intended for general use"), is refused: uow plans every change of a flush together, so
        that an INSERT never goes without the parent row it needs, nor an UPDATE without the
        DELETE that frees its unique value.  Keep an object out with expunge(), or change it
        after the flush.
        """
        if objects is not None:
            self.guard.check("flush")
            raise ArgumentError(
                f"flush(objects=...): uow flushes every staged change together, never some objects only "
                f"(got {shown(objects)}): a part could need a row the rest would write (SQLAlchemy 2.1 "
                f"deprecates the option for that reason).  Call flush() with no argument; to keep an object "
                f"out of it, expunge() it first, or make its change after the flush"
            )
        super().flush()

    def in_transaction(self) -> bool:
        """True while a transaction is begun (including a failed one that awaits rollback())."""
        return self.transaction.state is not TransactionState.IDLE and self.transaction.state is not TransactionState.CLOSED

    def in_nested_transaction(self) -> bool:
        """True while a savepoint (begin_nested()) is open."""
        return len(self.transaction.levels) > 1

    def get_transaction(self) -> SessionTransaction | None:
        """The session's SessionTransaction while one is begun (or failed), else None."""
        return self.transaction.scope

    def get_nested_transaction(self) -> NestedTransaction | None:
        """The innermost open NestedTransaction, or None."""
        levels = self.transaction.levels
        return levels[-1] if len(levels) > 1 else None

    @property
    def is_active(self) -> bool:
        """False after a failed flush (until rollback()) and after close(); True otherwise."""
        return self.transaction.state in (TransactionState.IDLE, TransactionState.ACTIVE)

    @property
    def identity_map(self) -> Mapping[tuple[type[Entity], tuple[typing.Any, ...]], Entity]:
        """A read-only view of ``{identity key: object}``, keyed by ``(Class, (key values...))``
        (see :func:`identity_key`)."""
        return IdentityMapView(self.identity)

    def identity_key(self, entity: type[Entity] | None = None, ident: object = None, *,
                     instance: Entity | None = None) -> tuple[type[Entity], tuple[typing.Any, ...]]:
        """``(Class, (key values...))`` for a class and key, or for an object: see :func:`identity_key`."""
        return identity_key(entity, ident, instance=instance)

    def get_one(self, entity: type[E], ident: object, *, populate_existing: bool = False,
                with_for_update: bool | None = None) -> E:
        """Like get(), but a missing row raises NotFoundError.  ``populate_existing=True`` overwrites a
        held object with its row, as get()'s does (SQLAlchemy 0.3's ``load()``, which discards
        pending changes to the object); ``with_for_update=True`` takes the write lock first, as get()'s."""
        if populate_existing or with_for_update is not None:
            # Reads the row (under the lock), overwriting a held object as get() would.
            self.get(entity, ident, populate_existing=populate_existing, with_for_update=with_for_update)
        return self.loader.get_one(entity, ident)  # then a hit without SQL, or NotFoundError naming the key

    def is_modified(self, obj: Entity, include_collections: bool = True) -> bool:
        """True when the object has a net change to write (or is pending), or, with
        ``include_collections`` (the default, as in SQLAlchemy), when one of its collections gained or
        lost a member since the last flush: a child whose reference now holds it, or no longer does."""
        with_collections = true_or_false(include_collections, "is_modified", "include_collections")
        if super().is_modified(obj):
            return True
        return with_collections and bool(changed_collections(obj.__dict__[STATE_ATTRIBUTE], self.registers.pending,
                                                             self.tracker.candidates))

    def is_expired(self, obj: Entity, field: str | None = None) -> bool:
        """True when ``field`` (default: any column) of ``obj`` is expired: not in memory, so that
        reading it sends a SELECT (after expire(), a rollback, ``expire_on_commit``).  A pending
        object has nothing to reload and is never expired; ``obj`` must be in this session."""
        return self.expiry.is_expired(obj, field)

    # -- savepoints with names ------------------------------------------------------------

    def savepoint(self, name: str | None = None) -> NestedTransaction:
        """Open a savepoint with your own name; a NestedTransaction, as :meth:`begin_nested` returns::

            with session.savepoint("before_optional_work"):
                session.add(trial)       # SAVEPOINT "before_optional_work" ... RELEASE, or
                ...                      # ROLLBACK TO it (objects too) if the block raises

        The name appears in the SQL and in the savepoint events (``savepoint.name``).  It must be a
        plain identifier, not begin with ``uow_`` (the savepoints uow opens itself), and not be the
        name of a savepoint that is still open; all of this is checked before anything is flushed.
        Without a name (Ormdantic's ``savepoint()``) it is :meth:`begin_nested`, named by uow.
        """
        if name is None:
            return self.begin_nested()
        name = savepoint_name(name, "savepoint")
        self.guard.check("savepoint")
        self.observer.refuse_in_listener("savepoint")
        self.transaction.check_name_free(name, "savepoint")
        return self.boundaries.begin_nested(name)

    # -- the next flush, rehearsed and explained ------------------------------------------

    def dry_run(self) -> Statements:
        """The exact statements the next flush would send, as :class:`~uow.Statements`: a list of
        :class:`~uow.Statement` that prints one numbered statement per line.

        The flush really runs -- inside a savepoint that is then rolled back -- so the list shows
        the statements and parameters SQLite would see, including keys it generates.  Nothing
        changes: not the database, not any object.  A flush that would fail raises its error here;
        if SQLite itself ended the whole transaction (a trigger's ``RAISE(ROLLBACK)``), the session
        then refuses other work until ``rollback()``, as after a failed flush.
        """
        self.guard.check("dry_run")
        return self.flusher.dry_run()

    def explain(self, obj: Entity) -> Explanation:
        """Why ``obj`` is (or is not) in the next flush, as an :class:`~uow.explain.Explanation`
        that prints as a short report: its state; what put it in the unit of work (add(), or
        which cascade from which object, a parent's delete that cleared its reference, a row
        switch); its fields old -> new; the statements the flush would send for its row; and
        the ordering constraints that place them, with their reasons.  Nothing is written; like
        plan(), it may read an expired row the plan needs.
        """
        self.guard.check("explain")
        mapper_of_object(obj, "explain")
        return explain(obj, self, self.registers, self.tracker, self.flusher.plan)

    # -- eager loading --------------------------------------------------------------------

    def all(self, entity: type[E], *, load: Iterable[str] = ()) -> list[E]:
        """Every row of the entity's table, as objects, ordered by primary key."""
        self.guard.check("all")
        return self.filter(entity, load=load)

    # (load= names relationships to load with the objects; the core's filter() has no such option, and
    # no column may be called 'load', so type checkers' objection to the narrower keyword does not apply.)
    def filter(  # type: ignore[override]
            self, entity: type[E], *, order_by: str | Sequence[str] | None = None, limit: int | None = None,
            load: Iterable[str] = (), **equals: object) -> list[E]:
        """Objects whose columns equal the given values, ordered and limited::

            session.filter(User, name="ann")
            session.filter(User, active=True, order_by="-score", limit=10)

        ``order_by`` is a field name (``"-name"`` for descending), an attribute (``User.name``,
        ``User.name.desc()``) or a list of them; the default is the primary key.  For conditions
        other than equality, see ``select()``.  ``None`` matches NULL.  Results go through the identity map.
        ``load`` names relationships to load up front, one SELECT each (see :meth:`load_related`).
        """
        self.guard.check("filter")
        mapper = mapper_of_class(entity, "filter")
        relationships = [self.eager.relationship(mapper, name) for name in listed(load, "filter", "load")]
        objects = self.loader.filter(mapper, order_by, limit, equals)
        self.eager.load(objects, relationships)
        return objects

    def load_related(self, objects: Sequence[Entity], name: str) -> None:
        """Load relationship ``name`` of every object in ``objects`` with one SELECT (per batch of keys).

        Objects whose relationship is already loaded are left alone.  This is what
        ``filter(..., load=[name])`` does after its query.
        """
        self.guard.check("load_related")
        objects = listed(objects, "load_related", "objects")
        if objects:
            mapper = mapper_of_object(objects[0], "load_related")
            self.eager.load(objects, [self.eager.relationship(mapper, name)])

    # -- queries ------------------------------------------------------------------------------

    def select(self, entity: type[E]) -> Select[E]:
        """A query of ``entity``'s rows, run when its results are asked for (see ``features.querying``)::

            session.select(User).where(User.age >= 18).order_by(User.name.desc()).limit(10).all()
        """
        self.guard.check("select")
        return Select(self, mapper_of_class(entity, "select"))

    # -- objects from elsewhere -----------------------------------------------------------

    def merge(self, obj: E, *, load: bool = True) -> E:
        """Copy ``obj``'s column values onto this session's object for the same row, and return it
        (see ``features.merging``)."""
        return self.merger.merge(obj, load=load)

    def upsert(self, obj: E) -> E:
        """Insert the row, or update it if its key exists, in one statement; return the session's
        object (see ``features.merging``)."""
        return self.merger.upsert(obj)

    def update(self, obj: Entity) -> None:
        """Attach a detached object: it becomes persistent, and its changes are flushed next time."""
        self.merger.update(obj)

    def save_or_update(self, obj: Entity) -> None:
        """add() a transient object, update() a detached one; objects already here are left alone."""
        self.merger.save_or_update(obj)

    def mark_dirty(self, obj: Entity) -> None:
        """Make the next flush write every column of ``obj`` (for changes uow cannot see)."""
        self.merger.mark_dirty(obj)

    # -- bulk writes ----------------------------------------------------------------------

    def bulk_insert_mappings(self, entity: type[Entity], mappings: Sequence[Mapping[str, object]]) -> int:
        """Insert one row per dict of column values; returns the number of rows inserted (see
        ``features.bulk``)."""
        return self.bulk.bulk_insert_mappings(entity, mappings)

    def bulk_update_mappings(self, entity: type[Entity], mappings: Sequence[Mapping[str, object]]) -> int:
        """Update rows by primary key: each dict holds the key and the columns to set."""
        return self.bulk.bulk_update_mappings(entity, mappings)

    def bulk_save_objects(self, objects: Iterable[Entity]) -> None:
        """Insert transient objects and update detached ones, in batches, without adding them."""
        self.bulk.bulk_save_objects(objects)

    # -- raw SQL and attached databases ---------------------------------------------------

    def execute(self, sql: str, params: Sequence[object] | Mapping[str, object] = ()) -> sqlite3.Cursor:
        """Run one SQL statement in the session's transaction (after an autoflush); return the cursor."""
        return self.databases.execute(sql, params)

    def scalar(self, sql: str, params: Sequence[object] | Mapping[str, object] = ()) -> object:
        """The first column of the first row of a query, or None when it returns no row."""
        return self.databases.scalar(sql, params)

    def scalars(self, sql: str, params: Sequence[object] | Mapping[str, object] = ()) -> list[object]:
        """The first column of every row of a query, as a list."""
        return self.databases.scalars(sql, params)

    def connection(self) -> sqlite3.Connection:
        """The session's sqlite3 connection, with its transaction begun (after an autoflush)."""
        return self.databases.connection()

    def attach(self, name: str, path: str | os.PathLike[str]) -> None:
        """ATTACH the SQLite file ``path`` to the connection as database ``name``."""
        self.databases.attach(name, path)

    def bind_mapper(self, entity: type[Entity], path: str | os.PathLike[str]) -> None:
        """Attach the file that holds ``entity``'s table, under the database name the class declares."""
        self.databases.bind_mapper(entity, path)

    def bind_table(self, table: str, path: str | os.PathLike[str], registry: Registry | None = None) -> None:
        """bind_mapper() for the entity whose table is ``table`` (looked up in ``registry``)."""
        self.databases.bind_table(table, path, registry)

    def get_bind(self, entity: type[Entity]) -> str:
        """The path of the file that holds ``entity``'s table ('' for an in-memory database)."""
        return self.databases.get_bind(entity)


def object_session(obj: Entity) -> core.Session | None:
    """The Session an object belongs to, or None (``uow.object_session(obj)``)."""
    mapper_of_object(obj, "object_session")
    state = obj.__dict__.get(STATE_ATTRIBUTE)
    return state.session if state is not None else None
