"""Fixtures: real sqlite3 databases (in memory and on disk), sessions on them, and SQL capture helpers."""

import sqlite3

import pytest

import uow

from .models import ALL_MODELS


@pytest.fixture(params=["memory", "file"])
def conn(request, tmp_path):
    """A uow connection with every test model's table, in memory or in a file."""
    if request.param == "memory":
        connection = uow.connect(":memory:")
    else:
        connection = uow.connect(str(tmp_path / "test.db"))
    uow.create_all(connection, ALL_MODELS)
    yield connection
    connection.close()


@pytest.fixture
def db_path(tmp_path):
    """A file database holding every test model's table; tests open their own connections to it."""
    path = str(tmp_path / "shared.db")
    connection = uow.connect(path)
    uow.create_all(connection, ALL_MODELS)
    connection.close()
    return path


@pytest.fixture
def file_conn(db_path):
    """A uow connection to the file database."""
    connection = uow.connect(db_path)
    yield connection
    connection.close()


@pytest.fixture
def other(db_path):
    """A second, plain sqlite3 connection to the same file: it only sees what was committed."""
    connection = sqlite3.connect(db_path, isolation_level=None)
    yield connection
    connection.close()


@pytest.fixture
def session(conn):
    s = uow.Session(conn)
    yield s
    s.close()


@pytest.fixture
def file_session(file_conn):
    s = uow.Session(file_conn)
    yield s
    s.close()
