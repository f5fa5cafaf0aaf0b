"""Every public entry point given the class instead of an instance, None, and a wrong type.

Class of defect searched for: **misuse that escapes as a raw Python or sqlite3 error, or that
changes something before it is refused**.  ``add(User)`` raised a raw TypeError, ``add_all(None)``
and ``bulk_save_objects(None)`` raw errors, ``add_all([ok, not_an_entity])`` left the first object
added, ``filter(order_by=123)`` a raw error after an autoflush.

The table ``CALLS`` lists each public method of Session, each parameter it takes, and the
module-level functions of ``uow`` (``state_of``, ``object_session``, ``create_all``, ``listen``, ...)
with the kind of value each parameter expects; ``BAD`` lists, per kind, the values a user gets
wrong: the class where an instance belongs (and the reverse), ``None`` where it has no meaning,
other types, lists holding one of those.  Every (call, bad value) pair runs on a session holding
a persistent object with an unflushed change and a pending new object, and must:

* raise an exception derived from ``uow.errors.UowError``;
* name the thing at fault in the message (the class's name, or the value's repr or type);
* send no SQL (captured through the ``uow.sql`` logger with ``capture_sql``), and leave the
  session (identity map, new/dirty/deleted, every object's state, values and snapshot) and the
  database exactly as they were.

Flags (``autoflush=``, ``read_only=``, ``weak_identity_map=``, ``merge(load=)``, ``connect(uri=)``) are
not checked: like SQLAlchemy's, they follow Python's truth rules, so no value of them is wrong.

The space is a fixed table, run exhaustively in CI; there is no heavier mode.
"""

import collections
import math

import pytest

import uow
from uow import Entity
from uow.errors import UowError
from uow.valuechecks import shown

from .harness import Code, Item, db_rows, fresh_db, session_snapshot


class NotMapped:
    """A plain class: not an entity."""


CLASS = Item  # the class where an instance belongs
INSTANCE = object()  # replaced per run by a transient Item, where a class belongs


class Slot:
    """A bad value that is built per run (so it can be an object of that run's session)."""

    def __init__(self, label, make):
        self.label = label
        self.make = make

    def __repr__(self):
        return self.label


TRANSIENT_ITEM = Slot("Item(...) instance", lambda run: Item(tag="bad", name="bad"))
UNMAPPED_OBJECT = Slot("NotMapped()", lambda run: NotMapped())
# One byte over SQLite's default SQLITE_LIMIT_LIKE_PATTERN_LENGTH (50,000).
LONG_PATTERN = Slot("'%' * 50_001", lambda run: "%" * 50_001)

BAD = {
    "obj": [CLASS, None, 42, "x", UNMAPPED_OBJECT, NotMapped],
    "entity": [TRANSIENT_ITEM, None, 42, "rel_items", NotMapped, Entity],
    "objects": [None, 42, [None], [CLASS], [42], [UNMAPPED_OBJECT], CLASS],
    "mappings": [None, 42, [None], [42], ["x"], [TRANSIENT_ITEM], CLASS],
    "fields": [42, [42], [None], ["no_such_field"], CLASS],
    "field": [None, 42, "no_such_field", CLASS],
    "field_or_none": [42, "no_such_field", CLASS, ["name"]],  # None means every field
    "relationship": [None, 42, "no_such_relationship", CLASS],
    "loads": [42, [42], [None], ["no_such_relationship"], CLASS],
    "ident": [None, CLASS, TRANSIENT_ITEM, NotMapped, [1], "1", 1.5],
    "name": [None, 42, CLASS, ""],
    "name_or_none": [42, CLASS, ""],  # None lets uow choose the name
    "path": [None, 42, CLASS],
    "sql": [None, 42, CLASS],
    "params": [42, CLASS, None],
    "mode": [42, "SOMETIMES", CLASS],
    "order_by": [123, [123], CLASS, "no_such_field"],
    "limit": [-1, "3", 2.5, True, CLASS, 2 ** 63],
    "column_value": [CLASS, 42, b"bytes", UNMAPPED_OBJECT],
    "seconds": ["5", math.nan, -1, CLASS, True],
    "event": [None, 42, "no_such_event", CLASS],
    "listener": [None, 42, "x"],
    "target": [None, 42, CLASS, TRANSIENT_ITEM],
    "connection": [None, 42, ":memory:", CLASS],
    "classes": [42, [42], [None], [TRANSIENT_ITEM], CLASS],
    "entity_or_obj": [None, 42, "x", NotMapped, UNMAPPED_OBJECT],
    "condition": [None, 42, "x", True, CLASS, UNMAPPED_OBJECT, Code.code == "x", Item.qty < None,
                  Item.qty.like("1%"), Item.name < Item.qty, Item.name.is_("x")],
    "values": [None, 42, "x", CLASS, [None], ["x", 42]],
    "pattern": [None, 42, b"x%", CLASS, "x\ud800%", LONG_PATTERN],
    "escape": [42, "", "!!", "\ud800", b"!", CLASS],
}


def noop(session, **info):
    """A listener for listen()/remove_listener() calls whose other argument is the bad one."""


# (label, kind of the bad parameter, call(run, bad)).  ``run.obj`` is a persistent Item with an
# unflushed change, ``run.session`` its session.
CALLS = [
    ("Session.add", "obj", lambda r, x: r.session.add(x)),
    ("Session.add_all", "objects", lambda r, x: r.session.add_all(x)),
    ("Session.add_all([ok, bad])", "obj", lambda r, x: r.session.add_all([Item(tag="ok", name="ok"), x])),
    ("Session.all", "entity", lambda r, x: r.session.all(x)),
    ("Session.all(load=)", "loads", lambda r, x: r.session.all(Item, load=x)),
    ("Session.attach(name)", "name", lambda r, x: r.session.attach(x, ":memory:")),
    ("Session.attach(path)", "path", lambda r, x: r.session.attach("other", x)),
    ("Session.begin(mode)", "mode", lambda r, x: r.session.begin(x)),
    ("Session.bind_mapper(entity)", "entity", lambda r, x: r.session.bind_mapper(x, ":memory:")),
    ("Session.bind_table(table)", "name", lambda r, x: r.session.bind_table(x, ":memory:")),
    ("Session.bulk_insert_mappings(entity)", "entity", lambda r, x: r.session.bulk_insert_mappings(x, [])),
    ("Session.bulk_insert_mappings(mappings)", "mappings", lambda r, x: r.session.bulk_insert_mappings(Item, x)),
    ("Session.bulk_save_objects", "objects", lambda r, x: r.session.bulk_save_objects(x)),
    ("Session.bulk_update_mappings(entity)", "entity", lambda r, x: r.session.bulk_update_mappings(x, [])),
    ("Session.bulk_update_mappings(mappings)", "mappings", lambda r, x: r.session.bulk_update_mappings(Item, x)),
    ("Session.delete", "obj", lambda r, x: r.session.delete(x)),
    ("Session.dirty_fields", "obj", lambda r, x: r.session.dirty_fields(x)),
    ("Session.explain", "obj", lambda r, x: r.session.explain(x)),
    ("Session.execute(sql)", "sql", lambda r, x: r.session.execute(x)),
    ("Session.execute(params)", "params", lambda r, x: r.session.execute("SELECT ?", x)),
    ("Session.expire(obj)", "obj", lambda r, x: r.session.expire(x)),
    ("Session.expire(fields)", "fields", lambda r, x: r.session.expire(r.obj, x)),
    ("Session.expunge", "obj", lambda r, x: r.session.expunge(x)),
    ("Session.filter(entity)", "entity", lambda r, x: r.session.filter(x)),
    ("Session.filter(order_by=)", "order_by", lambda r, x: r.session.filter(Item, order_by=x)),
    ("Session.filter(limit=)", "limit", lambda r, x: r.session.filter(Item, limit=x)),
    ("Session.filter(load=)", "loads", lambda r, x: r.session.filter(Item, load=x)),
    ("Session.filter(field=)", "column_value", lambda r, x: r.session.filter(Item, name=x)),
    ("Session.get(entity)", "entity", lambda r, x: r.session.get(x, 1)),
    ("Session.get(ident)", "ident", lambda r, x: r.session.get(Item, x)),
    ("Session.get(populate_existing, entity)", "entity", lambda r, x: r.session.get(x, 1, populate_existing=True)),
    ("Session.get(populate_existing, ident)", "ident", lambda r, x: r.session.get(Item, x, populate_existing=True)),
    ("Session.get_bind", "entity", lambda r, x: r.session.get_bind(x)),
    ("Session.get_one(entity)", "entity", lambda r, x: r.session.get_one(x, 1)),
    ("Session.get_one(ident)", "ident", lambda r, x: r.session.get_one(Item, x)),
    ("Session.get_one(populate_existing=)", "ident", lambda r, x: r.session.get_one(Item, x, populate_existing=True)),
    ("Session.identity_key(entity)", "entity", lambda r, x: r.session.identity_key(x, 1)),
    ("Session.identity_key(ident)", "ident", lambda r, x: r.session.identity_key(Item, x)),
    ("Session.identity_key(instance=)", "obj", lambda r, x: r.session.identity_key(instance=x)),
    ("Session.is_modified", "obj", lambda r, x: r.session.is_modified(x)),
    ("Session.is_expired(obj)", "obj", lambda r, x: r.session.is_expired(x)),
    ("Session.is_expired(field)", "field_or_none", lambda r, x: r.session.is_expired(r.obj, x)),
    ("Session.load_related(objects)", "objects", lambda r, x: r.session.load_related(x, "children")),
    ("Session.load_related(name)", "relationship", lambda r, x: r.session.load_related([r.obj], x)),
    ("Session.mark_dirty", "obj", lambda r, x: r.session.mark_dirty(x)),
    ("Session.merge", "obj", lambda r, x: r.session.merge(x)),
    ("Session.object_session", "obj", lambda r, x: r.session.object_session(x)),
    ("Session.original_value(obj)", "obj", lambda r, x: r.session.original_value(x, "name")),
    ("Session.original_value(field)", "field", lambda r, x: r.session.original_value(r.obj, x)),
    ("Session.refresh(obj)", "obj", lambda r, x: r.session.refresh(x)),
    ("Session.refresh(fields)", "fields", lambda r, x: r.session.refresh(r.obj, x)),
    ("Session.save_or_update", "obj", lambda r, x: r.session.save_or_update(x)),
    ("Session.savepoint", "name_or_none", lambda r, x: r.session.savepoint(x)),
    ("Session.select", "entity", lambda r, x: r.session.select(x)),
    ("Session.select.where", "condition", lambda r, x: r.session.select(Item).where(x).all()),
    ("Session.select.where(==)", "column_value", lambda r, x: r.session.select(Item).where(Item.name == x).all()),
    ("Session.select.where(>=)", "column_value", lambda r, x: r.session.select(Item).where(Item.name >= x).count()),
    ("Session.select.where(in_)", "values", lambda r, x: r.session.select(Item).where(Item.name.in_(x)).all()),
    ("Session.select.where(like)", "pattern", lambda r, x: r.session.select(Item).where(Item.name.like(x)).first()),
    ("Session.select.where(like escape=)", "escape",
     lambda r, x: r.session.select(Item).where(Item.name.like("a!%", escape=x)).count()),
    ("Session.select.order_by", "order_by", lambda r, x: r.session.select(Item).order_by(x).all()),
    ("Session.select.limit", "limit", lambda r, x: r.session.select(Item).limit(x).all()),
    ("Session.select.offset", "limit", lambda r, x: r.session.select(Item).offset(x).exists()),
    ("Session.scalar(sql)", "sql", lambda r, x: r.session.scalar(x)),
    ("Session.scalar(params)", "params", lambda r, x: r.session.scalar("SELECT ?", x)),
    ("Session.scalars(sql)", "sql", lambda r, x: r.session.scalars(x)),
    ("Session.update", "obj", lambda r, x: r.session.update(x)),
    ("Session.upsert", "obj", lambda r, x: r.session.upsert(x)),
    ("obj in Session", "obj", lambda r, x: x in r.session),
    ("Session(connection)", "connection", lambda r, x: uow.Session(x)),
    ("Session(begin_mode=)", "mode", lambda r, x: uow.Session(r.conn, begin_mode=x)),
    ("Session(busy_timeout=)", "seconds", lambda r, x: uow.Session(r.conn, busy_timeout=x)),
    ("uow.state_of", "obj", lambda r, x: uow.state_of(x)),
    ("uow.object_session", "obj", lambda r, x: uow.object_session(x)),
    ("uow.loaded_values", "obj", lambda r, x: uow.loaded_values(x)),
    ("uow.make_transient", "obj", lambda r, x: uow.make_transient(x)),
    ("uow.make_transient_to_detached", "obj", lambda r, x: uow.make_transient_to_detached(x)),
    ("uow.identity_key(entity)", "entity", lambda r, x: uow.identity_key(x, 1)),
    ("uow.identity_key(ident)", "ident", lambda r, x: uow.identity_key(Item, x)),
    ("uow.identity_key(instance=)", "obj", lambda r, x: uow.identity_key(instance=x)),
    ("uow.mapper_of", "entity_or_obj", lambda r, x: uow.mapper_of(x)),
    ("uow.class_mapping", "entity_or_obj", lambda r, x: uow.class_mapping(x)),
    ("uow.create_table_sql", "entity", lambda r, x: uow.create_table_sql(x)),
    ("uow.create_all(connection)", "connection", lambda r, x: uow.create_all(x, [Item])),
    ("uow.create_all(classes)", "classes", lambda r, x: uow.create_all(r.conn, x)),
    ("uow.connect(database)", "path", lambda r, x: uow.connect(x)),
    ("uow.connect(timeout=)", "seconds", lambda r, x: uow.connect(":memory:", timeout=x)),
    ("uow.connect(journal_mode=)", "mode", lambda r, x: uow.connect(":memory:", journal_mode=x)),
    ("uow.transaction(connection)", "connection", lambda r, x: uow.transaction(x)),
    ("uow.transaction(mode)", "mode", lambda r, x: uow.transaction(r.conn, x)),
    ("uow.listen(target)", "target", lambda r, x: uow.listen(x, "before_flush", noop)),
    ("uow.listen(name)", "event", lambda r, x: uow.listen(r.session, x, noop)),
    ("uow.listen(listener)", "listener", lambda r, x: uow.listen(r.session, "before_flush", x)),
    ("uow.remove_listener(target)", "target", lambda r, x: uow.remove_listener(x, "before_flush", noop)),
    ("uow.remove_listener(name)", "event", lambda r, x: uow.remove_listener(r.session, x, noop)),
]


class Run:
    def __init__(self):
        self.conn = fresh_db()
        self.session = uow.Session(self.conn)
        self.obj = self.session.get(Item, 1)
        self.session.commit()
        self.obj.name = "changed, not flushed"
        self.pending = Item(tag="pending", name="pending")
        self.session.add(self.pending)


def _concrete(bad, run):
    if isinstance(bad, Slot):
        return bad.make(run)
    if type(bad) is list:
        return [_concrete(item, run) for item in bad]
    return bad


def _names_for(bad):
    """What a message may say to name the bad value."""
    if type(bad) is list:
        return set().union(*(_names_for(item) for item in bad)) | {repr(bad)}
    if isinstance(bad, type):
        return {bad.__name__}
    return {repr(bad), type(bad).__name__, str(bad), shown(bad)}  # shown(): how messages shorten long values


def _cases():
    for label, kind, call in CALLS:
        for bad in BAD[kind]:
            shown = bad.__name__ if isinstance(bad, type) else repr(bad)
            yield pytest.param(label, kind, call, bad, id=f"{label}-{shown}")


TALLY = collections.Counter()  # entry point -> bad inputs tried, for the report


@pytest.mark.parametrize("label, kind, call, bad", list(_cases()))
def test_bad_input_is_refused_by_a_uow_error_before_anything_changes(label, kind, call, bad, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a path argument that is wrongly accepted must not litter the checkout
    run = Run()
    session = run.session
    try:
        value = _concrete(bad, run)
        objects = [run.obj, run.pending] + [item for item in (value if type(value) is list else [value])
                                            if isinstance(item, Item)]
        before = session_snapshot(session, objects)
        rows = db_rows(run.conn)
        TALLY[label] += 1
        with uow.capture_sql() as statements:
            try:
                result = call(run, value)
            except UowError as error:
                refused = error
            except Exception as error:  # the defect this test exists to find
                pytest.fail(f"{label} given {bad!r} raised a raw {type(error).__name__}: {error}")
            else:
                if isinstance(result, uow.Session):
                    result.close()
                pytest.fail(f"{label} given {bad!r} was accepted (returned {result!r})")
        message = str(refused)
        assert any(name in message for name in _names_for(value)), (
            f"{label} given {bad!r}: the message does not name it: {message}")
        assert [statement.sql for statement in statements] == [], f"{label} given {bad!r} ran SQL before refusing"
        assert session_snapshot(session, objects) == before, f"{label} given {bad!r} changed the session"
        assert db_rows(run.conn) == rows, f"{label} given {bad!r} changed the database"
    finally:
        run.conn.close()


def test_every_public_entry_point_is_in_the_table():
    """A method added to Session or a function added to uow must be listed (or named here as
    taking no argument that could be wrong)."""
    listed = {label.split("(")[0].split(" ")[0].split("[")[0] for label, _, _ in CALLS}
    listed.add("Session.__contains__")
    no_arguments = {"begin_nested", "close", "commit", "connection", "deleted", "dirty", "dry_run", "expire_all",
                    "expunge_all", "flush", "get_nested_transaction", "get_transaction", "identity_map",
                    "in_nested_transaction", "in_transaction", "invalidate", "is_active", "listeners", "new",
                    "no_autoflush", "plan", "prepare", "reset", "rollback", "stats"}
    # mutmut (.ci/mutation) adds its trampoline copies of every method to the class as "xǁ...__mutmut_N"
    # attributes; they are not entry points.
    public = {f"Session.{name}" for name in dir(uow.Session)
              if not name.startswith("_") and name not in no_arguments and "__mutmut_" not in name}
    functions = {f"uow.{name}" for name in uow.__all__ if callable(getattr(uow, name))
                 and not isinstance(getattr(uow, name), type)}
    functions -= {"uow.capture_sql", "uow.close_all_sessions"}  # take no argument
    missing = (public | functions) - listed - {"uow.Session", "uow.listen", "uow.remove_listener"}
    assert not missing, f"entry points with no bad-input cases: {sorted(missing)}"
