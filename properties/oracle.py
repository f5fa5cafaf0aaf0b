"""The oracle: what a unit of work must do, as a model made of dicts and lists.

It is a specification, much smaller than what it checks, and it imports nothing from ``uow``
or any ORM: if it did, a bug shared by both would go unseen.  It models three layers apart:

* ``committed``  rows as of the last COMMIT (what a second connection sees);
* ``db``         rows visible inside the open transaction, flushed changes included;
* ``objects``    for every object handle, the state and values its user should see.

A transaction and each savepoint inside it is a :class:`Frame` holding copies taken when it
began; rolling back puts the copies back.

The rules it follows are written in RULES.rst, the specification a person reads, each with a
short id.  The model cites a rule's id where it applies it (``Model.cite``, and the ``rule`` of
every :class:`Refused`), so that a failure the machine reports names the rules involved;
``test_rules.py`` checks that the ids cited here and the ids written there are the same.

Where an implementation legitimately differs (SQLAlchemy expires on rollback instead of
restoring, ...) the difference is a declared capability (see ``adapter.Capabilities``) and the
oracle follows the declaration; it never loosens a check.

Every operation either returns its result or raises :class:`Refused` naming the error the
implementation must raise; a refused operation changes nothing unless its docstring says so.
"""

import copy
import itertools

from . import conditions
from .schemas import live, stored

TRANSIENT = "transient"
PENDING = "pending"
PERSISTENT = "persistent"
DELETED = "deleted"
DETACHED = "detached"
IN_SESSION = (PENDING, PERSISTENT, DELETED)


class Refused(Exception):
    """The oracle predicts that an operation raises an error of kind ``kind``.

    Kinds: ``invalid_state`` (not allowed in the object's state), ``conflict`` (another object
    holds the key), ``flush`` (a statement failed), ``invalid_value`` (a value refused before any
    SQL), ``pending_rollback``, ``detached`` (expired field, no session), ``row_missing``
    (expired or refreshed object whose row is gone), ``stale`` (a versioned row was changed or
    deleted by someone else).  ``rule`` is the id, in RULES.rst, of the rule that predicts it.
    """

    def __init__(self, kind, reason, *, rule, cause=None):
        super().__init__(f"{kind} ({rule}): {reason}")
        self.kind = kind
        self.reason = reason
        self.rule = rule  # the id of the rule in RULES.rst that predicts the error
        self.cause = cause or kind


def copy_rows(rows):
    return {table: {key: dict(row) for key, row in table_rows.items()} for table, table_rows in rows.items()}


class Obj:
    """What the user of one object handle should see.

    ``values`` holds the loaded fields only (an expired field is absent); ``snapshot`` the value
    each field had when the row was last loaded or flushed.  ``marked`` means "persistent, in
    session.deleted"; ``gone`` means its row was deleted by a flush.  ``assigned`` records any
    assignment since the snapshot (SQLAlchemy's notion of dirty); ``expired_all`` a whole-object
    expiry not yet reloaded.  ``seq`` is the order it entered the session; ``loaded_at`` the
    model's clock when it was loaded from a row (None: it never was).  ``queued`` orders its
    next statement under flush_order "changes"; ``doomed`` means delete() ended it for its user
    (deleted while pending, or its DELETE flushed: see refuses_deleted_objects); ``outside``
    that the session it was in let go of it (rollback "discard": see detached_refuses_changes).
    """

    def __init__(self, table, values, same=None):
        self.table = table
        self.same = same or same_stored
        self.state = TRANSIENT
        self.key = None
        self.values = dict(values)
        self.snapshot = {}
        self.marked = False
        self.gone = False
        self.assigned = False
        self.expired_all = False
        self.seq = 0
        self.loaded_at = None
        self.queued = 0
        self.doomed = False
        self.outside = False
        self.links = {}  # relationship state, kept by a model layer (see relations_oracle)

    def copy(self):
        twin = copy.copy(self)  # every attribute, including those a model layer adds
        twin.values = dict(self.values)
        twin.snapshot = dict(self.snapshot)
        twin.links = {name: list(value) if isinstance(value, list) else value for name, value in self.links.items()}
        return twin

    def changed_fields(self):
        """Fields whose value differs from the snapshot; a field assigned while expired counts."""
        return [name for name, value in self.values.items()
                if name not in self.snapshot or not self.same(name, self.snapshot[name], value)]

    def expire(self):
        self.values = {}
        self.snapshot = {}
        self.assigned = False
        self.expired_all = True

    def load(self, row, complete_snapshot):
        """Fill the expired fields from a row; loaded and assigned fields keep their values.

        With ``complete_snapshot`` a field assigned while expired also gets the row's value as
        its snapshot (so assigning the value the row holds turns out to be no change).
        """
        for name, value in row.items():
            if name not in self.values:
                self.values[name] = value
                self.snapshot[name] = value
            elif complete_snapshot and name not in self.snapshot:
                self.snapshot[name] = value
        self.expired_all = False

    def __repr__(self):
        key = self.key if self.key is not None else self.table.key_of(self.values)
        flags = "+marked" if self.marked else ""
        return f"{self.table.name}{key}<{self.state}{flags}>"


def _look(obj):
    """What a rollback that restores objects (RBK-1) gives back: state, key, mark and values."""
    return obj.state, obj.key, obj.marked, obj.values


def same_stored(name, before, now):
    """Strict: the database would hold the very same thing (values are kept in stored form)."""
    return before == now


def same_equal(name, before, now):
    """compares_values == "equal": the Python values compare equal (1 == True == 1.0)."""
    return live(name, before) == live(name, now)


class Frame:
    """What a transaction or savepoint remembers from when it began.

    ``objects`` are copies of every object at the start; ``entered`` the look of objects that
    entered the session during the frame, as they were when they entered (a PERSISTENT look
    means the object was loaded during the frame).
    ``inserted``/``updated``/``deleted`` are the objects flushed during the frame, which is what
    an implementation that expires on rollback (instead of restoring) works from.
    ``started`` is the model's clock when the frame began, ``wrote`` when something was first
    written in it or in a savepoint inside it (None: nothing, or only what a savepoint rollback
    undid): a rollback expires only the objects loaded after that (see Model._restore).
    """

    def __init__(self, db, objects, started):
        self.started = started
        self.wrote = None
        self.db = copy_rows(db)
        self.objects = {hid: obj.copy() for hid, obj in objects.items()}
        self.entered = {}
        self.inserted = set()
        self.updated = set()
        self.deleted = set()

    def merge_into(self, parent):
        """A released savepoint's work joins the enclosing frame (which keeps its older copies)."""
        for hid, look in self.entered.items():
            parent.entered.setdefault(hid, look)
        parent.inserted |= self.inserted
        parent.updated |= self.updated
        parent.deleted |= self.deleted


class Model:
    """The expected state of one database and one session (replaced on reopen)."""

    def __init__(self, schema, caps, rows=None, autoflush=True):
        self.schema = schema
        self.caps = caps
        self.autoflushing = autoflush  # the session's own autoflush option (see caps.autoflush_can_be_off)
        self.same = same_equal if caps.compares_values == "equal" else same_stored
        self.db = copy_rows(rows) if rows else {table.name: {} for table in schema.tables}
        self.committed = copy_rows(self.db)
        self.objects = {}
        self.failed = False
        self.failed_depth = 0
        self._clock = itertools.count(1)  # orders loads, writes and frames (see Frame, _restore)
        self.frames = [Frame(self.db, self.objects, next(self._clock))]
        self._sequence = itertools.count(1)
        self._queue = itertools.count(1)  # the order of statements under flush_order "changes"
        self.situations = set()  # interesting things that happened, for the machine's statistics
        self._highest_id = {}
        self.stale_hid = None  # the object a stale-data error named, until rollback() expires it
        self.retry_hid = None  # that object, after the rollback (for the machine's statistics)
        self.cited = []  # ids (RULES.rst) of the rules applied since the machine last checked

    # -- reading the model ----------------------------------------------------------------

    def cite(self, *rules):
        """Note that the current step applied these rules (RULES.rst ids): a failure the machine
        finds after the step names them."""
        for rule in rules:
            if rule not in self.cited:
                self.cited.append(rule)

    def identity(self):
        """``{(table name, key): handle id}`` for every object the identity map must hold."""
        held = {}
        for hid, obj in self.objects.items():
            if obj.state == PERSISTENT:
                held[(obj.table.name, obj.key)] = hid
        return held

    def held(self, table, key):
        return self.identity().get((table.name, key))

    def new(self):
        return {hid for hid, obj in self.objects.items() if obj.state == PENDING}

    def deleted(self):
        return {hid for hid, obj in self.objects.items() if obj.state == PERSISTENT and obj.marked}

    def dirty(self):
        """Persistent objects (not marked) with a net change, or with an assignment (see caps)."""
        found = set()
        for hid, obj in self.objects.items():
            if obj.state != PERSISTENT or obj.marked:
                continue
            if self.caps.dirty_means == "assigned":
                if obj.assigned:
                    found.add(hid)
            elif obj.changed_fields():
                found.add(hid)
        return found

    def depth(self):
        """Savepoints open: 0 in the plain transaction."""
        return len(self.frames) - 1

    def has_work(self):
        return bool(self._plan())

    def reference_key(self, hid):
        """The key a foreign key to this object would hold, or None if it has none yet."""
        obj = self.objects[hid]
        if obj.key is not None:
            return obj.key[0]
        key = obj.table.key_of(obj.values)
        if key is None:
            return None
        return key[0]

    # -- creating objects -----------------------------------------------------------------

    def create(self, table, values):
        """A new transient object; returns its handle id."""
        hid = len(self.objects)
        self.objects[hid] = self.new_obj(table, values)
        return hid

    def new_obj(self, table, values):
        """The record of one object (a model layer may use a subclass of Obj)."""
        return Obj(table, values, self.same)

    def _enter(self, hid):
        """Remember how an object looked when it entered the session, for a rollback."""
        frame = self.frames[-1]
        before = frame.objects.get(hid)
        if before is not None and before.state in IN_SESSION:
            return
        frame.entered.setdefault(hid, self.objects[hid].copy())

    def _switchable(self, holder):
        """A key held by an object marked for deletion may be taken (a row switch)."""
        return self.caps.pending_key_conflict == "row_switch" and self.objects[holder].marked

    def _switches(self):
        """``{pending hid: marked hid}``: pending objects taking a marked object's key."""
        found = {}
        if self.caps.pending_key_conflict != "row_switch":
            return found
        for hid, obj in self.objects.items():
            key = obj.table.key_of(obj.values)
            holder = self.held(obj.table, key) if obj.state == PENDING and key is not None else None
            if holder is not None and self.objects[holder].marked:
                found[hid] = holder
        return found

    def _attach(self, hid, operation):
        """A detached object joins the session again (PERSISTENT), unless its key is taken."""
        obj = self.objects[hid]
        other = self.held(obj.table, obj.key)
        if other is not None and other != hid:
            raise Refused("conflict", f"{operation}(): another object holds {obj.table.name}{obj.key}", rule="LIF-2")
        self._enter(hid)
        obj.state = PERSISTENT
        obj.gone = False
        obj.seq = next(self._sequence)
        if self.caps.flush_reloads_expired in ("at_start", "at_start_for_order"):
            self.cite("FLU-6")
            obj.assigned = True  # uow notes it as changed: its values may have moved while detached

    # -- object operations ----------------------------------------------------------------

    def add(self, hid):
        """add() makes a transient object PENDING and re-attaches a detached one.

        Adding an object already in the session does nothing, except that one marked for
        deletion is taken out of session.deleted (add_cancels_delete).  A DELETED object cannot be
        added (its row was deleted in this transaction): invalid_state; nor can a detached one
        whose row a flush deleted, unless attach_without_row is "attach".  A key another object
        holds: conflict (unless, with ``pending_key_conflict == "row_switch"``, that object is
        marked for deletion: the flush then turns the DELETE and the INSERT into one UPDATE).
        """
        self.cite("LIF-2")
        obj = self.objects[hid]
        if obj.state == TRANSIENT:
            key = obj.table.key_of(obj.values)
            other = self.held(obj.table, key) if key is not None else None
            if other is not None and not self._switchable(other):
                raise Refused("conflict", f"add(): another object holds {obj.table.name}{key}", rule="ID-4")
            self._enter(hid)
            obj.state = PENDING
            obj.seq = next(self._sequence)
            obj.queued = next(self._queue)
        elif obj.state == PERSISTENT:
            if obj.marked and self.caps.add_cancels_delete:
                obj.marked = False
        elif obj.state == DELETED:
            raise Refused("invalid_state", "add(): the object's row was deleted in this transaction", rule="LIF-3")
        elif obj.state == DETACHED:
            if obj.gone and self.caps.attach_without_row != "attach":
                raise Refused("invalid_state", "add(): the object's row was deleted", rule="LIF-4")
            self._attach(hid, "add")

    def delete(self, hid):
        """delete() of a persistent object marks it (it stays PERSISTENT, in session.deleted).

        Transient: invalid_state.  Pending: expunged (or refused, per caps).  Detached: re-attached
        and marked, unless its row was deleted (invalid_state, per attach_without_row).  DELETED:
        nothing more to do.  Under detached_refuses_changes an object whose session is over is
        refused (detached); under refuses_deleted_objects delete() of a deleted object does nothing.
        """
        self.cite("LIF-5")
        obj = self.objects[hid]
        if self._delete_does_nothing(obj):
            return
        if obj.state == TRANSIENT:
            raise Refused("invalid_state", "delete(): a transient object has no row", rule="LIF-5")
        if obj.state == PENDING:
            if self.caps.delete_pending != "expunge":
                raise Refused("invalid_state", "delete(): a pending object has no row yet", rule="LIF-5")
            obj.state = TRANSIENT
            obj.doomed = True
        elif obj.state == PERSISTENT:
            if not obj.marked:
                obj.queued = next(self._queue)  # a delete goes to the end of the queue
            obj.marked = True
        elif obj.state == DETACHED:
            if obj.gone and self.caps.attach_without_row == "refuse":
                raise Refused("invalid_state", "delete(): the object's row was deleted", rule="LIF-4")
            self._attach(hid, "delete")
            obj.marked = True

    def _delete_does_nothing(self, obj):
        """detached_refuses_changes: delete() of an object whose session is over is refused;
        refuses_deleted_objects: delete() of a deleted object does nothing (True)."""
        if self.caps.detached_refuses_changes and obj.outside:
            raise Refused("detached", "delete(): the session the object was in is over", rule="LIF-5")
        return self.caps.refuses_deleted_objects and obj.doomed

    def expunge(self, hid):
        """expunge(): pending becomes TRANSIENT; persistent or deleted becomes DETACHED.

        An object not in the session: invalid_state.
        """
        self.cite("LIF-6")
        obj = self.objects[hid]
        if obj.state not in IN_SESSION:
            raise Refused("invalid_state", f"expunge(): the object is {obj.state}, not in the session", rule="LIF-6")
        if obj.state == PENDING:
            obj.state = TRANSIENT
        else:
            obj.state = DETACHED
            obj.marked = False

    def expire(self, hid):
        """expire(): forget every field of a persistent object; unflushed changes are discarded."""
        self.cite("EXP-2")
        obj = self.objects[hid]
        if obj.state != PERSISTENT:
            raise Refused("invalid_state", f"expire(): the object is {obj.state}", rule="EXP-2")
        obj.expire()

    def refresh(self, hid, fields=None):
        """refresh(): reload every field (or only ``fields``) from the row now.

        Only persistent objects; a missing row is row_missing.  ``caps.refresh_steps`` says whether an
        autoflush runs first ("autoflush_then_reload", so the object's own changes are written
        and read back), not at all ("reload": its unflushed changes are discarded), or after
        expiring the object ("expire_autoflush_reload", SQLAlchemy's order).
        """
        self.cite("EXP-5" if fields is None else "EXP-3")
        obj = self.objects[hid]
        if obj.state != PERSISTENT:
            raise Refused("invalid_state", f"refresh(): the object is {obj.state}", rule="EXP-5")
        if self.caps.refresh_steps != "reload":
            if self.caps.refresh_steps == "expire_autoflush_reload":
                self._expire_fields(obj, fields)
            self.autoflush()
            if obj.state != PERSISTENT:
                raise Refused("row_missing", "refresh(): the autoflush deleted the row", rule="EXP-5")
        row = self.db[obj.table.name].get(obj.key)
        if row is None:
            raise Refused("row_missing", "refresh(): the row is gone", rule="EXP-5")
        if fields is not None:
            self.situations.add("refresh() of a field list")
            for name in fields:
                obj.values[name] = row[name]
                obj.snapshot[name] = row[name]
            return
        obj.values = dict(row)
        obj.snapshot = dict(row)
        obj.assigned = False
        obj.expired_all = False

    def expire_fields(self, hid, fields):
        """expire(obj, fields): forget those fields (their unflushed changes too); they reload
        from the row when next read.  Other fields, and other changes, stay."""
        self.cite("EXP-3")
        obj = self.objects[hid]
        if obj.state != PERSISTENT:
            raise Refused("invalid_state", f"expire(): the object is {obj.state}", rule="EXP-3")
        self._expire_fields(obj, fields)

    def _expire_fields(self, obj, fields):
        if fields is None:
            obj.expire()
            return
        for name in fields:
            obj.values.pop(name, None)
            obj.snapshot.pop(name, None)

    def expire_all(self):
        """expire_all(): every object in the identity map (marked ones too) is expired."""
        self.cite("EXP-4")
        for hid in self.identity().values():
            self.objects[hid].expire()

    def expunge_all(self):
        """expunge_all(): every object in the session leaves it (pending ones become transient);
        objects whose DELETE was flushed are detached only where close_detaches_deleted says so."""
        self.cite("LIF-7")
        for hid, obj in self.objects.items():
            if obj.state in (PENDING, PERSISTENT) or (obj.state == DELETED and self.caps.close_detaches_deleted):
                self.expunge(hid)

    def merge(self, hid, load):
        """merge(obj, load=...): copy a transient or detached object's loaded values onto the
        session's object for its row; returns ``("held" or "loaded" or "created", hid)``.

        ``load=True``: the row's object is the held one, or get() loads it (autoflush first);
        with no row (or no key) a new pending object gets the values.  A versioned source must
        carry the version the row is at (else the stale error; the session stays usable).  Every
        loaded field but the key and the version is then assigned (an assignment like any other).
        ``load=False`` (detached sources only, without unflushed changes): the values are taken
        as the row's state: the held object, or a new persistent one, takes them as loaded and
        clean, with no SQL.
        """
        source = self.objects[hid]
        table = source.table
        key = source.key if source.key is not None else table.key_of(source.values)
        values = {name: value for name, value in source.values.items() if name not in table.key}
        self.cite("MRG-1" if load else "MRG-3")
        if not load:
            if source.gone and self.caps.merge_refuses_deleted_row:
                raise Refused("invalid_state", "merge(load=False): the object's row was deleted", rule="MRG-3")
            if source.changed_fields():
                raise Refused("invalid_state", "merge(load=False): the object has unflushed changes", rule="MRG-3")
            if self.caps.merge_copies_expired_key:
                values.update(zip(table.key, key))  # known from the source's identity, even if expired
            held = self.held(table, key)
            if held is None:
                # Values that did not come from the database: a rollback cannot vouch for the new
                # object, or for objects loaded from now on, as after a write.
                self._note_write()
                row = dict(values)
                target = self._load_new(table, key, row)
                self.objects[target].values = row
                self.objects[target].snapshot = dict(row)
                self.situations.add("merge(load=False) made a new persistent object")
                return ("loaded", target)
            obj = self.objects[held]
            self._refuse_marked_target(obj)
            obj.values.update(values)
            obj.snapshot = dict(obj.values)
            obj.assigned = False
            obj.expired_all = False  # its key, at least, is loaded again
            self.situations.add("merge(load=False) onto a held object")
            return ("held", held)
        if self.failed:
            raise Refused("pending_rollback", "merge(): a previous flush failed", rule="FAIL-2")
        if self.caps.merge_autoflushes:
            self.autoflush()
        outcome, target = self._merge_target(table, key)
        if outcome == "none":
            values = dict(source.values)
            if key is not None:
                values.update(zip(table.key, key))  # known from the source's identity, even if expired
            new = self.create(table, values)
            self.add(new)
            self.situations.add("merge() of an object without a row made a pending one")
            return ("created", new)
        obj = self.objects[target]
        self._refuse_marked_target(obj)
        if table.versioned and values.get("version") is not None:
            if "version" not in obj.values:
                self._reload(obj, self.db[table.name][obj.key])
            if obj.snapshot.get("version") != values["version"]:
                self.situations.add("merge() of a stale versioned object")
                if outcome == "loaded" and not self.caps.refused_merge_keeps_loaded:
                    # Nothing refers to the object merge() loaded: it is forgotten (it is the
                    # newest handle, so the others keep their numbers).
                    del self.objects[target]
                    del self.frames[-1].entered[target]
                raise Refused("stale", f"merge(): the object carries version {values['version']}, the row "
                                       f"is at {obj.snapshot.get('version')}", rule="MRG-2")
        for name, value in values.items():
            if name != "version":
                self.set_field(target, name, value)
        self.situations.add(f"merge() onto a {outcome} object")
        return (outcome, target)

    def _refuse_marked_target(self, obj):
        """merge_refuses_marked_target: values merged onto an object marked for deletion would be
        deleted by the next flush."""
        if obj.marked and self.caps.merge_refuses_marked_target:
            self.situations.add("merge() refused onto an object marked for deletion")
            raise Refused("invalid_state", f"merge(): {obj!r} is marked for deletion, so the next flush would "
                                           f"delete the merged values", rule="MRG-1")

    def _merge_target(self, table, key):
        """merge(load=True): the object the values go to, as ``get()`` answers it (see
        merge_finds_like_get)."""
        if key is None:
            return ("none", None)
        held = self.held(table, key)
        if held is None or self.caps.merge_finds_like_get:
            return self.get(table, key)
        obj = self.objects[held]
        if len(obj.values) < len(table.columns):
            # Setting a field of an expired object first reads its old value: the row.
            row = self.db[table.name].get(obj.key)
            if row is None:
                self.situations.add("merge() found an expired held object's row gone")
                raise Refused("row_missing", f"merge(): {obj!r} is expired and its row is gone", rule="MRG-1")
            self._reload(obj, row)
        return ("held", held)

    def read(self, hid):
        """Reading every field: expired fields reload from the row (persistent or deleted objects).

        A detached (or never-flushed) object cannot reload: detached.  No row: row_missing.
        """
        self.cite("EXP-1")
        obj = self.objects[hid]
        if self.caps.refuses_deleted_objects and obj.doomed:
            raise Refused("invalid_state", f"reading a field of {obj!r}, which was deleted", rule="EXP-1")
        if len(obj.values) < len(obj.table.columns):
            if obj.state in (DETACHED, TRANSIENT):
                raise Refused("detached", f"reading an expired field of a {obj.state} object", rule="EXP-1")
            if obj.state == PENDING:
                raise Refused("invalid_state", "reading an expired field of a pending object: no row yet", rule="EXP-1")
            if self.caps.expired_read_autoflushes:
                self.autoflush()
            row = self.db[obj.table.name].get(obj.key)
            if row is None:
                raise Refused("row_missing", "reading an expired field: the row is gone", rule="EXP-1")
            self._reload(obj, row)
        return dict(obj.values)

    def set_field(self, hid, name, value):
        """Assignment changes the value the user sees in any state; the flush decides what it
        means (see _refuse_change for the sessions that refuse it)."""
        self.cite("TRK-5")
        obj = self.objects[hid]
        self._refuse_change(obj, f"assignment to {name}")
        if obj.state == PERSISTENT and name not in obj.snapshot:
            self.cite("TRK-3")
        elif name in obj.snapshot and value != obj.snapshot[name] and \
                live(name, value) == live(name, obj.snapshot[name]):
            self.cite("VAL-1")  # equal in Python, not the same stored value
        obj.values[name] = value
        self._note_assignment(obj)

    def _refuse_change(self, obj, what):
        """detached_refuses_changes and refuses_deleted_objects: the object refuses a change."""
        if self.caps.detached_refuses_changes and obj.outside:
            raise Refused("detached", f"{what}: the session {obj!r} was in is over", rule="TRK-5")
        if self.caps.refuses_deleted_objects and (obj.doomed or obj.marked):
            raise Refused("invalid_state", f"{what}: {obj!r} was deleted", rule="TRK-5")

    def _note_assignment(self, obj):
        """An assignment (flush_order "changes": the first since the last flush queues the UPDATE)."""
        if obj.state == PERSISTENT and not obj.assigned and not obj.marked:
            obj.queued = next(self._queue)
        obj.assigned = True

    def change_json(self, hid, path, value):
        """An in-place change of a loaded JSON dict (``path``: keys, the last may be "append").
        No assignment happens: the session must see the change by comparing with the snapshot."""
        self.cite("VAL-2")
        obj = self.objects[hid]
        data = live("data", obj.values["data"])
        target = data
        for name in path[:-1]:
            target = target[name]
        if path[-1] == "append":
            target.append(value)
        else:
            target[path[-1]] = value
        obj.values["data"] = stored("data", data)
        # A refusing session is told of the change after it happened: the value keeps it.
        self._refuse_change(obj, "an in-place change of data")
        if self.caps.dirty_means == "assigned":
            self._note_assignment(obj)  # the tracked value reports the change as an assignment

    def original(self, hid, name):
        """The value a field was loaded or last flushed with (its current value if none)."""
        obj = self.objects[hid]
        if name in obj.snapshot:
            return obj.snapshot[name]
        if name in obj.values:
            return obj.values[name]
        row = self.db[obj.table.name].get(obj.key) if obj.key is not None else None
        if row is not None:
            return row[name]
        return None

    def get(self, table, key):
        """get(): the held object without SQL; otherwise autoflush, then load the row.

        Returns ``("held", hid)``, ``("loaded", hid)`` for a new object, or ``("none", None)``.
        """
        found = self._found_in_session(table, key)
        if found is not None:
            return found
        self.cite("ID-2")
        hid = self.held(table, key)
        if hid is not None:
            obj = self.objects[hid]
            if self.caps.get_reloads_expired and obj.expired_all:
                if self._load_held(obj):
                    return ("held", hid)
                if self.caps.get_finds_row_gone == "detach":
                    return ("none", None)
            else:
                return ("held", hid)
        if self.failed:
            raise Refused("pending_rollback", "get(): a previous flush failed", rule="FAIL-2")
        self.autoflush()
        hid = self.held(table, key)
        if hid is not None:
            obj = self.objects[hid]
            if self.caps.get_queries_after_autoflush and len(obj.values) < len(table.columns):
                self.situations.add("get() filled the expired fields of an object its autoflush inserted")
                self._reload(obj, self.db[table.name][key])
            return ("held", hid)
        row = self.db[table.name].get(key)
        if row is None:
            return ("none", None)
        return ("loaded", self._load_new(table, key, row))

    def _found_in_session(self, table, key):
        """What get() answers with no SQL where the session says so: a pending object constructed
        with the key (get_finds_pending), or None for a held object marked for deletion
        (get_skips_marked); None where neither applies."""
        if self.caps.get_finds_pending:
            for hid, obj in self.objects.items():
                if obj.state == PENDING and obj.table is table and table.key_of(obj.values) == key:
                    self.situations.add("get() found a pending object by its key")
                    return ("held", hid)
        hid = self.held(table, key)
        if hid is not None and self.caps.get_skips_marked and self.objects[hid].marked:
            self.situations.add("get() of a key marked for deletion answered None")
            return ("none", None)
        return None

    def _reload(self, obj, row):
        """Fill an object's expired fields from its row (see Obj.load and TRK-3)."""
        if any(name in obj.values and name not in obj.snapshot for name in row):
            self.cite("TRK-3")
        obj.load(row, complete_snapshot=self.caps.reload_compares_expired_assignments)

    def _load_new(self, table, key, row):
        """A row no object holds becomes a new PERSISTENT object; returns its handle id."""
        hid = len(self.objects)
        obj = self.new_obj(table, row)
        obj.state = PERSISTENT
        obj.key = key
        obj.snapshot = dict(row)
        obj.seq = next(self._sequence)
        obj.loaded_at = next(self._clock)
        self.objects[hid] = obj
        self.frames[-1].entered[hid] = obj.copy()
        return hid

    def query(self, table, field, value):
        """A query for rows whose ``field`` equals ``value``: autoflush, then every matching row
        in key order, as ``[("held", hid) or ("loaded", hid)]``.

        A held object is returned as it is: its unflushed changes stay, and only its expired
        fields are filled from the row (with reload_compares_expired_assignments, the row also becomes the
        snapshot of fields assigned while expired).  Objects whose unflushed values match but whose row does
        not (pending, or changed without autoflush) are not returned: the query reads rows.
        """
        self.cite("QRY-1", "QRY-3")
        if self.failed:
            raise Refused("pending_rollback", "query: a previous flush failed", rule="FAIL-2")
        self.autoflush()
        rows = self.db[table.name]
        return [self._answer_row(table, key, rows[key]) for key in sorted(rows) if rows[key][field] == value]

    def select(self, table, query):
        """A query beyond equality (``conditions.Query``): autoflush, then the rows its conditions
        hold for under SQL's three-valued logic, in its order, cut by offset and limit.  "all"
        answers as query() does (``[("held", hid) or ("loaded", hid)]``, through the identity
        map, held objects as they are), "first" the first of those or None, "count" and
        "exists" a number and a truth, loading nothing."""
        self.cite("QRY-1", "QRY-3", "QRY-4")
        if self.failed:
            raise Refused("pending_rollback", "select: a previous flush failed", rule="FAIL-2")
        self.autoflush()
        rows = self.db[table.name]
        keys = conditions.answer(query, rows)
        if any(conditions.truth(part, row) is None for row in rows.values() for part in query.where):
            self.situations.add("a query's condition was unknown (NULL) for a row")
        if query.result == "count":
            return len(keys)
        if query.result == "exists":
            return bool(keys)
        found = [self._answer_row(table, key, rows[key]) for key in keys[:1 if query.result == "first" else None]]
        if query.result == "first":
            return found[0] if found else None
        return found

    def _answer_row(self, table, key, row):
        """One row a query returns: ``("held", hid)`` for the held object, as it is but for its
        expired fields, or ``("loaded", hid)`` for a new one (QRY-1, QRY-2)."""
        hid = self.held(table, key)
        if hid is None:
            return ("loaded", self._load_new(table, key, row))
        obj = self.objects[hid]
        if obj.changed_fields():
            self.cite("QRY-2")
            self.situations.add("a query returned a held object with unflushed changes")
        if len(obj.values) < len(table.columns):
            self.cite("QRY-2")
            self.situations.add("a query filled a held object's expired fields")
            self._reload(obj, row)
        elif self.caps.reload_compares_expired_assignments and len(obj.snapshot) < len(table.columns):
            # Every field is set, some by an assignment made while it was expired (merge()
            # assigns them all): the row read now is their snapshot, so an assigned value
            # equal to the row's is no change (reload_compares_expired_assignments).
            self.situations.add("a query completed the snapshot of fields assigned while expired")
            obj.load(row, True)
        return ("held", hid)

    def _load_held(self, obj):
        """get_reloads_expired: reload a wholly expired held object; False if its row is gone.

        The reload autoflushes when ``expired_read_autoflushes`` says so; SQLAlchemy reads a row_missing
        failure of that autoflush as "this object's row is gone" too, and then goes on to query
        (see get()).  The object whose row is gone is dropped as ``get_finds_row_gone`` says.
        """
        self.cite("ID-3")
        try:
            if self.caps.expired_read_autoflushes:
                self.autoflush()
            row = self.db[obj.table.name].get(obj.key)
        except Refused as refusal:
            if refusal.cause != "row_missing":
                raise
            row = None
        if row is None:
            self.situations.add("get() found an expired object's row gone")
            if self.caps.get_finds_row_gone == "detach":
                obj.state = DETACHED
                obj.marked = False
            else:
                self._forget_deleted_row(obj)
            return False
        self.situations.add("get() reloaded an expired held object")
        self._reload(obj, row)
        return True

    def _forget_deleted_row(self, obj):
        """A held object found to have no row becomes DELETED (it leaves the identity map)."""
        obj.state = DELETED
        obj.gone = True
        obj.marked = False
        self.frames[-1].deleted.add(self._hid(obj))

    def _hid(self, obj):
        for hid, other in self.objects.items():
            if other is obj:
                return hid
        raise KeyError(obj)

    # -- a weak identity map --------------------------------------------------------------

    def forget(self, hid):
        """The program dropped its references to the object and the session let it go
        (weak_identity_map): returns why it must not have (ID-6), or None after making it gone
        for good: it leaves the session, and no rollback brings it back."""
        self.cite("ID-6")
        obj = self.objects[hid]
        needed = self._needed(hid, obj)
        if needed is not None:
            return needed
        if obj.state in IN_SESSION:
            self.situations.add("an object without work left the weak identity map")
        obj.state = DETACHED
        obj.marked = False
        for frame in self.frames:
            frame.objects.pop(hid, None)
            frame.entered.pop(hid, None)
        return None

    def _needed(self, hid, obj):
        """Why the session must keep this object (ID-6), or None."""
        if obj.state == PENDING:
            return "it is pending (its INSERT is not flushed)"
        if obj.state == PERSISTENT and obj.marked:
            return "it is marked for deletion (its DELETE is not flushed)"
        if obj.state == PERSISTENT and obj.changed_fields():
            return f"it has unflushed changes ({', '.join(obj.changed_fields())})"
        # (A rollback that expires objects, or discards them, needs nothing of the object: the
        # row it would reload is there for a new object to load.)
        if self.caps.rollback_objects == "restore":
            for depth, frame in enumerate(self.frames):
                before = frame.objects.get(hid)
                if before is not None and before.state in IN_SESSION and _look(before) != _look(obj):
                    where = "the transaction" if depth == 0 else f"savepoint {depth}"
                    return f"a rollback of {where} must give it back the look it had ({before!r}, {before.values})"
        return None

    # -- another connection -------------------------------------------------------------

    def outside_write(self, verb, table, key, values):
        """Another connection commits an UPDATE (``values``: the columns it sets), DELETE or
        INSERT (``values``: the whole row) while the session has no transaction open.

        The database changes and the objects do not: a held object keeps what it loaded until it
        is expired, refreshed or reloaded, and its next UPDATE or DELETE meets the new row.
        """
        self.cite("OUT-1")
        if self.depth() != 0:
            raise AssertionError("machine bug: an outside write while a savepoint is open")
        rows = self.db[table.name]
        held = self.held(table, key)
        if verb == "INSERT":
            rows[key] = dict(values)
            if table.generated:
                self._highest_id[table.name] = max(key[0], self._highest_id.get(table.name, 0))
        elif verb == "DELETE":
            del rows[key]
            if held is not None:
                self.situations.add("another connection deleted the row of a held object")
        else:
            rows[key] = dict(rows[key], **values)
            if held is not None:
                self.situations.add("another connection changed the row of a held object")
        self.committed = copy_rows(self.db)
        self.frames[0].db = copy_rows(self.db)

    # -- flush ----------------------------------------------------------------------------

    def autoflush(self):
        if self.caps.autoflush and self.autoflushing:
            self.cite("FLU-2")
            self.flush()

    def flush(self):
        """flush(): INSERT pending objects, UPDATE net changes, DELETE marked objects; all or nothing.

        If any statement would fail (a constraint, an UPDATE or DELETE matching no row), the
        flush fails: ``after_failed_flush`` says what the session looks like afterwards, and the
        error is ``flush`` (or ``invalid_value`` for a value refused before SQL).
        """
        if self.failed:
            if self.caps.after_failed_flush != "rolled_back" or self.has_work():
                raise Refused("pending_rollback", "a previous flush failed; call rollback() first", rule="FAIL-2")
            return
        self.cite("FLU-1")
        if self.caps.flush_reloads_expired in ("at_start", "at_start_for_order"):
            self._load_for_flush()
        claims = set()
        for obj in sorted(self.objects.values(), key=lambda obj: obj.seq):
            key = obj.table.key_of(obj.values)
            holder = self.held(obj.table, key) if obj.state == PENDING and key is not None else None
            if holder is not None and not self._switchable(holder):
                raise Refused("conflict", f"flush(): {obj!r} claims a key another object holds", rule="ID-4")
            if obj.state == PENDING and key is not None:
                if (obj.table.name, key) in claims:
                    self.situations.add("two pending objects claimed one key")
                    raise Refused("conflict", f"flush(): {obj!r} claims a key another pending object claims",
                                  rule="ID-4")
                claims.add((obj.table.name, key))
        statements = self._plan()
        if statements and self.caps.refuses_deleting_referenced_rows:
            self._refuse_dangling_children(statements)
        if not statements:
            self.frames[-1].updated |= self._flushed_persistent()
            self._clear_assigned()
            return
        if self.caps.refuses_null_before_sql:
            for verb, hid in statements:
                obj = self.objects[hid]
                if verb != "DELETE" and obj.values.get("name", "") is None:
                    raise Refused("invalid_value", f"{obj!r}: name is None but NOT NULL", rule="FAIL-3")
        trial = copy_rows(self.db)
        keys = {}
        batch = []
        loaded_groups = set()
        # Rows this flush deletes, until their DELETE has run (see stops_delete_of_reused_key).
        doomed = {(self.objects[hid].table.name, self.objects[hid].key) for verb, hid in statements
                  if verb == "DELETE"}
        for index, statement in enumerate(statements):
            if batch and not self._same_batch(batch, statement):
                self._write_back(batch)
            before = copy_rows(trial) if self.caps.after_failed_flush == "partial" else None
            refusal = self._load_group(trial, statements, statement, loaded_groups)
            if refusal is None:
                refusal = self._apply(trial, statement, keys, doomed)
            if refusal is not None:
                self.situations.add(f"a flush failed ({refusal.kind})")
                if self.caps.after_failed_flush == "partial":
                    self._stop_partway(before, statements[:index], keys)
                    raise refusal
                self._fail()
                if self.caps.flush_order == "tables":
                    # Which problem SQLAlchemy meets first depends on its own action order.
                    raise Refused("flush", refusal.reason, rule=refusal.rule, cause=refusal.kind)
                raise refusal
            if statement[0] == "INSERT" and self.caps.failed_flush_keeps_keys_and_versions:
                batch.append((statement[1], *keys[statement[1]]))
            if statement[0] == "UPDATE":
                self.cite("OUT-2")
                self.situations.add("a flush sent an UPDATE (dirty objects)")
                obj = self.objects[statement[1]]
                if obj.table.versioned and self.caps.failed_flush_keeps_keys_and_versions:
                    obj.values["version"] = trial[obj.table.name][obj.key]["version"]
        refusal = self._complete_rows(trial, statements, keys)
        if refusal is not None or self.caps.flush_order == "rows":
            refusal = refusal or self._check_end_state(trial)
            if refusal is not None:
                self.situations.add(f"a flush failed ({refusal.kind})")
                self._fail()
                raise refusal
        self.db = trial
        self._note_write()
        self.frames[-1].updated |= self._flushed_persistent()
        self._finish(statements, keys)
        self._clear_assigned()

    def _stop_partway(self, rows, done, keys):
        """after_failed_flush == "partial": the statements before the failing one stay written (``rows``
        is the database after them) and their objects are updated; with nothing written the
        session goes on as before the flush, else it refuses flushes until rollback()."""
        if not done:
            self.situations.add("a flush failed at its first statement")
            return
        self.situations.add("a flush failed after writing some rows")
        self.db = rows
        self._note_write()
        self.frames[-1].updated |= {hid for verb, hid in done if verb == "UPDATE"}
        self._finish(done, keys)
        self.failed = True
        self.failed_depth = self.depth()

    def _finish(self, statements, keys):
        """The objects of statements that ran take their new keys, states and snapshots."""
        frame = self.frames[-1]
        switches = self._switches()
        for verb, hid in statements:
            obj = self.objects[hid]
            if verb == "SWITCH":
                self.cite("ORD-4")
                old = self.objects[switches[hid]]
                obj.key = old.key
                if obj.table.versioned:
                    obj.values["version"] = self.db[obj.table.name][obj.key]["version"]
                obj.snapshot = dict(obj.values)
                obj.state = PERSISTENT
                frame.inserted.add(hid)
                old.state = DELETED
                old.gone = True
                old.marked = False
                frame.deleted.add(switches[hid])
                continue
            if verb == "INSERT":
                obj.key, row = keys[hid]
                stale = self.held(obj.table, obj.key)
                if stale is not None:
                    # SQLite handed out the key of a row that is gone while an object still
                    # holds it (re-added after its row was deleted): that object is detached,
                    # as if expunged, and the new one takes the key.
                    self.cite("ID-5")
                    self.situations.add("a new row took the key of a stale object")
                    self.objects[stale].state = DETACHED
                    self.objects[stale].marked = False
                obj.values = dict(row)
                if self.caps.insert_expires_null_fields:
                    obj.values = {name: value for name, value in row.items() if value is not None}
                obj.snapshot = dict(obj.values)
                obj.state = PERSISTENT
                obj.assigned = False
                frame.inserted.add(hid)
                continue
            if verb == "UPDATE":
                if obj.table.versioned:
                    obj.values["version"] = self.db[obj.table.name][obj.key]["version"]
                    if self.retry_hid == hid:
                        self.situations.add("the retry after a stale error succeeded")
                obj.snapshot = dict(obj.values)
                obj.assigned = False
                frame.updated.add(hid)
            else:
                obj.state = DELETED
                obj.gone = True
                obj.doomed = True
                obj.marked = False
                frame.deleted.add(hid)

    def _note_write(self):
        """A flush wrote rows: objects loaded from now on may read what a rollback undoes, in this
        frame and every frame around it."""
        now = next(self._clock)
        for frame in self.frames:
            if frame.wrote is None:
                frame.wrote = now

    def _complete_rows(self, trial, statements, keys):
        """Hook for a model layer: fill what the flush writes after its statements ran (foreign
        keys taken from keys generated in this flush); returns the Refused error of a statement
        that could not have passed, or None."""

    def _load_for_flush(self):
        """flush_reloads_expired == "at_start": before planning, objects the flush may write (assigned
        since the last flush, or marked) read back their expired fields, when their row exists.

        The version an UPDATE or DELETE checks may be expired: the row's is read (the object never
        read one to compare with), and no row means someone else deleted it: the stale error,
        found before anything is loaded, so the refused flush changes no object."""
        self.cite("FLU-6")
        writing = [obj for obj in sorted(self.objects.values(), key=lambda obj: (obj.marked, obj.seq))
                   if obj.state == PERSISTENT and (obj.assigned or obj.marked)]
        for obj in writing:
            if obj.table.versioned and "version" not in obj.snapshot and obj.key not in self.db[obj.table.name]:
                self.situations.add("a flush found the row of an object with an expired version gone")
                raise Refused("stale", f"flush(): {obj!r} has an expired version and its row is gone", rule="VER-3")
        for obj in writing:
            unknown_version = obj.table.versioned and "version" not in obj.snapshot
            if self.caps.flush_reloads_expired == "at_start_for_order" and not obj.marked and not unknown_version:
                # Only an assignment over an expired key, unique or foreign-key field makes the
                # flush read the row first (its old value orders the flush).
                ordering = set(obj.table.key) | {column for column, _ in obj.table.refs}
                if obj.table.unique_code:
                    ordering.add("code")
                if not any(name in obj.values and name not in obj.snapshot for name in ordering):
                    continue
            row = self.db[obj.table.name].get(obj.key)
            if row is not None and len(obj.values) < len(obj.table.columns):
                self._reload(obj, row)
            elif row is not None and self.caps.reload_compares_expired_assignments and \
                    len(obj.snapshot) < len(obj.table.columns):
                # Every field is set, some by an assignment made while it was expired (merge()
                # assigns them all): the row read now is their snapshot, as a query's is.
                self.situations.add("a flush completed the snapshot of fields assigned while expired")
                obj.load(row, True)

    def _refuse_dangling_children(self, statements):
        """A held object the flush does not write, whose loaded foreign key points at a row the
        flush deletes, is refused before any SQL (invalid_state; the session stays usable).  An
        object a row switch replaces is written too: its row takes the new object's values."""
        self.cite("FLU-8")
        written = {hid for _, hid in statements} | set(self._switches().values())
        doomed = {(self.objects[hid].table.name, self.objects[hid].key)
                  for verb, hid in statements if verb == "DELETE"}
        for hid, obj in self.objects.items():
            if obj.state != PERSISTENT or hid in written:
                continue
            for column, parent in obj.table.refs:
                value = obj.values.get(column)
                if value is not None and (parent, (value,)) in doomed:
                    raise Refused("invalid_state", f"flush(): deleting {parent}({value},) would leave {obj!r} "
                                                   f"pointing at no row", rule="FLU-8")

    def _check_end_state(self, trial):
        """flush_order == "rows": rows are ordered so that a flush fails only if the rows it leaves
        break a constraint: NOT NULL, UNIQUE, or a foreign key pointing at no row."""
        self.cite("ORD-1")
        for table in self.schema.tables:
            for row in trial[table.name].values():
                refusal = self._check_row(trial, table, row)
                if refusal is not None:
                    return refusal
        return None

    def _load_group(self, trial, statements, statement, loaded_groups):
        """flush_reloads_expired == "per_table": before a table's UPDATEs (or DELETEs) run, the
        expired objects among them reload their expired fields; a missing row fails the flush."""
        verb, hid = statement
        table = self.objects[hid].table
        if self.caps.flush_reloads_expired != "per_table" or verb == "INSERT" or (verb, table) in loaded_groups:
            return None
        loaded_groups.add((verb, table))
        self.cite("FLU-6")
        for other_verb, other in statements:
            obj = self.objects[other]
            if other_verb != verb or obj.table is not table:
                continue
            # What the statement needs: the key, and the version it checks (fields expired by a
            # field list stay expired).
            needed = table.key + (("version",) if table.versioned else ())
            if all(name in obj.values for name in needed):
                continue
            row = trial[table.name].get(obj.key)
            if row is None:
                return Refused("row_missing", f"{verb} {obj!r}: loading its expired fields found no row", rule="FLU-6")
            self._reload(obj, row)
        return None

    def _same_batch(self, batch, statement):
        """INSERTs into one table, all with (or all without) a key, run as one statement."""
        verb, hid = statement
        first = self.objects[batch[0][0]]
        obj = self.objects[hid]
        same_shape = (obj.values.get("id") is None) == (first.values.get("id") is None)
        return verb == "INSERT" and obj.table is first.table and same_shape

    def _write_back(self, batch):
        """failed_flush_keeps_keys_and_versions: the keys of a finished INSERT statement land on its
        objects, and so does the version it wrote (with insert_writes_version_1 it may not be the
        one the object held: SQLAlchemy leaves version 1 on an object a rollback made transient at
        version 3 and whose INSERT ran before a later statement of the flush failed)."""
        self.cite("FAIL-4")
        for hid, key, row in batch:
            obj = self.objects[hid]
            obj.values.update(zip(obj.table.key, key))
            if obj.table.versioned:
                obj.values["version"] = row["version"]
        batch.clear()

    def _flushed_persistent(self):
        """Persistent objects a flush looks at: assigned or changed since their snapshot."""
        return {hid for hid, obj in self.objects.items()
                if obj.state == PERSISTENT and not obj.marked and (obj.assigned or obj.changed_fields())}

    def _clear_assigned(self):
        """A flush takes stock of assignments (objects it deleted keep the mark, as in SQLAlchemy)."""
        for obj in self.objects.values():
            if obj.state in (PENDING, PERSISTENT):
                obj.assigned = False

    def _plan(self):
        """``[(verb, hid)]`` in the order the flush runs them (see the module docstring)."""
        pending = sorted((obj.seq, hid) for hid, obj in self.objects.items() if obj.state == PENDING)
        marked = sorted((obj.seq, hid) for hid, obj in self.objects.items()
                        if obj.state == PERSISTENT and obj.marked)
        changed = sorted((obj.seq, hid) for hid, obj in self.objects.items()
                         if obj.state == PERSISTENT and not obj.marked and obj.changed_fields())
        if self.caps.flush_order == "changes":
            return self._queued(pending, marked)
        self.cite("ORD-1", "ORD-2")
        if self.caps.flush_order == "rows":
            return self._waves(pending, changed, marked)
        statements = []
        for verb, table in self._table_actions():
            if verb == "save":
                updates = sorted((self.objects[hid].key, hid) for _, hid in changed if self.objects[hid].table is table)
                statements += [("UPDATE", hid) for _, hid in updates]
                statements += [("INSERT", hid) for _, hid in pending if self.objects[hid].table is table]
                continue
            rows = [hid for _, hid in marked if self.objects[hid].table is table]
            if any(parent == table.name for _, parent in table.refs):
                if self.caps.self_reference_delete_order == "referencing_first":
                    rows = self._children_first(table, rows)
            else:
                rows.sort(key=lambda hid: self.objects[hid].key)
            statements += [("DELETE", hid) for hid in rows]
        return statements

    def _table_actions(self):
        """flush_order == "tables": ``[("save" or "delete", table)]`` in the order SQLAlchemy's unit
        of work runs them.

        A table is in the flush when one of its objects is pending, marked, or assigned (even
        with no net change).  Each table in the flush has a save action (its UPDATEs, by key,
        then its INSERTs, in session order) and a delete action (its DELETEs, by key), the save
        first.  A foreign key between two tables both in the flush orders the parent's save
        before the child's save, one step apart (the step that processes the relationship), and
        the child's save and delete before the parent's delete; tables not in the flush order
        nothing, so a grandparent and a grandchild whose middle table is not in the flush are
        unordered.  Actions run in waves, each holding every action whose prerequisites ran;
        within a wave deletes come before saves, each by table name (SQLAlchemy sorts its
        actions by kind, then class name, before its topological sort).
        """
        involved = set()
        for obj in self.objects.values():
            if obj.state == PENDING or (obj.state == PERSISTENT and (obj.marked or obj.assigned or obj.changed_fields())):
                involved.add(obj.table.name)
        tables = sorted((table for table in self.schema.tables if table.name in involved), key=lambda table: table.name)
        before = {}
        for table in tables:
            before[("save", table.name)] = set()
            before[("delete", table.name)] = {("save", table.name)}
        for table in tables:
            for column, parent in table.refs:
                if parent == table.name or parent not in involved:
                    continue
                step = ("relationship", table.name, column)
                before[step] = {("save", parent)}
                before[("save", table.name)].add(step)
                before[("delete", parent)] |= {("save", table.name), ("delete", table.name)}
        kinds = {"delete": 0, "relationship": 1, "save": 2}
        order = []
        done = set()
        while len(done) < len(before):
            wave = sorted((action for action in before if action not in done and before[action] <= done),
                          key=lambda action: (kinds[action[0]], action[1:]))
            if not wave:
                raise AssertionError("machine bug: a cycle of tables in a flush_order='tables' flush")
            order += [(verb, self.schema.table(name)) for verb, name, *_ in wave if verb != "relationship"]
            done |= set(wave)
        return order

    def _queued(self, pending, marked):
        """flush_order == "changes": one statement per object in the order of its queue number;
        every object assigned since the last flush gets an UPDATE (dirty_means "assigned")."""
        assigned = [hid for hid, obj in self.objects.items()
                    if obj.state == PERSISTENT and not obj.marked and (obj.assigned or obj.changed_fields())]
        work = [(self.objects[hid].queued, "UPDATE", hid) for hid in assigned]
        work += [(self.objects[hid].queued, "INSERT", hid) for _, hid in pending]
        work += [(self.objects[hid].queued, "DELETE", hid) for _, hid in marked]
        return [(verb, hid) for _, verb, hid in sorted(work)]

    def _waves(self, pending, changed, marked):
        """flush_order == "rows": statements in waves, each holding every row whose prerequisites
        ran in earlier waves; a wave runs its UPDATEs, INSERTs, then DELETEs, each in session order.

        Prerequisites: a row referencing a row inserted in this flush comes after that INSERT; a
        row deleted, or updated away from a row deleted in this flush, comes before that DELETE.
        A cycle (all foreign keys here are nullable) is broken by running what is left together.
        """
        switches = self._switches()
        actions = [("UPDATE", hid) for _, hid in changed]
        actions += [("SWITCH" if hid in switches else "INSERT", hid) for _, hid in pending]
        actions += [("DELETE", hid) for _, hid in marked if hid not in switches.values()]
        inserted = {(self.objects[hid].table.name, self.objects[hid].table.key_of(self.objects[hid].values)): action
                    for action in actions for verb, hid in [action] if verb == "INSERT"}
        deleted = {(self.objects[hid].table.name, self.objects[hid].key): action
                   for action in actions for verb, hid in [action] if verb == "DELETE"}
        before = {action: set() for action in actions}
        for action in actions:
            verb, hid = action
            obj = self.objects[hid]
            changed_columns = obj.changed_fields() if verb == "UPDATE" else obj.table.columns
            for column, parent in obj.table.refs:
                if verb != "DELETE" and column in changed_columns:
                    value = obj.values.get(column)
                    parent_action = inserted.get((parent, (value,)))
                    if value is not None and parent_action not in (None, action):
                        before[action].add(parent_action)
                if verb != "INSERT" and column in changed_columns:
                    old = obj.snapshot.get(column)
                    doomed = deleted.get((parent, (old,)))
                    if old is not None and doomed not in (None, action):
                        before[doomed].add(action)
        self._more_prerequisites(actions, before)
        order = []
        done = set()
        while len(done) < len(actions):
            wave = [action for action in actions if action not in done and before[action] <= done]
            if not wave:
                wave = [action for action in actions if action not in done]
            for verbs in (("UPDATE", "SWITCH"), ("INSERT",), ("DELETE",)):
                order += [action for action in wave if action[0] in verbs]
            done |= set(wave)
        return order

    def _more_prerequisites(self, actions, before):
        """Hook for a model layer: add ``before[action]`` entries (see ``_waves``)."""

    def _children_first(self, table, hids):
        """Deletes of one self-referencing table ordered so a referencing row goes first."""
        own = [column for column, parent in table.refs if parent == table.name]
        if not own:
            return hids
        self.cite("ORD-3")
        column = own[0]
        remaining = sorted(hids, key=lambda hid: self.objects[hid].key)
        ordered = []
        while remaining:
            for hid in remaining:
                target = self.objects[hid].key[0]
                referenced = False
                for other in remaining:
                    if other != hid and self._reference_of(other, column) == target:
                        referenced = True
                if not referenced:
                    break
            remaining.remove(hid)
            ordered.append(hid)
        return ordered

    def _reference_of(self, hid, column):
        obj = self.objects[hid]
        if column in obj.values:
            return obj.values[column]
        row = self.db[obj.table.name].get(obj.key)
        return None if row is None else row[column]

    def _apply(self, trial, statement, keys, doomed):
        """Run one statement on ``trial`` rows; return the Refused error it would raise, or None.

        ``keys`` collects the key and row each INSERT wrote (a generated id is max(id) + 1);
        ``doomed`` holds the (table, key) of rows a later DELETE of this flush removes.
        """
        verb, hid = statement
        obj = self.objects[hid]
        table = obj.table
        rows = trial[table.name]
        if verb == "INSERT":
            if len(obj.values) < len(table.columns):
                return Refused("invalid_state", f"INSERT {obj!r}: it has expired fields and no row to load them from",
                               rule="FLU-5")
            row = {column: obj.values.get(column) for column in table.columns}
            if table.versioned and self.caps.insert_writes_version_1:
                row["version"] = 1
            if table.versioned:
                self.cite("VER-1")
            if table.generated and row["id"] is None:
                self.cite("FLU-3")
                row["id"] = max([key[0] for key in rows], default=0) + 1
                if row["id"] <= self._highest_id.get(table.name, 0):
                    self.situations.add("SQLite reused a generated id")
                self._highest_id[table.name] = max(row["id"], self._highest_id.get(table.name, 0))
                if self.caps.stops_delete_of_reused_key and (table.name, (row["id"],)) in doomed:
                    self.situations.add("a new row got the key of a row the flush deletes")
                    return Refused("flush", f"INSERT {obj!r}: SQLite gave it the key {row['id']} of a row "
                                            f"this flush deletes (deleted elsewhere since it was read)", rule="FLU-9")
            key = table.key_of(row)
            if key in rows:
                return Refused("flush", f"INSERT {obj!r}: key {key} exists", rule="FAIL-1")
            rows[key] = row
            keys[hid] = (key, dict(row))
            return self._check_statement(trial, table, row)
        if verb == "SWITCH":
            old = self.objects[self._switches()[hid]]
            stale = self._stale(old, rows, "UPDATE (row switch)")
            if stale is not None:
                return stale
            if old.key not in rows:
                return Refused("flush", f"UPDATE (row switch) {obj!r}: no row has that key", rule="FLU-7")
            row = {column: obj.values.get(column) for column in table.columns}
            if table.versioned:
                row["version"] = rows[old.key]["version"] + 1
            rows[old.key] = row
            return self._check_statement(trial, table, rows[old.key])
        stale = self._stale(obj, rows, verb)
        if stale is not None:
            return stale
        if obj.key not in rows:
            if verb == "DELETE" and self.caps.delete_finding_no_row == "ignore":
                return None
            return Refused("flush", f"{verb} {obj!r}: no row has that key", rule="FLU-7")
        if verb == "UPDATE":
            row = dict(rows[obj.key])
            for name in obj.changed_fields():
                row[name] = obj.values[name]
            if table.versioned:
                row["version"] += 1
            untouched = [name for name in obj.snapshot if name not in obj.changed_fields()
                         and name != "version" and row[name] != obj.snapshot[name]]
            if untouched:
                self.situations.add("an UPDATE left columns another connection changed")
            rows[obj.key] = row
            return self._check_statement(trial, table, row)
        del rows[obj.key]
        doomed.discard((table.name, obj.key))
        if self.caps.flush_order == "rows":
            return None
        for child, column in self.schema.children(table.name):
            for child_row in trial[child.name].values():
                if child_row[column] == obj.key[0]:
                    return Refused("flush", f"DELETE {obj!r}: still referenced by {child.name}.{column}", rule="ORD-1")
        return None

    def _stale(self, obj, rows, verb):
        """A versioned row no longer at the version ``obj`` holds (or gone): the stale error."""
        if not obj.table.versioned:
            return None
        row = rows.get(obj.key)
        if row is not None and row["version"] == obj.snapshot.get("version"):
            return None
        self.cite("VER-2")
        self.stale_hid = self._hid(obj)
        self.situations.add(f"a stale {verb.split()[0]} of a versioned row")
        found = "no row" if row is None else f"version {row['version']}"
        return Refused("stale", f"{verb} {obj!r}: expected version {obj.snapshot.get('version')}, found {found}",
                       rule="VER-2")

    def _check_statement(self, trial, table, row):
        """flush_order == "tables": SQLite checks each statement's row when it runs."""
        if self.caps.flush_order == "rows":
            return None
        return self._check_row(trial, table, row)

    def _check_row(self, trial, table, row):
        """The constraints SQLite checks when a statement ends: NOT NULL, UNIQUE, foreign keys."""
        if row["name"] is None:
            return Refused("flush", f"{table.name}.name is NOT NULL", rule="FAIL-1")
        if table.unique_code and row["code"] is not None:
            same = [key for key, other in trial[table.name].items() if other["code"] == row["code"]]
            if len(same) > 1:
                return Refused("flush", f"{table.name}.code {row['code']!r} is not unique", rule="FAIL-1")
        for column, parent in table.refs:
            if row[column] is not None and (row[column],) not in trial[parent]:
                return Refused("flush", f"{table.name}.{column} = {row[column]} references no {parent} row",
                               rule="FAIL-1")
        return None

    def _fail(self):
        """A flush failed; see ``caps.after_failed_flush``."""
        self.cite("FAIL-1")
        self.failed = True
        self.failed_depth = self.depth()
        if self.caps.after_failed_flush == "rolled_back":
            self._roll_back_frame(self.frames[-1], nested=len(self.frames) > 1)

    # -- transactions ---------------------------------------------------------------------

    def commit(self):
        """commit(): flush, COMMIT; DELETED objects become DETACHED; a new transaction begins.

        (Only objects the transaction deleted: one SQLAlchemy marks deleted after a failed flush
        stays DELETED, see ``_load_held``.)
        """
        if self.failed:
            if self.caps.after_failed_flush == "partial":
                self.rollback()
            raise Refused("pending_rollback", "commit(): a previous flush failed", rule="FAIL-2")
        try:
            self.flush()
        except Refused:
            if self.caps.after_failed_flush == "partial":
                self.situations.add("a failed commit rolled back")
                self.rollback()
            raise
        self.cite("TXN-1")
        self.committed = copy_rows(self.db)
        deleted = set()
        for frame in self.frames:
            deleted |= frame.deleted
        for hid, obj in self.objects.items():
            if obj.state == DELETED and hid in deleted and self.caps.commit_detaches_deleted:
                obj.state = DETACHED
            elif obj.state == PERSISTENT and self.caps.expire_on_commit:
                self.cite("EXP-6")
                obj.expire()
        self.frames = [Frame(self.db, self.objects, next(self._clock))]

    def stale_not_met(self):
        """The implementation failed the flush this model expected to fail with a stale error at
        another statement first, one whose row breaks a constraint (a foreign key): under
        flush_order "rows" the model checks constraints only once every statement ran (see
        ``_check_end_state``), so it cannot tell which of the two SQLite meets first.  No object
        was then found stale: the rollback expires none (an object read before the transaction's
        first write keeps its values)."""
        self.stale_hid = None

    def rollback(self):
        """rollback(): every savepoint and the transaction roll back, innermost first; an object
        a stale-data error named is then expired, so that the retry reads the row as it is now."""
        if self.caps.rollback_objects == "discard":
            self._discard()
            return
        while self.frames:
            self._end_frame()
        if self.stale_hid is not None and self.caps.rollback_expires_stale_object:
            stale = self.objects[self.stale_hid]
            if stale.state == PERSISTENT:
                self.cite("VER-4")
                stale.expire()
                self.situations.add("a rollback expired the object a stale error named")
        self.retry_hid = self.stale_hid
        self.stale_hid = None
        self.failed = False
        self.frames = [Frame(self.db, self.objects, next(self._clock))]

    def begin_nested(self):
        """begin_nested(): flush, then open a savepoint."""
        if self.failed:
            raise Refused("pending_rollback", "begin_nested(): a previous flush failed", rule="FAIL-2")
        self.flush()
        self.cite("SVP-1")
        self.frames.append(Frame(self.db, self.objects, next(self._clock)))

    def release(self):
        """Releasing the innermost savepoint: flush, and its work joins the enclosing frame."""
        if self.failed:
            raise Refused("pending_rollback", "release of a savepoint: a previous flush failed", rule="FAIL-2")
        self.flush()
        self.cite("SVP-2")
        self.frames.pop().merge_into(self.frames[-1])

    def rollback_nested(self):
        """Rolling back the innermost savepoint: the rollback rule, for the work since it began.

        A flush that failed while it was open failed inside it (nothing can be opened after a
        failure), so it is undone with it and the enclosing transaction goes on."""
        self.cite("SVP-3")
        if self.failed:
            self.cite("SVP-4")
        self._end_frame()
        self.failed = False

    def close(self):
        """close(): the transaction rolls back and every object leaves the session.

        With ``close_rolls_back_objects`` objects first get the rollback rule, then are detached;
        otherwise they are detached as they are.  Pending objects become transient.
        """
        if self.caps.rollback_objects == "discard":
            self._discard()
            return
        self.cite("TXN-2")
        if self.caps.close_rolls_back_objects:
            self.rollback()
        else:
            self.db = copy_rows(self.committed)
        for obj in self.objects.values():
            if obj.state == PENDING:
                obj.state = TRANSIENT
            elif obj.state in IN_SESSION:
                obj.state = DETACHED
                obj.marked = False
        self.failed = False
        self.frames = [Frame(self.db, self.objects, next(self._clock))]

    def _discard(self):
        """rollback == "discard": the database rolls back and the session lets go of every object,
        which keeps the values it has: pending ones become transient, all others detached."""
        if self.new() and (self.deleted() or any(obj.state == DELETED for obj in self.objects.values())):
            self.situations.add("a rollback with pending and deleted objects")
        self.db = copy_rows(self.committed)
        for obj in self.objects.values():
            if obj.state == PENDING:
                obj.state = TRANSIENT
            elif obj.state in (PERSISTENT, DELETED):
                obj.state = DETACHED
            obj.marked = False
            obj.outside = True
        self.failed = False
        self.stale_hid = None
        self.frames = [Frame(self.db, self.objects, next(self._clock))]

    def _end_frame(self):
        """Roll back the innermost frame, unless a failed flush already did (after_failed_flush)."""
        depth = self.depth()
        frame = self.frames.pop()
        if self.failed and self.caps.after_failed_flush == "rolled_back" and depth >= self.failed_depth:
            self.db = copy_rows(frame.db)
        else:
            self._roll_back_frame(frame, nested=depth > 0)
        if self.frames:
            # The savepoint's writes are undone: they no longer count for the enclosing frames.
            for outer in self.frames:
                if outer.wrote is not None and outer.wrote > frame.started:
                    outer.wrote = None
            # Objects loaded in a rolled-back savepoint stay, as the rollback left them (expired
            # if loaded after its first write): they were still first loaded during the
            # enclosing frame, which restores that look.
            for hid, look in frame.entered.items():
                if look.state == PERSISTENT and self.objects[hid].state == PERSISTENT:
                    self.frames[-1].entered.setdefault(hid, self.objects[hid].copy())

    def _roll_back_frame(self, frame, nested):
        if self.new() and (self.deleted() or any(obj.state == DELETED for obj in self.objects.values())):
            self.situations.add("a rollback with pending and deleted objects")
        if nested:
            self.situations.add("a savepoint rolled back")
        self.db = copy_rows(frame.db)
        self.cite("RBK-1")
        if self.caps.rollback_objects == "restore":
            self._restore(frame)
        else:
            self._expire_frame(frame, nested)

    def _restore(self, frame):
        """Objects get back their look at the frame's start (or at entering it), with no SQL;
        objects loaded during the frame after its first write stay, expired (their values may be
        ones the rollback undid); objects loaded before it keep the look they were loaded with
        (the database goes back to exactly what they read).

        A rollback never leaves two objects for one row (one expunged, the other loaded after):
        the object held at the frame's start keeps the key, else the one loaded first; the other
        becomes DETACHED, expired if it was loaded during the frame after its first write, else
        with the values it entered with.
        """
        for hid in list(self.objects):
            before = frame.objects.get(hid)
            entered = frame.entered.get(hid)
            if before is not None and before.state in IN_SESSION:
                self.objects[hid] = before.copy()
            elif entered is not None and entered.state == PERSISTENT and self._read_after_write(frame, entered):
                obj = self.objects[hid]
                obj.state = PERSISTENT
                obj.key = entered.key  # a key changed in the frame is undone with it
                obj.marked = False
                obj.gone = False
                obj.expire()
            elif entered is not None:
                self.objects[hid] = entered.copy()
        claims = {}
        for hid, obj in self.objects.items():
            if obj.state == PERSISTENT:
                claims.setdefault((obj.table.name, obj.key), []).append(hid)
        for hids in claims.values():
            if len(hids) < 2:
                continue
            self.cite("RBK-3")
            held = [hid for hid in hids if hid in frame.objects and frame.objects[hid].state == PERSISTENT]
            winner = held[0] if held else min(hids, key=lambda hid: frame.entered[hid].seq)
            for hid in hids:
                if hid != winner:
                    loser = frame.entered[hid].copy()
                    if loser.state == PERSISTENT and self._read_after_write(frame, loser):
                        loser.expire()
                    loser.state = DETACHED
                    self.objects[hid] = loser

    def _read_after_write(self, frame, look):
        """Was this object (loaded during ``frame``) loaded after the frame's first write?"""
        self.cite("RBK-2")
        if frame.wrote is None or look.loaded_at < frame.wrote:
            self.situations.add("a rollback kept an object read before any write")
            return False
        if look.loaded_at > frame.wrote:
            self.situations.add("a rollback expired an object read after a write")
        return True

    def _expire_frame(self, frame, nested):
        """Rollback by expiry: inserted objects become transient (values as they are), deleted
        ones still in the session persistent, and objects the frame changed (all, at the
        outermost level) expire."""
        pending = {hid for hid, obj in self.objects.items() if obj.state == PENDING}
        marked = {hid for hid, obj in self.objects.items() if obj.state == PERSISTENT and obj.marked}
        to_transient = frame.inserted | pending
        for hid in to_transient:
            obj = self.objects[hid]
            obj.state = TRANSIENT
            obj.key = None
            obj.marked = False
            if obj.gone and self.caps.rollback_forgets_delete_of_new_object:
                self.cite("RBK-4")
            obj.gone = obj.gone and not self.caps.rollback_forgets_delete_of_new_object
        for hid in (frame.deleted | marked) - to_transient:
            obj = self.objects[hid]
            if obj.state not in (DELETED, PERSISTENT):
                continue  # expunged since: it stays detached
            obj.state = PERSISTENT
            obj.marked = False
            obj.gone = False
        for hid, obj in self.objects.items():
            if obj.state == PERSISTENT and (not nested or obj.assigned or hid in frame.updated):
                obj.expire()
        frame.inserted = set()
        frame.updated = set()
        frame.deleted = set()

