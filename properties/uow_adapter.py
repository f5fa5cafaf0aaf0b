"""Adapter for uow itself: the default implementation under test.

Entity classes are declared at run time, one per drawn table, under a fresh abstract base so
every example has its own registry.  The connection comes from ``uow.connect`` (foreign keys
on, ``isolation_level=None``); the tables already exist, created by the machine.

The capabilities are the specification's, except where uow's own docstrings choose
differently; each such choice is in ``UOW_REASONS`` with the docstring that makes it (the
conformance report prints them).
"""

import dataclasses
import decimal
import functools
import operator
import types

import uow
from uow import errors

from . import conditions
from .adapter import NOT_CACHED, Capabilities, SessionShapedAdapter
from .schemas import live, stored

UOW_CAPABILITIES = Capabilities(
    pending_key_conflict="row_switch",
    refuses_deleting_referenced_rows=True,
    flush_reloads_expired="at_start_for_order",
    get_reloads_expired=True,
    merge_autoflushes=True,
    merge_refuses_marked_target=True,
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
    "merge_autoflushes": "features.merging: merge() 'autoflushes once, before anything is merged, as SQLAlchemy's "
                         "does', so the cascade's own get() never flushes a merged child before its merged parent",
    "merge_refuses_marked_target": "features.merging: 'merge() refuses to copy values onto the session's object "
                                   "for the row when it is marked for deletion', which the next flush would delete",
    "get_reloads_expired": "Session.get: 'An object already in the identity map is returned without any SQL, unless "
                           "it was expired ...: then get() reloads it with one SELECT, and if its row is gone ... the "
                           "object leaves the session, as if expunged, and get() returns None'",
}


class UowAdapter(SessionShapedAdapter):
    """uow's Session, driven through the adapter protocol."""

    name = "uow"
    capabilities = UOW_CAPABILITIES
    reasons = UOW_REASONS
    data_as_text = False  # data is a dict column (see UowWeakAdapter)
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
            namespace = _declaration(table, relations, self.data_as_text)
            self.classes[table.name] = types.new_class(
                table.name.capitalize(), (base,), {"table": table.name},
                lambda body, namespace=namespace: body.update(namespace))

    def open_session(self, autoflush=True):
        self.session = uow.Session(self.connection, autoflush=autoflush)

    def new(self, table, values):
        return self.classes[table.name](**values)

    def query(self, table, field, value):
        return self.session.filter(self.classes[table.name], **{field: value})

    def select(self, table, query):
        cls = self.classes[table.name]
        terms = [getattr(cls, field).desc() if descending else getattr(cls, field).asc()
                 for field, descending in query.order_by]
        found = self.session.select(cls).where(*(_condition(cls, part) for part in query.where)).order_by(*terms)
        if query.limit is not None:
            found = found.limit(query.limit)
        if query.offset is not None:
            found = found.offset(query.offset)
        return getattr(found, query.result)()

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


def _condition(cls, condition):
    """A ``conditions`` record as uow's condition on ``cls``'s attributes (``Ant.note != 'x'``)."""
    if isinstance(condition, conditions.And):
        return functools.reduce(operator.and_, (_condition(cls, part) for part in condition.parts))
    if isinstance(condition, conditions.Or):
        return functools.reduce(operator.or_, (_condition(cls, part) for part in condition.parts))
    if isinstance(condition, conditions.Not):
        return ~_condition(cls, condition.part)
    attribute = getattr(cls, condition.field)
    if isinstance(condition, conditions.IsNull):
        return attribute.is_not(None) if condition.negated else attribute.is_(None)
    if isinstance(condition, conditions.In):
        return attribute.in_(list(condition.values))
    if isinstance(condition, conditions.Like):
        return attribute.like(condition.pattern)
    return conditions.OPERATORS[condition.op](attribute, condition.value)


class UowWeakAdapter(UowAdapter):
    """uow's Session with ``weak_identity_map=True``: an object the program no longer references
    leaves the session once collected, unless it has work to do (``identity``'s docstring).

    uow holds every object with a JSON column strongly (a change made in place can be seen no
    other way), and every drawn table has one, ``data``: so here ``data`` is mapped as its JSON
    text (a ``str`` column; the adapter converts), which lets objects go, and in-place changes
    are not drawn (tracks_json_in_place).
    """

    name = "uow-weak"
    capabilities = dataclasses.replace(UOW_CAPABILITIES, weak_identity_map=True, tracks_json_in_place=False)
    reasons = UOW_REASONS | {
        "weak_identity_map": "Session(weak_identity_map=True): identity.WeakIdentityMap, 'an object the program no "
                             "longer references leaves the map when the garbage collector frees it'",
        "tracks_json_in_place": "this configuration maps data as its JSON text (uow holds objects with a JSON "
                                "column strongly), so there is no dict to change in place",
    }
    data_as_text = True

    def open_session(self, autoflush=True):
        self.session = uow.Session(self.connection, autoflush=autoflush, weak_identity_map=True)

    def new(self, table, values):
        return super().new(table, _data_text(values))

    def set(self, obj, column, value):
        super().set(obj, column, _data_text({column: value})[column])

    def read(self, obj, columns):
        return _data_value(super().read(obj, columns))

    def loaded(self, obj, columns):
        return _data_value(super().loaded(obj, columns))


def _data_text(values):
    """Values with ``data`` as its JSON text, as the weak configuration maps it."""
    if values.get("data") is None:
        return values
    return values | {"data": stored("data", values["data"])}


def _data_value(values):
    """Values with ``data`` read back from its JSON text."""
    if values.get("data") is None:
        return values
    return values | {"data": live("data", values["data"])}


def _declaration(table, relations, data_as_text=False):
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
    annotations["data"] = (str if data_as_text else dict) | None
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
