"""A savepoint's rollback and loaded collections: dropped when the rolled-back level touched an
object of the collection's class (they reload through the identity map when next read).

Found by the conformance kit (properties/test_conformance.py, REL-13): an object whose DELETE was
flushed, of a class with a JSON column, got a "precaution" memento when the savepoint began, and
an assignment to it afterwards was no touch, unlike the same assignment to a persistent object.
"""

import pytest

import uow
from uow import Column, Entity


class Base(Entity, abstract=True):
    pass


class Shelf(Base, table="shelves"):
    id: int = Column(primary_key=True)
    books: uow.Collection["Book"] = uow.Collection("Book", "shelf")


class Book(Base, table="books"):
    id: int = Column(primary_key=True)
    title: str
    tags: list = Column(default_factory=list)  # a JSON column
    shelf_id: int | None = Column(references=Shelf, default=None)
    shelf: uow.Reference[Shelf] = uow.Reference("shelf_id")


@pytest.fixture(params=["memory", "file"])
def session(request, tmp_path):
    connection = uow.connect(":memory:" if request.param == "memory" else str(tmp_path / "shelves.db"))
    uow.create_all(connection, [Shelf, Book])
    seeding = uow.Session(connection)
    seeding.add_all([Shelf(id=1), Book(id=1, title="Emma", shelf_id=1)])
    seeding.commit()
    seeding.close()
    return uow.Session(connection)


def test_assigning_a_deleted_object_its_own_value_in_a_savepoint_drops_collections_at_its_rollback(session):
    shelf = session.get(Shelf, 1)
    (book,) = shelf.books
    book.shelf_id = None
    session.delete(book)
    session.flush()  # the book's DELETE is flushed: it has no row in the transaction
    savepoint = session.begin_nested()
    book.title = book.title  # an assignment, of the value it holds
    savepoint.rollback()
    assert "books" not in shelf.__dict__  # dropped, as for a persistent book: it reloads when read
    assert shelf.books == []
