"""The one savepoint helper (executor.Savepoint) and the one transaction stack (Transaction.levels).

Every SAVEPOINT / RELEASE / ROLLBACK TO uow sends goes through ``Savepoint``; every level of the
transaction owns its undo scope, so the stack of savepoints and the stack of undo scopes cannot
drift apart.  These are white-box tests of both, on real databases read back from a second
connection.
"""

import sqlite3

import pytest

import uow
from uow.executor import Executor, Savepoint

from .models import User


def names(connection):
    return [row[0] for row in connection.execute("SELECT name FROM users ORDER BY id")]


def sql_of(statements):
    return [statement.sql for statement in statements]


@pytest.fixture
def executor(file_conn):
    return Executor(file_conn)


def test_wb_a_savepoint_block_releases_on_success(executor, other):
    executor.execute("BEGIN IMMEDIATE")
    with uow.capture_sql() as statements:
        with Savepoint(executor, "uow_block"):
            executor.execute("INSERT INTO users (name, score) VALUES ('ann', 0)")
    executor.execute("COMMIT")
    assert sql_of(statements) == ['SAVEPOINT "uow_block"', "INSERT INTO users (name, score) VALUES ('ann', 0)",
                                  'RELEASE "uow_block"']
    assert names(other) == ["ann"]


def test_wb_a_savepoint_block_undoes_everything_in_it_on_an_error_and_lets_it_propagate(executor, other):
    executor.execute("BEGIN IMMEDIATE")
    executor.execute("INSERT INTO users (name, score) VALUES ('kept', 0)")
    savepoint = Savepoint(executor, "uow_block")
    with uow.capture_sql() as statements, pytest.raises(ValueError):
        with savepoint:
            executor.execute("INSERT INTO users (name, score) VALUES ('undone', 0)")
            raise ValueError("in the block")
    assert savepoint.undone
    assert sql_of(statements)[-2:] == ['ROLLBACK TO "uow_block"', 'RELEASE "uow_block"']
    executor.execute("COMMIT")
    assert names(other) == ["kept"]


def test_wb_a_block_interrupted_once_its_release_ran_says_its_statements_stayed(file_conn, other):
    """A Ctrl-C just after RELEASE: the block cannot be undone any more, and says so."""
    class Interrupting(sqlite3.Connection):
        def execute(self, sql, params=()):
            cursor = super().execute(sql, params)
            if sql == 'RELEASE "uow_block"':
                raise KeyboardInterrupt("just after RELEASE")
            return cursor

    path = file_conn.execute("PRAGMA database_list").fetchone()[2]
    connection = sqlite3.connect(path, isolation_level=None, factory=Interrupting)
    executor = Executor(connection)
    executor.execute("BEGIN IMMEDIATE")
    savepoint = Savepoint(executor, "uow_block")
    with pytest.raises(KeyboardInterrupt):
        with savepoint:
            executor.execute("INSERT INTO users (name, score) VALUES ('stayed', 0)")
    assert not savepoint.undone  # ROLLBACK TO found no savepoint: the INSERT is in the transaction
    assert connection.in_transaction
    connection.execute("COMMIT")
    assert names(other) == ["stayed"]
    connection.close()


def test_wb_rolling_back_a_savepoint_sqlite_already_rolled_back_sends_nothing(executor):
    executor.execute("BEGIN IMMEDIATE")
    savepoint = Savepoint(executor, "uow_probe")
    savepoint.open()
    executor.execute("ROLLBACK")  # as SQLite does by itself after an interrupt or a full disk
    with uow.capture_sql() as statements:
        savepoint.roll_back()
    assert statements == []


def test_wb_each_level_of_the_stack_owns_its_undo_scope(file_session, other):
    session = file_session
    ann = User(name="ann")
    session.add(ann)
    root = session.transaction.levels[0]
    assert ann.__dict__[uow.STATE_ATTRIBUTE] in root.undo.mementos
    outer = session.begin_nested()
    inner = session.begin_nested()
    assert session.transaction.levels == [root, outer, inner]
    ann.name = "changed in the inner savepoint"
    state = ann.__dict__[uow.STATE_ATTRIBUTE]
    assert state in inner.undo.mementos and state not in outer.undo.mementos
    inner.commit()  # its undo scope joins the enclosing level's
    assert session.transaction.levels == [root, outer]
    assert state in outer.undo.mementos
    outer.rollback()  # the database and the object go back to where the outer savepoint began
    assert session.transaction.levels == [root]
    assert ann.name == "ann"
    session.commit()
    assert names(other) == ["ann"]
    assert session.transaction.levels == [root] and root.undo.mementos == {}
