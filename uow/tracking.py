"""Change tracking: which fields of which objects differ from what the database holds.

**Dirty means "differs from the snapshot", not "was assigned".**  Each persistent object carries
a snapshot of its row as last loaded or flushed (``InstanceState.committed``).  A field is dirty
when its current value is not equal to its snapshot value; assigning a field back to the value it
was loaded with makes it clean again, and no UPDATE is sent for it.  (peewee marks a field dirty
on any assignment; Storm, Hibernate and uow compare against a snapshot.)

Comparing every loaded object at every flush would make a flush cost as much as the whole
session.  So the tracker also keeps *candidates*: objects that had a column assigned since the
last flush.  Only candidates are compared.  An assignment costs one dictionary insert; a flush
costs as much as the objects that were touched.

A field whose snapshot is ``NOT_LOADED`` (it was expired) has no known database value, so any
value assigned to it counts as a change (``NOT_LOADED`` equals nothing but itself).
"""



class ChangeTracker:
    """Remembers which persistent objects were assigned to since the last flush."""

    def __init__(self):
        self.candidates = {}

    def note_assignment(self, state):
        self.candidates[state] = None

    def forget(self, state):
        self.candidates.pop(state, None)

    def clear(self):
        self.candidates.clear()

    def changed_states(self):
        """``[(state, changed column names)]`` for candidates with a net change, in session order."""
        changes = []
        for state in self.candidates:
            names = changed_fields(state)
            if names:
                changes.append((state, names))
        changes.sort(key=lambda pair: pair[0].sequence)
        return changes


def changed_fields(state):
    """The names of the columns whose value differs from the snapshot, in declaration order.

    Values are compared with ``==``: assigning ``1.0`` where the row held ``1`` is no change.
    """
    committed = state.committed
    if committed is None:
        return ()
    mapper = state.mapper
    current = mapper.snapshot_getter(state.obj.__dict__)
    if current == committed:
        return ()
    # An expired column that was not assigned again reads NOT_LOADED on both sides: no change.
    return tuple([name for name, now, before in zip(mapper.column_names, current, committed) if now != before])


def original_value(state, name):
    """The value the database had for ``name`` when the object was loaded or last flushed."""
    column = state.mapper.column(name)
    if state.committed is None:
        return None
    return state.committed[column.index]
