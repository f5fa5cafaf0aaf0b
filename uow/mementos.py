"""Mementos: how an object looked when an undo scope first recorded it (see ``rollback``).

A memento is taken at an object's first touch in a scope and put back if the scope rolls back.
Recording is common and rolling back is rare, so the two commonest recordings are kept in a
compact form -- a tuple for a clean loaded object, the values dict for a new one -- and turned
into full :class:`Memento` objects only when a rollback needs them (:func:`expanded`).
"""

from .states import PERSISTENT, TRANSIENT


class Memento:
    """How one object looked when an undo scope first recorded it.

    ``values`` is a copy of the instance dict, or None when the snapshot (``committed``) holds
    exactly the object's column values.  The status says whether the object was pending or
    had its row deleted; the flags say what the status cannot: whether it was marked for
    deletion, and whether it was a change-tracking candidate.
    """

    __slots__ = ("status", "session", "key", "committed", "sequence", "values", "marked", "candidate",
                 "precaution")

    def __init__(self, status, session, key, committed, sequence, values, marked=False, candidate=False,
                 precaution=False):
        self.status = status
        self.session = session
        self.key = key
        self.committed = committed
        self.sequence = sequence
        self.values = values
        self.marked = marked
        self.candidate = candidate
        # Recorded before anything touched the object (remember_deleted_json): it counts as put
        # back by a rollback only if the object differs from it by then.
        self.precaution = precaution


def memento_of(state, session, candidates, marked):
    """The memento of ``state`` as it is now, for the undo scope of ``session`` (whose change-tracking
    ``candidates`` and ``marked`` register say what the object's status cannot).

    This is the general path.  The commonest first touch, of a clean loaded object, is recorded
    as a *clean memento* by ``UndoLog.record`` itself (see :func:`expanded`); a clean object
    that reaches this function (a batch recorded by ``UndoLog.record_all``) gets an equivalent
    Memento that copies no values.
    """
    if state.session is None:
        # Joining this session now: its values as they are now are what a rollback restores,
        # JSON values included (a detached object's snapshot may predate changes made to them).
        return Memento(state.status, None, state.key, state.committed, state.sequence,
                       state.mapper.copy_values(state.obj.__dict__))
    candidate = state in candidates
    cached = state.obj.__dict__
    references = state.mapper.references
    if state.status is PERSISTENT and not candidate and state.committed is not None and \
            not (references and any(reference.name in cached for reference in references)):
        # Nothing was assigned since the last flush or load: the snapshot holds exactly the
        # object's column values (an expired column is absent from both), so the memento
        # need not copy them.  This is the common case of a first assignment in a scope.
        # (A cached reference is not in the snapshot: an object holding one is copied, so
        # that the rollback gives back the very object it referenced.)
        values = None
    else:
        values = state.mapper.copy_values(state.obj.__dict__, state.committed)
    return Memento(state.status, state.session, state.key, state.committed, state.sequence, values,
                   marked=state in marked, candidate=candidate)


def expanded(memento, session):
    """The Memento a compact memento stands for; any other memento is returned as it is.

    The two compact forms are the fast paths of the two bulk operations, built at a tenth of a
    Memento's cost because rollbacks are rare and recording is not:

    * a tuple ``(key, committed, sequence)``, a *clean memento* (made by ``UndoLog.record``): a
      persistent object of ``session``, not a change-tracking candidate, not marked for deletion,
      whose column values were exactly its snapshot;
    * a dict, a *transient memento* (see :meth:`UndoLog.record_transient`): the values of an
      object that was in no session.
    """
    kind = type(memento)
    if kind is tuple:
        key, committed, sequence = memento
        return Memento(PERSISTENT, session, key, committed, sequence, None)
    if kind is dict:
        return Memento(TRANSIENT, None, None, None, 0, memento)
    return memento


def precaution_touched(levels, state):
    """An object whose DELETE is flushed was assigned to: a precaution a savepoint took for it when
    it began (``UndoLog.remember_deleted_json``, a memento recorded before any touch) is a touch
    from now on, as an assignment to a persistent object is, so that rolling back drops the
    loaded collections of its class (``UndoLog._restore``) whether or not it has a JSON column."""
    for level in levels:
        memento = level.undo.mementos.get(state)
        if type(memento) is Memento and memento.precaution:
            memento.precaution = False
