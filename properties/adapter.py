"""The adapter protocol: the handful of operations the conformance machine needs, and capabilities.

An implementation under test is plugged in by writing one small class (see ``uow_adapter`` and
``sqlalchemy_adapter``) and naming a factory for it in ``UOW_IMPL="module:factory"``.  The
machine never looks past the adapter, and it observes the database itself, through a back door
(raw SQL on the connection the adapter opened, and a second connection for committed rows).

Capabilities say where an implementation legitimately differs from the specification,
properties/RULES.rst.  Each names a behaviour and the rules it changes: it selects which exact
outcome the oracle expects, or says that an operation does not exist (then the machine never draws
it).  A capability never loosens a check, and the conformance report lists every declared
difference, with the adapter's reason, and every operation not drawn.
"""

import abc
import dataclasses
import importlib
import os
import sqlite3

# The adapters that ship with the kit, by the short names the command line accepts.  A module
# starting with a dot is the kit's own, whatever name the kit was imported under ("properties" in
# a checkout of uow, "uow_conformance" when installed).
SHIPPED = {
    "uow": ".uow_adapter:UowAdapter",
    "sqlalchemy": ".sqlalchemy_adapter:SQLAlchemyAdapter",
    "pony": ".pony_adapter:PonyAdapter",
    "uow-weak": ".uow_adapter:UowWeakAdapter",  # uow with weak_identity_map=True
}
DEFAULT_IMPL = "uow"


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What the implementation does where the specification (RULES.rst) allows a choice.

    The defaults are the specification.  Each field names a behaviour in the user's terms; its
    docstring says what each value means and, last, which rules of RULES.rst it changes.  A
    value either selects another exact outcome, which the oracle then checks as strictly, or
    says that an operation does not exist (``False``, or ``None`` where the docstring says so),
    and then the machine never draws it (``SKIPPED_WHEN`` below; the report lists both).
    """

    # -- objects joining and leaving the session ----------------------------------------------

    objects_join_on_construction: bool = False
    """Constructing an object puts it in the session at once, as pending: there is no transient
    object waiting for add() (Pony).  Refusals add() would make (a key another object holds) are
    made by the constructor.  Rules: LIF-2, ID-4."""

    add: bool = True
    """session.add() exists.  False (Pony: objects join when constructed, and an object whose
    session is over cannot join another): add() is never drawn.  Rules: LIF-2."""

    expunge: bool = True
    """session.expunge(obj) exists.  False: never drawn.  Rules: LIF-6."""

    add_cancels_delete: bool = True
    """add() of an object marked for deletion (delete() called, not flushed yet) takes the delete
    back, as SQLAlchemy and Storm do.  False: the object stays marked.  Rules: LIF-2."""

    delete_pending: str = "expunge"
    """delete() of a pending object (added, never flushed): "expunge" cancels its insert and makes
    it transient; "refuse" raises invalid_state.  Rules: LIF-5."""

    delete_again: str | None = "ignore"
    """delete() of an object whose row a flush already deleted: "ignore" (nothing happens); None:
    the implementation does not allow it, and it is not drawn.  Rules: LIF-5."""

    refuses_deleted_objects: bool = False
    """delete() ends an object for its user (Pony): assigning to an object marked for deletion is
    refused with invalid_state (so is an in-place change of its JSON value, which keeps the
    change, as under detached_refuses_changes); once its DELETE is flushed, or once it was deleted
    while pending, reading a field is refused too, also after commit or rollback, and a further
    delete() does nothing.  Rules: LIF-5, TRK-5, EXP-1."""

    detached_refuses_changes: bool = False
    """An object outside the session (detached, or transient after a rollback "discard") refuses
    assignment, in-place changes of its JSON value and delete() with the detached error: it
    belongs to a session that is over (Pony).  Its loaded values can still be read.  An in-place
    change is refused after it changed the value (the tracked dict changes, then asks its
    object), so the value keeps the change.  Rules: TRK-5, VAL-2, LIF-5."""

    attach_without_row: str = "refuse"
    """add() or delete() of a detached object whose row a flush deleted (the delete committed, or
    the object expunged after the flush): "refuse", both raise invalid_state (the object has no
    row to mirror); "refuse_add" (SQLAlchemy), add() raises invalid_state and delete() is not
    drawn (it re-attaches the object, and the flush's DELETE matches no row); "attach", both
    re-attach it as persistent, without a row.  Rules: LIF-4."""

    close_detaches_deleted: bool = True
    """close() and expunge_all() detach objects whose DELETE was flushed but not committed.  False
    (SQLAlchemy: they stay "deleted", bound to the closed session): the machine neither closes the
    session nor calls expunge_all() while such an object exists.  Rules: LIF-7, TXN-2."""

    expunge_all: bool = True
    """expunge_all() exists: every object leaves the session.  False: not drawn.  Rules: LIF-7."""

    weak_identity_map: bool = False
    """The identity map holds objects weakly: one the program no longer references may leave the
    session when the garbage collector frees it, unless it has work to do (ID-6).  The machine
    then draws ``forget``: the program drops its references to objects and runs ``gc.collect()``,
    and the oracle checks that no object with work left.  (The objects must accept weak
    references.)  Rules: ID-6."""

    # -- tracking changes and values ------------------------------------------------------------

    dirty_means: str = "net"
    """What puts a persistent object in ``session.dirty``: "net", a field whose value differs from
    the value loaded or last flushed (setting it back is no change); "assigned", any assignment
    since the last flush (SQLAlchemy; the flush still writes only net changes).  Rules: TRK-2."""

    compares_values: str = "strict"
    """How a field's value is compared with the value loaded: "strict" (a value of another type or
    written differently, such as ``True`` for ``1`` in JSON or ``Decimal("1.10")`` for
    ``Decimal("1.1")``, is a change, because writing it changes what the database holds);
    "equal" (SQLAlchemy: ``==``, so such an assignment writes nothing).  Rules: VAL-1."""

    tracks_json_in_place: bool = True
    """A JSON dict or list changed in place (``obj.data["n"]["m"] = 1``), without an assignment, is
    a change the next flush writes.  False: in-place changes are not drawn.  Rules: VAL-2."""

    reload_compares_expired_assignments: bool = True
    """A field assigned while it was expired counts as changed until the row is read back; then the
    assigned value is compared with the row's, so assigning the value the row holds is no change.
    False (SQLAlchemy): such a field counts as changed until the next flush.  Rules: TRK-3."""

    # -- loading and expiry -------------------------------------------------------------------

    expire: bool = True
    """session.expire(obj) exists.  False: never drawn, and no object is ever expired by it.
    Rules: EXP-2."""

    expire_on_commit: bool = False
    """commit() expires every persistent object (it reloads on next access).  False: objects keep
    the values they committed.  Rules: EXP-6."""

    expired_read_autoflushes: bool = False
    """Reading an expired field autoflushes before the SELECT that loads it.  Rules: EXP-1, ID-3."""

    get_reloads_expired: bool = False
    """get() of a held object whose every field is expired reloads it (one SELECT), and finds out
    when its row is gone (see get_finds_row_gone).  False: get() returns a held object as it is.
    Rules: ID-3, MRG-1."""

    get_finds_row_gone: str = "detach"
    """With get_reloads_expired, what get() does when the expired object's row is gone: "detach"
    (uow), the object leaves the session as if expunged (a rollback brings it back) and get()
    returns None at once; "delete_then_query" (SQLAlchemy), the object becomes deleted (detached
    at commit), and get() goes on as for a key it does not hold (autoflush, then SELECT).
    Rules: ID-3."""

    get_skips_marked: bool = False
    """get() of the key of a held object marked for deletion answers None at once, with no
    autoflush and no SQL: the object counts as gone as soon as delete() is called (Pony).
    Rules: ID-2."""

    get_finds_pending: bool = False
    """get() of the key a pending object was constructed with answers that object at once, with no
    autoflush: the identity map holds new objects under their key too (Pony).  Rules: ID-2."""

    get_queries_after_autoflush: bool = False
    """get() of a key no object held runs its SELECT even when its autoflush made an object hold
    the key (an INSERT), and the row fills that object's expired fields (Pony).  False: get()
    answers the object as the flush left it.  Rules: ID-2."""

    refresh_steps: str | None = "reload"
    """What refresh() does: "reload", reload every field, with no autoflush (it exists to discard
    the object's unflushed changes); "autoflush_then_reload", autoflush (so the object's own
    changes are written), then reload; "expire_autoflush_reload" (SQLAlchemy), expire the object,
    autoflush the rest, reload; None, there is no refresh(), and it is never drawn.
    Rules: EXP-5."""

    expire_refresh_fields: bool = True
    """expire(obj, fields) and refresh(obj, fields) of a list of fields exist: only those fields
    are forgotten or reloaded.  False: not drawn.  Rules: EXP-3."""

    expire_all: bool = True
    """expire_all() exists: every object in the identity map is expired.  False: not drawn.
    Rules: EXP-4."""

    # -- queries and autoflush ----------------------------------------------------------------

    autoflush: bool = True
    """The session flushes by itself before get() misses the identity map, before a query and
    before loading a collection.  False: it never does.  Rules: FLU-2."""

    autoflush_can_be_off: bool = True
    """A session can be opened with autoflush=False: then nothing flushes before a get(), a query
    or a load (begin_nested() still flushes).  False: every session the machine opens
    autoflushes.  Rules: FLU-2."""

    filter_by: bool = True
    """A query by equality on a column exists (the adapter's ``query(table, field, value)``): the
    objects whose row's column equals the value, through the identity map.  False: queries are
    not drawn.  Rules: QRY-1."""

    select: bool = True
    """Queries beyond equality exist (the adapter's ``select(table, query)``, a
    ``conditions.Query``): comparisons, IN, IS NULL, LIKE, AND/OR/NOT under SQL's three-valued
    logic, an order, limit and offset, and the first object, the count or whether one exists.
    False: not drawn.  Rules: QRY-4."""

    # -- the flush and its order --------------------------------------------------------------

    flush_order: str = "rows"
    """How a flush orders its statements: "rows" (uow), row by row, so that it fails only when the
    rows it leaves break a constraint, and in waves (ORD-1 says which), which fixes which
    keys SQLite generates; "tables" (SQLAlchemy), per table a save (UPDATEs by key, then INSERTs)
    and a delete (DELETEs by key), a table's save before its delete, ordered otherwise only by
    the foreign keys between tables that are both in the flush, in waves, deletes before saves
    and by table name within a wave (ORD-1), each statement passing SQLite's checks when it runs;
    "changes"
    (Pony), one statement per object, in the order objects were first changed since the last
    flush (constructed, first assigned, or marked for deletion, which moves an object to the end),
    each checked by SQLite when it runs (an object assigned since the last flush is UPDATEd even
    when its values equal its snapshot, with dirty_means "assigned").  Rules: ORD-1, ORD-3, FLU-5."""

    self_reference_delete_order: str = "referencing_first"
    """With flush_order "tables", the order of DELETEs within a table that references itself:
    "referencing_first" (rows that reference another deleted row go first) or "session_order"
    (the order objects entered the session).  Rules: ORD-3."""

    reproducible_self_reference_flush: bool = True
    """A flush of a table that references itself runs in a reproducible order.  False (SQLAlchemy
    orders such rows one by one, popping them from a set, so what a failing flush has loaded or
    written before it fails varies between runs): the self-referencing schema is not drawn.
    Rules: ORD-3."""

    inserts_in_add_order: bool = True
    """Pending objects are inserted in the order they were added, also after another pending
    object was expunged.  False (SQLAlchemy numbers a pending object len(session.new) when it is
    added, which repeats after an expunge, and orders equal numbers arbitrarily, so generated
    keys become unpredictable): expunge() of a pending object is not drawn.  Rules: ORD-2,
    LIF-6."""

    pending_key_conflict: str | None = "refuse"
    """A pending object claiming a key another object holds: "refuse", add() raises conflict, or,
    when the holder came later, the flush does before any SQL (the session stays usable);
    "row_switch" (uow), the same, except that the key of an object marked for deletion may be
    taken, and the flush turns that DELETE and INSERT into one UPDATE of the row.  None: not
    supported, so add() and delete() of an object whose key another object holds or claims are
    not drawn, nor, in a session without autoflush, a get() or query that would load a row whose
    key a pending object claims (SQLAlchemy settles such pairs inside the flush in several ways,
    depending on whether the holder is expired, marked or stale).  Rules: ID-4, ORD-4."""

    flush_reloads_expired: str = "never"
    """Expired fields a flush loads by itself: "never" (only a user's read loads them);
    "at_start", at the start of a flush, objects assigned to since the last flush or marked for
    deletion load their expired fields, and keep them even if the flush fails (a detached object
    added again counts as assigned); "at_start_for_order" (uow), the same, except that an
    assigned object loads only when an expired key, unique or foreign-key field was assigned (the
    values that order a flush) or its version is expired (a versioned object whose row is gone is
    then refused with stale before any SQL); "per_table" (SQLAlchemy), before a table's UPDATEs,
    or its DELETEs, run, the objects among them with an expired key or version load.
    Rules: FLU-6, VER-3."""

    delete_finding_no_row: str = "fail"
    """A DELETE that matches no row (another connection deleted it) fails the flush ("fail") or is
    ignored ("ignore").  Rules: FLU-7."""

    insert_expires_null_fields: bool = False
    """After its INSERT, an object's fields that held None are expired (the database may have
    filled them, with a default for instance): reading one loads the row (Pony).  False: the
    object keeps every value it was inserted with.  Rules: FLU-1."""

    refuses_deleting_referenced_rows: bool = False
    """A flush that deletes a row which a held, loaded object still references is refused before
    any SQL with invalid_state, and the session stays usable.  False: the flush fails when SQLite
    refuses it.  Rules: FLU-8."""

    stops_delete_of_reused_key: bool = True
    """SQLite hands out the largest free key again, so a new row can get the key of a row another
    connection deleted, whose stale object this flush deletes.  The flush stops before that
    DELETE would remove the new row, and fails (True); or the DELETE runs and the new row is gone
    (False).  Rules: FLU-9."""

    # -- a failed flush -----------------------------------------------------------------------

    after_failed_flush: str = "refuse_until_rollback"
    """What the session does after a flush failed: "refuse_until_rollback", the database and
    objects are as before the flush and flush, commit and savepoint operations raise
    pending_rollback until rollback(), or until the savepoint the flush failed in is rolled back
    (the enclosing transaction then goes on); "rolled_back" (SQLAlchemy), the innermost
    transaction or savepoint is rolled back at once (the rollback rule applied), commit raises
    pending_rollback, and rolling back the savepoint recovers; "partial" (Pony, with flush_order
    "changes"), the flush stops at the failing statement: the rows written before it stay written
    in the open transaction and their objects are updated (keys, states), the failing object and
    those after it keep their changes.  If nothing was written, the session goes on as before the
    flush (the next flush tries the same statements again); otherwise flush() and commit() raise
    pending_rollback until rollback().  A commit() whose flush fails, or that is refused, rolls
    the transaction back (the rollback rule).  Rules: FAIL-1, FAIL-2."""

    failed_flush_keeps_keys_and_versions: bool = False
    """Generated keys (and fields a flush reloads, and new versions, an INSERT's included) land on
    objects as each statement runs, so a failed flush leaves those of the statements before the
    failing one (True, SQLAlchemy); or only once every statement succeeded (False).  Rules:
    FAIL-1, FAIL-4."""

    predictable_keys_after_failed_flush: bool = True
    """Which generated keys a failed flush leaves on objects is predictable (none, or those of the
    statements before the failing one in the declared order).  False (SQLAlchemy: keys of INSERTs
    that ran before the failure stay, in an order set by its internal action sort): schemas with
    SQLite-generated keys are not drawn.  Rules: FAIL-4."""

    refuses_null_before_sql: bool = True
    """A NOT NULL field holding None is refused before any SQL (invalid_value, the session stays
    usable) instead of failing the flush.  Rules: FAIL-3."""

    # -- rollback, savepoints and close -------------------------------------------------------

    rollback_objects: str = "restore"
    """What a rollback does to objects: "restore", every object gets back its exact state and
    values, with no SQL; "expire" (SQLAlchemy), pending objects, and objects inserted in the
    transaction (also those expunged since), become transient (with the values they have),
    deleted ones persistent, and persistent objects are expired; "discard" (Pony), the session lets go of every object it held: pending ones become
    transient, all others detached, each keeping the values it has (unflushed changes and keys a
    flush gave included); the session starts empty, and a later get() loads a new object for the
    row.  close() does the same.  Rules: RBK-1, TXN-2."""

    rollback_forgets_delete_of_new_object: bool = True
    """An object inserted and then deleted in a transaction that rolls back comes back as a plain
    transient object.  False (SQLAlchemy 2.1 keeps an internal "was deleted" flag; after add()
    and a flush such an object reports the "deleted" state while it sits in the identity map):
    add() of such an object is not drawn.  Rules: RBK-4."""

    commit_detaches_deleted: bool = True
    """commit() makes objects whose DELETE it committed detached.  False (Pony): they stay deleted,
    held by the session (and refusing use, see refuses_deleted_objects), until a rollback or
    close() lets go of them.  Rules: TXN-1."""

    close_rolls_back_objects: bool = True
    """close() applies the rollback rule to objects before detaching them.  False: it detaches them
    as they are.  Rules: TXN-2."""

    savepoints: bool = True
    """begin_nested() exists, with release and rollback of the innermost savepoint.  False: not
    drawn.  Rules: SVP-1."""

    # -- versions and other connections -------------------------------------------------------

    version_columns: bool = True
    """Tables may have a version column (uow's Column(version=True), SQLAlchemy's version_id_col):
    an UPDATE or DELETE checks the version the object holds and an UPDATE adds one; a row changed
    or deleted by another connection fails the flush with stale.  False: no table is drawn with a
    version column.  Rules: VER-1."""

    insert_writes_version_1: bool = False
    """An INSERT always writes version 1 (True, SQLAlchemy's version_id_generator), instead of the
    version the object holds (False: a new object starts at 1, one that a rollback made transient
    again keeps the version it had reached).  Rules: VER-1."""

    rollback_expires_stale_object: bool = True
    """The rollback() after a stale error expires the object the error named, so that the natural
    retry reads the row's current version instead of failing the same way.  Rules: VER-4."""

    owns_connection: bool = False
    """The session opens its own connection and cannot be handed one (Pony's provider and pool).
    The kit then creates the database file with a connection of its own, passes the file's path
    to setup() instead of a connection, and reads the rows of the open transaction through the
    connection the adapter's ``session_connection()`` returns (the committed rows, through a
    second connection, as always).  Rules: FLU-4."""

    outside_writers: bool = True
    """Another connection may commit an UPDATE, DELETE or INSERT while the session has no
    transaction open.  False: not drawn.  Rules: OUT-1."""

    # -- merge ---------------------------------------------------------------------------------

    merge: bool = True
    """merge(obj) exists: a transient or detached object's loaded values are assigned to the
    session's object for its row (held, or loaded by get()), or to a new pending object when there
    is no row; a versioned object must carry the row's version (else stale).  False: not drawn,
    merge(obj, load=False) neither.  Rules: MRG-1."""

    merge_autoflushes: bool = False
    """merge(obj) autoflushes before it looks for the row, always (SQLAlchemy).  False: only the
    get() it makes autoflushes, when the row's object is not held.  Rules: MRG-1."""

    merge_refuses_marked_target: bool = False
    """merge(obj), with or without loading, raises invalid_state when the session's object for the row is marked for
    deletion (autoflush off, or paused): the next flush would delete the values merged onto it.
    False: they are assigned like any other, and the flush deletes the row (SQLAlchemy).  Rules: MRG-1."""

    merge_finds_like_get: bool = True
    """merge(obj) finds the session's object for the row as get() does, so a wholly expired held
    object whose row is gone is not the target (see get_reloads_expired).  False (SQLAlchemy:
    merge() looks in the identity map only): the held object is the target as it is, and copying
    the source's values onto it loads its expired fields first, which fails with row_missing when
    its row is gone (the object stays held and expired).  Rules: MRG-1."""

    refused_merge_keeps_loaded: bool = True
    """The object a refused merge(obj) loaded for the row stays in the session.  False (SQLAlchemy:
    its identity map holds objects weakly, and nothing else refers to the object once merge()
    raised): it is gone again.  Rules: MRG-2."""

    merge_without_load: bool = True
    """merge(obj, load=False) exists: a detached object's values are taken as the row's current
    state, with no SQL (the held object, or a new persistent one, takes them as loaded and
    unchanged).  False: not drawn.  Rules: MRG-3."""

    merge_refuses_deleted_row: bool = True
    """merge(obj, load=False) of a detached object whose row a flush deleted raises invalid_state
    (it describes no row).  False: it is taken as the row's state like any other.  Rules:
    MRG-3."""

    merge_copies_expired_key: bool = True
    """merge(obj, load=False) of an object whose key fields are expired puts the key (known from
    its identity) on the object it returns, as loaded.  False (SQLAlchemy): only the fields the
    source has loaded are copied.  Rules: MRG-3."""

    # -- relationships and key changes ---------------------------------------------------------

    relationships: bool = True
    """Foreign keys may be declared as relationships (a reference on the child, a collection with
    a cascade on the parent), which add, delete, expunge, refresh and rollback follow.  False:
    every foreign key stays a plain column and the relationship rules are not drawn.
    Rules: REL-1."""

    primary_key_changes: bool = True
    """Assigning a new natural or composite primary key is an UPDATE of the key: the identity map
    re-keys the object, the referencing rows follow (ON UPDATE CASCADE), and so do held objects
    that referenced the old key.  False: primary keys are never assigned.  Rules: KEY-1."""

    def differences(self):
        """``{name: value}`` for every capability that differs from the specification."""
        spec = Capabilities()
        found = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value != getattr(spec, field.name):
                found[field.name] = value
        return found


NOT_CACHED = object()  # what cached_reference answers for a reference not held in memory

# Error kinds the oracle predicts (RULES.rst lists them); each adapter maps them to classes.
ERROR_KINDS = ("invalid_state", "conflict", "flush", "invalid_value", "pending_rollback", "detached",
               "row_missing", "stale")


class UndeclaredOperation(Exception):
    """The machine called an optional operation that the adapter's capabilities switch off.

    Optional operations (queries, field lists, expire_all, expunge_all, merge, savepoints, and the
    observers of relationships) have this default body so that an adapter for a session without
    them need not mention them: it declares the capability False and the machine never draws the
    operation.  Reaching this error therefore means a precondition of the machine is wrong, not
    that the implementation failed.
    """

    def __init__(self, adapter_name, capability):
        super().__init__(f"the machine called an operation that {adapter_name} declares {capability}=False "
                         f"for: a precondition of the machine (machine.py or relations_machine.py) forgot to check that capability")


class Adapter(abc.ABC):
    """The operations the machine calls.  Objects are the implementation's own objects.

    ``table`` arguments are ``schemas.Table``; keys are tuples; values are dicts of column name
    to value.  Every method does one thing and lets the implementation's exceptions through.
    """

    name = "abstract"
    capabilities = Capabilities()
    errors = {}  # kind -> tuple of exception classes
    reasons = {}  # capability name -> why this implementation declares it (shown by the report)
    # Defects of the session itself that the machine can meet, which no capability describes:
    # {text its failure report contains: the defect, and the test that reproduces it}.  A run that
    # fails with one of them is reported as an expected failure naming it; any other failure fails.
    known_defects: dict[str, str] = {}

    def connect(self, path):
        """Open the connection the implementation will use (foreign keys on, no implicit BEGIN)."""
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("PRAGMA foreign_keys = ON")
        return connection

    @abc.abstractmethod
    def setup(self, connection, schema, relations=()):
        """Map classes onto the schema's tables (which already exist on ``connection``).

        ``connection`` is what connect() returned, or, where the adapter declares
        owns_connection, the path of the database file, which the session opens itself.

        ``relations`` (``relations_oracle.Relation``): declare ``child.<ref_name>``, a many-to-one
        reference through ``column``, and, when ``cascade`` is not None, ``parent.<list_name>``,
        the one-to-many collection paired with it, with that cascade.
        """
        ...

    # -- relationships (see relations_oracle; only called when relationships are declared) --

    def read_reference(self, obj, relation):
        """``obj.<ref_name>`` as a user reads it (it may load)."""
        return getattr(obj, relation.ref_name)

    def set_reference(self, obj, relation, target):
        setattr(obj, relation.ref_name, target)

    def read_collection(self, obj, relation):
        """The objects of ``obj.<list_name>`` as a user reads them (it may load), as a list."""
        return list(getattr(obj, relation.list_name))

    def append(self, obj, relation, child):
        getattr(obj, relation.list_name).append(child)

    def remove(self, obj, relation, child):
        getattr(obj, relation.list_name).remove(child)

    def cached_reference(self, obj, relation):
        """The object (or None) the reference holds in memory, or ``NOT_CACHED``; loads nothing."""
        raise UndeclaredOperation(self.name, 'relationships')

    def loaded_collection(self, obj, relation):
        """The list the collection holds in memory, or None when it is not loaded; loads nothing."""
        raise UndeclaredOperation(self.name, 'relationships')

    @abc.abstractmethod
    def open_session(self, autoflush=True):
        """A new session on the connection; ``autoflush=False`` only where ``autoflush_can_be_off``."""
        ...

    @abc.abstractmethod
    def close_session(self):
        ...

    @abc.abstractmethod
    def new(self, table, values):
        """A transient object with these values (pending, where objects_join_on_construction)."""
        ...

    @abc.abstractmethod
    def add(self, obj):
        ...

    @abc.abstractmethod
    def delete(self, obj):
        ...

    @abc.abstractmethod
    def expunge(self, obj):
        ...

    @abc.abstractmethod
    def refresh(self, obj):
        ...

    @abc.abstractmethod
    def expire(self, obj):
        ...

    @abc.abstractmethod
    def get(self, table, key):
        """The object for the key, or None."""
        ...

    def query(self, table, field, value):
        """The objects whose row holds ``value`` in ``field`` (a list; capability filter_by)."""
        raise UndeclaredOperation(self.name, "filter_by")

    def select(self, table, query):
        """A ``conditions.Query`` of ``table`` (capability select): for ``query.result`` "all" the
        objects in the query's order (a list), "first" the first object or None, "count" an int,
        "exists" a bool.  Its ``order_by`` ends with the key, so the order is total."""
        raise UndeclaredOperation(self.name, "select")

    def expire_fields(self, obj, fields):
        """expire() of a list of fields (capability expire_refresh_fields)."""
        raise UndeclaredOperation(self.name, "expire_refresh_fields")

    def refresh_fields(self, obj, fields):
        """refresh() of a list of fields (capability expire_refresh_fields)."""
        raise UndeclaredOperation(self.name, "expire_refresh_fields")

    def expire_all(self):
        raise UndeclaredOperation(self.name, "expire_all")

    def expunge_all(self):
        raise UndeclaredOperation(self.name, "expunge_all")

    def merge(self, obj, load):
        """The session's object for ``obj``'s row (capabilities merge, merge_without_load)."""
        raise UndeclaredOperation(self.name, "merge")

    def session_connection(self):
        """owns_connection: the DB-API connection the session holds now, or None while it holds
        none (then it has no transaction open).  The kit only runs SELECTs on it."""
        raise UndeclaredOperation(self.name, "owns_connection")

    def read(self, obj, columns):
        """Read the attributes as a user would (expired ones load); returns a dict."""
        return {column: getattr(obj, column) for column in columns}

    def set(self, obj, column, value):
        setattr(obj, column, value)

    @abc.abstractmethod
    def flush(self):
        ...

    @abc.abstractmethod
    def commit(self):
        ...

    @abc.abstractmethod
    def rollback(self):
        ...

    def begin_nested(self):
        """Open a savepoint; returns a token for release/rollback_nested."""
        raise UndeclaredOperation(self.name, 'savepoints')

    def release(self, token):
        raise UndeclaredOperation(self.name, 'savepoints')

    def rollback_nested(self, token):
        raise UndeclaredOperation(self.name, 'savepoints')

    # -- observing the session (must not load anything) ------------------------------------

    @abc.abstractmethod
    def state(self, obj):
        """One of "transient", "pending", "persistent", "deleted", "detached"."""
        ...

    @abc.abstractmethod
    def loaded(self, obj, columns):
        """``{column: value}`` for the loaded (not expired) columns, without loading anything."""
        ...

    @abc.abstractmethod
    def identity_map(self):
        """``{(table name, key tuple): object}``."""
        ...

    @abc.abstractmethod
    def new_objects(self):
        ...

    @abc.abstractmethod
    def dirty_objects(self):
        ...

    @abc.abstractmethod
    def deleted_objects(self):
        ...

    def teardown(self):
        """Release everything but the connection (the machine closes that)."""



class SessionShapedAdapter(Adapter):
    """The operations of an adapter whose session names them as SQLAlchemy's ``Session`` does (so
    do uow's, and many others'): each is one call on ``self.session``, the session ``open_session``
    made, and ``self.classes`` maps a table name to its mapped class.  Subclass it and write the
    rest: connecting, the mapping, creating objects, the observers and the error kinds.  (Not the
    protocol's default: a session shaped otherwise, Pony's for one, writes these itself.)"""

    def close_session(self):
        self.session.close()

    def add(self, obj):
        self.session.add(obj)

    def delete(self, obj):
        self.session.delete(obj)

    def expunge(self, obj):
        self.session.expunge(obj)

    def refresh(self, obj):
        self.session.refresh(obj)

    def expire(self, obj):
        self.session.expire(obj)

    def expire_fields(self, obj, fields):
        self.session.expire(obj, list(fields))

    def refresh_fields(self, obj, fields):
        self.session.refresh(obj, list(fields))

    def expire_all(self):
        self.session.expire_all()

    def expunge_all(self):
        self.session.expunge_all()

    def merge(self, obj, load):
        return self.session.merge(obj, load=load)

    def get(self, table, key):
        return self.session.get(self.classes[table.name], key)

    def flush(self):
        self.session.flush()

    def commit(self):
        self.session.commit()

    def rollback(self):
        self.session.rollback()

    def begin_nested(self):
        return self.session.begin_nested()

    def release(self, token):
        token.commit()

    def rollback_nested(self, token):
        token.rollback()

class AdapterNotFound(Exception):
    """The adapter named on the command line or in ``$UOW_IMPL`` cannot be loaded."""


def load_adapter(spec=None):
    """The adapter factory named by ``spec`` or ``$UOW_IMPL`` (default: uow's): "module:factory",
    or the short name of an adapter that ships with the kit (see SHIPPED)."""
    if spec is None:
        spec = os.environ.get("UOW_IMPL") or DEFAULT_IMPL
    module_name, _, attribute = SHIPPED.get(spec, spec).partition(":")
    if not module_name or not attribute:
        raise AdapterNotFound(f"an adapter is named 'package.module:factory' (say mypkg.adapter:Adapter) or is one "
                              f"of {', '.join(SHIPPED)}; got {spec!r}")
    try:
        module = importlib.import_module(module_name, package=__package__)
    except ModuleNotFoundError as error:
        hint = ""
        if spec in SHIPPED:
            hint = "; the adapters for other ORMs need them installed: pip install 'uow[conformance]'"
        raise AdapterNotFound(f"cannot load the adapter {spec!r}: {error}{hint}") from error
    if not hasattr(module, attribute):
        raise AdapterNotFound(f"cannot load the adapter {spec!r}: module {module.__name__} has no {attribute!r}")
    return getattr(module, attribute)


# Capability values under which the machine does not draw something, and what that is.
SKIPPED_WHEN = {
    ("savepoints", False): "savepoint rule (begin_nested, release, rollback of a savepoint)",
    ("autoflush_can_be_off", False): "sessions opened with autoflush=False",
    ("version_columns", False): "tables with a version column",
    ("outside_writers", False): "commits of another connection (outside_write)",
    ("tracks_json_in_place", False): "in-place changes of a JSON value (change_json)",
    ("expire_refresh_fields", False): "expire() and refresh() of a field list",
    ("expire_all", False): "expire_all()",
    ("expunge_all", False): "expunge_all()",
    ("merge", False): "merge(), with and without loading",
    ("merge_without_load", False): "merge(load=False)",
    ("filter_by", False): "the query rule (filter by equality on a data column)",
    ("select", False): "the select rule (conditions beyond equality, order, limit and offset, count)",
    ("delete_again", None): "delete() of an object whose DELETE was flushed",
    ("attach_without_row", "refuse_add"): "delete() of a detached object whose row was deleted",
    ("pending_key_conflict", None): "add()/delete() of an object whose key another object holds or claims, "
                                    "and (without autoflush) get()/query loading a row whose key a pending object claims",
    ("rollback_forgets_delete_of_new_object", False): "add() of a transient object whose insert and delete were rolled back",
    ("close_detaches_deleted", False): "close() and expunge_all() while an object's DELETE is flushed but not "
                                      "committed",
    ("predictable_keys_after_failed_flush", False): "schemas with SQLite-generated keys",
    ("reproducible_self_reference_flush", False): "the self-referencing schema",
    ("inserts_in_add_order", False): "expunge() of a pending object",
    ("relationships", False): "relationship declarations and rules (references, collections, cascades)",
    ("primary_key_changes", False): "assigning a new primary key",
    ("add", False): "add()",
    ("expunge", False): "expunge()",
    ("expire", False): "expire()",
    ("refresh_steps", None): "refresh()",
}


def skipped(capabilities):
    """Descriptions of what the machine does not draw for these capabilities."""
    found = []
    for (name, value), what in SKIPPED_WHEN.items():
        if getattr(capabilities, name) == value:
            found.append(f"{name}={value!r}: {what}")
    return found
