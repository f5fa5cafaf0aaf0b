"""Expiry: forgetting what an object loaded, to read it again later (expire) or now (refresh).

A session keeps the values it loaded and never re-reads a row on its own: two reads of
``user.name`` give the same answer however the row changed meanwhile.  Expiry is how a program
(or ``expire_on_commit``) says the database may know better.  ``expire()`` forgets columns: the
object's snapshot marks them ``NOT_LOADED`` and their values leave the object, so the next read
of one reloads them (that lazy load is ``loading``'s: ``Loader.load_expired``).  ``refresh()``
reloads columns now, discarding unflushed changes to them, and follows the refresh cascade.

The :class:`Expiry` part is apart from the ``Loader`` because it changes objects the session
already holds instead of making objects from rows; it asks the Loader for the rows it reads.
Both kinds record the object in the undo log first, so a rollback puts back what was forgotten.
"""

from .columntypes import read_back
from .errors import ObjectDeletedError, UnknownFieldError
from .identifiers import quote
from .sentinels import NOT_LOADED
from .states import PERSISTENT, STATE_ATTRIBUTE
from .valuechecks import shown


class Expiry:
    """The session's part for expire, expire_all and refresh (see the module docstring).  It
    holds nothing of its own.  Called by the Session's facade and by the boundaries
    (``expire_on_commit``)."""

    def __init__(self, session):
        self.session = session
        self.registers = session.registers
        self.guard = session.guard
        self.loader = session.loader  # the rows refresh() reads

    def refresh(self, obj, fields, refreshed):
        """Reload ``fields`` of ``obj`` now, and follow the refresh cascade (see ``Session.refresh``);
        ``refreshed`` holds the states already reached.

        Every row the cascade reaches is read before any object is changed: a read that fails part
        way (a lock held past the busy timeout, an interrupt, Ctrl-C, a stored value its type
        cannot read) leaves every object as it was, not the first ones refreshed and the rest not.
        """
        self.guard.check("refresh")
        state = self.guard.persistent_state(obj, "refresh")
        columns = named_columns(state.mapper, fields, "refresh")
        if not columns:
            return  # fields=[]: nothing to reload
        rows: list = []  # (state, columns, the values read), in the order they are applied
        self._read(state, columns, fields is None, refreshed, rows)
        session = self.session
        for state, columns, read in rows:
            mapper = state.mapper
            session.undo.record(state)
            values = state.obj.__dict__
            snapshot = list(state.committed)
            for column, value in zip(columns, read):
                values[column.name] = value
                snapshot[column.index] = mapper.snapshot_value(column, value)
            state.committed = tuple(snapshot)
            forget_references(state, columns)

    def _read(self, state, columns, cascade, refreshed, rows):
        """Append ``(state, columns, values read)`` to ``rows`` for ``state`` and, with ``cascade``,
        for every object its refresh cascade reaches, depth first, each once."""
        session = self.session
        mapper = state.mapper
        select = ", ".join(f"{mapper.quoted_table}.{quote(column.name)}" for column in columns)
        found = self.loader.select_by_key(mapper, mapper.key_params(state.key), "refresh()", select)
        if not found:
            raise ObjectDeletedError(f"refresh(): the row of {state.describe()} is no longer in the database")
        rows.append((state, columns, [read_back(column, raw, state.describe()) for column, raw in zip(columns, found[0])]))
        refreshed.add(state)
        if not cascade:
            return
        for relationship, related in session.cascades.along(state.obj, "refresh"):
            if relationship in mapper.references:
                # Refreshing the object forgets its cached references with their columns
                # (forget_references), so the cascade goes on along its loaded collections only.
                continue
            related_state = related.__dict__.get(STATE_ATTRIBUTE)
            if related_state is not None and related_state.session is session and \
                    related_state.status is PERSISTENT and related_state not in refreshed:
                self._read(related_state, related_state.mapper.columns, True, refreshed, rows)

    def expire(self, obj, fields):
        """Forget ``fields`` (None: all) of a persistent object (see ``Session.expire``)."""
        state = self.guard.persistent_state(obj, "expire")
        self.expire_state(state, named_columns(state.mapper, fields, "expire"))

    def is_expired(self, obj, field):
        """Whether ``field`` (None: any column) of ``obj`` would be reloaded when read (see
        ``Session.is_expired``): an expired column is one whose value left the object."""
        state = self.guard.own_state(obj, "is_expired")
        if field is not None and not isinstance(field, str):
            raise UnknownFieldError(
                f"is_expired(): field must be one of {state.mapper.cls.__name__}'s field names, got {shown(field)}"
            )
        columns = named_columns(state.mapper, None if field is None else [field], "is_expired")
        if state.status is not PERSISTENT:
            return False
        values = obj.__dict__
        return any(column.name not in values for column in columns)

    def expire_all(self):
        """Forget every column of every persistent object (``expire_all()``, ``expire_on_commit``)."""
        for obj in list(self.registers.identity.values()):
            state = obj.__dict__[STATE_ATTRIBUTE]
            self.expire_state(state, state.mapper.columns)

    def expire_state(self, state, columns):
        """Forget ``columns`` of a persistent object; they reload when next read."""
        self.session.undo.record(state)
        values = state.obj.__dict__
        snapshot = list(state.committed)
        for column in columns:
            values.pop(column.name, None)
            snapshot[column.index] = NOT_LOADED
        state.committed = tuple(snapshot)
        forget_references(state, columns)
        if len(columns) == len(state.mapper.columns):
            self.session.tracker.clean(state)  # every assignment was just discarded: nothing to write


def named_columns(mapper, fields, operation):
    """The columns ``fields`` names (None: all of them); a lone string is refused, not read letter by letter."""
    if fields is None:
        return mapper.columns
    if isinstance(fields, str):
        raise UnknownFieldError(
            f"{operation}(): fields must be a list of field names, not the string {fields!r}; "
            f"write fields=[{fields!r}]"
        )
    if not hasattr(fields, "__iter__"):
        raise UnknownFieldError(
            f"{operation}(): fields must be a list of {mapper.cls.__name__}'s field names, got {fields!r}"
        )
    return [mapper.column(name) for name in fields]


def forget_references(state, columns):
    """A reference is cached only as long as its foreign-key columns hold the values it was read or
    set with: when they are expired or reloaded, it is forgotten too, and reads back from the
    columns (an unflushed ``child.parent = other`` is discarded with the column it set)."""
    references_by_column = state.mapper.references_by_column
    if not references_by_column:
        return
    values = state.obj.__dict__
    for column in columns:
        for reference in references_by_column.get(column.name, ()):
            values.pop(reference.name, None)
