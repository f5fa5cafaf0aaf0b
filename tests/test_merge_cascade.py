"""merge() follows relationships (the merge cascade, on by default as in SQLAlchemy), and warns
when asked to merge an object already pending in the session.  Real sqlite3 databases, in memory
and in a file; what a commit wrote is read back from a second connection."""

import sqlite3
import warnings

import pytest

import uow
from uow.errors import UowWarning

from .test_surface import MODELS, Book, Loose, Shelf, verbs


@pytest.fixture(params=["memory", "file"])
def path(request, tmp_path):
    # A file for both: the in-memory case uses a shared-cache URI so a second connection can read.
    if request.param == "memory":
        return f"file:merge_{id(request)}?mode=memory&cache=shared"
    return str(tmp_path / "merge.db")


@pytest.fixture
def db(path):
    """(a connection factory, the keeper connection holding the schema and two shelves)."""
    uri = path.startswith("file:")

    def connect():
        return uow.connect(path, uri=uri)

    keeper = connect()
    uow.create_all(keeper, MODELS)
    session = uow.Session(keeper)
    top = Shelf(id=1, name="top")
    top.books.extend([Book(id=1, title="one"), Book(id=2, title="two")])
    session.add(top)
    session.add(Shelf(id=2, name="bottom"))
    session.commit()
    session.close()
    yield connect, keeper
    keeper.close()


def read(keeper, sql):
    return keeper.execute(sql).fetchall()


def detached_top(connect):
    """Shelf 1 with its books loaded, from a session that is then closed."""
    conn = connect()
    session = uow.Session(conn)
    shelf = session.get(Shelf, 1)
    list(shelf.books)
    session.commit()
    session.close()
    conn.close()
    return shelf


def test_merging_a_detached_parent_merges_its_loaded_children(db):
    connect, keeper = db
    shelf = detached_top(connect)
    shelf.name = "top, renamed"
    shelf.books[0].title = "one, edited"
    conn = connect()
    session = uow.Session(conn)
    with uow.capture_sql() as statements:
        merged = session.merge(shelf)  # (loading the merged shelf's list autoflushes what merge copied)
        assert merged is not shelf and merged in session
        assert [book.title for book in merged.books] == ["one, edited", "two"]
        assert all(book in session and book not in shelf.books for book in merged.books)
        assert uow.state_of(shelf) is uow.ObjectState.DETACHED, "the given object is left as it was"
        session.commit()
    assert verbs(statements).count("UPDATE") == 2
    assert read(keeper, "SELECT id, title FROM surface_books ORDER BY id") == [(1, "one, edited"), (2, "two")]
    assert read(keeper, "SELECT name FROM surface_shelves WHERE id = 1") == [("top, renamed",)]
    session.close()
    conn.close()


def test_merging_a_new_graph_inserts_every_object_and_links_the_copies(db):
    connect, keeper = db
    conn = connect()
    session = uow.Session(conn)
    shelf = Shelf(id=3, name="new")
    shelf.books.extend([Book(title="fresh a"), Book(title="fresh b")])
    merged = session.merge(shelf)
    assert uow.state_of(shelf) is uow.ObjectState.TRANSIENT
    assert len(session.new) == 3
    assert all(book.shelf is merged for book in merged.books)
    session.commit()
    assert read(keeper, "SELECT title, shelf_id FROM surface_books WHERE id > 2 ORDER BY id") == [
        ("fresh a", 3), ("fresh b", 3)]
    session.close()
    conn.close()


def test_a_child_removed_from_the_merged_list_is_released(db):
    connect, keeper = db
    shelf = detached_top(connect)
    del shelf.books[1]  # (on a detached object: only memory changes)
    conn = connect()
    session = uow.Session(conn)
    merged = session.merge(shelf)
    assert [book.id for book in merged.books] == [1]
    session.commit()
    assert read(keeper, "SELECT id, shelf_id FROM surface_books ORDER BY id") == [(1, 1), (2, None)]
    session.close()
    conn.close()


def test_a_cached_reference_is_merged_and_the_copy_points_at_the_merged_parent(db):
    connect, keeper = db
    shelf = detached_top(connect)
    book = shelf.books[0]
    shelf.name = "renamed through the child"
    conn = connect()
    session = uow.Session(conn)
    merged_book = session.merge(book)  # book.shelf is cached: the shelf is merged, and its books with it
    assert merged_book.shelf.name == "renamed through the child"
    assert merged_book.shelf in session and merged_book in merged_book.shelf.books
    assert len(session.identity_map) == 3, "each object merged once, although they hold each other"
    session.commit()
    assert read(keeper, "SELECT name FROM surface_shelves WHERE id = 1") == [("renamed through the child",)]
    session.close()
    conn.close()


def test_a_relationship_without_merge_is_not_followed(db):
    connect, keeper = db
    conn = connect()
    session = uow.Session(conn)
    shelf = Shelf(id=9, name="not merged")
    loose = Loose(id=1, name="x")
    loose.shelf = shelf  # Loose.shelf has cascade="": no merge
    with warnings.catch_warnings():
        warnings.simplefilter("error", UowWarning)
        merged = session.merge(loose)
    assert "shelf" not in merged.__dict__ or merged.__dict__["shelf"] is None
    assert len(session.new) == 1
    session.close()
    conn.close()


def test_merge_load_false_follows_the_cascade_without_sql(db):
    connect, keeper = db
    shelf = detached_top(connect)
    conn = connect()
    session = uow.Session(conn)
    with uow.capture_sql() as statements:
        merged = session.merge(shelf, load=False)
        titles = [book.title for book in merged.books]
    assert statements == []
    assert titles == ["one", "two"]
    assert not session.dirty and not session.new
    session.close()
    conn.close()


def test_merge_of_an_object_already_pending_here_warns_and_returns_it(db):
    connect, keeper = db
    conn = connect()
    session = uow.Session(conn)
    shelf = Shelf(id=5, name="pending")
    session.add(shelf)
    with pytest.warns(UowWarning, match=r"Shelf\(id=5.*already pending in this session"):
        assert session.merge(shelf) is shelf
    persistent = session.get(Shelf, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UowWarning)
        assert session.merge(persistent) is persistent  # persistent here: nothing to warn of
    session.close()
    conn.close()


def test_merging_a_new_child_first_reaches_its_new_parent_without_a_flush_in_between(db):
    """merge(book) of a new book whose new shelf holds it: the cascade merged the book (pending,
    shelf_id=3 copied), then looked the shelf up with get(), whose autoflush wrote the book before
    its shelf existed -- a FOREIGN KEY FlushError part way, the session left needing rollback().
    merge() autoflushes once, before anything is merged, as SQLAlchemy's does."""
    connect, keeper = db
    conn = connect()
    session = uow.Session(conn)
    shelf = Shelf(id=3, name="new")
    book = Book(id=7, title="fresh")
    shelf.books.append(book)
    book.shelf = shelf
    merged = session.merge(book)
    assert merged.shelf.name == "new" and merged.shelf.books == [merged]
    session.commit()
    assert read(keeper, "SELECT id, title, shelf_id FROM surface_books WHERE id = 7") == [(7, "fresh", 3)]
    assert read(keeper, "SELECT name FROM surface_shelves WHERE id = 3") == [("new",)]
    session.close()
    conn.close()


@pytest.mark.parametrize("load", [True, False])
def test_merging_onto_an_object_marked_for_deletion_is_refused_before_anything_changes(db, load):
    """With autoflush off, merge() copied the values onto the session's object for the row although
    it was marked for deletion: the next flush deleted it, and the merged values with it, silently."""
    connect, keeper = db
    source = detached_top(connect)
    if load:
        source.name = "renamed"  # (load=False takes only clean objects: their values are the row's)
    conn = connect()
    session = uow.Session(conn, autoflush=False)
    doomed = session.get(Shelf, 1)
    session.delete(doomed)
    with uow.capture_sql() as statements, pytest.raises(uow.errors.InvalidStateError, match="marked for deletion"):
        session.merge(source, load=load)
    assert [s.sql for s in statements] == [] and doomed.name == "top" and session.deleted == {doomed}
    session.rollback()
    session.close()
    conn.close()
