"""The SQL of a flush step: the text of its INSERT, UPDATE or DELETE, and the key that finds its row.

A :class:`~uow.planner.Step` is one statement shape run over many rows, so its text is built
once per step; ``writing`` sends it, and names it in the error when SQLite refuses a row.
What a statement says is kept apart from how it is sent and read back because it holds the
rules a reader checks uow's SQL against:

* **A row is found by the key it had before this flush.**  An UPDATE that changes a primary key
  finds the row by the old key (``state.key``, in its stored form), never by the new values
  (a row inserted earlier in the same flush, by the key it was just given: ``writing``).
* **Optimistic locking.**  For an entity with a version column, the user's own UPDATEs of rows
  that existed before this flush (and a row switch, which rewrites the row a deleted object
  held) match the version this session loaded and increment it in the same statement; a
  DELETE matches it too.  A row changed elsewhere then matches nothing, and the flush reports
  a stale object instead of overwriting it.  The flush's own fix-ups (a post-update completing
  a foreign key, a reference cleared before a delete) neither check nor bump it: they are part
  of the same unit of work.
"""

from collections.abc import Sequence
from typing import Any

from .identifiers import quote
from .mapper import Mapper
from .planner import Step, StepKind, StepPurpose
from .states import InstanceState


def insert_sql(mapper: Mapper, columns: Sequence[str]) -> str:
    """``INSERT INTO table (columns) VALUES (?, ...)``, or DEFAULT VALUES when no column is given."""
    if not columns:
        return f"INSERT INTO {mapper.quoted_table} DEFAULT VALUES"
    names = ", ".join(map(quote, columns))
    marks = ", ".join("?" * len(columns))
    return f"INSERT INTO {mapper.quoted_table} ({names}) VALUES ({marks})"


def versioned(step: Step) -> bool:
    """The user's own writes check and bump the version; the flush's internal fix-ups do not."""
    return step.mapper.version_column is not None and step.purpose in (StepPurpose.WRITE, StepPurpose.ROW_SWITCH) and \
        not (step.purpose is StepPurpose.WRITE and step.actions and step.actions[0].state.key is None)


def update_sql(step: Step) -> str:
    """``UPDATE table SET ... WHERE key = ?``, with the version checked and incremented when
    :func:`versioned` says so."""
    mapper = step.mapper
    assignments = [f"{quote(name)} = ?" for name in step.columns]
    version = mapper.version_column
    checks_version = versioned(step)
    if checks_version and version is not None:  # (versioned() holds only for an entity with one)
        name = quote(version.name)
        assignments.append(f"{name} = {name} + 1")
    return f"UPDATE {mapper.quoted_table} SET {', '.join(assignments)} WHERE {where_key(mapper, checks_version)}"


def delete_sql(mapper: Mapper) -> str:
    """``DELETE FROM table WHERE key = ?`` (and the version, for a versioned entity)."""
    return f"DELETE FROM {mapper.quoted_table} WHERE {where_key(mapper)}"


def step_sql(step: Step) -> str:
    """The statement a step sends, whatever its kind."""
    mapper = step.mapper
    if step.kind is StepKind.INSERT:
        return insert_sql(mapper, step.columns)
    if step.kind is StepKind.UPDATE:
        return update_sql(step)
    return delete_sql(mapper)


def where_key(mapper: Mapper, checks_version: bool = True) -> str:
    """The WHERE condition that finds one row: its key columns, and its version when checked."""
    version = mapper.version_column
    if checks_version and version is not None:
        return f"{mapper.key_condition} AND {mapper.quoted_table}.{quote(version.name)} = ?"
    return mapper.key_condition


def key_params(mapper: Mapper, state: InstanceState, checks_version: bool = True) -> tuple[Any, ...]:
    """The WHERE parameters that find a row by the key it had before this flush (and, for a
    versioned entity, the version this session loaded).  A tuple, as SQLite takes it: a batch of
    deletes binds these as they are, one per row."""
    params = mapper.key_params(state.key)  # a key holds the stored forms (Mapper.key_for)
    if checks_version and mapper.version_column is not None:
        return params + (state.committed[mapper.version_column.index],)
    return params
