"""Which rows of a flush must be written before which, and why: the ordering edges.

Each rule below adds :class:`~uow.planner.records.Edge` records, ``(before, after, reason)``:

* **Foreign keys, inserting and updating.**  A row that references a row inserted in the same
  flush is written after it: ``INSERT orders#7 after INSERT users#3: orders.user_id references
  users.id``.  When the reference is an object (``order.user = ann``) and ann's key is generated
  by the database, the order's ``user_id`` is recorded as a *source*: the flush fills it from
  ann's new key.  If the child's foreign key is nullable the edge is *breakable*: in a cycle the
  child can be inserted with NULL and completed by a follow-up UPDATE.
* **Foreign keys, deleting.**  A row that references a row deleted in the same flush is deleted
  (or re-pointed) first.  A nullable reference can instead be cleared by an UPDATE before the
  parent's DELETE, which breaks cycles.
* **Unique values.**  A row that frees a unique value (deleting the row, or updating it away) is
  written before the row that takes that value.  The primary key counts as a unique value.

Before any SQL runs, it also refuses a delete that would leave a loaded child's foreign key
pointing at a row that no longer exists.
"""

from collections.abc import Callable, Iterable
import operator
from typing import Any, NamedTuple

from ..errors import InvalidStateError
from ..columns import ForeignKey
from ..mapper import Mapper
from ..sentinels import NOT_LOADED
from ..states import STATE_ATTRIBUTE, InstanceState
from .actions import known_key
from .records import (CLEAR_REFERENCE, DELETE, INSERT, POST_UPDATE, ROW_SWITCH, UPDATE, WRITE, Edge, RowAction,
                      StepPurpose)


def find_edges(actions: list[RowAction], writers: dict[InstanceState, RowAction],
               held_states: Callable[[], Iterable[InstanceState]]) -> list[Edge]:
    """Every ordering edge between ``actions`` (see the module docstring).

    ``writers`` maps a state to its INSERT or UPDATE action; ``held_states`` returns the
    session's persistent states, read only to refuse deletes that would leave a loaded child
    pointing nowhere.
    """
    mappers = set(map(_mapper_of, actions))
    edges = _foreign_key_edges(actions, writers, mappers)
    deletes = [action for action in actions if action.kind is DELETE]
    if deletes:
        deleted_mappers = {action.state.mapper for action in deletes}
        referencing = {mapper for mapper in _all_mappers(mappers, deleted_mappers)
                       if any(foreign_key.target.__mapper__ in deleted_mappers for foreign_key in mapper.foreign_keys)}
        # (No declared entity references a deleted table: no row can wait for a delete, and no
        # loaded child can be left pointing at one, so the deleted rows need no index.)
        if referencing:
            deleted = {(action.state.mapper.cls, action.state.key): action for action in deletes}
            edges.extend(_delete_edges(actions, deleted, referencing))
            _refuse_dangling_children(deleted, deleted_mappers, referencing, actions, held_states)
    edges.extend(_unique_edges(actions, mappers))
    return edges


_mapper_of = operator.attrgetter("state.mapper")


def _changes_key(action: RowAction) -> bool:
    return action.kind is UPDATE and any(name in action.mapper.pk_names for name in action.columns)


def _leaves_alone(action: RowAction, foreign_key: ForeignKey) -> bool:
    """True for the user's UPDATE that sets none of ``foreign_key``'s columns: it orders nothing."""
    return action.kind is UPDATE and action.purpose is WRITE and \
        set(foreign_key.column_names).isdisjoint(action.columns)


class _Link(NamedTuple):
    """One foreign key of a class, with what the planner reads for every row that has it, read once
    per flush rather than once per row."""

    foreign_key: ForeignKey
    names: tuple[str, ...]    # its columns
    reference: str | None     # the Reference travelling along it, whose object a row may hold
    reason: str               # what its edges say (``ForeignKey.describe``)
    at_insert: StepPurpose | None  # how an INSERT's edge along it breaks: POST_UPDATE when nullable


def _links_of(mapper: Mapper) -> list[_Link]:
    links = []
    for foreign_key in mapper.foreign_keys:
        reference = mapper.reference_on(foreign_key)
        links.append(_Link(foreign_key, foreign_key.column_names, reference.name if reference is not None else None,
                           foreign_key.describe(), POST_UPDATE if foreign_key.nullable else None))
    return links


def _foreign_key_edges(actions: list[RowAction], writers: dict[InstanceState, RowAction],
                       mappers: set[Mapper]) -> list[Edge]:
    """Parents inserted (or re-keyed) in this flush are written before the rows that reference them."""
    referenced = {foreign_key.target.__mapper__ for mapper in mappers for foreign_key in mapper.foreign_keys}
    if not referenced:
        return []
    keyed: dict[tuple[type, Any], RowAction] = {}  # {(class, key): the action that writes it}
    for action in actions:
        if action.state.mapper not in referenced:
            continue
        if action.kind is INSERT or _changes_key(action):
            # (A row switch is not listed: its row exists already, so nothing waits for it.)
            key = known_key(action.state) if action.kind is INSERT else action.mapper.key_of(action.state.obj.__dict__)
            if key is not None:
                keyed[action.mapper.cls, key] = action
    links_of = {mapper: _links_of(mapper) for mapper in mappers}
    edges = []
    for action in actions:
        kind = action.kind
        if kind is DELETE:
            continue
        state = action.state
        links = links_of[state.mapper]
        if not links:
            continue
        values = state.obj.__dict__
        for link in links:
            if kind is UPDATE and _leaves_alone(action, link.foreign_key):
                continue
            parent = None
            target = values.get(link.reference) if link.reference is not None else None
            if target is not None:
                target_state = target.__dict__.get(STATE_ATTRIBUTE)
                parent = writers.get(target_state) if target_state is not None else None
                if parent is not None and (parent.kind is INSERT or _changes_key(parent)):
                    sources = action.sources
                    if sources is None:
                        sources = action.sources = {}
                    for name, key_name in zip(link.names, target_state.mapper.pk_names):
                        sources[name] = (target_state, key_name)
                else:
                    parent = None
            if parent is None:
                key_values = tuple(values.get(name) for name in link.names)
                if None in key_values:
                    continue
                foreign_key = link.foreign_key
                parent = keyed.get((foreign_key.target, foreign_key.target_key(key_values)))
                if parent is None:
                    continue
            if parent is action and known_key(state) is not None:
                # A row pointing at its own key, known in advance: SQLite checks the foreign key
                # once the row is in, so the one INSERT is enough.  (A key the database generates
                # is not known in advance: the row waits on itself, a cycle of one.)
                if action.sources:
                    for name in link.names:
                        action.sources.pop(name, None)
                continue
            edges.append(Edge(parent, action, link.reason, link.at_insert if kind is INSERT else None, link.foreign_key))
    return edges


def _delete_edges(actions: list[RowAction], deleted: dict[tuple[type, Any], RowAction],
                  referencing: set[Mapper]) -> list[Edge]:
    """Rows that reference a deleted row are deleted, or point elsewhere, before it goes.

    ``referencing``: the mappers with a foreign key to a deleted table; no other row can wait.
    """
    edges = []
    for action in actions:
        if action.kind is INSERT or action.purpose not in (WRITE, ROW_SWITCH):
            continue
        mapper = action.state.mapper
        if mapper not in referencing:
            continue
        # A row switch rewrites the deleted object's row: what it pointed at is in that snapshot.
        committed = action.switch_from.committed if action.switch_from is not None else action.state.committed
        for foreign_key in mapper.foreign_keys:
            old = tuple(committed[column.index] for column in foreign_key.columns)
            if None in old or NOT_LOADED in old:
                continue
            parent = deleted.get((foreign_key.target, foreign_key.target_key(old)))
            if parent is None or parent is action:
                continue
            if _leaves_alone(action, foreign_key):
                continue
            nullable = foreign_key.nullable
            breakable = CLEAR_REFERENCE if action.kind is DELETE and nullable else None
            edges.append(Edge(action, parent, foreign_key.describe(), breakable, foreign_key))
    return edges


def _refuse_dangling_children(deleted: dict[tuple[type, Any], RowAction], deleted_mappers: set[Mapper],
                              referencing: set[Mapper], actions: list[RowAction],
                              held_states: Callable[[], Iterable[InstanceState]]) -> None:
    """A loaded child left referencing a deleted row would fail at the DELETE: say so before any SQL.

    ``referencing``: the mappers with a foreign key to one of ``deleted_mappers``' tables.
    """
    written = {action.state for action in actions}
    written.update(action.switch_from for action in actions if action.switch_from is not None)
    for state in held_states():
        if state in written or state.mapper not in referencing:
            continue
        values = state.obj.__dict__
        for foreign_key in state.mapper.foreign_keys:
            if foreign_key.target.__mapper__ not in deleted_mappers:
                continue
            key_values = tuple(values.get(name) for name in foreign_key.column_names)
            parent = deleted.get((foreign_key.target, foreign_key.target_key(key_values)))
            if parent is not None:
                fix = "set it to None, " if foreign_key.nullable else ""
                raise InvalidStateError(
                    f"flush(): deleting {parent.state.describe()} would leave {state.describe()}."
                    f"{', '.join(foreign_key.column_names)} pointing at a row that no longer exists "
                    f"({foreign_key.describe()}); delete that object too (or use cascade='delete'), "
                    f"{fix}or point it at another row"
                )


def _all_mappers(mappers: set[Mapper], deleted_mappers: set[Mapper]) -> set[Mapper]:
    """Every mapper that could reference a deleted table: those of the registries involved
    (``mappers``: those of the flush's actions)."""
    every = set(mappers)
    for mapper in deleted_mappers:
        for cls in mapper.cls.__registry__.classes.values():
            every.add(cls.__mapper__)
    return every


def _unique_groups(mapper: Mapper) -> list[tuple[tuple[str, ...], tuple[int, ...]]]:
    """The column groups whose values must be unique: the primary key, and each unique column."""
    groups = [tuple(column.name for column in mapper.primary_key)]
    groups.extend((column.name,) for column in mapper.columns if column.unique)
    return [(group, tuple(mapper.column(name).index for name in group)) for group in groups]


def _unique_edges(actions: list[RowAction], mappers: set[Mapper]) -> list[Edge]:
    """A unique value (or key) is freed before it is taken by another row in the same flush.

    Values taken are found first: a row that only frees values (a DELETE) waits for nothing,
    so a flush that takes no unique value (deletes, or inserts with generated keys) needs no
    record of what it frees, and its deletes are not looked at.
    """
    if all(not m.unique_columns and m.generated_key is not None for m in mappers) and \
            all(action.kind is INSERT for action in actions):
        return []  # only inserts, with nothing unique but keys the database assigns
    groups_of = {mapper: _unique_groups(mapper) for mapper in mappers}
    unique_names = {mapper: {name for group, _ in groups_of[mapper] for name in group} for mapper in mappers}
    writes = []  # (action, its unique groups): the rows, other than deletes, that can take or free a value
    deletes = []
    for action in actions:
        if action.kind is DELETE:
            if action.purpose is WRITE:
                deletes.append(action)
            continue
        mapper = action.state.mapper
        if action.kind is INSERT and not mapper.unique_columns and mapper.generated_key is not None:
            continue  # nothing unique it could collide on, besides a key the database assigns
        if action.purpose not in (WRITE, ROW_SWITCH) and action.kind is not INSERT:
            continue  # the flush's own fix-ups set foreign keys, never unique values
        groups = groups_of[mapper]
        if action.kind is UPDATE and action.purpose is WRITE:
            # Only the unique values this UPDATE changes can be freed or taken by it.
            if unique_names[mapper].isdisjoint(action.columns):
                continue
            groups = [(group, indexes) for group, indexes in groups if not set(group).isdisjoint(action.columns)]
        writes.append((action, groups))
    taken = []
    for action, groups in writes:
        values = action.state.obj.__dict__
        for group, indexes in groups:
            new = tuple(values.get(name) for name in group)
            if None not in new and (action.kind is INSERT or new != _old_values(action, indexes)):
                taken.append(((action.mapper, group, new), action))
    if not taken:
        return []
    freed = {}
    for action, groups in writes:
        if action.kind is INSERT:
            continue
        values = action.state.obj.__dict__
        for group, indexes in groups:
            old = _old_values(action, indexes)
            if None not in old and old != tuple(values.get(name) for name in group):
                freed[(action.mapper, group, old)] = action
    for action in deletes:  # (after the writes: the actions' own order, deletes last)
        for group, indexes in groups_of[action.state.mapper]:
            old = _old_values(action, indexes)
            if None not in old:
                freed[(action.mapper, group, old)] = action
    edges = []
    for key, taker in taken:
        freer = freed.get(key)
        if freer is not None and freer is not taker:
            mapper, group, value = key
            shown = value[0] if len(value) == 1 else value
            reason = f"{mapper.table}.{', '.join(group)} = {shown!r} is unique and is freed first"
            edges.append(Edge(freer, taker, reason))
    return edges


def _old_values(action: RowAction, indexes: tuple[int, ...]) -> tuple[Any, ...]:
    """The values a row holds before this flush (for a row switch: the deleted object's row)."""
    committed = action.switch_from.committed if action.switch_from is not None else action.state.committed
    return tuple(committed[index] for index in indexes)
