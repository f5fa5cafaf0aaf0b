"""Bulk writes: many rows in one statement each, with less bookkeeping than a flush.

:class:`BulkWriter` is a feature part the session composes (``features``).  A bulk method writes *now*, inside the session's
transaction, with one ``executemany`` per statement shape, and does not make the rows' objects
part of the unit of work — that bookkeeping is what it saves.  What it does keep is the identity
map's promise: an object the session already holds for a row that a bulk method changed is
updated to match (values and snapshot), so the session never shows a value the row no longer has.

* ``bulk_insert_mappings(Entity, [{...}, ...])`` inserts rows given as dicts.
* ``bulk_update_mappings(Entity, [{...}, ...])`` updates rows by the primary key in each dict;
  the other keys are the columns to set.  For a versioned entity the version is bumped, and
  checked when the dict carries it.
* ``bulk_save_objects([obj, ...])`` inserts transient objects and updates detached ones, with
  the flush's own machinery (planner, value checks, batching) but without joining the session.
  Inserted objects receive their generated keys and become *detached* (they have a row but no
  session); ``add()`` them to work with them further.

Every value is checked before any SQL runs, as in a flush.  Each bulk call runs in a savepoint of
its own: a failure rolls back that call's statements and leaves the session usable, unless SQLite
rolled back the whole transaction itself (see ``Guard.fail_if_transaction_lost``).
"""

import sqlite3
from typing import Any

from ..rowsize import oversized_row
from ..valuechecks import Refusal, bind_column, shown
from ..arguments import listed
from ..errors import ArgumentError, ColumnValueError, FlushError, InvalidStateError, StaleDataError, UnknownFieldError
from ..binding import bind_plan
from ..executor import Savepoint, lock_hint
from ..planner import build_plan
from ..writing import run_plan, statements_stayed
from ..identifiers import quote
from ..mapper import entity_objects, mapper_of, mapper_of_class
from ..states import DETACHED, STATE_ATTRIBUTE, TRANSIENT, InstanceState
from ..tracking import changed_fields
from ..transaction import STATEMENTS_STAYED


class BulkWriter:
    """The session's bulk-writing part (see the module docstring)."""

    def __init__(self, session):
        self.session = session
        self.registers = session.registers
        self.guard = session.guard
        self.boundaries = session.boundaries

    def bulk_insert_mappings(self, entity, mappings):
        """Insert one row per dict of column values; returns the number of rows inserted (as SQLite
        counts them: fewer than given when the table's own triggers or conflict clauses skip some)."""
        self.guard.check("bulk_insert_mappings")
        mapper = mapper_of_class(entity, "bulk_insert_mappings")
        mappings = [self._with_defaults(mapper, mapping) for mapping in _rows(mappings, "bulk_insert_mappings")]
        groups: dict[Any, list[Any]] = {}
        for mapping in mappings:
            groups.setdefault(tuple(self._bulk_columns(mapper, mapping)), []).append(mapping)
        statements = []
        for names, rows in groups.items():
            params = self._bulk_params(mapper, names, rows, "insert")
            sql = (f"INSERT INTO {mapper.quoted_table} ({', '.join(map(quote, names))}) "
                   f"VALUES ({', '.join('?' * len(names))})")
            statements.append((sql, params))
        return self._bulk_run(statements, mapper, "bulk_insert_mappings()")

    def bulk_update_mappings(self, entity, mappings):
        """Update rows by primary key: each dict holds the key and the columns to set."""
        self.guard.check("bulk_update_mappings")
        mapper = mapper_of_class(entity, "bulk_update_mappings")
        version = mapper.version_column
        mappings = _rows(mappings, "bulk_update_mappings")
        groups: dict[Any, list[Any]] = {}
        for mapping in mappings:
            for name in mapper.pk_names:
                if mapping.get(name) is None:
                    raise ColumnValueError(f"bulk_update_mappings(): {mapping!r} has no value for key {name!r}")
            names = tuple(name for name in self._bulk_columns(mapper, mapping)
                          if name not in mapper.pk_names and (version is None or name != version.name))
            checked = version is not None and version.name in mapping
            groups.setdefault((names, checked), []).append(mapping)
        statements = []
        for (names, checked), rows in groups.items():
            assignments = [f"{quote(name)} = ?" for name in names]
            where = [mapper.key_condition]
            key_names = list(mapper.pk_names)
            if version is not None:
                assignments.append(f"{quote(version.name)} = {quote(version.name)} + 1")
                if checked:
                    where.append(f"{mapper.quoted_table}.{quote(version.name)} = ?")
                    key_names.append(version.name)
            if not assignments:
                continue
            values = self._bulk_params(mapper, names, rows, "update")
            keys = self._bulk_params(mapper, tuple(key_names), rows, "update")
            params = [value + key for value, key in zip(values, keys)]
            sql = f"UPDATE {mapper.quoted_table} SET {', '.join(assignments)} WHERE {' AND '.join(where)}"
            statements.append((sql, params))
        self._bulk_run(statements, mapper, "bulk_update_mappings()", expect_each=True)
        self._bulk_sync(mapper, mappings)
        return len(mappings)

    def bulk_save_objects(self, objects):
        """Insert transient objects and update detached ones, in batches; see the module docstring.

        This is a flush of objects that stay outside the session: the same planner, value checks
        and batching, inside a savepoint (all or nothing).  Inserted objects get their generated
        keys and become detached; a rollback takes the keys back, as for pending objects.
        """
        session = self.session
        self.guard.check("bulk_save_objects")
        inserts = []
        updates = []
        for obj in entity_objects(objects, "bulk_save_objects"):
            mapper = mapper_of(obj)
            mapper.configure()
            state = obj.__dict__.get(STATE_ATTRIBUTE)
            if state is not None and state.session is not None:
                raise InvalidStateError(f"bulk_save_objects(): {obj!r} belongs to a session; flush it there instead")
            if state is not None and state.row_deleted:
                # As add() refuses it: an UPDATE would match no row, and an INSERT could bring back
                # a row someone meant to remove.
                raise InvalidStateError(
                    f"bulk_save_objects(): the row of {obj!r} was deleted and the delete committed, so there "
                    f"is no row to update; merge() it to write a copy as a new row, or save a new object"
                )
            if state is None or state.status is TRANSIENT:
                if state is None:
                    state = InstanceState(obj, mapper, TRANSIENT, None)
                    obj.__dict__[STATE_ATTRIBUTE] = state
                state.sequence = next(self.registers.sequence)
                inserts.append(state)
            else:
                names = changed_fields(state)
                if names:
                    updates.append((state, names))
        if not (inserts or updates):
            return
        plan = build_plan(inserts, updates, [], held_states=list)
        bound = bind_plan(plan, session.executor.length_limit())
        with self.guard.writing("bulk write"):
            if not session.transaction.active:
                self.boundaries.begin_transaction(None, "bulk_save_objects()", for_writing=True)
            try:
                filled, assigned = run_plan(session.executor, plan, bound)
            except BaseException as error:
                if statements_stayed(error):
                    self.guard.fail(error, "bulk write", STATEMENTS_STAYED)
                raise
        for state in inserts:
            session.undo.record(state)  # before the keys arrive: a rollback takes them back
            values = state.obj.__dict__
            if state in filled:
                names, read_back = filled[state]
                values.update(zip(names, read_back))
            values.update(assigned.get(state, ()))
            state.move(DETACHED, "bulk_save_objects")
            state.key = state.mapper.key_of(values)
            state.committed = state.mapper.snapshot_getter(values)
        for state, names in updates:
            session.undo.record(state)
            mapper = state.mapper
            values = state.obj.__dict__
            written = {name: values[name] for name in mapper.column_names if name in values}
            version = mapper.version_column
            if version is not None:
                # The UPDATE checked the version the object was read at and bumped it; _bulk_sync
                # takes the checked one and bumps a held object's the same way.
                checked = state.committed[version.index]
                written[version.name] = checked
                values[version.name] = checked + 1
            state.committed = mapper.snapshot_getter(values)
            self._bulk_sync(mapper, [written])

    def _with_defaults(self, mapper, mapping):
        """The row a constructor would make: Python defaults filled in, NOT NULL columns required."""
        for name in mapping:
            mapper.column(name)  # UnknownFieldError for a typo
        row = dict(mapper.constant_defaults)
        for name, factory in mapper.default_factories:
            if name not in mapping:
                row[name] = factory()
        row.update(mapping)
        missing = [name for name in mapper.required if row.get(name) is None]
        if missing:
            raise ColumnValueError(
                f"bulk_insert_mappings(): the row {mapping!r} has no value for {', '.join(sorted(missing))} "
                f"of {mapper.cls.__name__} (NOT NULL, with no default)"
            )
        return row

    def _bulk_columns(self, mapper, mapping):
        for name in mapping:
            mapper.column(name)  # UnknownFieldError for a typo
        if not mapping:
            raise UnknownFieldError(f"a bulk row for {mapper.cls.__name__} names no columns: {mapping!r}")
        generated = mapper.generated_key
        return [name for name in mapper.column_names if name in mapping
                and not (generated is not None and name == generated.name and mapping[name] is None)]

    def _bulk_params(self, mapper, names, rows, verb):
        """The parameter rows for ``names``, each value checked and converted as a flush does
        (``valuechecks.bind_column``), and each row's size checked: before any SQL runs."""
        max_length = self.session.executor.length_limit()
        bound_columns = []
        for name in names:
            column = mapper.column(name)
            values = [row.get(name) for row in rows]
            nullable = column.nullable or (column.generated and verb == "insert")
            try:
                bound_columns.append(bind_column(column.type, values, nullable, max_length))
            except Refusal as refusal:
                raise ColumnValueError(
                    f"bulk {verb} of {mapper.cls.__name__} row {_shown(rows[refusal.index])}: "
                    f"{refusal.explain(column.qualified_name, values[refusal.index])}"
                ) from None
        found = oversized_row(bound_columns, max_length)
        if found is not None:
            index, size = found
            raise ColumnValueError(
                f"bulk {verb} of {mapper.cls.__name__} row {_shown(rows[index])}: its {mapper.table} record "
                f"({', '.join(names)}) takes at least {size:,} bytes, over this connection's limit of "
                f"{max_length:,} (SQLITE_LIMIT_LENGTH), although each value fits; store less in one row"
            )
        return list(zip(*bound_columns)) if bound_columns else [() for _ in rows]

    def _bulk_run(self, statements, mapper, operation, expect_each=False):
        """Run the statements inside a savepoint: all of them happen, or none.  Returns the number
        of rows they changed.  ``operation`` is the public call (for autobegin=False's refusal)."""
        session = self.session
        with self.guard.writing("bulk write"):
            if not session.transaction.active:
                self.boundaries.begin_transaction(None, operation, for_writing=True)
            return self._bulk_run_in_savepoint(statements, mapper, expect_each)

    def _bulk_run_in_savepoint(self, statements, mapper, expect_each):
        session = self.session
        executor = session.executor
        session.undo.loading_epoch()  # writes before this one count; its own, if undone below, do not
        savepoint = Savepoint(executor, "uow_bulk")
        changed = 0
        try:
            with savepoint:
                for sql, params in statements:
                    cursor = executor.executemany(sql, params)
                    changed += cursor.rowcount
                    if expect_each and cursor.rowcount != len(params):
                        error_class = StaleDataError if mapper.version_column is not None else FlushError
                        raise error_class(
                            f"bulk update of {mapper.cls.__name__}: {len(params)} row(s) given, {cursor.rowcount} "
                            f"matched; a key is missing or (with a version column) the row changed since it was "
                            f"read",
                            statement=sql,
                        )
        except BaseException as error:
            if executor.in_transaction:
                if not savepoint.undone:
                    # The error arrived once RELEASE had run (a Ctrl-C): the rows are written, but the
                    # held objects were not brought in step with them; only rollback() can do that.
                    self.guard.fail(error, "bulk write", STATEMENTS_STAYED)
                    raise
                session.undo.writes_rolled_back()
            if isinstance(error, sqlite3.Error):
                raise FlushError(f"bulk write to {mapper.table} failed: {error}{lock_hint(error)}",
                                 statement=None) from error
            raise
        return changed

    def _bulk_sync(self, mapper, mappings):
        """Objects the session holds for updated rows take the new values (and snapshot)."""
        version = mapper.version_column
        for mapping in mappings:
            key = mapper.key_for([mapping[name] for name in mapper.pk_names])
            held = self.session.identity.get(mapper.cls, key)
            if held is None:
                continue
            state = held.__dict__[STATE_ATTRIBUTE]
            self.session.undo.record(state)
            values = held.__dict__
            snapshot = list(state.committed)
            for name, value in mapping.items():
                if name in mapper.pk_names or (version is not None and name == version.name):
                    continue
                values[name] = value
                snapshot[mapper.column(name).index] = mapper.snapshot_value(mapper.column(name), value)
            if version is not None:
                # The row had the version the mapping gave (it was checked), else the one held.
                before = mapping[version.name] if version.name in mapping else snapshot[version.index]
                bumped = before + 1 if isinstance(before, int) else None
                if bumped is not None:
                    values[version.name] = bumped
                    snapshot[version.index] = bumped
            state.committed = tuple(snapshot)


def _shown(mapping):
    """A bulk row as an error message shows it: long values cut short."""
    parts = []
    for name, value in mapping.items():
        text = shown(value)
        parts.append(f"{name!r}: {text if len(text) <= 40 else text[:37] + '...'}")
    return "{" + ", ".join(parts) + "}"


def _rows(mappings, operation):
    """The rows of a bulk call as a list of dicts, refused before anything runs if they are not."""
    rows = listed(mappings, operation, "mappings")
    for row in rows:
        if not isinstance(row, dict):
            raise ArgumentError(f"{operation}(): each row must be a dict of column values, got {row!r}")
    return rows
