"""Entities with relationships, for test_relationships.py, test_related_lists.py and test_planner.py
(test_flush.py borrows Node).

They live on their own abstract base (``RelBase``) and are created in their own databases (see
:func:`make_connection`), so they clash with no other test's classes or tables.

========================  =====================================================================
User / Order              generated keys; ``User.orders`` cascades everything, delete-orphan too
Team / Player             nullable NOT-cascaded reference: deleting a team leaves its players
Author / Book             NOT NULL reference without delete cascade: deleting an author with
                          books must be refused
Country / City            a natural text key that cities reference (ON UPDATE CASCADE)
Node                      a self-referential tree (nullable parent), cascading everything
Message                   two foreign keys to the same table (sender, recipient)
Department / Employee     a cycle with one nullable edge (department.manager_id)
Egg / Hen                 a cycle with no nullable edge: no pair of rows can ever be inserted
========================  =====================================================================

:class:`Database` is one test database (in memory or in a file) with these tables, and
:func:`dml` the captured statements without transaction control, :func:`writes` only the
INSERT, UPDATE and DELETE statements.
"""

import sqlite3

import pytest

import uow
from uow import Collection, Column, Entity, Reference, Session

from .helpers import folded


class RelBase(Entity, abstract=True):
    pass


class User(RelBase, table="users"):
    id: int = Column(primary_key=True)
    name: str
    email: str | None = Column(unique=True)
    orders = Collection("Order", "user", cascade="all, delete-orphan")


class Order(RelBase, table="orders"):
    id: int = Column(primary_key=True)
    user_id: int = Column(references="User")
    user = Reference("user_id")
    total: int = 0


class Team(RelBase, table="teams"):
    id: int = Column(primary_key=True)
    name: str
    players = Collection("Player", "team")  # default cascade: save-update, expunge, refresh


class Player(RelBase, table="players"):
    id: int = Column(primary_key=True)
    name: str
    team_id: int | None = Column(references="Team")
    team = Reference("team_id")


class Author(RelBase, table="authors"):
    id: int = Column(primary_key=True)
    name: str
    books = Collection("Book", "author")


class Book(RelBase, table="books"):
    id: int = Column(primary_key=True)
    title: str
    author_id: int = Column(references="Author")
    author = Reference("author_id")


class Country(RelBase, table="countries"):
    code: str = Column(primary_key=True)
    name: str
    cities = Collection("City", "country")


class City(RelBase, table="cities"):
    id: int = Column(primary_key=True)
    name: str
    country_code: str = Column(references="Country")
    country = Reference("country_code")


class Node(RelBase, table="nodes"):
    id: int = Column(primary_key=True)
    name: str = Column(unique=True)
    parent_id: int | None = Column(references="Node")
    parent = Reference("parent_id")
    children = Collection("Node", "parent", cascade="all")


class Message(RelBase, table="messages"):
    id: int = Column(primary_key=True)
    sender_id: int = Column(references="User")
    recipient_id: int = Column(references="User")
    sender = Reference("sender_id")
    recipient = Reference("recipient_id")
    text: str = ""


class Department(RelBase, table="departments"):
    id: int = Column(primary_key=True)
    name: str
    manager_id: int | None = Column(references="Employee")
    manager = Reference("manager_id")


class Employee(RelBase, table="employees"):
    id: int = Column(primary_key=True)
    name: str
    department_id: int = Column(references="Department")
    department = Reference("department_id")


class Egg(RelBase, table="eggs"):
    id: int = Column(primary_key=True)
    hen_id: int = Column(references="Hen")
    hen = Reference("hen_id")


class Hen(RelBase, table="hens"):
    id: int = Column(primary_key=True)
    egg_id: int = Column(references="Egg")
    egg = Reference("egg_id")


MODELS = [User, Order, Team, Player, Author, Book, Country, City, Node, Message, Department, Employee, Egg, Hen]

# Pair every Collection with its Reference now, so that tests of transient objects do not depend
# on whether an earlier test happened to create the tables (create_all configures the mapping).
# test_relationships.py checks separately that pairing needs no such call.
for _model in MODELS:
    _model.__mapper__.configure()


def make_connection(where):
    """A uow connection (``":memory:"`` or a file path) holding every table above."""
    connection = uow.connect(where)
    uow.create_all(connection, MODELS)
    return connection


class Database:
    """One test database: ``conn`` for sessions, ``rows()`` to read it back with raw SQL.

    ``committed()`` reads through a second connection when the database is a file, so it sees
    only what was committed; an in-memory database has no second connection, so it reads
    through ``conn`` (only after a commit is that the same thing).
    """

    def __init__(self, where, path):
        self.where = where
        self.path = path if where == "file" else None
        self.conn = make_connection(self.path or ":memory:")

    def rows(self, sql, params=()):
        return self.conn.execute(sql, params).fetchall()

    def committed(self, sql, params=()):
        if self.path is None:
            return self.rows(sql, params)
        other = sqlite3.connect(self.path, isolation_level=None)
        try:
            return other.execute(sql, params).fetchall()
        finally:
            other.close()

    def run(self, script):
        """Seed rows with plain SQL, in one transaction of its own (outside any uow session)."""
        self.conn.execute("BEGIN")
        for statement in script.strip().split(";"):
            if statement.strip():
                self.conn.execute(statement)
        self.conn.execute("COMMIT")


def dml(statements):
    """The folded statements minus transaction control (BEGIN, SAVEPOINT, RELEASE, COMMIT...)."""
    control = ("BEGIN", "SAVEPOINT", "RELEASE", "COMMIT", "ROLLBACK")
    return [(sql, params) for sql, params in folded(statements) if not sql.startswith(control)]


def writes(statements):
    """Only the INSERTs, UPDATEs and DELETEs, folded: for claims about order that should hold
    however uow chooses to read what it needs first."""
    return [(sql, params) for sql, params in folded(statements) if sql.startswith(("INSERT", "UPDATE", "DELETE"))]


def database_fixtures(seed, name):
    """The ``db`` (memory and file, seeded with ``seed``) and ``session`` fixtures of a test module."""
    @pytest.fixture(params=["memory", "file"])
    def db(request, tmp_path):
        database = Database(request.param, str(tmp_path / f"{name}.db"))
        database.run(seed)
        yield database
        database.conn.close()

    @pytest.fixture
    def session(db):
        opened = Session(db.conn)
        yield opened
        opened.close()

    return db, session
