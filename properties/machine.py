"""The conformance machine: random programs against a unit of work, checked against the oracle.

Each rule runs one operation twice: first on the oracle (``oracle.Model``), which predicts a
result or an error kind, then on the implementation through its adapter, which must do exactly
that.  After every step one invariant compares everything observable: the identity map, each
object's state and loaded values, ``session.new/dirty/deleted``, and every table's rows, read
through a back door (raw SQL on the implementation's connection, and a second connection that
sees only committed rows).

Design points:

* Object handles flow through the ``objects`` Bundle and are never consumed: a rollback can
  bring a deleted object back, and every operation on every handle has a predicted outcome.
  Rules that cannot run in the current state are switched off by preconditions, never by an
  early return.  Handles are drawn from the bundle's values by ``st.runner()`` so that a
  capability can rule out a combination (say, delete() of a deleted object in SQLAlchemy);
  they still print under their bundle names (``objects_3``).
* flush, commit and rollback are one rule with a drawn action, and the savepoint moves are one
  rule, so zero-argument rules do not crowd out the others.
* The schema is drawn in ``setup``; each example gets a fresh temporary database file (WAL, so
  the committed-rows reader never blocks the writer), removed in ``teardown``.

:func:`build_machine` makes a named subclass per implementation (``UowConformance``,
``SQLAlchemyConformance``), so a failure prints as a short program starting with
``state = UowConformance()``.
"""

import collections
import functools
import gc
import itertools
import os
import re
import sqlite3
import sys
import tempfile
import weakref

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, precondition

from . import conditions
from .oracle import DELETED, DETACHED, IN_SESSION, PENDING, PERSISTENT, TRANSIENT, Model, Refused
from .program import event, initialize, note, offered, rule
from .schemas import NAMES, SHAPES, Schema, from_database, live

TEXTS = ("ann", "bob", "cy")
# Values that are equal in Python but not the same (1 == True == 1.0; Decimal("1.1") ==
# Decimal("1.10")), in the stored form the oracle keeps (see schemas.stored).
DATA_VALUES = (None, '{"n":1}', '{"n":true}', '{"n":1.0}', '{"n":[1]}', '{"n":{"m":1}}', '{"n":{"m":true}}')
PRICE_VALUES = (None, "1.1", "1.10", "2")
SCALARS = (1, True, 1.0, "s")  # what an in-place change of a JSON value writes
FIELD_LISTS = (("name",), ("note", "data"), ("code", "price"), ("name", "note", "code", "data", "price"))
MISSING_KEY = 0  # no generated or counted key is ever 0


class Handle:
    """One object under test: the implementation's object and the oracle's id for it.

    Its ``name`` is the one the printed program gives it: ``objects_3`` for the objects a rule
    returned to the bundle (Hypothesis's name), ``loaded_1`` for one the oracle loaded along a
    relationship, ``injected_0`` for the object of an injected failure.  Messages name it so too.
    """

    __slots__ = ("hid", "obj", "table", "in_bundle", "name", "collected")

    def __init__(self, hid, obj, table, in_bundle, name):
        self.hid = hid
        self.obj = obj
        self.table = table
        self.in_bundle = in_bundle
        self.name = name
        self.collected = False  # the program dropped it and the garbage collector freed it (forget)

    def __repr__(self):
        return self.name


def _from_machine(method_name):
    """A strategy drawing from what the running machine offers (its bundle handles, keys...)."""
    # The lambda's text is part of the strategy's description, from which Hypothesis derives the
    # programs a derandomized profile draws: it stays as it was, so that CI's programs do too.
    return offered(st.runner().flatmap(lambda machine: st.sampled_from(getattr(machine, method_name)())),
                   method_name)


def _handle_rule(operation):
    """``@rule(handle=...)`` drawing a bundle handle eligible for ``operation``, when there is one."""
    def decorate(function):
        strategy = st.runner().flatmap(lambda machine: st.sampled_from(machine.eligible(operation)))
        function = rule(handle=offered(strategy, "eligible", operation))(function)
        return precondition(lambda machine: machine.usable() and bool(machine.eligible(operation)))(function)
    return decorate


class ConformanceMachine(RuleBasedStateMachine):
    """The rules and the invariant; ``adapter_factory`` is set by :func:`build_machine`."""

    adapter_factory = None
    observer = None  # called with the set of events of each finished program (see report.py)
    objects = Bundle("objects")

    def __init__(self):
        super().__init__()
        self.adapter = type(self).adapter_factory()
        self.caps = self.adapter.capabilities
        self.model = None
        self.handles = []
        self.by_object = {}
        self.savepoints = []
        self.counter = itertools.count(1)
        self.reopened = False
        self.injections = 0
        self.races = 0
        self.seen = set()
        self.directory = None
        self.path = None
        self.connection = None
        self.reader = None
        self.writer = None
        self.autoflush = True
        self.program = []  # the steps run so far (see program.py)
        self.names = collections.Counter()  # handles named so far, by kind (see Handle)
        self.reserved_names = []  # during a replay: the names the step's handles had
        self.replayed = False  # a replay (program.py) is no program to count
        self.frozen = False  # gc.freeze() set the heap aside for this program (weak_identity_map)

    # -- setup and teardown ---------------------------------------------------------------

    @initialize(
        shape=st.runner().flatmap(lambda machine: st.sampled_from(machine.shapes())),
        names=st.permutations(NAMES).map(tuple),
        generated=st.runner().flatmap(lambda machine: machine.generated_keys()),
        unique=st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans()),
        seeded=st.integers(0, 3),
        autoflush=st.runner().flatmap(lambda machine: machine.autoflush_options()),
        versioned=st.runner().flatmap(lambda machine: machine.version_options()),
    )
    def setup(self, shape, names, generated, unique, seeded, autoflush=True, versioned=(False, False, False, False)):
        """Draw a schema, create it in a fresh database file, and commit ``seeded`` rows per table
        (so objects can be loaded even in a program that creates none); sessions are opened with
        the drawn ``autoflush`` option."""
        self._build(shape, names, generated, unique, seeded, autoflush, versioned)

    def _build(self, shape, names, generated, unique, seeded, autoflush=True, versioned=(False, False, False, False)):
        """What ``setup`` does; a layered machine's own ``setup`` draws more and calls this."""
        schema = Schema.build(shape, names, generated, unique, versioned)
        note(f"schema: {schema!r}")
        self._event(f"schema: {shape}")
        where = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.directory = tempfile.TemporaryDirectory(prefix="uow-properties-", dir=where)
        path = os.path.join(self.directory.name, "test.db")
        self.path = path
        if self.caps.owns_connection:
            # The session opens its own connection: this one only creates and seeds the file.
            self.connection = sqlite3.connect(path, isolation_level=None)
            self.connection.execute("PRAGMA foreign_keys = ON")
        else:
            self.connection = self.adapter.connect(path)
            self._require_foreign_keys(self.connection, "connect()")
        self.connection.execute("PRAGMA journal_mode = WAL")
        self.connection.execute("PRAGMA synchronous = OFF")
        for statement in schema.ddl():
            self.connection.execute(statement)
        rows = self._seed_rows(schema, seeded)
        for table in schema.tables:
            marks = ", ".join("?" for _ in table.columns)
            for row in rows[table.name].values():
                self.connection.execute(f"INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES ({marks})",
                                        [row[column] for column in table.columns])  # stored form is SQL's
        if self.caps.owns_connection:
            self.connection.close()
            self.connection = None
        self.reader = sqlite3.connect(path, isolation_level=None)
        self.writer = sqlite3.connect(path, isolation_level=None)  # the other connection that commits
        self.writer.execute("PRAGMA foreign_keys = ON")
        if any(table.versioned for table in schema.tables):
            self._event("schema: a table with a version column")
        self._setup_adapter(schema)
        self.autoflush = autoflush
        if self.caps.weak_identity_map:
            # The forget rule collects garbage often: everything alive before the program
            # (Hypothesis, the modules) is set aside, so that a collection walks only what the
            # program made (teardown gives it back to the collector).
            gc.freeze()
            self.frozen = True
        if not autoflush:
            self._event("session: autoflush=False")
        self.adapter.open_session(autoflush=autoflush)
        self.model = self._new_model(schema, rows, autoflush)

    def _setup_adapter(self, schema):
        """Hook for a layered machine: map the implementation's classes onto the schema."""
        self.adapter.setup(self._handed_to_adapter(), schema)

    def _handed_to_adapter(self):
        """What setup() gets: the connection connect() opened, or the database file's path where
        the session owns its connection (owns_connection)."""
        return self.path if self.caps.owns_connection else self.connection

    def _transaction_connection(self):
        """The connection that sees the rows of the session's open transaction: the session's
        own.  Where the session owns it, it is the one the adapter says the session holds now
        (its foreign keys checked), or, while it holds none, the committed-rows reader."""
        if not self.caps.owns_connection:
            return self.connection
        held = self.adapter.session_connection()
        if held is None:
            return self.reader
        self._require_foreign_keys(held, "the session's connection")
        return held

    def _require_foreign_keys(self, connection, what):
        if connection.execute("PRAGMA foreign_keys").fetchone()[0] != 1:
            raise AssertionError(f"{self.adapter.name}: {what} has PRAGMA foreign_keys off")

    def _new_model(self, schema, rows, autoflush):
        """Hook for a layered machine: the oracle for this schema and these committed rows."""
        return Model(schema, self.caps, rows, autoflush=autoflush)

    def _seed_rows(self, schema, count):
        """``count`` committed rows per table; row i references row i of each parent (i-1 for itself)."""
        rows = {}
        for table in schema.tables:
            rows[table.name] = {}
            for index in range(count):
                row = {"name": TEXTS[index % len(TEXTS)], "note": None, "code": f"c{next(self.counter)}",
                       "data": DATA_VALUES[1 + index % 2 * 4], "price": PRICE_VALUES[1]}
                if table.key == ("id",):
                    row["id"] = index + 1 if table.generated else next(self.counter)
                else:
                    row["k1"] = next(self.counter)
                    row["k2"] = "x"
                for column, parent in table.refs:
                    parent_keys = list(rows[parent])
                    target = index - 1 if parent == table.name else index
                    row[column] = parent_keys[target][0] if 0 <= target < len(parent_keys) else None
                if table.versioned:
                    row["version"] = 1
                rows[table.name][table.key_of(row)] = {column: row[column] for column in table.columns}
        return rows

    def shapes(self):
        """Schema shapes to draw (see reproducible_self_reference_flush)."""
        if self.caps.reproducible_self_reference_flush:
            return sorted(SHAPES)
        return sorted(shape for shape in SHAPES if shape != "self_ref")

    def autoflush_options(self):
        """Sessions with autoflush on, and off where the implementation allows (autoflush_can_be_off)."""
        if self.caps.autoflush_can_be_off:
            return st.booleans().map(lambda off: not off)
        return st.just(True)

    def version_options(self):
        """Which tables get a version column (none where the implementation has none: versions)."""
        if not self.caps.version_columns:
            return st.just((False, False, False, False))
        return st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans())

    def generated_keys(self):
        """Which tables get SQLite-generated keys (none, if the implementation says they are
        unpredictable after a failed flush: predictable_keys_after_failed_flush)."""
        if not self.caps.predictable_keys_after_failed_flush:
            return st.just((False, False, False, False))
        return st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans())

    def _event(self, name):
        """A Hypothesis event (for --hypothesis-show-statistics), also kept for the report."""
        event(name)
        self.seen.add(name)

    def teardown(self):
        if type(self).observer is not None and not self.replayed:
            # Called while the program's exception, if any, propagates: it tells a failed program.
            failed = sys.exc_info()[1]
            type(self).observer(self.seen, self.program, isinstance(failed, Exception))
        try:
            if self.model is not None:
                self.adapter.teardown()
        finally:
            for connection in (self.writer, self.reader, self.connection):
                if connection is not None:
                    connection.close()
            if self.directory is not None:
                self.directory.cleanup()
            if self.frozen:
                gc.unfreeze()

    # -- what rules may draw --------------------------------------------------------------

    def usable(self):
        """Set up, and not waiting for the rollback a failed flush demands."""
        return self.model is not None and not self.model.failed

    def bundle_handles(self):
        return [handle for handle in self.handles if handle.in_bundle]

    def live_handles(self):
        """Every handle but those whose object the garbage collector freed (see forget)."""
        return [handle for handle in self.handles if not handle.collected]

    def handles_to_edit(self):
        """Bundle handles, objects in the session first: Hypothesis favours early choices, and an
        assignment to a persistent object is what makes a flush write an UPDATE."""
        rank = {"persistent": 0, "pending": 1, "deleted": 2, "detached": 3, "transient": 4}
        return sorted(self.bundle_handles(), key=lambda handle: rank[self.model.objects[handle.hid].state])

    def eligible(self, operation):
        """Bundle handles ``operation`` may be drawn for (capabilities rule some out)."""
        if operation in ("add", "expunge", "expire") and not getattr(self.caps, operation):
            return []
        if operation == "refresh" and self.caps.refresh_steps is None:
            return []
        handles = self.bundle_handles()
        objects = self.model.objects
        if operation == "delete":
            if self.caps.delete_again is None:
                handles = [h for h in handles if objects[h.hid].state != DELETED]
            if self.caps.attach_without_row == "refuse_add":
                handles = [h for h in handles if not (objects[h.hid].state == DETACHED and objects[h.hid].gone)]
        if operation == "expunge" and not self.caps.inserts_in_add_order:
            handles = [h for h in handles if objects[h.hid].state != PENDING]
        if operation == "add" and not self.caps.rollback_forgets_delete_of_new_object:
            handles = [h for h in handles if not (objects[h.hid].state == TRANSIENT and objects[h.hid].gone)]
        if operation in ("add", "delete") and self.caps.pending_key_conflict is None:
            handles = [h for h in handles if not self._claims_taken_key(h)]
        if operation == "delete":
            rank = {"persistent": 0, "pending": 1}
            handles.sort(key=lambda handle: rank.get(objects[handle.hid].state, 2))
        return handles

    def _claims_taken_key(self, handle):
        """Adding this object would give one key to two objects in the session (see
        pending_key_conflict): a transient object's key is held, or a detached object's key is
        held, claimed by a pending object, or still owned by a deleted one."""
        model = self.model
        obj = model.objects[handle.hid]
        if obj.state == TRANSIENT:
            key = obj.table.key_of(obj.values)
            claimed = any(other.state == PENDING and other.table is obj.table and other.table.key_of(other.values) == key
                          for other in model.objects.values())
            return key is not None and (model.held(obj.table, key) is not None or claimed)
        if obj.state != DETACHED:
            return False
        for hid, other in model.objects.items():
            if hid == handle.hid or other.table is not obj.table or other.state not in IN_SESSION:
                continue
            if other.key == obj.key or other.table.key_of(other.values) == obj.key:
                return True
        return False

    def table_names(self):
        return [table.name for table in self.model.schema.tables]

    def reference_choices(self):
        """``(handle, column, target or None)``: a foreign key and the object it should point to."""
        choices = []
        handles = self.handles_to_edit()
        for handle in handles:
            for column, parent in handle.table.refs:
                choices.append((handle, column, None))
                for target in handles:
                    if target.table.name == parent and self.model.reference_key(target.hid) is not None:
                        choices.append((handle, column, target))
        return choices

    def key_choices(self):
        """``(table name, key)`` for rows, for keys objects hold, and one key no row has."""
        choices = []
        for table in self.model.schema.tables:
            keys = set(self.model.db[table.name])
            for obj in self.model.objects.values():
                if obj.table is table:
                    key = obj.key if obj.key is not None else table.key_of(obj.values)
                    if key is not None:
                        keys.add(key)
            choices.extend((table.name, key) for key in sorted(keys) if not self._loads_claimed_row(table, key))
        for table in self.model.schema.tables:
            choices.append((table.name, (MISSING_KEY,) if table.key == ("id",) else (MISSING_KEY, "x")))
        return choices

    def _loads_claimed_row(self, table, key):
        """Loading this row would give its key to a persistent object while a pending object claims
        it, the pair pending_key_conflict=None keeps out of the session: without autoflush a get()
        or query loads the row before the pending object's INSERT could fail on it."""
        model = self.model
        if self.caps.pending_key_conflict is not None or self.autoflush or key not in model.db[table.name]:
            return False
        if model.held(table, key) is not None:
            return False
        return any(obj.state == PENDING and obj.table is table and table.key_of(obj.values) == key
                   for obj in model.objects.values())

    def savepoint_actions(self):
        actions = []
        if self.savepoints:
            actions.extend(["rollback", "release"])
        if self.model.depth() < 3:
            actions.append("begin")
        return actions

    def failure_kinds(self):
        """Ways to make the next flush fail for sure, whatever else it writes (see inject_failure)."""
        kinds = []
        model = self.model
        held = model.identity()
        for table in model.schema.tables:
            if table.refs:
                kinds.append(("dangling_reference", table.name, None))
            for key, row in sorted(model.db[table.name].items()):
                hid = held.get((table.name, key))
                obj = model.objects[hid] if hid is not None else None
                if table.unique_code and row["code"] is not None:
                    untouched = obj is None or (not obj.marked and obj.values.get("code", row["code"]) == row["code"])
                    if untouched:
                        kinds.append(("duplicate_code", table.name, key))
                if not table.generated and obj is None:
                    kinds.append(("duplicate_key", table.name, key))
        kinds.sort(key=lambda kind: kind[0] == "dangling_reference")
        # A NULL name comes last: some implementations refuse it before any SQL (invalid_value).
        kinds.extend(("null_name", table.name, None) for table in model.schema.tables)
        return kinds

    # -- running one operation on both sides ----------------------------------------------

    def _attempt(self, label, predict, perform):
        """Predict with the oracle, then run the implementation; returns (refused, expected, actual).

        A disagreement cites the rule that predicted the error, or the rules the oracle applied
        (FAIL-6: an operation raises exactly what is predicted, and only then)."""
        try:
            expected = predict()
        except Refused as refusal:
            note(f"{label}: the oracle expects {refusal.kind} ({refusal.rule}: {refusal.reason})")
            self.model.cite(refusal.rule)
            self._event(f"expected error: {refusal.kind}")
            try:
                perform()
            except Exception as error:
                self._check_error(label, refusal, error)
                self.model.cite("FAIL-5")  # the invariant then checks that nothing changed
                if refusal.kind == "stale" and self.caps.flush_order == "rows" and \
                        not isinstance(error, self.adapter.errors["stale"]):
                    # (_check_error accepted the flush error, which a stale one specialises.)
                    note(f"{label}: {type(error).__name__} came first: no object was found stale")
                    self.model.stale_not_met()
                return True, refusal, None
            raise self._broken(refusal.rule, f"{label} succeeded; the oracle expected {refusal.kind}: {refusal.reason}")
        try:
            actual = perform()
        except Exception as error:
            raise self._broken("FAIL-6", f"{label} raised {type(error).__name__}: {error}; the oracle expected "
                                         f"success") from error
        return False, expected, actual

    def _check_error(self, label, refusal, error):
        """The error must be of the kind's classes, and no more specific class of another kind."""
        listed = [cls for classes in self.adapter.errors.values() for cls in classes if isinstance(error, cls)]
        expected = self.adapter.errors.get(refusal.kind, ())
        if listed:
            most_specific = max(listed, key=lambda cls: len(cls.__mro__))
            if any(issubclass(cls, most_specific) for cls in expected):
                return
        raise self._broken("FAIL-6", f"{label} raised {type(error).__name__}: {error}; the oracle expected "
                                     f"{refusal.kind} ({refusal.rule}: {refusal.reason})") from error

    def _broken(self, rule, message):
        """The failure of a step that broke ``rule`` (a RULES.rst id): the message names it, then
        every rule the oracle applied in the step (the report prints their text)."""
        return AssertionError(f"[{rule}] {message}{self._applied()}")

    def _applied(self):
        if not self.model.cited:
            return ""
        return "\n  rules the oracle applied in this step: " + ", ".join(self.model.cited)

    def _remember(self, hid, obj, table, kind="objects"):
        """A handle for the oracle's object ``hid``: ``kind`` "objects" for one the rule returns to
        the bundle, "loaded" for one the oracle loaded, "injected" for one no rule may draw."""
        if self.reserved_names:
            name = self.reserved_names.pop(0)  # a replay names it as the program did
        else:
            name = f"{kind}_{self.names[kind]}"
            self.names[kind] += 1
        handle = Handle(hid, obj, table, kind != "injected", name)
        self.program[-1].created.append(name)
        self.handles.append(handle)
        self.by_object[id(obj)] = handle
        return handle

    def _fresh_values(self, table, name, note_text, with_code):
        values = {"name": name, "note": note_text, "code": f"c{next(self.counter)}" if with_code else None,
                  "data": None, "price": None}
        if table.key == ("id",):
            values["id"] = None if table.generated else next(self.counter)
        else:
            values["k1"] = next(self.counter)
            values["k2"] = "x"
        for column, _ in table.refs:
            values[column] = None
        values["version"] = 1  # where there is one: what a new object's version starts at
        return {column: values[column] for column in table.columns}

    # -- rules: objects -------------------------------------------------------------------

    @precondition(lambda self: self.usable())
    @rule(target=objects, table=_from_machine("table_names"), name=st.sampled_from(TEXTS),
          note_text=st.sampled_from((None, "x")), with_code=st.booleans(), then_add=st.booleans())
    def create(self, table, name, note_text, with_code, then_add):
        """A new transient object (foreign keys empty; set_reference fills them), maybe added
        (where objects join the session on construction, it is pending at once)."""
        self._event("rule: create")
        schema_table = self.model.schema.table(table)
        values = self._fresh_values(schema_table, name, note_text, with_code)
        hid = self.model.create(schema_table, values)
        if self.caps.objects_join_on_construction:
            return self._construct(hid, schema_table, values)
        handle = self._remember(hid, self.adapter.new(schema_table, schema_table.live(values)), schema_table)
        if then_add:
            self._attempt(f"add({handle})", lambda: self.model.add(hid), lambda: self.adapter.add(handle.obj))
        return handle

    def _construct(self, hid, table, values, kind="objects"):
        """objects_join_on_construction: constructing the object is its add(), refusals included."""
        refused, _, obj = self._attempt(f"{table.name}({_short_values(values)})", lambda: self.model.add(hid),
                                        lambda: self.adapter.new(table, table.live(values)))
        if refused:
            del self.model.objects[hid]  # never made: the newest model object, so ids stay aligned
            return multiple()
        return self._remember(hid, obj, table, kind)

    @_handle_rule("add")
    def add(self, handle):
        self._event("rule: add")
        obj = self.model.objects[handle.hid]
        if obj.state == DETACHED:
            self._event("add of a detached object")
            if obj.gone:
                self._event("add of a detached object whose row was deleted")
        if obj.state == PERSISTENT and obj.marked:
            self._event("add of an object marked for deletion")
        self._attempt(f"add({handle})", lambda: self.model.add(handle.hid), lambda: self.adapter.add(handle.obj))

    @_handle_rule("delete")
    def delete(self, handle):
        self._event("rule: delete")
        obj = self.model.objects[handle.hid]
        if obj.state == DETACHED and obj.gone:
            self._event("delete of a detached object whose row was deleted")
        self._attempt(f"delete({handle})", lambda: self.model.delete(handle.hid),
                      lambda: self.adapter.delete(handle.obj))

    @_handle_rule("expunge")
    def expunge(self, handle):
        self._event("rule: expunge")
        self._attempt(f"expunge({handle})", lambda: self.model.expunge(handle.hid),
                      lambda: self.adapter.expunge(handle.obj))

    @_handle_rule("refresh")
    def refresh(self, handle):
        self._event("rule: refresh")
        self._attempt(f"refresh({handle})", lambda: self.model.refresh(handle.hid),
                      lambda: self.adapter.refresh(handle.obj))

    @_handle_rule("expire")
    def expire(self, handle):
        self._event("rule: expire")
        self._attempt(f"expire({handle})", lambda: self.model.expire(handle.hid),
                      lambda: self.adapter.expire(handle.obj))

    @_handle_rule("read")
    def read(self, handle):
        """Read every field as a user would; expired fields load."""
        self._event("rule: read")
        if len(self.model.objects[handle.hid].values) < len(handle.table.columns):
            self._event("read of an expired field")
        refused, expected, actual = self._attempt(
            f"read({handle})", lambda: self.model.read(handle.hid),
            lambda: handle.table.stored(self.adapter.read(handle.obj, handle.table.columns)))
        if not refused and actual != expected:
            raise self._broken("EXP-1", f"read({handle}) gave {actual}; the oracle expected {expected}")

    @precondition(lambda self: self.usable() and self.caps.expire_refresh_fields and bool(self.bundle_handles()))
    @rule(handle=_from_machine("handles_to_edit"), action=st.sampled_from(("expire", "refresh")),
          fields=st.sampled_from(FIELD_LISTS))
    def some_fields(self, handle, action, fields):
        """expire(obj, fields) or refresh(obj, fields): only those fields are forgotten or reloaded."""
        self._event(f"rule: some_fields {action}")
        label = f"{action}({handle}, {list(fields)})"
        if action == "expire":
            self._attempt(label, lambda: self.model.expire_fields(handle.hid, fields),
                          lambda: self.adapter.expire_fields(handle.obj, fields))
        else:
            self._attempt(label, lambda: self.model.refresh(handle.hid, fields),
                          lambda: self.adapter.refresh_fields(handle.obj, fields))

    def session_wide_actions(self):
        """expire_all and expunge_all, where the implementation has them (expunge_all only when
        the objects it would take out are ones expunge() may take: see inserts_in_add_order and
        close_detaches_deleted)."""
        actions = []
        if self.caps.expire_all:
            actions.append("expire_all")
        objects = self.model.objects.values()
        if self.caps.expunge_all and (self.caps.inserts_in_add_order or not self.model.new()) and (
                self.caps.close_detaches_deleted or all(obj.state != DELETED for obj in objects)):
            actions.append("expunge_all")
        return actions

    @precondition(lambda self: self.usable() and bool(self.session_wide_actions()))
    @rule(action=_from_machine("session_wide_actions"))
    def session_wide(self, action):
        """expire_all() or expunge_all()."""
        self._event(f"rule: session_wide {action}")
        self._attempt(f"{action}()", getattr(self.model, action), getattr(self.adapter, action))

    def merge_sources(self):
        """``(handle, load)``: transient or detached objects to merge (load=False: detached ones),
        except one whose key a pending object claims (two new rows for one key).  load=True is
        drawn for objects with every field loaded only: merging an expired object whose row is
        gone makes a pending object whose fields were never set, which the model does not tell
        apart from expired ones (a gap, not a rule)."""
        model = self.model
        claimed = {(obj.table.name, obj.table.key_of(obj.values)) for obj in model.objects.values()
                   if obj.state == PENDING}
        choices = []
        for handle in self.bundle_handles():
            obj = model.objects[handle.hid]
            if obj.state not in (TRANSIENT, DETACHED):
                continue
            key = obj.key if obj.key is not None else obj.table.key_of(obj.values)
            if key is not None and (obj.table.name, key) in claimed:
                continue
            if self._may_merge_loading(obj, key):
                choices.append((handle, True))
            # merge=False means there is no merge() at all, so neither kind is drawn.
            if self.caps.merge and self.caps.merge_without_load and obj.state == DETACHED:
                choices.append((handle, False))
        return choices

    def _may_merge_loading(self, obj, key):
        """Whether merge(obj, load=True) may be drawn for an object with this key (see merge_sources)."""
        model = self.model
        held = model.held(obj.table, key) if key is not None else None
        # Not drawn where merge() takes the held object as it is (merge_finds_like_get): with
        # its version expired, SQLAlchemy skips the version check and copies the source's
        # version onto it, which the model does not follow.
        unchecked = (not self.caps.merge_finds_like_get and obj.table.versioned and held is not None
                     and "version" not in model.objects[held].values)
        # Nor onto a held object whose version is expired and whose row is gone: the model does
        # not say what merge() finds then (a gap, not a rule).
        vanished = (obj.table.versioned and held is not None and "version" not in model.objects[held].values
                    and key not in model.db[obj.table.name])
        return self.caps.merge and len(obj.values) == len(obj.table.columns) and not unchecked and not vanished

    @precondition(lambda self: self.usable() and bool(self.merge_sources()))
    @rule(target=objects, pick=_from_machine("merge_sources"))
    def merge(self, pick):
        """merge(obj, load=...): the session's object for the row gets the values (see Model.merge)."""
        self._event("rule: merge")
        handle, load = pick
        return multiple(*self._merge(handle, load))

    def bare_merge_sources(self):
        """Handles merge(load=True) may take whose row exists, where merge(load=False), expire,
        expunge and queries exist (see merge_onto_bare)."""
        caps = self.caps
        if not (caps.merge_without_load and caps.expire and caps.expunge and caps.filter_by):
            return []
        model = self.model
        return [handle for handle, load in self.merge_sources() if load
                and model.objects[handle.hid].key in model.db[handle.table.name]]

    @precondition(lambda self: self.usable() and bool(self.bare_merge_sources()))
    @rule(target=objects, source=_from_machine("bare_merge_sources"))
    def merge_onto_bare(self, source):
        """merge(source, load=True) makes or finds the row's object; it is expired, expunged and
        merged back with load=False (held again with nothing but its key loaded); merge(source,
        load=True) then assigns every field without reading the row, and a query reads it: the
        row becomes the snapshot of fields assigned while expired.  One rule, because these six
        steps drawn apart almost never meet."""
        self._event("rule: merge_onto_bare")
        model = self.model
        table = source.table
        made = self._merge(source, True)
        key = model.objects[source.hid].key or table.key_of(model.objects[source.hid].values)
        held = model.held(table, key)
        if model.failed or held is None:
            return multiple(*made)
        handle = self.handles[held]
        for step in ("expire", "expunge"):
            refused, _, _ = self._attempt(f"{step}({handle})", lambda: getattr(model, step)(handle.hid),
                                          lambda: getattr(self.adapter, step)(handle.obj))
            if refused:
                return multiple(*made)
        if model.objects[handle.hid].state != DETACHED:
            return multiple(*made)
        made += self._merge(handle, False)
        if model.failed or not self._may_merge_loading(model.objects[source.hid], key):
            return multiple(*made)
        made += self._merge(source, True)
        row = model.db[table.name].get(key)
        if model.failed or row is None or (table.name, "name", row["name"]) not in self.query_choices():
            return multiple(*made)
        found = self.query(pick=(table.name, "name", row["name"]))
        return multiple(*made, *found.values)

    def _merge(self, handle, load):
        """Run merge(obj, load=...) on both sides; returns the new handles it made."""
        label = f"merge({handle}, load={load})"
        refused, expected, actual = self._attempt(label, lambda: self.model.merge(handle.hid, load),
                                                  lambda: self.adapter.merge(handle.obj, load))
        if refused:
            # A stale version is found after the row's object was loaded: it stays loaded.
            found = []
            held = self.adapter.identity_map()
            for hid in range(len(self.handles), len(self.model.objects)):
                obj = self.model.objects[hid]
                found.append(self._remember(hid, held.get((obj.table.name, obj.key)), obj.table))
            return found
        outcome, hid = expected
        if outcome == "held":
            if actual is not self.handles[hid].obj:
                raise self._broken("MRG-1", f"{label} returned {actual!r}, not the held object {self.handles[hid]}")
            return []
        if actual is None or id(actual) in self.by_object:
            raise self._broken("MRG-1" if load else "MRG-3",
                               f"{label} returned {actual!r}; the oracle expected a new object")
        return [self._remember(hid, actual, handle.table)]

    @precondition(lambda self: self.usable() and bool(self.bundle_handles()))
    @rule(handle=_from_machine("handles_to_edit"), field=st.sampled_from(("name", "note")),
          value=st.sampled_from(TEXTS))
    def set_text(self, handle, field, value):
        self._event("rule: set_text")
        self._set(handle, field, value)

    @precondition(lambda self: self.usable() and bool(self.bundle_handles()))
    @rule(handle=_from_machine("handles_to_edit"), fresh=st.booleans())
    def set_code(self, handle, fresh):
        """A new value no other row holds, or None (UNIQUE allows many NULLs)."""
        self._event("rule: set_code")
        self._set(handle, "code", f"c{next(self.counter)}" if fresh else None)

    @precondition(lambda self: self.usable() and bool(self.bundle_handles()))
    @rule(handle=_from_machine("handles_to_edit"),
          pick=st.one_of(st.tuples(st.just("data"), st.sampled_from(DATA_VALUES)),
                         st.tuples(st.just("price"), st.sampled_from(PRICE_VALUES))))
    def set_value(self, handle, pick):
        """Assign a JSON or Decimal value: often one equal to the value held, but not the same (a
        change under strict comparison, none under ==: see compares_values)."""
        self._event("rule: set_value")
        field, value = pick
        obj = self.model.objects[handle.hid]
        held = obj.values.get(field)
        if field in obj.snapshot and value != obj.snapshot[field] and live(field, value) == live(field, obj.snapshot[field]):
            self._event("assignment of an equal value that is not the same")
        elif held is not None and value == held:
            self._event("assignment of the same value")
        self._set(handle, field, value)

    def json_changes(self):
        """``(handle, path, value)``: in-place changes of a loaded JSON value (``path`` is the list
        of keys or "append"), on the objects whose data is a dict (see tracks_json_in_place)."""
        choices = []
        if not self.caps.tracks_json_in_place:
            return choices
        for handle in self.handles_to_edit():
            text = self.model.objects[handle.hid].values.get("data")
            if text is None:
                continue
            inner = live("data", text).get("n")
            for value in SCALARS:
                if isinstance(inner, dict):
                    choices.append((handle, ("n", "m"), value))
                elif isinstance(inner, list):
                    choices.append((handle, ("n", "append"), value))
                choices.append((handle, ("n",), value))
        return choices

    @precondition(lambda self: self.usable() and bool(self.json_changes()))
    @rule(pick=_from_machine("json_changes"))
    def change_json(self, pick):
        """Change a loaded JSON dict in place, without an assignment (nested: a dict or list in it)."""
        self._event("rule: change_json")
        handle, path, value = pick
        if len(path) > 1:
            self._event("nested in-place change of a JSON value")

        def perform():
            target = self.adapter.loaded(handle.obj, ("data",))["data"]
            _change_in_place(target, path, value)

        self._attempt_in_place(f"{handle}.data{_path_text(path)} <- {value!r}",
                               lambda: self.model.change_json(handle.hid, path, value), perform)

    def _attempt_in_place(self, label, predict, perform):
        """``_attempt`` for a change made in place, which no assignment announces (a layered
        machine may tell it apart)."""
        return self._attempt(label, predict, perform)

    @precondition(lambda self: self.usable() and bool(self.bundle_handles()))
    @rule(handle=_from_machine("handles_to_edit"), field=st.sampled_from(("name", "note", "code", "data", "price")))
    def revert_field(self, handle, field):
        """Set a field back to the value it was loaded or last flushed with: no change at all."""
        self._event("rule: revert_field")
        self._set(handle, field, self.model.original(handle.hid, field))

    @precondition(lambda self: self.usable() and bool(self.reference_choices()))
    @rule(pick=_from_machine("reference_choices"))
    def set_reference(self, pick):
        """Point a foreign key at another object's key (or clear it)."""
        self._event("rule: set_reference")
        handle, column, target = pick
        value = None if target is None else self.model.reference_key(target.hid)
        self._set(handle, column, value)

    def _set(self, handle, field, value):
        self._attempt(f"{handle}.{field} = {value!r}", lambda: self.model.set_field(handle.hid, field, value),
                      lambda: self.adapter.set(handle.obj, field, live(field, value)))

    @precondition(lambda self: self.usable())
    @rule(target=objects, pick=_from_machine("key_choices"))
    def get(self, pick):
        """get() by key: the held object (the same one), a newly loaded one, or None."""
        self._event("rule: get")
        table_name, key = pick
        table = self.model.schema.table(table_name)
        refused, expected, actual = self._attempt(
            f"get({table_name}, {key})", lambda: self.model.get(table, key), lambda: self.adapter.get(table, key))
        if refused:
            return multiple()
        outcome, hid = expected
        if outcome == "none":
            if actual is not None:
                raise self._broken("ID-2", f"get({table_name}, {key}) returned {actual!r}; the oracle expected None")
            return multiple()
        if outcome == "held":
            if actual is not self.handles[hid].obj:
                raise self._broken(
                    "ID-2", f"get({table_name}, {key}) returned {actual!r}, not the held object {self.handles[hid]}")
            return multiple()
        if actual is None or id(actual) in self.by_object:
            raise self._broken("ID-2", f"get({table_name}, {key}) returned {actual!r}; the oracle expected a new "
                                       f"object")
        self._event("load from the database")
        if self.reopened:
            self._event("load from the database after a reopen")
        return multiple(self._remember(hid, actual, table))

    def query_choices(self):
        """``(table name, field, value)`` to query by: first the values rows of held objects with
        unflushed changes hold (a query must not overwrite those changes), then every name and note."""
        model = self.model
        first = []
        for obj in model.objects.values():
            row = model.db[obj.table.name].get(obj.key) if obj.state == "persistent" else None
            if row is not None and obj.changed_fields():
                first.append((obj.table.name, "name", row["name"]))
        rest = [(table.name, field, value) for table in model.schema.tables
                for field, value in (("name", "ann"), ("name", "bob"), ("name", "cy"), ("note", None), ("note", "x"))]
        return [(table_name, field, value) for table_name, field, value in sorted(set(first)) + rest
                if not any(row[field] == value and self._loads_claimed_row(model.schema.table(table_name), key)
                           for key, row in model.db[table_name].items())]

    @precondition(lambda self: self.usable() and self.caps.filter_by and bool(self.query_choices()))
    @rule(target=objects, pick=_from_machine("query_choices"))
    def query(self, pick):
        """A query by equality on a data column: exactly the objects (identity!) the oracle predicts."""
        self._event("rule: query")
        table, field, value = pick
        if not self.autoflush and self.model.has_work():
            self._event("query with unflushed work and autoflush off")
        schema_table = self.model.schema.table(table)
        label = f"query({table}, {field}={value!r})"
        refused, expected, actual = self._attempt(
            label, lambda: self.model.query(schema_table, field, value),
            lambda: self.adapter.query(schema_table, field, value))
        if refused:
            return multiple()
        new = self._returned(label, schema_table, expected, actual, ordered=False)
        if expected:
            self._event("a query returned objects")
        return multiple(*new)

    def select_picks(self):
        """A strategy of ``(table name, conditions.Query)``, leaving out queries that would load a
        row whose key a pending object claims (see _loads_claimed_row)."""
        tables = self.model.schema.tables
        return st.sampled_from(tables).flatmap(lambda table: st.tuples(st.just(table.name), _queries(table))) \
            .filter(self._may_select)

    def _may_select(self, pick):
        table_name, query = pick
        if query.result in ("count", "exists"):
            return True  # they load nothing
        table = self.model.schema.table(table_name)
        keys = conditions.answer(query, self.model.db[table_name])
        return not any(self._loads_claimed_row(table, key) for key in keys[:1 if query.result == "first" else None])

    @precondition(lambda self: self.usable() and self.caps.select)
    @rule(target=objects, pick=st.runner().flatmap(lambda machine: machine.select_picks()))
    def select(self, pick):
        """A query beyond equality (conditions.py): conditions under SQL's three-valued logic, an
        order ending with the key, limit and offset; the objects (identity!) in the oracle's
        order, the first of them, their count, or whether there is one."""
        table_name, query = pick
        self._event(f"rule: select {query.result}")
        if query.limit is not None or query.offset is not None:
            self._event("select with limit or offset")
        if not self.autoflush and self.model.has_work():
            self._event("query with unflushed work and autoflush off")
        table = self.model.schema.table(table_name)
        label = f"select({table_name}, {query!r})"
        refused, expected, actual = self._attempt(label, lambda: self.model.select(table, query),
                                                  lambda: self.adapter.select(table, query))
        if refused:
            return multiple()
        if query.result in ("count", "exists"):
            if actual != expected:
                raise self._broken("QRY-4", f"{label} returned {actual!r}; the oracle expected {expected!r}")
            return multiple()
        if query.result == "first":
            expected = [] if expected is None else [expected]
            actual = [] if actual is None else [actual]
        new = self._returned(label, table, expected, list(actual), ordered=True)
        if expected:
            self._event("a select returned objects")
        return multiple(*new)

    def _returned(self, label, table, expected, actual, ordered):
        """Check the objects a query returned against the oracle's ``[("held" or "loaded", hid)]``
        (in that order when ``ordered``); returns handles for the objects it loaded."""
        new = []
        for outcome, hid in expected:
            if outcome == "loaded":
                found = [obj for obj in actual if id(obj) not in self.by_object and self._key_of(obj, table)
                         == self.model.objects[hid].key]
                if len(found) != 1:
                    raise self._broken("QRY-1", f"{label} returned {actual!r}; the oracle expected a new object for "
                                                f"{table.name}{self.model.objects[hid].key}")
                new.append(self._remember(hid, found[0], table))
                self._event("load from the database by a query")
        expected_objects = [id(self.handles[hid].obj) for _, hid in expected]
        actual_objects = [id(obj) for obj in actual]
        if not ordered:
            expected_objects = sorted(expected_objects)
            actual_objects = sorted(actual_objects)
        if actual_objects != expected_objects:
            shown = [self.by_object[id(obj)] if id(obj) in self.by_object else obj for obj in actual]
            raise self._broken("QRY-4" if ordered else "QRY-1",
                               f"{label} returned {shown}; the oracle expected {[self.handles[hid] for _, hid in expected]}")
        return new

    def _adopt_loaded(self):
        """Hook for a layered machine: objects the oracle loaded without a rule asking become
        handles (see relations_machine)."""

    def _key_of(self, obj, table):
        """The key of an object the implementation just loaded (it is loaded, so no SQL)."""
        loaded = self.adapter.loaded(obj, table.key)
        return table.key_of(loaded)

    # -- rules: a weak identity map ------------------------------------------------------

    def forget_choices(self):
        """Handles whose objects the program may drop: each alone, and all of them together."""
        handles = self.bundle_handles()
        return [(handle,) for handle in handles] + ([tuple(handles)] if len(handles) > 1 else [])

    @precondition(lambda self: self.usable() and self.caps.weak_identity_map and bool(self.bundle_handles()))
    @rule(pick=_from_machine("forget_choices"))
    def forget(self, pick):
        """The program drops its references to these objects and runs ``gc.collect()``: an object
        the session let go must have had no work to do (ID-6), and is gone for good (a later get()
        or query loads its row into a new object); one the session kept is taken up again."""
        self._event("rule: forget")
        kept = {}
        for handle in pick:
            kept[handle.hid] = weakref.ref(handle.obj)
            del self.by_object[id(handle.obj)]
            handle.obj = None
        gc.collect()
        for handle in pick:
            obj = kept[handle.hid]()
            if obj is not None:
                handle.obj = obj
                self.by_object[id(obj)] = handle
                continue
            needed = self.model.forget(handle.hid)
            if needed is not None:
                raise self._broken("ID-6", f"the session let {handle} go when the program dropped it, but {needed}")
            handle.collected = True
            handle.in_bundle = False
            self._event("a dropped object was freed")

    # -- rules: another connection -------------------------------------------------------

    def outside_writes(self):
        """``(verb, table name, key, values)`` another connection may commit now: only while the
        session's connection has no transaction open (so nothing waits for a lock), rows of held
        objects first.  UPDATEs set a value the row does not hold (and move a version on);
        DELETEs take rows nothing references; an INSERT takes the next free key."""
        model = self.model
        if self._transaction_connection().in_transaction or model.depth() != 0:
            return []
        held = model.identity()
        first = []
        rest = []
        for table in model.schema.tables:
            rows = model.db[table.name]
            for key in sorted(rows):
                choices = first if (table.name, key) in held else rest
                choices.extend(self._row_writes(table, key))
            values = self._fresh_values(table, "bob", "w", False)
            taken = [key[0] for key in rows] + [obj.key[0] for obj in model.objects.values()
                                                if obj.table is table and obj.key is not None]
            values[table.key[0]] = max(taken, default=0) + 1
            rest.append(("INSERT", table.name, table.key_of(values), values))
        return first + rest

    def _row_writes(self, table, key):
        """``(verb, table name, key, values)``: what another connection may do to one row now: an
        UPDATE of note, or of name and price (each a value the row does not hold, and the next
        version), and a DELETE when no row references it."""
        row = self.model.db[table.name][key]
        bump = {"version": row["version"] + 1} if table.versioned else {}
        new_name = TEXTS[(TEXTS.index(row["name"]) + 1) % len(TEXTS)] if row["name"] in TEXTS else "ann"
        writes = [("UPDATE", table.name, key, dict(note=None if row["note"] == "w" else "w", **bump)),
                  ("UPDATE", table.name, key, dict(name=new_name, price="1.10" if row["price"] == "1.1" else "1.1",
                                                   **bump))]
        if not self._referenced(table, key):
            writes.append(("DELETE", table.name, key, {}))
        return writes

    def _referenced(self, table, key):
        for child, column in self.model.schema.children(table.name):
            if any(row[column] == key[0] for row in self.model.db[child.name].values()):
                return True
        return False

    @precondition(lambda self: self.usable() and self.caps.outside_writers and bool(self.outside_writes()))
    @rule(pick=_from_machine("outside_writes"))
    def outside_write(self, pick):
        """Another connection commits an UPDATE, DELETE or INSERT between the session's transactions."""
        self._event("rule: outside_write")
        self._write_outside(*pick)

    def _write_outside(self, verb, table_name, key, values):
        """Commit one write on the other connection, and tell the oracle."""
        table = self.model.schema.table(table_name)
        self._event(f"outside {verb}" + (" of a versioned row" if table.versioned else ""))
        where = " AND ".join(f"{column} = ?" for column in table.key)
        if verb == "INSERT":
            marks = ", ".join("?" for _ in values)
            self.writer.execute(f"INSERT INTO {table_name} ({', '.join(values)}) VALUES ({marks})", list(values.values()))
        elif verb == "DELETE":
            self.writer.execute(f"DELETE FROM {table_name} WHERE {where}", list(key))
        else:
            assignments = ", ".join(f"{column} = ?" for column in values)
            self.writer.execute(f"UPDATE {table_name} SET {assignments} WHERE {where}", list(values.values()) + list(key))
        self.model.outside_write(verb, table, key, values)

    def race_choices(self):
        """``(handle, write, action)``: a held object, which of ``_row_writes`` another connection
        commits to its row, and what the session then does with the object from what it loaded
        (see race).  "merge" needs an object with every field loaded (see merge_sources)."""
        model = self.model
        if not self.caps.outside_writers or self.races >= 2:
            return []  # (at most two a program: each commits, and a stale error ends in a rollback)
        choices = []
        for handle in self.bundle_handles():
            obj = model.objects[handle.hid]
            if obj.state != PERSISTENT or obj.marked or obj.key not in model.db[handle.table.name]:
                continue
            actions = ["change", "delete"] + (["expire"] if self.caps.expire else [])
            if self.caps.merge and len(obj.values) == len(handle.table.columns):
                actions.append("merge")
            for write in range(len(self._row_writes(handle.table, obj.key))):
                choices.extend((handle, write, action) for action in actions)
        return choices

    @precondition(lambda self: self.usable() and bool(self.race_choices()))
    @rule(target=objects, pick=_from_machine("race_choices"), retry=st.booleans())
    def race(self, pick, retry):
        """Another connection writes the row of a held object, then the session goes on from
        what it loaded: "change" assigns a name and flushes (a versioned row: the stale error;
        otherwise the UPDATE must leave the other writer's columns as they are), "delete" deletes
        and flushes, "expire" expires the object first (the flush reads the row: moved on, or
        gone), "merge" expunges it before the write and merges it back after.

        A transaction still open is committed first: the other connection writes only between
        the session's transactions.  With ``retry``, a failed flush is rolled back and the same
        change (a DELETE, or an UPDATE) flushed again, now against the row as it is.  One rule,
        because these steps drawn apart rarely meet in one program (outside_write alone reaches
        few held rows).
        """
        self._event("rule: race")
        self.races += 1
        handle, write, action = pick
        model = self.model
        if self._transaction_connection().in_transaction or model.depth() != 0:
            refused, _, _ = self._attempt("commit()", model.commit, self.adapter.commit)
            self._sync_savepoints()
            if refused or self._transaction_connection().in_transaction:
                return multiple()
        obj = model.objects[handle.hid]
        if obj.state != PERSISTENT or obj.key not in model.db[handle.table.name]:
            return multiple()  # the commit's flush deleted the row (a cascade)
        writes = self._row_writes(handle.table, obj.key)
        if write >= len(writes):
            return multiple()  # the commit gave the row a referencing row
        if action == "merge":
            self._attempt(f"expunge({handle})", lambda: model.expunge(handle.hid),
                          lambda: self.adapter.expunge(handle.obj))
            if not self._may_merge_loading(obj, obj.key):
                return multiple()  # the commit expired it (expire_on_commit): see merge_sources
            self._write_outside(*writes[write])
            return multiple(*self._merge(handle, True))
        self._write_outside(*writes[write])
        self._race_step(handle, action)
        if model.failed and retry:
            self._event("a rollback, and the same change flushed again")
            self._attempt("rollback()", model.rollback, self.adapter.rollback)
            self._sync_savepoints()
            obj = model.objects[handle.hid]
            if obj.state == PERSISTENT and obj.key in model.db[handle.table.name]:
                self._race_step(handle, "delete" if action == "delete" else "change")
        return multiple()

    def _race_step(self, handle, action):
        """What race() does after the outside write: change, delete or expire-and-change, then flush."""
        if action == "expire":
            self._attempt(f"expire({handle})", lambda: self.model.expire(handle.hid),
                          lambda: self.adapter.expire(handle.obj))
        if action == "delete":
            self._attempt(f"delete({handle})", lambda: self.model.delete(handle.hid),
                          lambda: self.adapter.delete(handle.obj))
            self._adopt_loaded()  # children the delete found, while they are still held
        else:
            # Another name than the object holds, or (expired, as after the rollback) than its row
            # holds: either way an UPDATE to send.
            obj = self.model.objects[handle.hid]
            row = self.model.db[handle.table.name].get(obj.key, {})
            name = obj.values.get("name", row.get("name"))
            self._set(handle, "name", TEXTS[(TEXTS.index(name) + 1) % len(TEXTS)] if name in TEXTS else "ann")
        self._attempt("flush()", self.model.flush, self.adapter.flush)

    # -- rules: transactions --------------------------------------------------------------

    def boundary_actions(self):
        actions = ["flush", "rollback", "commit"]
        if self.caps.close_detaches_deleted or all(obj.state != DELETED for obj in self.model.objects.values()):
            actions.append("reopen")
        return actions

    @precondition(lambda self: self.model is not None)
    @rule(action=_from_machine("boundary_actions"))
    def boundary(self, action):
        """flush(), commit(), rollback(), or close() and a new session on the same database.

        One rule, so that these argument-less operations do not crowd out the others; reopening
        means later gets load rows into new objects.
        """
        self._event(f"rule: boundary {action}")
        model = self.model
        if action in ("flush", "commit") and model.dirty() and not model.failed:
            self._event(f"{action} with dirty objects")
        if action == "rollback":
            pending = bool(model.new())
            deleted = bool(model.deleted()) or any(obj.state == DELETED for obj in model.objects.values())
            if pending and deleted:
                self._event("rollback with pending and deleted objects")
            if model.failed:
                self._event("rollback after a failed flush")
        if action == "reopen":
            self._attempt("close()", model.close, self.adapter.close_session)
            self.adapter.open_session(autoflush=self.autoflush)
            self.reopened = True
        else:
            self._attempt(f"{action}()", getattr(model, action), getattr(self.adapter, action))
        self._sync_savepoints()

    @precondition(lambda self: self.model is not None and self.caps.savepoints and bool(self.savepoint_actions()))
    @rule(action=_from_machine("savepoint_actions"))
    def savepoint(self, action):
        """begin_nested(), or release / roll back the innermost savepoint."""
        self._event(f"rule: savepoint {action}")
        if action == "begin":
            refused, _, token = self._attempt("begin_nested()", self.model.begin_nested, self.adapter.begin_nested)
            if not refused:
                self.savepoints.append(token)
            if self.model.depth() >= 2:
                self._event("savepoint depth >= 2")
        elif action == "release":
            token = self.savepoints[-1]
            refused, _, _ = self._attempt("release savepoint", self.model.release,
                                          lambda: self.adapter.release(token))
        else:
            token = self.savepoints[-1]
            if self.model.new() and self.model.deleted():
                self._event("savepoint rollback with pending and deleted objects")
            self._attempt("rollback savepoint", self.model.rollback_nested,
                          lambda: self.adapter.rollback_nested(token))
        self._sync_savepoints()

    def _sync_savepoints(self):
        """The machine's savepoint tokens follow the oracle's frames (a commit or rollback ends them)."""
        del self.savepoints[self.model.depth():]

    def may_inject(self):
        """At most two injected failures per program, and only over other unflushed work."""
        return self.usable() and self.injections < 2 and self.model.has_work() and bool(self.failure_kinds())

    @precondition(lambda self: self.may_inject())
    @rule(pick=_from_machine("failure_kinds"), action=st.sampled_from(("flush", "commit")))
    def inject_failure(self, pick, action):
        """Add an object that breaks a constraint for sure, then flush or commit: it must fail.

        The object is not put in the bundle (so no later step re-adds it); the oracle still
        follows it.  Kinds: a NULL name, a reference to no row, a duplicate UNIQUE code, a
        duplicate natural key (of a row no object holds, so add() itself cannot object).
        """
        self._event("rule: inject_failure")
        self.injections += 1
        kind, table_name, key = pick
        table = self.model.schema.table(table_name)
        values = self._fresh_values(table, "ann", None, False)
        if kind == "null_name":
            values["name"] = None
        elif kind == "dangling_reference":
            values[table.refs[0][0]] = MISSING_KEY
        elif kind == "duplicate_code":
            values["code"] = self.model.db[table_name][key]["code"]
        else:
            values.update(zip(table.key, key))
        hid = self.model.create(table, values)
        if self.caps.objects_join_on_construction:
            if not isinstance(self._construct(hid, table, values, kind="injected"), Handle):
                raise AssertionError(f"machine bug: constructing the {kind} object for {table_name} was refused")
        else:
            handle = self._remember(hid, self.adapter.new(table, table.live(values)), table, kind="injected")
            self._attempt(f"add({handle})", lambda: self.model.add(hid), lambda: self.adapter.add(handle.obj))
        refused, refusal, _ = self._attempt(f"{action}()", getattr(self.model, action), getattr(self.adapter, action))
        if not refused or refusal.kind == "pending_rollback":
            raise AssertionError(f"machine bug: injecting {kind} into {table_name} did not fail the {action}")
        self._event(f"injected failure: {kind}")
        self._sync_savepoints()

    # -- the invariant --------------------------------------------------------------------

    @invariant()
    def agrees_with_oracle(self):
        """Everything observable equals the oracle's expectation.  Each problem is tagged with the
        rule (RULES.rst) it breaks; the rules the oracle applied in the step follow."""
        if self.model is None:
            return
        for situation in self.model.situations:
            self._event(situation)
        problems = self._problems()
        if problems:
            note("oracle objects: " + self._oracle_objects())
            raise AssertionError("the implementation disagrees with the oracle:\n  " + "\n  ".join(problems)
                                 + self._applied())
        self.model.cited = []
        for name, value in self.names_to_values.items():
            if isinstance(value, Handle) and value.name != name:
                raise AssertionError(f"machine bug: the program calls {value.name} {name}")

    def _problems(self):
        """What the implementation shows that the oracle does not expect, each as ``[rule] text``."""
        problems = []
        model = self.model
        expected_map = model.identity()
        actual_map = self.adapter.identity_map()
        if set(actual_map) != set(expected_map):
            problems.append(f"[ID-1] identity map keys {sorted(actual_map)}; oracle {sorted(expected_map)}")
        else:
            for key, hid in expected_map.items():
                if actual_map[key] is not self.handles[hid].obj:
                    problems.append(f"[ID-1] identity map {key} holds {actual_map[key]!r}, not {self.handles[hid]}")
        for handle in self.live_handles():
            obj = model.objects[handle.hid]
            state = self.adapter.state(handle.obj)
            if state != obj.state:
                problems.append(f"[LIF-1] {handle} is {state}; oracle {obj.state}")
            loaded = handle.table.stored(self.adapter.loaded(handle.obj, handle.table.columns))
            if loaded != obj.values:
                problems.append(f"[TRK-4] {handle} holds {loaded}; oracle {obj.values}")
        for name, rule, actual, expected in (("new", "TRK-1", self.adapter.new_objects(), model.new()),
                                             ("dirty", "TRK-2", self.adapter.dirty_objects(), model.dirty()),
                                             ("deleted", "TRK-1", self.adapter.deleted_objects(), model.deleted())):
            found = {self._hid_of(obj) for obj in actual}
            if found != expected:
                problems.append(f"[{rule}] session.{name} holds {self._named(found)}; oracle {self._named(expected)}")
        session_connection = self._transaction_connection()
        for table in model.schema.tables:
            rows = self._rows(session_connection, table)
            if rows != model.db[table.name]:
                problems.append(f"[FLU-4] table {table.name} holds {_short(rows)}; "
                                f"oracle {_short(model.db[table.name])}")
            committed = self._rows(self.reader, table)
            if committed != model.committed[table.name]:
                problems.append(f"[TXN-1] committed {table.name} holds {_short(committed)}; "
                                f"oracle {_short(model.committed[table.name])}")
        return problems

    def _hid_of(self, obj):
        handle = self.by_object.get(id(obj))
        return handle.hid if handle is not None else f"unknown {obj!r}"

    def _named(self, hids):
        """Oracle ids as the program names their objects (``[objects_0, loaded_2]``), sorted."""
        return "[" + ", ".join(sorted(self.handles[hid].name if isinstance(hid, int) and hid < len(self.handles)
                                      else str(hid) for hid in hids)) + "]"

    def _oracle_objects(self):
        """The oracle's objects under the program's names (``#5`` for one no handle holds yet)."""
        return ", ".join(f"{self.handles[hid].name if hid < len(self.handles) else f'#{hid}'}={obj!r}"
                         for hid, obj in self.model.objects.items())

    def _rows(self, connection, table):
        """The table's rows through the back door, keyed like the oracle's, in stored form."""
        cursor = connection.execute(f"SELECT {', '.join(table.columns)} FROM {table.name}")
        rows = {}
        for values in cursor.fetchall():
            row = {column: from_database(column, value) for column, value in zip(table.columns, values)}
            rows[table.key_of(row)] = row
        return rows


# What the select rule draws (see conditions.py): values per text column, LIKE patterns (upper
# case too: SQLite's LIKE ignores ASCII case), integers for keys, foreign keys and versions.
QUERY_TEXTS = {"name": ("ann", "bob", "cy", "b"), "note": ("x", "w"), "code": ("c1", "c5")}
LIKE_PATTERNS = ("a%", "%B%", "_y", "c%", "%", "c_")


@functools.lru_cache(maxsize=None)
def _queries(table):
    """The strategy of ``conditions.Query`` for one table: at most two conditions of up to three
    comparisons each, on the columns whose stored form sorts as their values (not data, not
    price), an order of up to two columns ending with the key, and paging."""
    integers = (table.key[:1] + tuple(column for column, _ in table.refs)
                + (("version",) if table.versioned else ()))
    values = {field: st.sampled_from(texts) for field, texts in QUERY_TEXTS.items()}
    values.update((field, st.integers(0, 6)) for field in integers)

    def leaves(field):
        kinds = [st.builds(conditions.Compare, st.just(field), st.sampled_from(sorted(conditions.OPERATORS)), values[field]),
                 st.builds(conditions.In, st.just(field),
                           st.lists(values[field], min_size=1, max_size=3, unique=True).map(tuple)),
                 st.builds(conditions.IsNull, st.just(field), st.booleans())]
        if field in QUERY_TEXTS:
            kinds.append(st.builds(conditions.Like, st.just(field), st.sampled_from(LIKE_PATTERNS)))
        return st.one_of(kinds)

    pairs = lambda children: st.lists(children, min_size=2, max_size=2).map(tuple)
    condition = st.recursive(st.sampled_from(sorted(values)).flatmap(leaves),
                             lambda children: st.one_of(pairs(children).map(conditions.And),
                                                        pairs(children).map(conditions.Or),
                                                        children.map(conditions.Not)),
                             max_leaves=3)
    terms = st.lists(st.tuples(st.sampled_from(sorted(values)), st.booleans()), max_size=2,
                     unique_by=lambda term: term[0])

    @st.composite
    def queries(draw):
        """(Drawn part by part, so that a program prints the Query itself.)"""
        where = tuple(draw(st.lists(condition, max_size=2)))
        order = draw(terms)
        named = {field for field, _ in order}
        descending = draw(st.booleans())  # the key's direction: it ends the order (a total one)
        order += [(field, descending) for field in table.key if field not in named]
        return conditions.Query(where, tuple(order), draw(st.none() | st.integers(0, 3)),
                                draw(st.none() | st.integers(0, 2)), draw(st.sampled_from(conditions.RESULTS)))

    return queries()


def _change_in_place(target, path, value):
    """``target["n"] = value``, ``target["n"]["m"] = value`` or ``target["n"].append(value)``."""
    for name in path[:-1]:
        target = target[name]
    if path[-1] == "append":
        target.append(value)
    else:
        target[path[-1]] = value


def _path_text(path):
    return "".join(".append()" if name == "append" else f"[{name!r}]" for name in path)


def _short_values(values):
    return ", ".join(f"{column}={value!r}" for column, value in values.items())


def _short(rows):
    return {key: tuple(row.values()) for key, row in sorted(rows.items())}


def build_machine(adapter_factory, base=ConformanceMachine):
    """A machine class for one implementation, named after it (``UowConformance``)."""
    name = adapter_factory().name
    class_name = re.sub(r"\W", "", name[:1].upper() + name[1:]) + "Conformance"
    machine = type(class_name, (base,), {"adapter_factory": staticmethod(adapter_factory)})
    machine.__module__ = __name__
    return machine
