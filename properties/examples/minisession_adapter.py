"""The conformance kit's adapter for minisession: the worked example of an adapter.

Run the kit against it (from a checkout of uow; installed, the kit is ``uow_conformance``)::

    UOW_IMPL=properties.examples.minisession_adapter:MiniSessionAdapter python -m properties.report

An adapter does three things: it maps each drawn table onto a class of the session under test
(``setup``), it passes each operation of the machine through to the session in the user's terms,
and it answers the kit's questions about the session (state, loaded fields, identity map,
new/dirty/deleted) without loading anything.  Everything else is the ``capabilities`` below:
where minisession behaves otherwise than RULES.rst's defaults, or lacks an operation, it says so,
and the kit then expects that exact behaviour (or never draws the operation).  Each declaration
carries its reason, which the report prints.
"""

from ..adapter import Adapter, Capabilities
from . import minisession

MINISESSION_CAPABILITIES = Capabilities(
    # Its rollback() expires every object rather than restoring each to its state at the start of
    # the transaction: restoring needs an undo log of every object touched, the largest piece of
    # a real session.  Inserted objects become transient, deleted ones persistent (SQLAlchemy's
    # rule, which the kit knows as "expire").
    rollback_objects="expire",
    # Its flush orders statements by table, parents' INSERTs before children's, as SQLAlchemy
    # does ("tables"), not row by row as uow's planner does: a table's rows are written in the
    # order they were added, so a row referencing one added after it in the same table fails.
    flush_order="tables",
    # No begin_nested(): one transaction level is enough to learn from.  (The flush uses a
    # SAVEPOINT internally, to undo itself, but the user never sees one.)
    savepoints=False,
    # No version counter for optimistic locking; the kit then draws no versioned table.
    version_columns=False,
    # No merge(): copying a detached object's state onto the session's needs rules of its own.
    merge=False,
    # No relationships: foreign keys are plain integer columns the user sets.
    relationships=False,
    # A primary key is fixed once the object has a row (the identity map is keyed by it).
    primary_key_changes=False,
    # Queries by equality only (query(cls, column, value)): no conditions beyond it, no order,
    # no paging, no count.
    select=False,
)


class MiniSessionAdapter(Adapter):
    """minisession.Session, driven through the kit's adapter protocol."""

    name = "minisession"
    capabilities = MINISESSION_CAPABILITIES
    errors = {
        "invalid_state": (minisession.InvalidStateError,),
        "conflict": (minisession.ConflictError,),
        "flush": (minisession.FlushError,),
        "invalid_value": (minisession.InvalidValueError,),
        "pending_rollback": (minisession.PendingRollbackError,),
        "detached": (minisession.DetachedError,),
        "row_missing": (minisession.RowMissingError,),
        "stale": (),  # no version counter (version_columns=False), so never predicted
    }
    reasons = {
        "flush_order": "statements ordered by table (SQLAlchemy's order), not row by row",
        "rollback_objects": "rollback() expires objects instead of restoring them (no undo log)",
        "savepoints": "no begin_nested(): one transaction level",
        "version_columns": "no version counter",
        "merge": "no merge()",
        "relationships": "foreign keys are plain columns",
        "primary_key_changes": "a primary key is fixed once the object has a row",
        "select": "queries by equality only",
    }

    # connect() is the protocol's default: sqlite3 with isolation_level=None and foreign keys on,
    # which is what minisession expects (it sends BEGIN, COMMIT and ROLLBACK itself).

    def setup(self, connection, schema, relations=()):
        self.connection = connection
        self.session = None
        self.classes = {}
        for table in schema.tables:
            cls = type(table.name.capitalize(), (minisession.Record,), {})
            minisession.map_class(cls, table.name, table.columns, key=table.key, generated=table.generated,
                                  required=("name",),  # the one NOT NULL data column (schemas.py)
                                  types={"data": minisession.JSON, "price": minisession.DECIMAL},
                                  references=dict(table.refs))
            self.classes[table.name] = cls

    def open_session(self, autoflush=True):
        self.session = minisession.Session(self.connection, autoflush=autoflush)

    def close_session(self):
        self.session.close()

    def new(self, table, values):
        return self.classes[table.name](**values)

    def add(self, obj):
        self.session.add(obj)

    def delete(self, obj):
        self.session.delete(obj)

    def expunge(self, obj):
        self.session.expunge(obj)

    def expunge_all(self):
        self.session.expunge_all()

    def refresh(self, obj):
        self.session.refresh(obj)

    def refresh_fields(self, obj, fields):
        self.session.refresh(obj, fields)

    def expire(self, obj):
        self.session.expire(obj)

    def expire_fields(self, obj, fields):
        self.session.expire(obj, fields)

    def expire_all(self):
        self.session.expire_all()

    def get(self, table, key):
        return self.session.get(self.classes[table.name], key)

    def query(self, table, field, value):
        return self.session.query(self.classes[table.name], field, value)

    # read() and set() are the protocol's defaults: getattr and setattr, as a user writes them.

    def flush(self):
        self.session.flush()

    def commit(self):
        self.session.commit()

    def rollback(self):
        self.session.rollback()

    # Not written: begin_nested/release/rollback_nested, merge and the relationship observers.
    # The protocol's defaults raise UndeclaredOperation, and the capabilities above keep the
    # machine from calling them.

    # -- observers: answer from the session's bookkeeping, never by reading attributes ---------

    def state(self, obj):
        return minisession.state_of(obj)

    def loaded(self, obj, columns):
        values = minisession.loaded(obj)
        return {column: values[column] for column in columns if column in values}

    def identity_map(self):
        return dict(self.session.identity_map)

    def new_objects(self):
        return self.session.new

    def dirty_objects(self):
        return self.session.dirty

    def deleted_objects(self):
        return self.session.deleted
