"""uow: a reference Unit of Work (identity map, change tracker, flush planner) over sqlite3.

A tour of the modules, from the one you use to the ones underneath it (imports point down):

* ``session``      the Session: add, delete, commit, rollback, savepoints, close.  It is assembled
  from one module per concern:
  ``flushing`` (collect, plan, run, apply), ``loading`` (get, filter, refresh, expire, lazy and
  eager loading), ``cascades`` (references and cascades), ``rollback`` (what a rollback puts
  back), ``merging`` (merge, upsert, update), ``bulk`` (bulk writes), ``databases`` (raw SQL,
  attached files)
* ``transaction``  BEGIN / SAVEPOINT / RELEASE / ROLLBACK TO / COMMIT, as a declared state machine
* ``events``       before/after listeners for begin, flush, commit, rollback and savepoints
* ``flush``        checks every value, then runs a flush plan as SQL and reads back generated values
* ``executor``     the one place SQL is executed, counted and logged (``uow.sql`` logger)
* ``dependencies`` which rows must be written before which, and why
* ``plan``         the flush plan as data: waves, batches, cycle breaking, reasons
* ``graph``        a deterministic topological sort
* ``undo``         the undo log that makes rollback exact without SQL
* ``tracking``     what changed: current values against the snapshot of the row
* ``identity``     the identity map: one object per row
* ``states``       the object lifecycle: transient, pending, persistent, deleted, detached
* ``query``, ``schema``  SELECT and CREATE TABLE text from the mapping
* ``entity``       the Entity base class: constructor, repr, attribute hooks
* ``relationships`` Reference and Collection, kept in step in memory; cascade names
* ``mapping``      declaring entities: columns, keys, the Mapper
* ``columntypes``  how each Python type is stored and read back unchanged
* ``errors``       every exception uow raises
"""

from .errors import *  # noqa: F401,F403  (the exception hierarchy is part of the public API)
from .executor import Statement, capture_sql, connect
from .entity import Entity
from .mapping import Column, ForeignKey
from .relationships import Collection, Reference
from .plan import Constraint, FlushPlan, Step, StepKind
from .schema import create_all, create_table_sql
from .session import Session, SessionStats
from .states import ObjectState, status_of as state_of
from .transaction import NestedTransaction, TransactionState
from .events import EVENT_NAMES, listen, remove_listener
from . import events
from . import errors


def object_session(obj):
    """The Session an object belongs to, or None."""
    state = obj.__dict__.get("_uow_state")
    return state.session if state is not None else None


def loaded_values(obj):
    """The column values an object holds now, without loading anything: expired columns are left out.

    Reading an attribute of an expired object loads it; this shows what is in memory, for tests,
    debuggers and conformance adapters.
    """
    names = type(obj).__mapper__.column_names
    values = obj.__dict__
    return {name: values[name] for name in names if name in values}


def identity_key(entity=None, ident=None, *, instance=None):
    """``(Class, (key values...))`` for a class and primary key, or for an object (``instance=``)."""
    if instance is not None:
        state = instance.__dict__.get("_uow_state")
        if state is not None and state.key is not None:
            return state.key
        return type(instance).__mapper__.key_of(instance.__dict__)
    return entity.__mapper__.identity_key(ident)


__all__ = [
    "Column", "Entity", "ForeignKey", "Reference", "Collection", "Session", "SessionStats", "connect", "create_all",
    "create_table_sql", "capture_sql", "Statement", "ObjectState", "state_of", "object_session",
    "identity_key", "loaded_values", "FlushPlan", "Step", "StepKind", "Constraint", "NestedTransaction",
    "TransactionState", "errors", "events", "listen", "remove_listener", "EVENT_NAMES",
]
