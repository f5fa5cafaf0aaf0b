"""Shared pieces of the reliability tests: a schema, real-sqlite3 fault injectors, and fingerprints.

Every fault here is a real SQLite mechanism: the authorizer denies a
statement when it is prepared, the progress handler interrupts it while it runs (SQLite then rolls
the whole transaction back), a trigger raises, a UNIQUE or FOREIGN KEY constraint fails, the disk
fills up (``PRAGMA max_page_count``).  The only Python-level injector is :class:`FaultConnection`,
a ``sqlite3.Connection`` subclass that numbers the statements uow sends and can raise an exception
before or after statement *k* (a stand-in for a signal arriving between two statements).

What sqlite3 does with exceptions raised inside its callbacks (checked on CPython 3.11):

* authorizer callback raises (even KeyboardInterrupt)  -> swallowed; the statement fails with
  ``DatabaseError: not authorized`` (SQLITE_AUTH);
* progress handler raises                              -> swallowed; ``OperationalError: interrupted``,
  and if the statement was a write, SQLite rolls the whole transaction back (an interrupted
  SELECT, RELEASE or COMMIT leaves it open);
* trace callback raises                                -> swallowed; the statement runs normally.

So none of them can deliver a KeyboardInterrupt to the caller; that is why the interrupt faults
are raised by the connection subclass instead.  Another surprise: with the module's statement
cache on, a repeated SQL text is not prepared again and the authorizer is never asked, so fault
connections are opened with ``cached_statements=0``.
"""

import os
import sqlite3

import uow
from uow import Column, Entity
from uow.errors import UowError


class RelBase(Entity, abstract=True):
    """The reliability tests' own registry, so their classes cannot clash with other suites'."""


class Item(RelBase, table="rel_items"):
    id: int = Column(primary_key=True)
    tag: str = Column(unique=True)
    name: str
    qty: int = 0
    note: str | None = None


class Code(RelBase, table="rel_codes"):
    """A natural text key."""

    code: str = Column(primary_key=True)
    tag: str = Column(unique=True)
    label: str


class Parent(RelBase, table="rel_parents"):
    id: int = Column(primary_key=True)
    tag: str = Column(unique=True)
    name: str


class Child(RelBase, table="rel_children"):
    id: int = Column(primary_key=True)
    tag: str = Column(unique=True)
    parent_id: int | None = Column(references=Parent)
    name: str


class Versioned(RelBase, table="rel_versioned"):
    id: int = Column(primary_key=True)
    tag: str = Column(unique=True)
    value: int
    version: int = Column(version=True)


class Bulk(RelBase, table="rel_bulk"):
    id: int = Column(primary_key=True)
    tag: str = Column(unique=True)
    n: int = 0


MODELS = [Item, Code, Parent, Child, Versioned, Bulk]
CORE_MODELS = [Item, Code, Parent, Child, Versioned]

# Rows that pin another table's row: a foreign key without ON UPDATE/DELETE actions, so deleting
# or re-keying a pinned row fails with "FOREIGN KEY constraint failed".  Not a uow entity.
PINS_SQL = """CREATE TABLE rel_pins (
    id INTEGER PRIMARY KEY,
    rel_items INTEGER REFERENCES rel_items (id),
    rel_codes TEXT REFERENCES rel_codes (code),
    rel_parents INTEGER REFERENCES rel_parents (id),
    rel_children INTEGER REFERENCES rel_children (id),
    rel_versioned INTEGER REFERENCES rel_versioned (id),
    rel_bulk INTEGER REFERENCES rel_bulk (id)
)"""

# A raw row that takes a given tag in each table (the UNIQUE conflict a planted write causes).
PLANT_ROW_SQL = {
    "rel_items": "INSERT INTO rel_items (tag, name, qty) VALUES (?, 'planted', 0)",
    # One value used twice: a subquery binds it once with a plain "?" (numbered "?1" placeholders
    # given a sequence are deprecated from Python 3.12).
    "rel_codes": "INSERT INTO rel_codes (code, tag, label) SELECT 'planted-' || t, t, 'planted' FROM (SELECT ? AS t)",
    "rel_parents": "INSERT INTO rel_parents (tag, name) VALUES (?, 'planted')",
    "rel_children": "INSERT INTO rel_children (tag, name) VALUES (?, 'planted')",
    "rel_versioned": "INSERT INTO rel_versioned (tag, value, version) VALUES (?, 0, 1)",
    "rel_bulk": "INSERT INTO rel_bulk (tag, n) VALUES (?, 0)",
}


def sqlite_cause(error):
    """The sqlite3 exception in an error's cause/context chain, or None."""
    seen = error
    while seen is not None:
        if isinstance(seen, sqlite3.Error):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def raw(conn, sql, params=()):
    """Run SQL on the connection without counting it or injecting anything (base-class execute)."""
    return sqlite3.Connection.execute(conn, sql, params)


# -- connections --------------------------------------------------------------------------------

class Fault:
    """Fail statement number ``k`` of the armed operation.

    ``kind`` is one of:
    ``deny``        the authorizer refuses it at prepare time (SQLITE_AUTH, transaction unaffected);
    ``interrupt``   the progress handler stops it (SQLITE_INTERRUPT; for a write, SQLite rolls back
                    the whole transaction);
    ``error``       a RuntimeError is raised just before it is sent;
    ``kbint``       a KeyboardInterrupt is raised just before it is sent;
    ``kbint_after`` a KeyboardInterrupt is raised just after it succeeded;
    ``error_after`` a RuntimeError is raised just after it succeeded.
    ``locked``      another connection holds an EXCLUSIVE lock on the file while it is sent, with a
                    busy timeout of 1 ms: SQLite's own "database is locked".  It fires only where
                    it can be arranged: the other connection cannot take that lock while this one
                    holds a lock of its own, and a statement that needs no lock succeeds.
    """

    # (``locked`` is not among the KINDS every flush statement is tried with: it cannot always fire.)
    KINDS = ("deny", "interrupt", "error", "kbint", "kbint_after", "error_after")

    def __init__(self, kind, k):
        assert kind in self.KINDS or kind == "locked", kind
        self.kind = kind
        self.k = k
        self.fired = False
        self.sql = None
        self.cursor = None

    def run(self, conn, sql, send):
        self.sql = sql
        if self.kind == "error":
            self.fired = True
            raise RuntimeError(f"injected before statement {self.k}: {sql}")
        if self.kind == "kbint":
            self.fired = True
            raise KeyboardInterrupt(f"injected before statement {self.k}: {sql}")
        if self.kind in ("kbint_after", "error_after"):
            # Keep the cursor, as the frame of a read interrupted half-way would: a SELECT or
            # RETURNING statement that was stepped but not finished stays active meanwhile.
            self.cursor = send()
            self.fired = True
            exception = KeyboardInterrupt if self.kind == "kbint_after" else RuntimeError
            raise exception(f"injected after statement {self.k}: {sql}")
        if self.kind == "locked":
            return self._run_locked(conn, send)
        if self.kind == "deny":
            def deny(*args):
                self.fired = True
                return sqlite3.SQLITE_DENY

            conn.set_authorizer(deny)
            try:
                return send()
            finally:
                conn.set_authorizer(None)

        def interrupt():
            self.fired = True
            return 1

        conn.set_progress_handler(interrupt, 1)
        try:
            return send()
        finally:
            conn.set_progress_handler(None, 0)

    def _run_locked(self, conn, send):
        path = raw(conn, "PRAGMA database_list").fetchone()[2]
        other = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            try:
                other.execute("BEGIN EXCLUSIVE")
            except sqlite3.OperationalError:
                return send()  # this connection holds a lock: not arrangeable here
            timeout = raw(conn, "PRAGMA busy_timeout").fetchone()[0]
            raw(conn, "PRAGMA busy_timeout = 1")
            try:
                return send()
            except sqlite3.OperationalError as error:
                self.fired = "locked" in str(error)
                raise
            finally:
                raw(conn, f"PRAGMA busy_timeout = {timeout}")
                other.execute("ROLLBACK")
        finally:
            other.close()


class FaultConnection(sqlite3.Connection):
    """A real sqlite3 connection that counts the statements sent while it is armed.

    uow's executor sends every statement through ``execute`` / ``executemany``, so numbering
    them here numbers exactly what a flush sends, transaction statements included.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.counting = False
        self.count = 0
        self.sent = []
        self.fault = None

    def arm(self, fault=None):
        self.counting = True
        self.count = 0
        self.sent = []
        self.fault = fault

    def disarm(self):
        if self.fault is not None:
            self.fault.cursor = None
        self.counting = False
        self.fault = None

    def _send(self, sql, send):
        if not self.counting:
            return send()
        self.count += 1
        self.sent.append(sql)
        fault = self.fault
        if fault is not None and self.count == fault.k:
            return fault.run(self, sql, send)
        return send()

    def execute(self, sql, params=()):
        return self._send(sql, lambda: super(FaultConnection, self).execute(sql, params))

    def executemany(self, sql, rows):
        rows = list(rows)
        return self._send(sql, lambda: super(FaultConnection, self).executemany(sql, rows))


def connect(path=":memory:", journal_mode=None):
    """A connection set up the way uow.connect() sets one up, but counting and fault-capable."""
    conn = sqlite3.connect(path, isolation_level=None, cached_statements=0, factory=FaultConnection)
    raw(conn, "PRAGMA foreign_keys = ON")
    if journal_mode is not None:
        mode = raw(conn, f"PRAGMA journal_mode = {journal_mode}").fetchone()[0]
        assert mode.upper() == journal_mode.upper(), mode
    return conn


def one_item_file(path):
    """Create a file database holding rel_items with one committed row, (1, 'item-1', 'one', 1)."""
    conn = uow.connect(path)
    uow.create_all(conn, [Item])
    conn.execute("INSERT INTO rel_items (id, tag, name, qty) VALUES (1, 'item-1', 'one', 1)")
    conn.close()
    return path


_TEMPLATE = []


def template():
    """An in-memory database with the schema and the seed rows, built once and copied per test."""
    if not _TEMPLATE:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        uow.create_all(conn, MODELS)
        conn.execute(PINS_SQL)
        conn.execute("BEGIN")
        for i in range(1, 7):
            conn.execute("INSERT INTO rel_items (id, tag, name, qty) VALUES (?, ?, ?, ?)",
                         (i, f"item-{i}", f"item {i}", i))
        for code in ("aa", "bb", "cc"):
            conn.execute("INSERT INTO rel_codes (code, tag, label) VALUES (?, ?, ?)",
                         (code, f"code-{code}", code.upper()))
        for i in range(1, 4):
            conn.execute("INSERT INTO rel_parents (id, tag, name) VALUES (?, ?, ?)", (i, f"parent-{i}", f"p{i}"))
        for i in range(1, 7):
            conn.execute("INSERT INTO rel_children (id, tag, parent_id, name) VALUES (?, ?, ?, ?)",
                         (i, f"child-{i}", (i + 1) // 2, f"c{i}"))
        for i in range(1, 5):
            conn.execute("INSERT INTO rel_versioned (id, tag, value, version) VALUES (?, ?, ?, 1)",
                         (i, f"v-{i}", 10 * i))
        conn.execute("COMMIT")
        _TEMPLATE.append(conn)
    return _TEMPLATE[0]


def fresh_db(path=":memory:", journal_mode=None):
    """A fault-capable connection to a new database holding the template's schema and rows."""
    conn = connect(path)
    template().backup(conn)
    if journal_mode is not None:
        mode = raw(conn, f"PRAGMA journal_mode = {journal_mode}").fetchone()[0]
        assert mode.upper() == journal_mode.upper(), mode
    return conn


def check_fault_reached_caller(kind, error):
    """The fault a :class:`Fault` of ``kind`` injected reached the caller: a KeyboardInterrupt
    unchanged; a RuntimeError itself or as the cause of a uow error; SQLite's own error (``deny``,
    ``interrupt``, ``locked``) as sqlite3's or as the cause of a uow error."""
    if kind.startswith("kbint"):
        assert type(error) is KeyboardInterrupt and "injected" in str(error), (
            f"KeyboardInterrupt must reach the caller unchanged, got {type(error).__name__}: {error}")
        return
    if kind in ("deny", "interrupt", "locked"):
        cause = sqlite_cause(error)
        wanted = {"deny": "not authorized", "interrupt": "interrupted", "locked": "locked"}[kind]
        assert cause is not None and wanted in str(cause), (
            f"SQLite's {wanted!r} should reach the caller, got {type(error).__name__}: {error}")
        assert cause is error or isinstance(error, UowError), f"a non-uow error wraps it: {error!r}"
        return
    injected = error
    while injected is not None and not isinstance(injected, RuntimeError):
        injected = injected.__cause__
    assert injected is not None and "injected" in str(injected), (
        f"the injected RuntimeError should reach the caller (or be the cause of a uow error), "
        f"got {type(error).__name__}: {error}")
    assert injected is error or isinstance(error, UowError), f"a non-uow error wraps it: {error!r}"


# -- fingerprints -------------------------------------------------------------------------------

def integrity(conn):
    return [row[0] for row in raw(conn, "PRAGMA integrity_check").fetchall()]


def db_rows(conn):
    """Every table's rows ordered by primary key, read with raw SQL on the given connection."""
    tables = [row[0] for row in raw(
        conn, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    result = {}
    for table in tables:
        info = raw(conn, f'PRAGMA table_info("{table}")').fetchall()
        keys = [f'"{row[1]}"' for row in sorted(info, key=lambda row: row[5]) if row[5] > 0] or ["rowid"]
        result[table] = raw(conn, f'SELECT * FROM "{table}" ORDER BY {", ".join(keys)}').fetchall()
    return result


def assert_db(conn, expected, when):
    """The database passes integrity_check and holds exactly ``expected`` rows."""
    assert integrity(conn) == ["ok"], f"{when}: integrity_check failed"
    found = db_rows(conn)
    if found != expected:
        lines = [f"{when}: the database differs from the expected state"]
        for table in sorted(set(found) | set(expected)):
            have, want = found.get(table, []), expected.get(table, [])
            if have != want:
                extra = [row for row in have if row not in want][:5]
                missing = [row for row in want if row not in have][:5]
                lines.append(f"  {table}: {len(have)} rows (want {len(want)}); unexpected {extra}; missing {missing}")
        raise AssertionError("\n".join(lines))


def column_values(obj):
    """The object's column values as stored on it (no loading: an expired field is simply absent)."""
    names = type(obj).__mapper__.column_names
    return {name: obj.__dict__[name] for name in names if name in obj.__dict__}


def object_record(session, obj):
    status = uow.state_of(obj)
    mine = uow.object_session(obj) is session
    tracked = ()
    if mine and status is uow.ObjectState.PERSISTENT:
        names = type(obj).__mapper__.column_names
        tracked = (tuple(session.dirty_fields(obj)),
                   tuple((name, session.original_value(obj, name)) for name in names))
    return (type(obj).__name__, status, mine, column_values(obj), tracked, loaded_links(obj))


def loaded_links(obj):
    """What the object holds of its relationships (no loading): each cached reference's target and
    each loaded collection's members, by id, in order -- a failed read must not leave one changed."""
    mapper = type(obj).__mapper__
    values = obj.__dict__
    held = [(reference.name, id(values[reference.name])) for reference in mapper.references if reference.name in values]
    held += [(collection.name, tuple(map(id, values[collection.name])))
             for collection in mapper.collections if collection.name in values]
    return tuple(held)


def session_snapshot(session, objects=()):
    """Everything observable about a session, as comparable data: identity-map keys and the
    object ids they hold, new/dirty/deleted, and for every object its state, values, snapshot
    (original values) and loaded relationships -- for the identity map's objects and for ``objects``."""
    everything = {id(obj): obj for obj in objects}
    for obj in session.identity_map.values():
        everything[id(obj)] = obj
    for obj in session.new | session.deleted:
        everything[id(obj)] = obj
    return {
        "identity": sorted((repr(key), id(obj)) for key, obj in session.identity_map.items()),
        "new": sorted(map(id, session.new)),
        "dirty": sorted(map(id, session.dirty)),
        "deleted": sorted(map(id, session.deleted)),
        "objects": {key: object_record(session, obj) for key, obj in everything.items()},
    }


def diff_snapshots(before, after):
    """A short description of how two session snapshots differ ('' when equal)."""
    lines = []
    for part in ("identity", "new", "dirty", "deleted"):
        if before[part] != after[part]:
            gone = [x for x in before[part] if x not in after[part]][:4]
            came = [x for x in after[part] if x not in before[part]][:4]
            lines.append(f"  {part}: lost {gone}, gained {came}")
    for key in sorted(set(before["objects"]) | set(after["objects"])):
        was, now = before["objects"].get(key), after["objects"].get(key)
        if was != now:
            lines.append(f"  object {key}: was {was}\n{' ' * 13}now {now}")
            if len(lines) > 8:
                break
    return "\n".join(lines)


def assert_session(session, expected, objects, when):
    found = session_snapshot(session, objects)
    difference = diff_snapshots(expected, found)
    assert not difference, f"{when}: the session differs:\n{difference}"


def session_shape(session):
    """The session's content by identity key (for comparing two different runs): each key's
    state and values, read through the objects (so expired fields reload)."""
    shape = []
    for key, obj in session.identity_map.items():
        values = {name: getattr(obj, name) for name in type(obj).__mapper__.column_names}
        shape.append((repr(key), uow.state_of(obj).value, sorted(values.items())))
    return sorted(shape)


# -- Hypothesis settings ------------------------------------------------------------------------

HEAVY = bool(os.environ.get("UOW_RELIABILITY_HEAVY"))


def hypothesis_settings(examples):
    """Settings for a reliability property: the profile ``HYPOTHESIS_PROFILE`` names (see
    properties/profiles.py) with this property's own example count, ``examples[profile]``.

    An example here builds tables and sessions on real databases, so counts are far below the
    profiles' own; ``UOW_RELIABILITY_HEAVY=1`` multiplies them by 20 for a run by hand.
    """
    from hypothesis import HealthCheck, settings
    from hypothesis.errors import InvalidArgument

    profile = os.environ.get("HYPOTHESIS_PROFILE", "dev")
    try:
        parent = settings.get_profile(profile)
    except InvalidArgument:
        parent = None  # properties/profiles.py was not imported (this file run on its own)
    count = examples.get(profile, examples["dev"]) * (20 if HEAVY else 1)
    options = dict(max_examples=count, deadline=None, report_multiple_bugs=False,
                   suppress_health_check=list(HealthCheck))
    if profile in ("ci", "mutation"):
        options.update(derandomize=True, database=None)
    return settings(parent, **options)
