"""uow.connect(): the connection uow needs, and the promise that uow alone owns the transaction."""

import sqlite3
import sys

import pytest

import uow
from uow import errors

from .models import User


@pytest.mark.parametrize("where", ["memory", "file"])
def test_connect_switches_off_sqlite3_transaction_handling_and_on_foreign_keys(tmp_path, where):
    connection = uow.connect(":memory:" if where == "memory" else str(tmp_path / "app.db"))
    try:
        assert connection.isolation_level is None
        assert connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        connection.close()


def test_sqlite3_never_begins_a_transaction_by_itself_after_uow_commits(conn):
    session = uow.Session(conn)
    session.add(User(name="ann"))
    session.flush()
    assert conn.in_transaction
    session.commit()
    assert not conn.in_transaction
    # A DML statement outside uow would make sqlite3 send an implicit BEGIN in its legacy mode.
    conn.execute("INSERT INTO users (name, score) VALUES ('raw', 0.0)")
    assert not conn.in_transaction
    session.get(User, 1).name = "bob"
    session.commit()
    assert not conn.in_transaction


def test_session_refuses_a_connection_that_manages_transactions_itself():
    connection = sqlite3.connect(":memory:")  # isolation_level "" : sqlite3 would send BEGIN itself
    try:
        with pytest.raises(errors.UowError, match="isolation_level"):
            uow.Session(connection)
    finally:
        connection.close()


def test_session_refuses_something_that_is_not_a_connection():
    with pytest.raises(errors.UowError, match="sqlite3.Connection"):
        uow.Session(":memory:")


def test_commit_is_sent_as_sql_by_uow(conn):
    session = uow.Session(conn)
    session.add(User(name="ann"))
    with uow.capture_sql() as statements:
        session.commit()
    assert statements[0].sql == "BEGIN IMMEDIATE"
    assert statements[-1].sql == "COMMIT"
    assert not conn.in_transaction


def test_connect_without_a_database_opens_a_private_in_memory_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a file, had one been created, would land here
    connection = uow.connect()
    try:
        assert connection.execute("PRAGMA database_list").fetchall() == [(0, "main", "")]
        assert connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        connection.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sqlite3's autocommit attribute is new in Python 3.12")
def test_connect_pins_sqlite3_legacy_transaction_control():
    """Python 3.12's autocommit attribute is set explicitly, so a future default cannot make the
    driver send BEGIN or COMMIT."""
    connection = uow.connect(":memory:")
    try:
        assert connection.autocommit == sqlite3.LEGACY_TRANSACTION_CONTROL
        assert connection.isolation_level is None
    finally:
        connection.close()


@pytest.mark.skipif(sys.version_info < (3, 12), reason="Connection.setconfig() is new in Python 3.12")
def test_a_double_quoted_name_that_is_no_column_is_an_error_not_a_string_literal(conn):
    with pytest.raises(sqlite3.OperationalError, match="no such column: nosuch"):
        conn.execute('SELECT "nosuch" FROM users')
    with pytest.raises(sqlite3.OperationalError, match="no such column: nosuch"):
        conn.execute('UPDATE users SET name = "nosuch"')


@pytest.mark.parametrize("where", ["memory", "file"])
def test_session_on_a_connection_already_closed_is_a_connection_closed_error(tmp_path, where):
    """sqlite3's own ProgrammingError named neither uow nor the way out."""
    connection = uow.connect(":memory:" if where == "memory" else str(tmp_path / "app.db"))
    connection.close()
    with pytest.raises(errors.ConnectionClosedError) as caught:
        uow.Session(connection)
    assert str(caught.value).startswith("Session(): this sqlite3 connection was already closed")
    assert "open a new one with uow.connect()" in str(caught.value)
