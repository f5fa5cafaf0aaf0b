"""A machine search for one class of defect: an operation that changes the session and then fails
while it reads, leaving the session half changed.

A delete() marks its object and then reads the children its cascade must delete or unlink; a
refresh() applies one row and then reads the next object's; a merge() copies values and then loads
the next object; a query with ``load=[...]`` fills one relationship and then reads the next.  A
read can fail for reasons that have nothing to do with the program: another connection holds the
lock past the busy timeout, the statement is interrupted, the user presses Ctrl-C.  Such a failure
must leave the session exactly as it was before the call (or the call must say what it left).

For each operation below, a clean run numbers the N statements it sends (transaction statements
included) and records what it returns, the session it leaves (by identity key: states, values,
snapshots, marks, loaded relationships) and, after a commit, the rows.  Then for k = 1..N and each
fault kind -- a RuntimeError or a KeyboardInterrupt just before statement k, SQLite interrupting
it, and a real "database is locked" (another connection holding an EXCLUSIVE lock while the busy
timeout is 1 ms, where that can be arranged: see ``harness.Fault``) -- a fresh run checks:

* the fault reached the caller (as itself, or as the cause of a uow error);
* the session is exactly as before the call (``harness.session_snapshot``: identity map,
  new/dirty/deleted, every object's state, values, snapshot and loaded relationships);
* the database, read from a second connection, is as before;
* the same call, made again on that session, returns what the clean run returned and leaves the
  session it left, and a commit then writes the rows the clean run's commit wrote.

In CI every kind runs on a rollback-journal file and the RuntimeError also in memory; for every
kind in both, and SQLite's authorizer refusing the statement too, set ``UOW_RELIABILITY_HEAVY=1``::

    UOW_RELIABILITY_HEAVY=1 PYTHONPATH=$PWD python -m pytest -q -p no:cacheprovider \\
        tests/reliability/test_fault_in_read.py
"""

import collections
import sqlite3

import pytest

import uow
from uow import Collection, Column, Entity, Reference

from .harness import (HEAVY, Fault, assert_session, check_fault_reached_caller, connect, db_rows, raw,
                      session_snapshot)


class ReadBase(Entity, abstract=True):
    """This module's own registry: three levels of delete cascade, and unlinking collections."""


class Shelf(ReadBase, table="rf_shelves"):
    id: int = Column(primary_key=True)
    name: str
    boxes = Collection("Box", "shelf", cascade="all")  # deleted with the shelf
    labels = Collection("Label", "shelf")              # unlinked when the shelf is deleted


class Box(ReadBase, table="rf_boxes"):
    id: int = Column(primary_key=True)
    name: str
    shelf_id: int = Column(references="Shelf")
    shelf = Reference("shelf_id")
    gadgets = Collection("Gadget", "box", cascade="all")
    tags = Collection("Tag", "box")


class Gadget(ReadBase, table="rf_gadgets"):
    id: int = Column(primary_key=True)
    name: str
    box_id: int = Column(references="Box")
    box = Reference("box_id")


class Label(ReadBase, table="rf_labels"):
    id: int = Column(primary_key=True)
    name: str
    shelf_id: int | None = Column(references="Shelf")
    shelf = Reference("shelf_id")


class Tag(ReadBase, table="rf_tags"):
    id: int = Column(primary_key=True)
    name: str
    box_id: int | None = Column(references="Box")
    box = Reference("box_id")


MODELS = [Shelf, Box, Gadget, Label, Tag]
SEED = {
    Shelf: [(1, "s1"), (2, "s2")],
    Box: [(1, "b1", 1), (2, "b2", 1), (3, "b3", 2)],
    Gadget: [(1, "g1", 1), (2, "g2", 1), (3, "g3", 2), (4, "g4", 3)],
    Label: [(1, "l1", 1), (2, "l2", 1), (3, "l3", 2)],
    Tag: [(1, "t1", 1), (2, "t2", 1), (3, "t3", 2)],
}
_TEMPLATE = []


def _template():
    if not _TEMPLATE:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        uow.create_all(conn, MODELS)
        for cls, rows in SEED.items():
            marks = ", ".join("?" * len(rows[0]))
            conn.executemany(f"INSERT INTO {cls.__mapper__.table} VALUES ({marks})", rows)
        _TEMPLATE.append(conn)
    return _TEMPLATE[0]


def start(path):
    """A session on a copy of the seed database that holds every row and has committed."""
    conn = connect(path)
    _template().backup(conn)
    session = uow.Session(conn)
    held = {"conn": conn}  # (the connection, for a prepare that writes behind the session's back)
    for cls in MODELS:
        held.update(((cls, obj.id), obj) for obj in session.all(cls))
    session.commit()
    return conn, session, held


# -- the operations: (prepare, call) -- prepare runs unwatched, call is what the faults hit --------

def _loaded_family(session, held):
    """shelf 1's boxes and labels and box 1's gadgets loaded, then committed (nothing left open)."""
    shelf = held[Shelf, 1]
    list(shelf.boxes), list(shelf.labels), list(held[Box, 1].gadgets)
    session.commit()


def _changed_family(session, held):
    """:func:`_loaded_family`, then unflushed changes to shelf 1, boxes 1 and 2 and gadget 1."""
    _loaded_family(session, held)
    for obj in (held[Shelf, 1], held[Box, 1], held[Box, 2], held[Gadget, 1]):
        obj.name = "changed"


def _renamed_elsewhere(session, held):
    """Shelf 1's row renamed behind the session's back (with_for_update then reads it)."""
    raw(held["conn"], "UPDATE rf_shelves SET name = 'elsewhere' WHERE id = 1")


def _detached_graph(session, held):
    """shelf 1 with its boxes and their gadgets loaded, expunged (the cascade takes them), renamed."""
    _loaded_family(session, held)
    session.expunge(held[Shelf, 1])
    held[Shelf, 1].name = "s1 away"
    held[Box, 2].name = "b2 away"


def _nothing(session, held):
    pass


def _merged_copy():
    return Shelf(id=1, name="s1 merged", boxes=[Box(id=1, name="b1 merged", shelf_id=1),
                                                Box(id=2, name="b2 merged", shelf_id=1)])


OPERATIONS = {
    # delete() over three levels: boxes and their gadgets deleted, labels and tags unlinked.
    "delete_shelf": (_nothing, lambda session, held: session.delete(held[Shelf, 1])),
    "delete_shelf_loaded": (_loaded_family, lambda session, held: session.delete(held[Shelf, 1])),
    "delete_box": (_nothing, lambda session, held: session.delete(held[Box, 1])),
    # merge() of a copy whose boxes (one not held) the merge cascade merges too.
    "merge_cascade": (lambda session, held: session.expunge(held[Box, 2]),
                      lambda session, held: session.merge(_merged_copy())),
    # refresh() of shelf 1, whose refresh cascade reaches its loaded boxes and box 1's gadgets.
    "refresh_cascade": (_changed_family, lambda session, held: session.refresh(held[Shelf, 1])),
    "get_populate_existing": (_changed_family, lambda session, held: session.get(Shelf, 1, populate_existing=True)),
    "expire_then_read": (lambda session, held: session.expire(held[Box, 1]), lambda session, held: held[Box, 1].name),
    "lazy_reference": (
        lambda session, held: (session.expunge_all(), held.update(gadget=session.get(Gadget, 1)), session.commit()),
        lambda session, held: held["gadget"].box),
    "lazy_collection": (_nothing, lambda session, held: list(held[Shelf, 1].labels)),
    "load_related": (_nothing, lambda session, held: session.load_related([held[Shelf, 1], held[Shelf, 2]], "boxes")),
    "eager_query": (_nothing, lambda session, held: session.filter(Shelf, load=["boxes", "labels"])),
    "get_for_update": (_renamed_elsewhere, lambda session, held: session.get(Shelf, 1, with_for_update=True)),
    "is_modified_collections": (
        lambda session, held: session.add(Box(id=9, name="new", shelf_id=2)),
        lambda session, held: session.is_modified(held[Shelf, 2], include_collections=True)),
    "add_detached_graph": (_detached_graph, lambda session, held: session.add(held[Shelf, 1])),
}
SENDS_NOTHING = {"is_modified_collections", "add_detached_graph"}  # (their clean run asserts it)

# Defects this search found that are not fixed yet, by (operation, statement): each case still
# fails its session check (asserted: when one is fixed, its case fails until the entry goes).
# merge() copies each object's values as it reaches it and loads the next one after (box 2, then
# the shelf's old boxes): a read that fails leaves the first ones merged (Merger.merge documents it
# for a StaleDataError).  Fix: read every row and collection the merge needs first, and take back
# what that read loaded if it fails.  A delete() whose cascade fails after it unlinked box 1's tags
# takes the unlink back by setting tag.box = box (Lifecycle.take_back_delete): the values are back,
# but the tag now caches a reference it did not hold.
MERGE = "merge() leaves what it merged before a read that failed"
TAKE_BACK = "delete()'s take-back re-links an unlinked child by setting its reference, which it then caches"
KNOWN = {**{("merge_cascade", k): MERGE for k in (1, 2, 3)},
         **{(name, k): TAKE_BACK for name in ("delete_shelf", "delete_shelf_loaded") for k in (5, 6, 7)}}


# -- fingerprints that compare two runs (by identity key, not by object id) ------------------------

def _name(obj):
    return f"{type(obj).__name__}({obj.__dict__.get('id')})"


def _objects(session, held):
    found = {id(obj): obj for obj in held.values() if isinstance(obj, Entity)}
    for obj in [*session.identity_map.values(), *session.new, *session.deleted]:
        found[id(obj)] = obj
    return list(found.values())


def shape(session, held, result):
    """What the call returned and the session it left, with every object named by class and key."""
    objects = _objects(session, held)
    names = {id(obj): _name(obj) for obj in objects}

    def named(ids):
        return tuple(names.get(i, "?") for i in ids) if isinstance(ids, tuple) else names.get(ids, "?")

    snapshot = session_snapshot(session, objects)
    records = {names[key]: record[:-1] + (tuple((link, named(ids)) for link, ids in record[-1]),)
               for key, record in snapshot["objects"].items()}
    sets = {part: sorted(names[i] for i in snapshot[part]) for part in ("new", "dirty", "deleted")}
    if isinstance(result, Entity):
        result = _name(result)
    elif isinstance(result, list):
        result = [_name(item) for item in result]
    return result, sorted(names[i] for _, i in snapshot["identity"]), sets, records


def _rows(conn, path):
    """The rows a second connection reads (the session's own, for an in-memory database)."""
    if path == ":memory:":
        return db_rows(conn)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        return db_rows(other)
    finally:
        other.close()


_BASELINES = {}


def baseline(name, scratch):
    """(statements the call sends, what it returns and leaves, rows before, rows after a commit)."""
    if name not in _BASELINES:
        path = f"{scratch}/baseline-{name}.db"
        conn, session, held = start(path)
        prepare, call = OPERATIONS[name]
        prepare(session, held)
        before = _rows(conn, path)
        conn.arm()
        result = call(session, held)
        sent = list(conn.sent)
        conn.disarm()
        left = shape(session, held, result)
        session.commit()
        _BASELINES[name] = (sent, left, before, _rows(conn, path))
        conn.close()
    return _BASELINES[name]


FILE_KINDS = ("error", "kbint", "interrupt", "locked") + (("deny",) if HEAVY else ())
MEMORY_KINDS = ("error", "kbint", "interrupt", "deny") if HEAVY else ("error",)


def _cases():
    import tempfile

    scratch = tempfile.mkdtemp(prefix="uow-in-read-")
    for name in OPERATIONS:
        try:
            sent = baseline(name, scratch)[0]
        except Exception:  # test_clean_run reports it
            continue
        for where, kinds in (("file", FILE_KINDS), ("memory", MEMORY_KINDS)):
            for kind in kinds:
                for k in range(1, len(sent) + 1):
                    verb = sent[k - 1].split()[0]
                    yield pytest.param(name, where, kind, k, id=f"{name}-{where}-{kind}-{k}-{verb}")


CASES = list(_cases())
TALLY = collections.Counter()  # faults per (kind, operation, outcome), for the report


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_clean_run(name, tmp_path):
    """Each call runs cleanly; those that read send their SELECTs (a call that sends nothing has no
    read to fail, and is listed as such)."""
    sent = baseline(name, str(tmp_path))[0]
    assert bool(sent) != (name in SENDS_NOTHING), sent
    assert all(sql.split()[0] in ("BEGIN", "SELECT", "UPDATE") for sql in sent), sent


@pytest.mark.parametrize("name, where, kind, k", CASES)
def test_fault_in_read(name, where, kind, k, tmp_path):
    sent, clean, last_commit, committed = baseline(name, str(tmp_path))
    path = ":memory:" if where == "memory" else str(tmp_path / "case.db")
    conn, session, held = start(path)
    try:
        prepare, call = OPERATIONS[name]
        prepare(session, held)
        objects = _objects(session, held)
        before = session_snapshot(session, objects)
        fault = Fault(kind, k)
        conn.arm(fault)
        error = None
        try:
            call(session, held)
        except BaseException as caught:  # the KeyboardInterrupt is the point
            error = caught
        finally:
            conn.disarm()
        if not fault.fired:
            # SQLite's faults need something to stop: a statement that takes no lock is not
            # locked out, and one with nothing to step is not interrupted.  It ran: so must the call.
            assert kind in ("interrupt", "locked") and error is None, (fault.fired, error)
            TALLY[(kind, "not arranged")] += 1
            return
        assert fault.sql == sent[k - 1], f"statement {k} differs from the clean run's: {fault.sql!r}"
        TALLY[(kind, fault.sql.split()[0])] += 1
        assert error is not None, "the call swallowed the fault"
        check_fault_reached_caller(kind, error)
        if (name, k) in KNOWN:
            with pytest.raises(AssertionError, match="the session differs"):
                assert_session(session, before, objects, "")
            pytest.xfail(KNOWN[name, k])
        assert_session(session, before, objects, f"after {kind} at statement {k} ({fault.sql})")
        assert _rows(conn, path) == last_commit, "a failed read changed the database"

        result = call(session, held)
        assert shape(session, held, result) == clean, "the call made again left another session than the clean run"
        session.commit()
        assert _rows(conn, path) == committed, "the call made again committed something else"
    finally:
        conn.close()
