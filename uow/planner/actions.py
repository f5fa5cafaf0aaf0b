"""The row actions of a flush: one per row to write, in session order.

Each pending object becomes an INSERT, each object with a net change an UPDATE of the columns
that changed, each object marked for deletion a DELETE -- with one exception:

**Row switch.**  Deleting an object and adding a new one with the same primary key in one
flush becomes a single UPDATE of that row (SQLAlchemy's rule): no INSERT that would collide,
no DELETE that would orphan the row's children.
"""

from collections.abc import Iterable

from ..sentinels import MISSING
from ..states import InstanceState
from .records import DELETE, INSERT, ROW_SWITCH, UPDATE, RowAction


def insert_shape(state: InstanceState) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(columns bound, columns read back) for inserting one pending object."""
    mapper = state.mapper
    values = state.obj.__dict__
    if values.keys() >= mapper.init_names:
        # The common case, decided with one set comparison: every column has a value.
        key = mapper.generated_key
        if key is not None and values[key.name] is None:
            return mapper.shape_with_generated_key
        return mapper.shape_with_all_columns
    bound: list[str] = []
    returning: list[str] = []
    for column in mapper.columns:
        value = values.get(column.name, MISSING)
        if column.generated and value is None:
            returning.insert(0, column.name)
        elif value is MISSING and column.server_default is not None:
            returning.append(column.name)
        else:
            bound.append(column.name)  # a missing value without a default is an explicit NULL
    return tuple(bound), tuple(returning)


def known_key(state: InstanceState) -> object | None:
    """The key (``Mapper.key_for``) a pending object will have, or None if the database will generate it."""
    mapper = state.mapper
    values = state.obj.__dict__
    if mapper.generated_key is not None and values.get(mapper.generated_key.name) is None:
        return None
    return mapper.key_of(values)


def make_actions(inserts: Iterable[InstanceState], updates: Iterable[tuple[InstanceState, tuple[str, ...]]],
                 deletes: Iterable[InstanceState]) -> tuple[list[RowAction], dict[InstanceState, RowAction]]:
    """``(actions, writers)``: the row actions in session order (inserts, updates, deletes), and
    ``{state: its INSERT or UPDATE action}`` for the edges to find a parent's action by."""
    actions: list[RowAction] = []
    writers: dict[InstanceState, RowAction] = {}
    # {(class, key): state}: a row switch needs a delete and an insert, so a flush without inserts
    # (a batch of deletes) files none of its deletes here.
    marked = {(state.mapper.cls, state.key): state for state in deletes} if inserts else {}
    switched = set()
    for state in inserts:
        columns, returning = insert_shape(state)
        key = known_key(state) if marked else None
        old = marked.get((state.mapper.cls, key)) if key is not None else None
        if old is not None and old not in switched:
            # The new object takes over the deleted object's row: an UPDATE of every column it
            # holds but the key (the row has it already) and the version (the flush bumps it).
            mapper = state.mapper
            values = state.obj.__dict__
            version = mapper.version_column
            columns = tuple(
                name for name in mapper.column_names
                if name not in mapper.pk_names and name in values and (version is None or name != version.name)
            )
            action = RowAction(UPDATE, state, columns, purpose=ROW_SWITCH, switch_from=old)
            switched.add(old)
        else:
            action = RowAction(INSERT, state, columns, returning)
        actions.append(action)
        writers[state] = action
    for state, names in updates:
        action = RowAction(UPDATE, state, names, before=state.committed)
        actions.append(action)
        writers[state] = action
    for state in deletes:
        if state not in switched:
            actions.append(RowAction(DELETE, state))
    return actions, writers
