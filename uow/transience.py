"""Changing an object's state by hand, outside any session call: SQLAlchemy's two helpers.

``make_transient(obj)`` forgets the row an object stood for, so that adding it again INSERTs a
copy; ``make_transient_to_detached(obj)`` does the opposite for an object built in memory whose
row is known to exist, so that adding it attaches it with no SQL.  They are the only moves of the
lifecycle table (``states``) that no session call makes, which is why they live apart from
``lifecycle``: they work on the object and its state record, and reach a session only to let it
forget the object (``Lifecycle.make_transient``).
"""

from typing import Any

from .errors import InvalidStateError
from .mapper import mapper_of_object
from .states import DETACHED, STATE_ATTRIBUTE, TRANSIENT, InstanceState


def make_transient(obj: Any) -> None:
    """Make ``obj`` transient: out of its session, with no row, as if it had just been constructed.

    The object keeps the values it holds (expired columns stay unloaded: nothing is read); the
    identity of the row it was attached to is forgotten, so ``add()`` then makes it pending, and
    the next flush INSERTs it as a new row -- the way to copy a row, or to write again a row whose
    delete was committed.  Its session (if any) treats it as expunged, without the cascade, and an
    unflushed delete of it is taken back first; rollback() of that session brings it back.  An
    object that is transient already is left as it is (SQLAlchemy's ``make_transient``).
    """
    mapper_of_object(obj, "make_transient")
    state = obj.__dict__.get(STATE_ATTRIBUTE)
    if state is None or state.status is TRANSIENT:
        return
    if state.session is not None:
        state.session.lifecycle.make_transient(state)
    if state.status is DETACHED:
        state.move(TRANSIENT, "make_transient")
    state.key = None
    state.committed = None
    state.row_deleted = False
    state.loaded_epoch = -1


def make_transient_to_detached(obj: Any) -> None:
    """Make a transient object detached: as if it had been loaded from its row and its session closed.

    For an object built in memory whose row is known to exist (from a cache, a message): it must
    hold its whole primary key, and the values it holds are taken as the row's; columns it does
    not hold are expired and load when read once it is attached.  ``session.add(obj)`` then makes
    it persistent with no SQL, and only later changes are written.  SQLAlchemy's
    ``make_transient_to_detached``.
    """
    mapper = mapper_of_object(obj, "make_transient_to_detached")
    mapper.configure()
    values = obj.__dict__
    state = values.get(STATE_ATTRIBUTE)
    if state is not None and state.status is not TRANSIENT:
        raise InvalidStateError(
            f"make_transient_to_detached(): {obj!r} is {state.status.value}, not transient; only an object "
            f"with no row and no session can be given one (make_transient() it first)"
        )
    missing = [column.qualified_name for column in mapper.primary_key if values.get(column.name) is None]
    if missing:
        raise InvalidStateError(
            f"make_transient_to_detached(): {obj!r} has no value for the primary key column(s) "
            f"{', '.join(missing)}; set the key of the row it stands for"
        )
    key = mapper.checked_key(tuple(values[name] for name in mapper.pk_names))
    if state is None:
        state = InstanceState(obj, mapper, TRANSIENT, None)
        values[STATE_ATTRIBUTE] = state
    state.key = key
    state.committed = mapper.snapshot_getter(values)
    state.move(DETACHED, "make_transient_to_detached")
