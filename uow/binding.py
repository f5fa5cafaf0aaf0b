"""Binding a flush plan: every value it will write checked and converted, before any SQL runs.

:func:`bind_plan` walks every value the plan will write and raises
:class:`~uow.errors.ColumnValueError` naming the class, attribute, object and value that SQLite
would reject or silently change (each column goes through ``valuechecks.bind_column``, the one
gate every channel uses), or a row whose record would be longer than SQLite's limit.  What it
returns, one list of parameter rows per step, is what ``writing`` sends.

Nothing here touches SQLite or changes an object: a refusal leaves everything as it was.
"""

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from .columntypes import to_db
from .rowsize import oversized_row
from .valuechecks import Refusal, bind_column
from .errors import ColumnValueError
from .sentinels import NOT_LOADED
from .planner import FlushPlan, Step, StepKind, StepPurpose


def bind_plan(plan: FlushPlan, max_length: int | None = None) -> list[list[tuple[Any, ...]] | None]:
    """Build, check and convert the parameter rows of every step, before any SQL runs.

    Returns one list of rows per step (deletes have none: they bind only keys).  Raises
    ColumnValueError naming the class, attribute, object and value for the first value that
    cannot be stored unchanged.  Checking a whole column at once (``valuechecks.first_invalid``)
    keeps this cheap for large flushes.
    """
    return [bind_step(step, max_length) if step.kind is not StepKind.DELETE else None for step in plan.steps]


def bind_step(step: Step, max_length: int | None = None) -> list[tuple[Any, ...]]:
    """The checked and converted parameter rows of one step (see :func:`bind_plan`)."""
    mapper = step.mapper
    version = mapper.version_column
    if step.kind is StepKind.UPDATE and step.purpose is StepPurpose.WRITE and version is not None and version.name in step.columns:
        state = step.states[0]
        raise ColumnValueError(
            f"cannot update {state.describe()}: {version.qualified_name} is its version counter, which uow "
            f"manages (it was changed from {state.committed[version.index]!r} to "
            f"{state.obj.__dict__.get(version.name)!r}); leave it alone"
        )
    if step.purpose is StepPurpose.CLEAR_REFERENCE:
        return [(None,) * len(step.columns) for _ in step.actions]
    if step.purpose is StepPurpose.POST_UPDATE:
        # The foreign keys a cycle left NULL at INSERT: the object's own values, or (for a parent
        # the database numbers) the parent's new key, filled in while the flush runs.
        columns = [mapper.column(name) for name in step.columns]
        return [tuple(to_db(column.type, state.obj.__dict__.get(column.name)) for column in columns)
                for state in step.states]
    get = _row_getter(step.columns)
    rows = [get(state.obj.__dict__) for state in step.states]
    if not rows or not step.columns:
        return rows
    columns = [mapper.column(name) for name in step.columns]
    converted = []
    special = [action for action in step.actions if action.sources or action.null_columns]
    # The columns some row leaves to the flush, found once (``set.union`` reads each row's names in C).
    left_to_flush = set().union(*(action.sources or () for action in special),
                                *(action.null_columns for action in special))
    for column, values in zip(columns, zip(*rows)):
        # Values the flush fills in later (a parent's new key) or binds as NULL for now (a cycle
        # broken by a follow-up UPDATE) are not the object's to check.
        exempt = set() if column.name not in left_to_flush else {
            index for index, action in enumerate(step.actions)
            if (action.sources and column.name in action.sources) or column.name in action.null_columns
        }
        if len(exempt) == len(values):
            converted.append([None] * len(values))  # (every row's: children of new parents)
            continue
        kept = values if not exempt else [i for i in range(len(values)) if i not in exempt]
        checked = values if not exempt else [values[i] for i in kept]
        # A generated key may be left None for SQLite to number at INSERT, never set to None after.
        nullable = column.nullable or (column.generated and step.kind is StepKind.INSERT)
        try:
            bound = bind_column(column.type, checked, nullable, max_length)
        except Refusal as refusal:
            index = refusal.index if not exempt else kept[refusal.index]
            raise ColumnValueError(
                f"cannot {step.kind.value.lower()} {step.states[index].describe()}: "
                f"{refusal.explain(column.qualified_name, values[index])}"
            ) from None
        if exempt:
            bound_by_index = dict(zip(kept, bound))
            bound = [bound_by_index.get(index) for index in range(len(values))]
        converted.append(bound)
    found = oversized_row(converted + _unchanged_columns(step, max_length), max_length)
    if found is not None:
        index, size = found
        raise ColumnValueError(
            f"cannot {step.kind.value.lower()} {step.states[index].describe()}: the row's {mapper.table} record "
            f"({', '.join(step.columns)}) takes at least {size:,} bytes, over this connection's limit of "
            f"{max_length:,} (SQLITE_LIMIT_LENGTH), although each value fits; store less in one row"
        )
    if any(isinstance(values, list) for values in converted):
        rows = list(zip(*converted))
    return rows


def _unchanged_columns(step: Step, max_length: int | None) -> list[list[Any]]:
    """For an UPDATE, the bound values of the columns it leaves alone, one list per column.

    SQLite rewrites the whole record, so a value that fits on its own can still make the row too
    long with the columns beside it (a 997-byte text next to a key passed every check and failed
    in SQLite).  An object's value of a column the UPDATE does not set is the stored one; one it
    does not hold (expired) counts as nothing, so the measure stays a floor.
    """
    if step.kind is not StepKind.UPDATE or max_length is None:
        return []
    columns = [column for column in step.mapper.columns if column.name not in step.columns]
    return [[None if value is NOT_LOADED else to_db(column.type, value)
             for value in (state.obj.__dict__.get(column.name, NOT_LOADED) for state in step.states)]
            for column in columns]


def _row_getter(columns: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A function returning a row's values for ``columns`` as a tuple (itemgetter is C-fast)."""
    if not columns:
        return lambda values: ()
    if len(columns) == 1:
        name = columns[0]
        return lambda values: (values.get(name),)
    getter = itemgetter(*columns)

    def get(values: Mapping[str, Any]) -> tuple[Any, ...]:
        try:
            return getter(values)
        except KeyError:
            return tuple(values.get(name) for name in columns)

    return get
