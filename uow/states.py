"""The lifecycle of a mapped object, as an enum with its allowed moves, and the per-object record.

An object is always in exactly one of five states (the names and meanings are SQLAlchemy's)::

    TRANSIENT   not in any session, no row            User(name='ann')
    PENDING     added to a session, not yet INSERTed  session.add(u)
    PERSISTENT  has a row, held in the identity map   session.flush()
    DELETED     its row was DELETEd in this transaction (flushed, not yet committed)
    DETACHED    had a row, but is no longer held by a session (expunged, closed, committed delete)

``delete(obj)`` on a persistent object does not change its state: the object stays PERSISTENT and
sits in ``session.deleted`` until a flush deletes the row.  A rollback is not a move in this
table: it restores the state the object had when the transaction (or savepoint) began, whatever
that was.

Every other change of state goes through :meth:`InstanceState.move`, which refuses moves the
table below does not list, so a bookkeeping bug shows up as a named error instead of as a
quietly wrong flush.
"""

import enum
import functools
import operator
import weakref

from .errors import InvalidStateError

# The instance-dict entry that holds an object's InstanceState: the one link from an object to
# its session.  Entity, Column and the relationships read it; the session installs it.
STATE_ATTRIBUTE = "_uow_state"


class ObjectState(enum.StrEnum):
    """The five states; each member is its name in lower case (a StrEnum, so that looking up
    its allowed moves, once per row a flush writes, hashes a string, in C)."""

    TRANSIENT = "transient"
    PENDING = "pending"
    PERSISTENT = "persistent"
    DELETED = "deleted"
    DETACHED = "detached"


# The members under plain module names too, for the code that runs once per object (building
# loaded objects, add(), an assignment, applying a flush).  On Python 3.11 reading a member
# through its class, ``ObjectState.PERSISTENT``, costs about ten times reading a module global
# (the enum metaclass defines ``__getattr__``, which puts every class attribute read through a
# slower path), and that was a few percent of a bulk add() or flush.  One spelling per module.
TRANSIENT = ObjectState.TRANSIENT
PENDING = ObjectState.PENDING
PERSISTENT = ObjectState.PERSISTENT
DELETED = ObjectState.DELETED
DETACHED = ObjectState.DETACHED

ALLOWED_MOVES = {
    # TRANSIENT -> PERSISTENT: upsert() gives an object the row it wrote or found.
    # TRANSIENT -> DETACHED: bulk_save_objects() gives an object a row without a session.
    TRANSIENT: (PENDING, PERSISTENT, DETACHED),
    PENDING: (PERSISTENT, TRANSIENT),
    PERSISTENT: (DELETED, DETACHED),
    DELETED: (DETACHED,),
    # DETACHED -> TRANSIENT: make_transient() forgets the row an object was attached to.
    DETACHED: (PERSISTENT, TRANSIENT),
}


# The objects whose row is known gone (see InstanceState.row_deleted), {id(obj): weak reference}:
# few objects ever have that fact, so it is kept here rather than in a slot every loaded object
# pays for.  Keyed by id, not by the object, so that an entity whose class defines __eq__ (and
# so is unhashable) works too; an entry leaves when its object is freed.
_rows_deleted: dict[int, "_DeletedRow"] = {}


class _DeletedRow(weakref.ref):
    """A weak reference to an object whose row is gone, knowing the id it is filed under.

    (The reference carries the id itself, so one callback serves every entry: a commit after
    10,000 deletes files 10,000 of these, and a ``functools.partial`` per object to remember its
    id doubled what filing one cost.)
    """

    __slots__ = ("key",)
    key: int


def _forget_freed(reference):
    """The object filed under ``reference.key`` was freed: its id may be given to another object now."""
    _rows_deleted.pop(reference.key, None)


class InstanceState:
    """What the session knows about one object, stored in its instance dict under ``STATE_ATTRIBUTE``.

    ``committed`` is the snapshot: a tuple with one entry per column, holding the value the row
    had when it was loaded or last flushed (``NOT_LOADED`` for an expired column).  "Dirty" is
    derived from it, never stored.  ``sequence`` is the order in which the object entered the
    session; flushes use it to break ties, so the same operations give the same statements.  The
    objects one load made entered together and share its number; among them the key decides
    (:func:`in_entry_order`).
    ``key`` is the key the identity map files the object under (``Mapper.key_for``: ``3``, or
    ``(1, 'x')`` for a composite key), None until it has a row.  ``loaded_epoch`` is the undo-log
    epoch in which the object was loaded from a row (-1 for an object that was added): a rollback
    expires the objects loaded since its scope began.  ``row_deleted`` marks a DETACHED object
    that left its session DELETED (committed, or expunged after the flush): its row is gone, so
    it cannot be attached again (see ``Session.add``).

    Every loaded object has one of these, so it holds only what most objects need: the slots
    are 8 bytes each per object.  A fact few objects have (``row_deleted``) is kept beside the
    records, and whether the undo log recorded an object is asked of the log (``rollback``).
    """

    __slots__ = ("obj", "mapper", "status", "session", "key", "committed", "sequence", "loaded_epoch")

    def __init__(self, obj, mapper, status, session, key=None, committed=None, sequence=0, loaded_epoch=-1):
        self.obj = obj
        self.mapper = mapper
        self.status = status
        self.session = session
        self.key = key
        self.committed = committed
        self.sequence = sequence
        self.loaded_epoch = loaded_epoch

    @property
    def row_deleted(self):
        """True for an object whose row a committed delete removed (see the class docstring)."""
        held = _rows_deleted.get(id(self.obj))
        return held is not None and held() is self.obj

    @row_deleted.setter
    def row_deleted(self, gone):
        key = id(self.obj)
        if gone:
            reference = _DeletedRow(self.obj, _forget_freed)
            reference.key = key
            _rows_deleted[key] = reference
        elif key in _rows_deleted:
            del _rows_deleted[key]

    def move(self, new_status, operation):
        """Change state, refusing any move the lifecycle table does not allow."""
        if new_status not in ALLOWED_MOVES[self.status]:
            raise InvalidStateError(
                f"{operation}() cannot move {self.describe()} from {self.status.value} to {new_status.value}"
            )
        self.status = new_status

    def describe(self):
        """Name the object the way error messages and plans do: ``User(id=3)``, or ``User(new #4)``
        for an object whose key the database has not given it yet (#4: the fourth object the
        session met)."""
        values = self.obj.__dict__
        if self.key is not None:
            # The key the session knows the row by (the key columns may be expired, or changed
            # and not yet flushed).
            return self.mapper.describe(dict(zip(self.mapper.pk_names, self.mapper.key_values(self.key))))
        if any(values.get(name) is None for name in self.mapper.pk_names):
            return f"{self.mapper.cls.__name__}(new #{self.sequence})"
        return self.mapper.describe(values)

    def __repr__(self):
        return f"<state of {self.describe()}: {self.status.value}>"



def in_entry_order(items, state_path=None):
    """``items`` as a new list, in the order their objects entered the session: by sequence
    number, and among the objects of one load, which share one, by key (SQLAlchemy, too, orders
    the rows of one table it updates or deletes by key).  ``items`` are state records, or objects
    whose attribute ``state_path`` holds one (``"state"`` for a row action).

    Keys of mixed types do not compare (SQLite lets a BLOB key column hold an integer too): then
    the objects of one load keep the order ``items`` gave them.  (The sort keys are
    ``operator.attrgetter``s, read in C: a flush sorts every row it writes.)
    """
    prefix = "" if state_path is None else state_path + "."
    try:
        return sorted(items, key=operator.attrgetter(prefix + "sequence", prefix + "key"))
    except TypeError:
        return sorted(items, key=operator.attrgetter(prefix + "sequence"))
