"""SQLAlchemy's session surface that a SQLAlchemy user reaches for: session.info, object_session,
close_all_sessions, invalidate, autobegin=False, make_transient, make_transient_to_detached,
get(populate_existing=True), prepare() refused, the uow.flush logger, and the UowWarning for an
object left out of a flush.  Real sqlite3 databases, in memory and in a file; commits are read
back from a second connection."""

import logging
import sqlite3
import threading
import warnings

import pytest

import uow
from uow import Collection, Column, Entity, Reference
from uow.errors import InvalidStateError, SessionClosedError, TransactionError, UowWarning

from .helpers import sql_of


class SurfaceBase(Entity, abstract=True):
    """This module's own registry."""


class Shelf(SurfaceBase, table="surface_shelves"):
    id: int = Column(primary_key=True)
    name: str
    books = Collection("Book", "shelf")
    loose = Collection("Loose", "shelf", cascade="expunge")  # no save-update


class Book(SurfaceBase, table="surface_books"):
    id: int = Column(primary_key=True)
    title: str
    shelf_id: int | None = Column(references=Shelf)
    shelf = Reference("shelf_id")


class Loose(SurfaceBase, table="surface_loose"):
    """Its reference to a shelf has no save-update cascade."""
    id: int = Column(primary_key=True)
    name: str
    shelf_id: int | None = Column(references=Shelf)
    shelf = Reference("shelf_id", cascade="")


MODELS = [Shelf, Book, Loose]


@pytest.fixture(params=["memory", "file"])
def path(request, tmp_path):
    return ":memory:" if request.param == "memory" else str(tmp_path / "surface.db")


@pytest.fixture
def conn(path):
    connection = uow.connect(path)
    uow.create_all(connection, MODELS)
    yield connection
    connection.close()


@pytest.fixture
def file_path(tmp_path):
    path = str(tmp_path / "surface.db")
    connection = uow.connect(path)
    uow.create_all(connection, MODELS)
    connection.execute("INSERT INTO surface_shelves (id, name) VALUES (1, 'top'), (2, 'bottom')")
    connection.close()
    return path


def verbs(statements):
    """The first word of each statement, without the flush's own SAVEPOINT and RELEASE."""
    return [s.sql.split()[0] for s in statements if s.sql.split()[0] not in ("SAVEPOINT", "RELEASE")]


def rows(path, sql):
    other = sqlite3.connect(path)
    try:
        return other.execute(sql).fetchall()
    finally:
        other.close()


# -- session.info, object_session ---------------------------------------------------------------

def test_info_is_a_dict_of_the_applications_own(conn):
    session = uow.Session(conn)
    other = uow.Session(conn)
    session.info["request_id"] = 7
    assert session.info == {"request_id": 7}
    assert other.info == {}


def test_object_session_as_a_static_method_of_session(conn):
    session = uow.Session(conn)
    shelf = Shelf(name="a")
    assert uow.Session.object_session(shelf) is None
    session.add(shelf)
    assert uow.Session.object_session(shelf) is session
    assert session.object_session(shelf) is session
    with pytest.raises(uow.errors.UnmappedClassError, match="Shelf"):
        uow.Session.object_session(Shelf)


# -- prepare() ----------------------------------------------------------------------------------

def test_prepare_is_refused_with_the_reason_and_changes_nothing(conn):
    session = uow.Session(conn)
    session.add(Shelf(id=1, name="a"))
    session.flush()
    with uow.capture_sql() as statements:
        with pytest.raises(TransactionError, match="two-phase commit"):
            session.prepare()
    assert statements == []
    session.commit()  # the transaction went on
    assert conn.execute("SELECT name FROM surface_shelves").fetchall() == [("a",)]


# -- autobegin=False ----------------------------------------------------------------------------

def test_autobegin_false_refuses_reads_and_writes_until_begin(file_path):
    conn = uow.connect(file_path)
    session = uow.Session(conn, autobegin=False)
    with uow.capture_sql() as statements:
        with pytest.raises(TransactionError, match=r"autobegin=False.*session.begin\(\)"):
            session.get(Shelf, 1)
        with pytest.raises(TransactionError, match="autobegin=False"):
            session.filter(Shelf)
        session.add(Shelf(id=3, name="new"))
        with pytest.raises(TransactionError, match="autobegin=False"):
            session.flush()
        with pytest.raises(TransactionError, match="autobegin=False"):
            session.dry_run()
    assert statements == [], "a refusal sent SQL"
    assert session.is_active and not session.in_transaction()
    with session.begin():
        assert session.get(Shelf, 1).name == "top"
    assert rows(file_path, "SELECT id FROM surface_shelves ORDER BY id") == [(1,), (2,), (3,)]
    # After the commit the session waits for the next begin() again.
    with pytest.raises(TransactionError, match="autobegin=False"):
        session.filter(Shelf)
    session.begin()
    assert [shelf.id for shelf in session.filter(Shelf)] == [1, 2, 3]
    session.rollback()
    session.close()
    conn.close()


def test_autobegin_false_commit_with_nothing_begun_is_harmless(conn):
    session = uow.Session(conn, autobegin=False)
    with uow.capture_sql() as statements:
        session.commit()
        session.rollback()
    assert statements == []


# -- get(populate_existing=True) -----------------------------------------------------------------

def test_get_populate_existing_overwrites_a_held_object_with_its_row(file_path):
    conn = uow.connect(file_path)
    session = uow.Session(conn)
    shelf = session.get(Shelf, 1)
    session.rollback()  # end the read transaction, so that the other connection can write
    shelf.name = "unflushed"
    writer = sqlite3.connect(file_path)
    writer.execute("UPDATE surface_shelves SET name = 'changed elsewhere' WHERE id = 1")
    writer.commit()
    writer.close()
    assert session.get(Shelf, 1) is shelf and shelf.name == "unflushed"  # the identity map, no SQL
    with uow.capture_sql() as statements:
        again = session.get(Shelf, 1, populate_existing=True)
    assert again is shelf
    assert shelf.name == "changed elsewhere"
    assert not session.is_modified(shelf), "the discarded change is not written"
    assert verbs(statements) == ["BEGIN", "SELECT"]
    session.commit()
    assert rows(file_path, "SELECT name FROM surface_shelves WHERE id = 1") == [("changed elsewhere",)]
    session.close()
    conn.close()


def test_get_populate_existing_of_a_row_gone_returns_none_and_rollback_brings_it_back(file_path):
    conn = uow.connect(file_path)
    session = uow.Session(conn)
    shelf = session.get(Shelf, 2)
    session.rollback()
    writer = sqlite3.connect(file_path)
    writer.execute("DELETE FROM surface_shelves WHERE id = 2")
    writer.commit()
    writer.close()
    assert session.get(Shelf, 2, populate_existing=True) is None
    assert shelf not in session
    session.rollback()
    assert shelf in session
    session.close()
    conn.close()


def test_get_populate_existing_of_a_key_not_held_loads_it(conn):
    conn.execute("INSERT INTO surface_shelves (id, name) VALUES (5, 'five')")
    session = uow.Session(conn)
    assert session.get(Shelf, 5, populate_existing=True).name == "five"
    assert session.get(Shelf, 6, populate_existing=True) is None


# -- make_transient, make_transient_to_detached -----------------------------------------------------

def test_make_transient_lets_a_loaded_row_be_inserted_as_a_copy(path):
    conn = uow.connect(path)
    uow.create_all(conn, MODELS)
    session = uow.Session(conn)
    session.add(Shelf(id=1, name="original"))
    session.commit()
    shelf = session.get(Shelf, 1)
    uow.make_transient(shelf)
    assert uow.state_of(shelf) is uow.ObjectState.TRANSIENT
    assert shelf not in session and uow.object_session(shelf) is None
    assert session.get(Shelf, 1) is not shelf  # the row has a new object now
    session.expunge_all()
    shelf.id = 2
    shelf.name = "copy"
    session.add(shelf)
    with uow.capture_sql() as statements:
        session.commit()
    assert verbs(statements) == ["INSERT", "COMMIT"]  # (in the transaction get() began)
    assert conn.execute("SELECT id, name FROM surface_shelves ORDER BY id").fetchall() == [
        (1, "original"), (2, "copy")]
    session.close()
    conn.close()


def test_make_transient_of_a_deleted_and_committed_object_writes_it_again(conn):
    session = uow.Session(conn)
    shelf = Shelf(id=1, name="gone")
    session.add(shelf)
    session.commit()
    session.delete(shelf)
    session.commit()
    with pytest.raises(InvalidStateError):
        session.add(shelf)  # its row is gone: refused
    uow.make_transient(shelf)
    session.add(shelf)
    session.commit()
    assert conn.execute("SELECT id, name FROM surface_shelves").fetchall() == [(1, "gone")]


def test_make_transient_of_a_pending_object_cancels_its_insert_and_rollback_restores(conn):
    session = uow.Session(conn)
    shelf = Shelf(id=1, name="a")
    session.add(shelf)
    uow.make_transient(shelf)
    assert shelf not in session.new
    session.flush()
    assert conn.execute("SELECT count(*) FROM surface_shelves").fetchone() == (0,)
    uow.make_transient(shelf)  # transient already: nothing to do
    session.rollback()  # as after expunge(), the rollback puts the session back as it was
    assert shelf not in session


def test_make_transient_to_detached_then_add_writes_only_changes(conn):
    conn.execute("INSERT INTO surface_shelves (id, name) VALUES (1, 'kept')")
    session = uow.Session(conn)
    shelf = Shelf(id=1, name="kept")
    uow.make_transient_to_detached(shelf)
    assert uow.state_of(shelf) is uow.ObjectState.DETACHED
    with uow.capture_sql() as statements:
        session.add(shelf)
        session.flush()
    assert statements == [], "the object is taken as the row's: nothing to write"
    shelf.name = "renamed"
    with uow.capture_sql() as statements:
        session.commit()
    assert verbs(statements) == ["BEGIN", "UPDATE", "COMMIT"]
    assert conn.execute("SELECT name FROM surface_shelves").fetchall() == [("renamed",)]


def test_make_transient_to_detached_refuses_without_a_key_or_from_another_state(conn):
    session = uow.Session(conn)
    with pytest.raises(InvalidStateError, match=r"Shelf\.id"):
        uow.make_transient_to_detached(Shelf(name="no key"))
    shelf = Shelf(id=1, name="a")
    session.add(shelf)
    with pytest.raises(InvalidStateError, match="pending"):
        uow.make_transient_to_detached(shelf)
    with pytest.raises(uow.errors.UnmappedClassError, match="Shelf"):
        uow.make_transient(Shelf)


# -- invalidate() ---------------------------------------------------------------------------------

def test_invalidate_closes_without_sql_and_the_database_keeps_only_what_was_committed(file_path):
    conn = uow.connect(file_path)
    session = uow.Session(conn)
    shelf = session.get(Shelf, 1)
    shelf.name = "flushed, not committed"
    session.add(Shelf(id=9, name="new"))
    session.flush()
    with uow.capture_sql() as statements:
        session.invalidate()
    assert statements == []
    assert shelf.name == "top", "the objects are rolled back in memory"
    assert uow.state_of(shelf) is uow.ObjectState.DETACHED
    with pytest.raises(SessionClosedError):
        session.get(Shelf, 1)
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")  # the connection is closed too
    assert rows(file_path, "SELECT id, name FROM surface_shelves ORDER BY id") == [(1, "top"), (2, "bottom")]
    session.invalidate()  # twice is fine
    session.close()


def test_invalidate_after_sqlite_ended_the_transaction_behind_the_sessions_back(file_path):
    conn = uow.connect(file_path)
    session = uow.Session(conn)
    session.add(Shelf(id=9, name="flushed"))
    session.flush()
    sqlite3.Connection.execute(conn, "COMMIT")  # the raw connection, unseen by the session
    with uow.capture_sql() as statements:
        session.invalidate()
    assert statements == []
    assert rows(file_path, "SELECT id FROM surface_shelves ORDER BY id") == [(1,), (2,), (9,)]


def test_invalidate_of_a_failed_session(conn):
    session = uow.Session(conn)
    session.add(Shelf(id=1, name="a"))
    session.commit()
    session.add(Shelf(id=2, name=None))  # NOT NULL: the flush fails in SQLite
    with pytest.raises(uow.errors.UowError):
        session.flush()
    session.invalidate()
    with pytest.raises(SessionClosedError):
        session.flush()


# -- close_all_sessions() -----------------------------------------------------------------------

def test_close_all_sessions_closes_this_threads_sessions_and_warns_of_others(file_path):
    mine = [uow.Session(uow.connect(file_path)) for _ in range(2)]
    mine[0].add(Shelf(id=7, name="uncommitted"))
    mine[0].flush()
    theirs = []
    ready = threading.Event()
    finish = threading.Event()

    def other_thread():
        theirs.append(uow.Session(uow.connect(file_path)))
        ready.set()
        finish.wait()
        theirs[0].close()

    thread = threading.Thread(target=other_thread)
    thread.start()
    ready.wait()
    try:
        with pytest.warns(UowWarning, match="1 session.* other threads"):
            closed = uow.close_all_sessions()
        assert closed >= 2
        for session in mine:
            with pytest.raises(SessionClosedError):
                session.get(Shelf, 1)
        assert theirs[0].is_active, "another thread's session is that thread's to close"
        assert rows(file_path, "SELECT count(*) FROM surface_shelves WHERE id = 7") == [(0,)]
    finally:
        finish.set()
        thread.join()
    for session in mine:
        session.executor.connection.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert uow.close_all_sessions() == 0


# -- the uow.flush logger --------------------------------------------------------------------------

def test_each_flush_logs_its_plan_listing_on_uow_flush_at_debug(conn, caplog):
    session = uow.Session(conn)
    shelf = Shelf(id=1, name="a")
    shelf.books.append(Book(id=1, title="b"))
    session.add(shelf)
    expected = str(session.plan())
    with caplog.at_level(logging.DEBUG, logger="uow.flush"):
        session.flush()
        session.flush()  # nothing to do: nothing logged
    records = [record for record in caplog.records if record.name == "uow.flush"]
    assert len(records) == 1
    assert records[0].levelno == logging.DEBUG
    assert expected in records[0].getMessage()
    assert "INSERT" in records[0].getMessage()
    assert records[0].uow_plan is not None


def test_the_flush_logger_is_quiet_above_debug(conn, caplog):
    session = uow.Session(conn)
    session.add(Shelf(id=1, name="a"))
    with caplog.at_level(logging.INFO, logger="uow.flush"):
        session.flush()
    assert [record for record in caplog.records if record.name == "uow.flush"] == []


# -- UowWarning: an object left out of a flush ----------------------------------------------------

def test_a_reference_without_save_update_to_an_object_outside_warns_instead_of_a_silent_null(conn):
    session = uow.Session(conn)
    loose = Loose(id=1, name="x")
    session.add(loose)
    loose.shelf = Shelf(name="never added")
    with pytest.warns(UowWarning, match=r"Loose\(id=1\)\.shelf holds Shelf.*not inserted.*shelf_id = NULL is "
                                        r"written.*add\(\) it"):
        session.flush()
    assert conn.execute("SELECT shelf_id FROM surface_loose").fetchall() == [(None,)]


def test_the_warning_can_be_made_an_error_and_then_nothing_is_written(conn):
    session = uow.Session(conn)
    loose = Loose(id=1, name="x", shelf=Shelf(id=1, name="never added"))
    session.add(loose)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UowWarning)
        with uow.capture_sql() as statements:
            with pytest.raises(UowWarning):
                session.flush()
    assert statements == []
    assert session.is_active and loose in session.new


def test_a_child_appended_to_a_collection_without_save_update_warns(conn):
    session = uow.Session(conn)
    session.add(Shelf(id=1, name="a"))
    session.commit()
    shelf = session.get(Shelf, 1)
    shelf.loose.append(Loose(id=1, name="left out"))
    with pytest.warns(UowWarning, match=r"Loose\(id=1.*Shelf\(id=1\)\.loose.*not inserted"):
        session.add(Shelf(id=2, name="b"))  # something to flush
        session.flush()
    assert conn.execute("SELECT count(*) FROM surface_loose").fetchone() == (0,)


def test_objects_in_the_session_or_with_rows_do_not_warn(conn):
    session = uow.Session(conn)
    shelf = Shelf(id=1, name="a")
    session.add(shelf)
    loose = Loose(id=1, name="x")
    session.add(loose)
    loose.shelf = shelf  # in the session: written
    with warnings.catch_warnings():
        warnings.simplefilter("error", UowWarning)
        session.commit()
    assert conn.execute("SELECT shelf_id FROM surface_loose").fetchall() == [(1,)]
    session.expunge(shelf)  # detached, with a row: the key is known, nothing is lost
    other = Loose(id=2, name="y")
    session.add(other)
    other.shelf = shelf
    with warnings.catch_warnings():
        warnings.simplefilter("error", UowWarning)
        session.commit()
    assert conn.execute("SELECT shelf_id FROM surface_loose WHERE id = 2").fetchall() == [(1,)]


def test_the_warning_names_the_users_line(conn):
    session = uow.Session(conn)
    session.add(Loose(id=1, name="x", shelf=Shelf(name="never added")))
    with pytest.warns(UowWarning) as caught:
        session.flush()
    assert caught[0].filename == __file__


# -- a commit across attached files that cannot be atomic (WAL) ---------------------------------------

class Archived(SurfaceBase, table="surface_archived", database="archive"):
    id: int = Column(primary_key=True)
    text: str


def attached_session(tmp_path, journal_mode):
    main, archive = str(tmp_path / "main.db"), str(tmp_path / "archive.db")
    for path, models in ((main, MODELS), (archive, [])):
        setup = sqlite3.connect(path, isolation_level=None)
        setup.execute(f"PRAGMA journal_mode={journal_mode}")
        if models:
            uow.create_all(setup, models)
        else:
            setup.execute("CREATE TABLE surface_archived (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
        setup.close()
    conn = uow.connect(main)
    session = uow.Session(conn)
    session.bind_mapper(Archived, archive)
    return session, conn, main, archive


def test_a_commit_across_attached_files_in_wal_mode_warns_and_commits_each_file(tmp_path):
    session, conn, main, archive = attached_session(tmp_path, "wal")
    session.add(Shelf(id=1, name="main"))
    session.add(Archived(id=1, text="archive"))
    with pytest.warns(UowWarning, match=r"main \(.*main\.db, wal\).*archive \(.*archive\.db, wal\).*"
                                        r"journal_mode=DELETE"):
        session.commit()
    assert rows(main, "SELECT name FROM surface_shelves") == [("main",)]
    assert rows(archive, "SELECT text FROM surface_archived") == [("archive",)]
    session.close()
    conn.close()


def test_made_an_error_the_warning_leaves_the_transaction_open_and_uncommitted(tmp_path):
    session, conn, main, archive = attached_session(tmp_path, "wal")
    session.add(Archived(id=1, text="archive"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UowWarning)
        with pytest.raises(UowWarning):
            session.commit()
    assert session.in_transaction()
    assert rows(archive, "SELECT count(*) FROM surface_archived") == [(0,)]
    session.rollback()
    session.close()
    conn.close()


def test_a_commit_across_attached_files_in_rollback_journal_mode_does_not_warn(tmp_path):
    session, conn, main, archive = attached_session(tmp_path, "delete")
    session.add(Shelf(id=1, name="main"))
    session.add(Archived(id=1, text="archive"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UowWarning)
        session.commit()
        session.get(Shelf, 1)
        session.commit()  # a commit that wrote nothing checks nothing
    assert rows(archive, "SELECT text FROM surface_archived") == [("archive",)]
    session.close()
    conn.close()


def test_a_session_without_attached_files_sends_nothing_more_at_commit(conn):
    session = uow.Session(conn)
    session.add(Shelf(id=1, name="a"))
    with uow.capture_sql() as statements:
        session.commit()
    assert [s.sql for s in statements if s.sql.startswith("PRAGMA")] == []
