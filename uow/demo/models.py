"""The walkthrough's entity classes, and a fresh database for each chapter.

Every chapter starts from an empty database of its own, so that ``python -m uow.demo 12`` runs
chapter 12 alone and prints exactly what it would print in the whole walkthrough.
"""

import uow
from uow import Collection, Column, Entity, Reference, Session


class DemoBase(Entity, abstract=True):
    """The demo's own registry, so its classes never clash with yours."""


class Author(DemoBase, table="authors"):
    id: int = Column(primary_key=True)
    name: str
    email: str | None = Column(unique=True)
    books: Collection["Book"] = Collection("Book", "author", cascade="all, delete-orphan")


class Book(DemoBase, table="books"):
    id: int = Column(primary_key=True)
    title: str
    author_id: int = Column(references=Author)
    author: Reference[Author] = Reference("author_id")
    copies: int = 0


class Category(DemoBase, table="categories"):
    """A tree in one table: each category may have a parent category."""

    id: int = Column(primary_key=True)
    name: str = Column(unique=True)
    parent_id: int | None = Column(references="Category")
    parent: Reference["Category"] = Reference("parent_id")


class Account(DemoBase, table="accounts"):
    """A row two users may change at once: its version column catches the second writer."""

    id: int = Column(primary_key=True)
    owner: str
    balance: int = 0
    version: int = Column(version=True)


class Department(DemoBase, table="departments"):
    """Departments and employees point at each other: a cycle of foreign keys."""

    id: int = Column(primary_key=True)
    name: str
    head_id: int | None = Column(references="Employee")
    head: Reference["Employee"] = Reference("head_id")


class Employee(DemoBase, table="employees"):
    id: int = Column(primary_key=True)
    name: str
    department_id: int | None = Column(references=Department)
    department: Reference[Department] = Reference("department_id")


def fresh_session(path: str = ":memory:") -> Session:
    """A Session on a new database (in memory unless a file path is given) with the demo's tables."""
    connection = uow.connect(path)
    uow.create_all(connection, DemoBase)
    return Session(connection)
