"""Change tracking: which fields of which objects differ from what the database holds.

**Dirty means "differs from the snapshot", not "was assigned".**  Each persistent object carries
a snapshot of its row as last loaded or flushed (``InstanceState.committed``).  A field is dirty
when its current value is not equal to its snapshot value; assigning a field back to the value it
was loaded with makes it clean again, and no UPDATE is sent for it.  (peewee marks a field dirty
on any assignment; Storm, Hibernate and uow compare against a snapshot.)

Comparing every loaded object at every flush would make a flush cost as much as the whole
session.  So the tracker also keeps *candidates*: objects that had a column assigned since the
last flush.  Only candidates are compared.  An assignment costs one dictionary insert; a flush
costs as much as the objects that were touched.  The one exception is objects with JSON
columns: a dict or list can change in place, without an assignment, so those objects are
*watched* and compared at every flush (their snapshot holds the JSON text).

A field whose snapshot is ``NOT_LOADED`` (it was expired) has no known database value, so any
value assigned to it counts as a change (``NOT_LOADED`` equals nothing but itself).
"""

import itertools
import operator

from .states import STATE_ATTRIBUTE, in_entry_order


class ChangeTracker:
    """Remembers which persistent objects were assigned to since the last flush."""

    def __init__(self):
        self.candidates = {}
        self.forced = set()
        self.watched = {}

    def watch(self, state):
        """Compare this persistent object at every flush: it has JSON columns, which can change in place."""
        self.watched[state] = None

    def force(self, state):
        """mark_dirty(): the next flush writes every loaded column of this object but its key and
        version (the flush moves the version on by itself)."""
        self.candidates[state] = None
        self.forced.add(state)

    def note_assignment(self, state):
        """A column of this persistent object was assigned: compare it at the next flush."""
        self.candidates[state] = None

    def forget(self, state):
        """The object left the session: stop tracking it altogether."""
        self.candidates.pop(state, None)
        self.forced.discard(state)
        self.watched.pop(state, None)

    def clean(self, state):
        """The object's snapshot was just brought up to date: nothing to write (it stays watched)."""
        self.candidates.pop(state, None)
        self.forced.discard(state)

    def clear(self):
        """After a flush: nothing is a candidate any more (watched objects stay watched)."""
        self.candidates.clear()
        self.forced.clear()

    def changed_states(self):
        """``[(state, changed column names)]`` for candidates with a net change, in session order."""
        changes = []
        states = self.candidates
        if self.watched:
            states = dict(self.candidates)
            states.update(self.watched)
        for state in in_entry_order(states):
            names = changed_fields(state)
            if state in self.forced:
                # Every loaded column but the key and the version, and whatever changed (a key too).
                mapper = state.mapper
                version = mapper.version_column
                names = tuple(name for name in mapper.column_names if name in names or (
                    name not in mapper.pk_names and (version is None or name != version.name)
                    and name in state.obj.__dict__))
            if names:
                changes.append((state, names))
        return changes


def changed_fields(state):
    """The names of the columns whose value differs from the snapshot, in declaration order.

    "Differs" is strict: a value of another type (``1`` for ``True``), or an equal value written
    differently (``Decimal('1.10')`` for ``Decimal('1.1')``, the same instant at another UTC
    offset) is a change, because writing it would change what the database holds.
    """
    committed = state.committed
    if committed is None:
        return ()
    mapper = state.mapper
    values = state.obj.__dict__
    current = mapper.snapshot_getter(values)
    waiting = _keys_waiting_for_a_row(mapper, values) if mapper.references else ()
    if not waiting and all(map(operator.is_, current, committed)):
        return ()  # the common case: every field still holds the very object it was loaded with
    return tuple([name for name, now, before in zip(mapper.column_names, current, committed)
                  if (now is not before and not same_value(now, before)) or name in waiting])


def changed_collections(state, pending, candidates):
    """The names of the collections of ``state``'s object that gained or lost a member since the
    last flush (``session.is_modified(obj, include_collections=True)``).

    A collection stores nothing of its own (``collection``): a child is in it while its foreign
    key holds the object's key.  So a collection changed when a pending child's key columns hold
    the key, or an assigned child's hold it now and did not at the last flush, or the other way
    round: a net change, as for columns, so a child moved away and back is none.  Only pending
    objects and candidates can differ from the last flush, so only they are looked at.
    """
    changed = []
    for collection in state.mapper.collections:
        reference = collection.reference
        child_mapper = collection.target.__mapper__
        for child in itertools.chain(pending, candidates):
            if child.mapper is child_mapper and _joined_or_left(child, reference, state.key):
                changed.append(collection.name)
                break
    return changed


def _joined_or_left(child, reference, key):
    """Whether ``child``'s ``reference`` columns hold ``key`` now and did not at the last flush
    (or not pending), or the other way round."""
    names = reference.column_names
    target_key = reference.foreign_key.target_key
    now = target_key([child.obj.__dict__.get(name) for name in names]) == key
    before = child.committed is not None and target_key([original_value(child, name) for name in names]) == key
    return now != before


def _keys_waiting_for_a_row(mapper, values):
    """Foreign-key columns whose Reference points at an object that has no row yet, and that do
    not already hold the key that object will have.

    Such columns may read None now, perhaps as they did before, but the flush will fill them
    with the parent's key: that is a change.  A parent with a key of its own (a natural key, or
    one the user chose) that the columns already hold leaves nothing to fill: they are compared
    with the snapshot like any column, so pointing back at an equal key writes nothing.
    """
    waiting = set()
    for reference in mapper.references:
        target = values.get(reference.name)
        if target is not None:
            target_state = target.__dict__.get(STATE_ATTRIBUTE)
            if target_state is None or target_state.key is None:
                target_values = target.__dict__
                key = [target_values.get(name) for name in reference.target.__mapper__.pk_names]
                held = [values.get(name) for name in reference.column_names]
                if None in key or not all(map(same_value, held, key)):
                    waiting.update(reference.column_names)
    return waiting


def same_value(now, before):
    """True when writing ``now`` over ``before`` would change nothing in the database."""
    if now is before:
        return True
    if type(now) is not type(before):
        return False
    try:
        if now != before:
            return False
    except ArithmeticError:
        # A signalling Decimal NaN refuses to be compared at all: call it a change, so that the
        # flush's value check names it instead of the comparison failing with InvalidOperation.
        return False
    # Equal values that are stored differently: repr shows the difference for the types
    # uow stores (a Decimal's exponent, -0.0, a datetime's UTC offset).
    return type(now) in (int, str, bytes, bool) or repr(now) == repr(before)


def original_value(state, name):
    """The value the database had for ``name`` when the object was loaded or last flushed."""
    if state.committed is None:
        return None
    return snapshot_value(state.mapper, state.committed, name)


def snapshot_value(mapper, snapshot, name):
    """The value of column ``name`` in ``snapshot`` (a tuple of ``state.committed``), as the
    object would hold it (``NOT_LOADED`` when it was expired)."""
    column = mapper.column(name)
    value = snapshot[column.index]
    if column.type.mutable and isinstance(value, str):
        return column.type.from_db(value)  # the snapshot keeps JSON text
    return value
