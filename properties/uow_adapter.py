"""Adapter for uow itself: the default implementation under test.

Entity classes are declared at run time, one per drawn table, under a fresh abstract base so
every example has its own registry.  The connection comes from ``uow.connect`` (foreign keys
on, ``isolation_level=None``); the tables already exist, created by the machine.

The capabilities are the specification's, except where uow's own docstrings choose
differently; each such choice is in ``UOW_REASONS`` with the docstring that makes it (the
conformance report prints them).
"""

import decimal
import types

import uow
from uow import errors

from .adapter import NOT_CACHED, Capabilities, SessionShapedAdapter

UOW_CAPABILITIES = Capabilities(
    pending_key_conflict="row_switch",
    refuses_deleting_referenced_rows=True,
    flush_reloads_expired="at_start_for_order",
    get_reloads_expired=True,
)

# Why uow differs from the specification's defaults: the docstring of uow that makes each choice.
UOW_REASONS = {
    "pending_key_conflict": "planner.actions: 'Deleting an object and adding a new one with the same primary key in "
                            "one flush becomes a single UPDATE of that row'; Session._refuse_held_key lets add() "
                            "take the key of an object marked for deletion",
    "refuses_deleting_referenced_rows": "planner.edges._refuse_dangling_children: 'A loaded child left "
                                        "referencing a deleted row would fail at the DELETE: say so before any SQL.'",
    "flush_reloads_expired": "flush.Flush.reload_expired_snapshots: 'Read back the expired snapshot entries the "
                             "planner needs (one SELECT per object)', when the flush's order depends on them",
    "get_reloads_expired": "Session.get: 'An object already in the identity map is returned without any SQL, unless "
                           "it was expired ...: then get() reloads it with one SELECT, and if its row is gone ... the "
                           "object leaves the session, as if expunged, and get() returns None'",
}


class UowAdapter(SessionShapedAdapter):
    """uow's Session, driven through the adapter protocol."""

    name = "uow"
    capabilities = UOW_CAPABILITIES
    reasons = UOW_REASONS
    errors = {
        "invalid_state": (errors.InvalidStateError,),
        "conflict": (errors.DuplicateIdentityError,),
        "flush": (errors.FlushError,),
        "invalid_value": (errors.ColumnValueError,),
        "pending_rollback": (errors.PendingRollbackError,),
        "detached": (errors.DetachedInstanceError,),
        "row_missing": (errors.ObjectDeletedError,),
        "stale": (errors.StaleDataError,),
    }

    def connect(self, path):
        return uow.connect(path)

    def setup(self, connection, schema, relations=()):
        self.connection = connection
        self.session = None
        base = types.new_class("Base", (uow.Entity,), {"abstract": True})
        self.classes = {}
        for table in schema.tables:
            namespace = _declaration(table, relations)
            self.classes[table.name] = types.new_class(
                table.name.capitalize(), (base,), {"table": table.name},
                lambda body, namespace=namespace: body.update(namespace))

    def open_session(self, autoflush=True):
        self.session = uow.Session(self.connection, autoflush=autoflush)

    def new(self, table, values):
        return self.classes[table.name](**values)

    def query(self, table, field, value):
        return self.session.filter(self.classes[table.name], **{field: value})

    def state(self, obj):
        return uow.state_of(obj).value

    def loaded(self, obj, columns):
        values = obj.__dict__
        return {column: values[column] for column in columns if column in values}

    def identity_map(self):
        return {(cls.__mapper__.table, values): obj for (cls, values), obj in self.session.identity_map.items()}

    def new_objects(self):
        return self.session.new

    def dirty_objects(self):
        return self.session.dirty

    def deleted_objects(self):
        return self.session.deleted

    def cached_reference(self, obj, relation):
        return obj.__dict__.get(relation.ref_name, NOT_CACHED)

    def loaded_collection(self, obj, relation):
        held = obj.__dict__.get(relation.list_name)
        return None if held is None else list(held)

    def teardown(self):
        if self.session is not None:
            self.session.close()


def _declaration(table, relations):
    """The class body for one table: annotations, Column declarations, and its relationships
    (references first, then collections, in the order the oracle cascades along them)."""
    annotations = {}
    namespace = {"__annotations__": annotations}
    if table.key == ("id",):
        annotations["id"] = int
        namespace["id"] = uow.Column(primary_key=True)
    else:
        annotations["k1"] = int
        namespace["k1"] = uow.Column(primary_key=True)
        annotations["k2"] = str
        namespace["k2"] = uow.Column(primary_key=True)
    annotations["name"] = str
    annotations["note"] = str | None
    annotations["code"] = str | None
    namespace["code"] = uow.Column(unique=table.unique_code)
    annotations["data"] = dict | None
    annotations["price"] = decimal.Decimal | None
    for column, parent in table.refs:
        annotations[column] = int | None
        namespace[column] = uow.Column(references=parent.capitalize())
    if table.versioned:
        annotations["version"] = int
        namespace["version"] = uow.Column(version=True)
    # The oracle does not model the merge cascade (uow's default, as SQLAlchemy's): the relationships
    # are declared with the cascades it models, "all" spelled out without merge.
    for relation in relations:
        if relation.child is table:
            namespace[relation.ref_name] = uow.Reference(relation.column, cascade="save-update")
    for relation in relations:
        if relation.parent is table and relation.cascade is not None:
            cascade = relation.cascade.replace("all", "save-update, delete, expunge, refresh")
            namespace[relation.list_name] = uow.Collection(relation.child.name.capitalize(), relation.ref_name,
                                                           cascade=cascade)
    return namespace
