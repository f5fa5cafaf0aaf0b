"""Fixtures over a seeded database, made once per test module and copied for each test.

Several test modules need the same fixtures around their own schema and seed rows::

    template, path, conn, session, file_session, other = seeded_fixtures(create, "bulk")

``create(connection)`` builds the schema and its rows; ``template`` is a file built once per
module and ``path`` a copy of it for each test.  ``conn`` runs each test twice, on a fresh
in-memory database and on a copy of the template file; ``file_session`` always uses the file,
and ``other`` is a second plain sqlite3 connection to it, which sees only what was committed.
A module binds only the names it uses (pytest finds fixtures by module attribute).
"""

import shutil
import sqlite3

import pytest

import uow
from uow import Session


def seeded_fixtures(create, name):
    @pytest.fixture(scope="module")
    def template(tmp_path_factory):
        path = str(tmp_path_factory.mktemp(name) / "template.db")
        connection = uow.connect(path)
        create(connection)
        connection.close()
        return path

    @pytest.fixture
    def path(template, tmp_path):
        path = str(tmp_path / f"{name}.db")
        shutil.copyfile(template, path)
        return path

    @pytest.fixture(params=["memory", "file"])
    def conn(request, path):
        if request.param == "memory":
            connection = uow.connect(":memory:")
            create(connection)
        else:
            connection = uow.connect(path)
        yield connection
        connection.close()

    @pytest.fixture
    def session(conn):
        opened = Session(conn)
        yield opened
        opened.close()

    @pytest.fixture
    def file_session(path):
        connection = uow.connect(path)
        opened = Session(connection)
        yield opened
        opened.close()
        connection.close()

    @pytest.fixture
    def other(path):
        connection = sqlite3.connect(path, isolation_level=None)
        yield connection
        connection.close()

    return template, path, conn, session, file_session, other
