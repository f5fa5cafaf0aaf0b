"""Writing SQL: sending each step of a flush plan as a statement, and reading back what SQLite filled in.

This module sends :class:`~uow.planner.Step` records as statements (their text is
``stepsql``'s), with the parameter rows ``binding`` checked before any SQL.  It is the one
place a flush's SQL is sent, and it never changes an object: the flush applies the results
only after every statement has succeeded, which is what lets a failed flush leave the session
exactly as it was.

**Generated keys are read back, never guessed.**  For a table whose key SQLite generates, the
step reads the table's largest key (the rowid, named by its column: the word ``rowid`` would name
a column of the table's own if it had one), inserts the rows with one ``executemany``, and reads back
the rows above that old maximum in rowid order.  SQLite documents that a new row gets a rowid
one larger than the largest in the table, and the flush holds the write lock, so those rows are
exactly the new ones, in the order they were inserted; the count is checked anyway.
(``executemany`` cannot be combined with RETURNING — the driver drops the returned rows — and
RETURNING lists rows in no guaranteed order, so neither can tell which key belongs to which
object.)  A natural-key table with SQL DEFAULTs uses ``INSERT ... RETURNING`` and matches the
returned rows by their primary key.
"""

import dataclasses
import sqlite3
from typing import Any

from .binding import bind_step
from .columntypes import from_db, to_db
from .errors import FlushError, StaleDataError
from .executor import Executor, Savepoint, lock_hint
from .identifiers import quote
from .planner import FlushPlan, Step, StepKind, StepPurpose
from .states import InstanceState
from .stepsql import delete_sql, insert_sql, key_params, step_sql, update_sql, versioned

ROWID_MAX = 2 ** 63 - 1
FLUSH_SAVEPOINT = "uow_flush"


def _fill_sources(step, rows, filled, assigned):
    """Put the keys of parent rows written earlier in this flush into the rows about to be sent."""
    if not any(action.sources for action in step.actions):
        return rows
    # Where each column sits in the row, and how its value is stored: the same for every row of
    # the step, so looked up once rather than once per row.
    slot = {name: (index, step.mapper.column(name).type.to_db) for index, name in enumerate(step.columns)}
    filled_rows = []
    for action, row in zip(step.actions, rows):
        if action.sources:
            row = list(row)
            given = assigned.setdefault(action.state, {})
            for name, (parent, parent_column) in action.sources.items():
                value = given[name] = _current_value(parent, parent_column, filled)
                index, convert = slot[name]
                row[index] = convert(value) if convert is not None and value is not None else value
            row = tuple(row)
        filled_rows.append(row)
    return filled_rows


def _current_value(state, name, filled):
    """A column's value as of now in the flush: read back by the database, or the object's own."""
    if state in filled:
        names, values = filled[state]
        if name in names:
            return values[names.index(name)]
    return state.obj.__dict__.get(name)


def _where_params(action, filled, checks_version):
    """Where an UPDATE finds its row: by the old key, the switched-from row's key, or (for a row
    inserted earlier in this same flush) by the key it was just given.  ``checks_version``: the
    user's own UPDATEs also match the version this session loaded (see :func:`~uow.stepsql.versioned`)."""
    mapper = action.mapper
    if action.switch_from is not None:
        return key_params(mapper, action.switch_from)
    if action.state.key is None:
        return [to_db(column.type, _current_value(action.state, column.name, filled)) for column in mapper.primary_key]
    return key_params(mapper, action.state, checks_version=checks_version)


def run_plan(executor: Executor, plan: FlushPlan,
             bound: list[list[tuple[Any, ...]] | None]) -> tuple[dict[InstanceState, Any], dict[InstanceState, dict[str, Any]]]:
    """Run every step with its rows from ``binding.bind_plan``, atomically.

    The plan runs inside ``SAVEPOINT uow_flush``: if any statement fails, the savepoint is rolled
    back (unless SQLite already rolled back the whole transaction by itself) and the database is
    as it was before the flush.  Returns ``(filled, assigned)``: ``{state: (column names, values
    read back)}`` for inserted rows, and ``{state: {column: value}}`` for foreign keys filled in
    from parent rows.

    Every error leaves as a FlushError (or StaleDataError) naming the statement, except
    BaseExceptions such as KeyboardInterrupt, which propagate unchanged after the cleanup.  An
    error while cleaning up never replaces the error that caused the cleanup.
    """
    savepoint = Savepoint(executor, FLUSH_SAVEPOINT)
    ran_all = False
    try:
        # Any error inside the block rolls the savepoint back before it reaches the handlers
        # below, so each handler explains a failure whose statements are already undone.
        with savepoint:
            results = _run_steps(executor, plan.steps, bound)
            ran_all = True
        return results
    except _FailedStep as failure:
        located = None
        if failure.locatable and executor.in_transaction:
            located = _locate_failing_row(executor, plan, bound, failure.index)
        raise _flush_error(plan.steps[failure.index], failure.error, located) from failure.error
    except _Unmatched as failure:
        # Probe only after the flush is undone: rows of the batch that did match were already
        # changed (a version bumped), and would otherwise be blamed instead of the stale one.
        raise _describe_unmatched(executor, failure.step, failure.sql, failure.verb) from None
    except _ReadBackMismatch as failure:
        raise FlushError(str(failure), statement=failure.sql) from None
    except sqlite3.Error as error:
        # SAVEPOINT or RELEASE refused (each step's own errors arrive as a _FailedStep).
        sql = f'{"RELEASE" if ran_all else "SAVEPOINT"} "{FLUSH_SAVEPOINT}"'
        raise FlushError(f"{sql} failed: {error}{lock_hint(error)}", statement=sql) from error
    except BaseException as error:
        if not savepoint.undone and ran_all and executor.in_transaction:
            error.add_note("uow: the flush's statements had all run when this was raised; "
                           "rollback() undoes them and restores the objects")
            error.uow_statements_stayed = True  # type: ignore[attr-defined]  # a mark on the exception: see statements_stayed()
        raise


def statements_stayed(error: BaseException) -> bool:
    """True when ``error`` left run_plan after its final RELEASE had run: the statements are in
    the transaction, but the caller never learnt their results."""
    return getattr(error, "uow_statements_stayed", False)


class _FailedStep(Exception):
    """Internal: SQLite refused step ``index``; ``locatable`` when replaying can name the row."""

    def __init__(self, index, error, locatable):
        super().__init__(str(error))
        self.index = index
        self.error = error
        self.locatable = locatable


def _run_steps(executor: Executor, steps: list[Step], bound: list[list[tuple[Any, ...]] | None],
               stop: int | None = None) -> tuple[dict[InstanceState, Any], dict[InstanceState, dict[str, Any]]]:
    filled: dict[InstanceState, Any] = {}
    assigned: dict[InstanceState, dict[str, Any]] = {}
    # Rows this flush will delete, {(class, key): state}, until their DELETE has run (see
    # _refuse_a_doomed_key: only an INSERT can take a doomed key, so a flush without one files none).
    inserts = any(step.kind is StepKind.INSERT for step in steps)
    doomed = {(action.state.mapper.cls, action.state.key): action.state for step in steps
              if inserts and step.kind is StepKind.DELETE for action in step.actions}
    for index, (step, rows) in enumerate(zip(steps, bound)):
        if index == stop:
            break
        try:
            if step.kind is StepKind.INSERT:
                _run_insert(executor, step, _fill_sources(step, rows, filled, assigned), filled)
                if doomed and step.mapper.generated_key is not None:
                    _refuse_a_doomed_key(step, filled, doomed)
            elif step.kind is StepKind.UPDATE:
                _run_update(executor, step, _fill_sources(step, rows, filled, assigned), filled)
            else:
                _run_delete(executor, step)
                if doomed:
                    for action in step.actions:
                        doomed.pop((action.state.mapper.cls, action.state.key), None)  # gone now: an INSERT may take its key
        except sqlite3.Error as error:
            # A constraint or a too-long value belongs to one row; other errors (a lock, an
            # interrupt, a full disk) belong to the statement as a whole.
            locatable = len(step.actions) > 1 and isinstance(error, (sqlite3.IntegrityError, sqlite3.DataError))
            raise _FailedStep(index, error, locatable) from error
    return filled, assigned


def _refuse_a_doomed_key(step, filled, doomed):
    """SQLite hands out the largest free rowid again.  If the row of an object this flush deletes
    is already gone (another connection deleted it, or an earlier transaction did and the object
    was deleted again once detached), a new row can get its key, and the DELETE later in this
    flush would delete the new row instead.  Stop before it does (the flush is undone)."""
    mapper = step.mapper
    name = mapper.generated_key.name
    for state in step.states:
        names, values = filled.get(state, ((), ()))
        if name not in names:
            continue  # the key was given, not generated: checked before any SQL ran
        key = values[names.index(name)]
        if (mapper.cls, key) in doomed:
            raise _ReadBackMismatch(
                f"SQLite gave the new {state.describe()} the key {key!r} of {doomed[mapper.cls, key].describe()}, "
                f"which this flush deletes: that row was already deleted after the object was read (by another "
                f"connection, or in an earlier transaction). rollback() and load the objects again; nothing "
                f"was written",
                None,
            )


def _run_insert(executor, step, rows, filled):
    mapper = step.mapper
    sql = insert_sql(mapper, step.columns)
    if not step.returning:
        executor.executemany(sql, rows)
        return
    generated = mapper.generated_key
    if generated is not None and step.returning[0] == generated.name and len(rows) > 1:
        key = f"{mapper.quoted_table}.{quote(generated.name)}"
        before = executor.fetchall(f"SELECT max({key}) FROM {mapper.quoted_table}")[0][0] or 0
        if before + len(rows) < ROWID_MAX:
            _insert_and_read_back(executor, step, sql, rows, before, filled)
            return
    _insert_returning(executor, step, sql, rows, filled)


def _insert_and_read_back(executor, step, sql, rows, before, filled):
    mapper = step.mapper
    # The generated key column is the rowid itself (an INTEGER PRIMARY KEY is its alias), named
    # by the mapped name: the word "rowid" would mean a column of the table's own if it had one.
    key = f"{mapper.quoted_table}.{quote(mapper.generated_key.name)}"
    executor.executemany(sql, rows)
    columns = [mapper.column(name) for name in step.returning]
    select = (
        f"SELECT {', '.join(f'{mapper.quoted_table}.{quote(c.name)}' for c in columns)} "
        f"FROM {mapper.quoted_table} WHERE {key} > ? ORDER BY {key}"
    )
    returned = executor.fetchall(select, (before,))
    if len(returned) != len(rows):
        raise _ReadBackMismatch(
            f"inserted {len(rows)} row(s) into {mapper.table} but found {len(returned)} new row(s) when "
            f"reading back generated values; a trigger or another writer changed the table",
            select,
        )
    names = step.returning
    if all(c.type.from_db is None for c in columns):
        for state, row in zip(step.states, returned):
            filled[state] = (names, row)
    else:
        for state, row in zip(step.states, returned):
            filled[state] = (names, tuple(from_db(c.type, value) for c, value in zip(columns, row)))


def _insert_returning(executor, step, sql, rows, filled):
    """One statement per row with RETURNING: for a single row, for natural keys with SQL DEFAULTs
    (the returned key names the row), and when rowids are too close to their maximum to be read back."""
    mapper = step.mapper
    columns = [mapper.column(name) for name in step.returning]
    returning_sql = f"{sql} RETURNING {', '.join(quote(c.name) for c in columns)}"
    for state, row in zip(step.states, rows):
        values = executor.execute(returning_sql, row).fetchall()[0]  # read to the end: the statement finishes
        filled[state] = (step.returning, tuple(from_db(c.type, value) for c, value in zip(columns, values)))


def _run_update(executor, step, new_values, filled):
    sql = update_sql(step)
    checks_version = step.purpose is StepPurpose.WRITE  # (the same for every row of the step)
    rows = [values + tuple(_where_params(action, filled, checks_version))
            for values, action in zip(new_values, step.actions)]
    cursor = executor.executemany(sql, rows)
    if cursor.rowcount != len(rows):
        raise _Unmatched(step, sql, "UPDATE")


def _run_delete(executor, step):
    mapper = step.mapper
    sql = delete_sql(mapper)
    rows = [key_params(mapper, action.state) for action in step.actions]
    cursor = executor.executemany(sql, rows)
    if cursor.rowcount != len(rows):
        raise _Unmatched(step, sql, "DELETE")


class _ReadBackMismatch(Exception):
    """Internal: the rows read back after an INSERT do not match the rows inserted."""

    def __init__(self, message, sql):
        super().__init__(message)
        self.sql = sql


class _Unmatched(Exception):
    """Internal: an UPDATE or DELETE batch matched fewer rows than it had objects."""

    def __init__(self, step, sql, verb):
        super().__init__(f"{verb} on {step.table} matched fewer rows than expected")
        self.step = step
        self.sql = sql
        self.verb = verb


def _describe_unmatched(executor, step, sql, verb):
    """Name the first object whose row moved on (run after the flush was undone).

    With a version column this is a lost race (StaleDataError: someone else committed a change
    to the row first); without one, the row was deleted or re-keyed behind the session's back.
    """
    mapper = step.mapper
    version = mapper.version_column
    where = mapper.key_condition
    probe = f"SELECT {quote(version.name) if version else 1} FROM {mapper.quoted_table} WHERE {where}"
    for action in step.actions:
        state = action.switch_from or action.state
        if state.key is None:
            continue
        found = executor.fetchall(probe, key_params(mapper, state, checks_version=False))
        if version is not None and versioned(step):
            expected = state.committed[version.index]
            now = found[0][0] if found else None
            if now != expected:
                what = "the row was deleted" if not found else f"found version {now}"
                return StaleDataError(
                    f"{verb} of {state.describe()} expected {version.qualified_name} = {expected}, but {what}: "
                    f"another session changed it first. Nothing was overwritten; rollback(), reload the "
                    f"object and apply your change again",
                    statement=sql, obj=state.obj, expected=expected, found=now,
                )
        elif not found:
            return FlushError(
                f"{verb} of {state.describe()} matched no row: the row was deleted or its key changed "
                f"outside this session; refresh or expunge the object",
                statement=sql, obj=state.obj,
            )
    return FlushError(f"{verb} on {mapper.table} matched fewer rows than expected", statement=sql)


def _flush_error(step, error, located=None):
    """Wrap a sqlite3 error as a FlushError that names the statement and, where possible, the object."""
    state = step.states[0] if len(step.states) == 1 else located
    what = state.describe() if state is not None else f"{len(step.states)} {step.table} rows"
    sql = step_sql(step)
    hint = lock_hint(error)
    return FlushError(f"{step.kind.value} of {what} failed: {error} (statement: {sql}){hint}", statement=sql,
                      obj=state.obj if state is not None else None)


def _locate_failing_row(executor, plan, bound, failed):
    """Name the row SQLite refused in a failed batch.

    ``executemany`` stops at the failing row but keeps the rows before it, so the batch cannot
    simply be replayed.  Instead, inside a savepoint that is rolled back afterwards, the steps
    before the failed one run again (the same statements on the same data give the same result),
    and then the failed step runs one row at a time until a row fails.  This costs nothing
    unless a batch fails.
    """
    savepoint = Savepoint(executor, "uow_locate")
    savepoint.open()
    try:
        filled, _ = _run_steps(executor, plan.steps, bound, stop=failed)
        step = plan.steps[failed]
        for action in step.actions:
            single = dataclasses.replace(step, actions=[action])
            try:
                if step.kind is StepKind.DELETE:
                    _run_delete(executor, single)
                    continue
                rows = _fill_sources(single, bind_step(single), filled, {})
                if step.kind is StepKind.INSERT:
                    _run_insert(executor, single, rows, filled)
                else:
                    _run_update(executor, single, rows, filled)
            except (sqlite3.Error, _Unmatched):
                return action.state
        return None
    except (sqlite3.Error, _FailedStep, _Unmatched):
        return None
    finally:
        savepoint.roll_back()
