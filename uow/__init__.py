"""uow: a reference Unit of Work (identity map, change tracker, flush planner) over sqlite3.

A tour of the modules, from the one you use to the ones underneath it (imports point down):

* ``features``     the Session you use: the core session plus merge/upsert, bulk writes, raw SQL and
  attached databases, eager loading, event listeners and queries (``querying``), each a part of
  its own that the core never imports; the conveniences built on the core (SQLAlchemy's questions
  about the session and its transaction, named savepoints, ``dry_run()``, ``explain()``);
  ``AsyncSession`` (``features/asyncio``), the session driven from asyncio
* ``session``      the core Session: add, delete, commit, rollback, savepoints, close, as a facade
  over one part per concern: ``lifecycle`` (add, delete, expunge), ``flusher`` (when a flush
  runs: autoflush, plan, dry run) and ``flush`` (one flush: collect, plan, write, apply),
  ``loading`` (get, filter, lazy loading), ``expiry`` (expire, refresh: forgetting what was
  loaded, to read it again), ``cascades`` (references and cascades), ``rollback`` (the undo log:
  what a rollback puts back), ``boundaries`` (begin, savepoints, commit, rollback, close)
* ``transience``   ``make_transient`` and ``make_transient_to_detached``: the two moves of an
  object's state that no session call makes
* ``writelock``    ``get(..., with_for_update=True)``: SQLAlchemy's row lock as SQLite has it, the
  database's write lock, taken before the row is read
* ``explain``      ``session.explain(obj)``: why an object is in the next flush (add(), which cascade
  from which object, old -> new, its statements and their ordering), read from the records
* ``hooks``        the only calls an entity object makes on its session, declared once
* ``observer``     the session's events, and what a listener may not do while they run
* ``guard``        the checks every session call makes, and failing the session after a failed write
* ``opensessions`` every open session of the process, for ``close_all_sessions()``
* ``registers``    the unit of work's registers (pending, marked for deletion, deleted rows), kept
  in step with the identity map and tracker; the one ``make_persistent``
* ``schema``       CREATE TABLE text from the mapping, and ``create_all`` to run it
* ``directtransaction`` ``uow.transaction(connection)``: a transaction (and named savepoints) on a
  connection without a session, with the session's options and refusals
* ``transaction``  the one transaction stack: BEGIN at level 0, a savepoint at each deeper level,
  each level owning its undo scope; a declared state machine
* ``transactionrules`` what a transaction may be asked for and SQLite can honour (modes,
  read-only, isolation), and the error for a refused COMMIT, shared by both kinds of transaction
* ``transactionscopes`` what a program holds for a transaction or savepoint (``SessionTransaction``,
  ``NestedTransaction``): it ends once, by commit or rollback, also as a ``with`` block
* ``writing``      a flush plan sent as SQL, step by step; generated values read back
* ``stepsql``      the SQL text of a flush step, and the key (and version) that finds its row
* ``binding``      every value of a flush plan checked and converted, before any SQL
* ``executor``     the one place SQL is executed, counted and logged (``uow.sql`` logger), with
  ``Savepoint``, the one helper that sends SAVEPOINT / RELEASE / ROLLBACK TO
* ``connecting``   ``connect()``: a sqlite3 connection the way uow needs it (no implicit BEGIN,
  foreign keys on, a journal mode read back)
* ``planner``      the flush planner: the plan as data (``records``), one action per row
  (``actions``), edges with their reasons (``edges``), the one topological sort in waves
  (``topological``, which CREATE TABLE uses too), steps and cycle breaking (``schedule``)
* ``rollback``     exact rollback without SQL: the undo log, and how objects are put back from it
* ``mementos``     what the undo log records at an object's first touch (compact until a rollback needs it)
* ``tracking``     what changed: current values against the snapshot of the row
* ``identity``     the identity map: one object per row (strong, or weak on request)
* ``query``        SELECT text from the mapping and from conditions, for filter() and select()
* ``entity``       the Entity base class: constructor, repr, attribute hooks
* ``inspection``   ``uow.class_mapping(User)``: how a class is mapped (table, columns, key,
  relationships), as read-only records copied from the Mapper, which stays internal
* ``mapper``       the Mapper: what uow knows of one entity class (table, columns, keys), computed once
* ``declaration``  the checks a class statement runs, and the Registry where classes find each other
* ``columns``      Column and ForeignKey, the objects a class body declares
* ``expressions``  conditions written on class attributes (``User.age >= 18``, ``&``, ``|``, ``~``)
* ``collection``   Collection (one-to-many) and the RelatedList behind it, whose every change sets
  or clears the children's reference
* ``relationships`` Reference (many-to-one), kept in step with a loaded collection; cascade names
* ``identifiers``  table and column names: which ones are accepted, and how they are quoted
* ``states``       the object lifecycle: transient, pending, persistent, deleted, detached
* ``sentinels``    MISSING and NOT_LOADED, the markers used where None is a real value
* ``jsontype``     dict and list columns stored as JSON, and how changes made in place are seen
* ``columntypes``  how each Python type is stored and read back unchanged (UUID and enums too)
* ``customtypes``  a column type of your own (``CustomType``), held to the same promise
* ``valuechecks``  the one gate every value passes on its way to SQLite, and how a refused value is shown
* ``rowsize``      SQLite's limit on a whole row: the least size of a written row's record
* ``arguments``    the plain arguments of public calls (lists, SQL text, paths, seconds), checked
* ``errors``       every exception uow raises
"""

from typing import Any

from .errors import *  # noqa: F401,F403  (the exception hierarchy is part of the public API)
from .connecting import connect
from .executor import Statement, Statements, capture_sql
from .entity import Entity
from .columns import Column, ForeignKey
from .customtypes import CustomType
from .mapper import mapper_of, mapper_of_object
from .inspection import ClassMapping, class_mapping
from .collection import Collection
from .relationships import Reference
from .planner import Constraint, FlushPlan, Step, StepKind, StepPurpose
from .schema import create_all, create_table_sql
from .features import Session, object_session
from .transience import make_transient, make_transient_to_detached
from .opensessions import close_all_sessions
from .registers import SessionStats, identity_key
from .states import STATE_ATTRIBUTE, ObjectState
from .transaction import TransactionState
from .transactionscopes import NestedTransaction, SessionTransaction
# (uow.transaction is this function from here on; the module stays importable as uow.transaction.)
from .directtransaction import DirectTransaction, transaction
from .features.events import EVENT_NAMES, listen, remove_listener
from .features import events
from .features.asyncio import AsyncSession
from . import errors


def state_of(obj: Entity) -> ObjectState:
    """The ObjectState of an entity object (TRANSIENT for one no session has seen)."""
    mapper_of_object(obj, "state_of")
    state = obj.__dict__.get(STATE_ATTRIBUTE)
    return ObjectState.TRANSIENT if state is None else state.status


def loaded_values(obj: Entity) -> dict[str, Any]:
    """The column values an object holds now, without loading anything: expired columns are left out.

    Reading an attribute of an expired object loads it; this shows what is in memory, for tests,
    debuggers and conformance adapters.
    """
    names = mapper_of_object(obj, "loaded_values").column_names
    values = obj.__dict__
    return {name: values[name] for name in names if name in values}


__all__ = [
    "Column", "CustomType", "Entity", "ForeignKey", "Reference", "Collection", "Session", "SessionStats", "connect", "create_all",
    "create_table_sql", "capture_sql", "Statement", "Statements", "ObjectState", "state_of", "object_session",
    "identity_key", "loaded_values", "class_mapping", "ClassMapping", "FlushPlan", "Step", "StepKind", "StepPurpose", "Constraint", "NestedTransaction", "SessionTransaction",
    "DirectTransaction", "transaction", "AsyncSession",
    "TransactionState", "errors", "events", "listen", "remove_listener", "EVENT_NAMES", "make_transient",
    "make_transient_to_detached", "close_all_sessions", "UowWarning",
]
