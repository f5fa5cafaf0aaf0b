"""The session's connection: raw SQL in the session's transaction, and entities that live in other
SQLite files attached to that connection (bind_mapper, bind_table, get_bind).

Claims about files are checked by opening each file with its own plain sqlite3 connection.
"""

import shutil
import sqlite3

import pytest

import uow
from uow import Column, Entity, ObjectState, Session, errors, state_of

from .helpers import sql_of
from .models import ALL_MODELS, User
from .seeded import seeded_fixtures


class DbBase(Entity, abstract=True):
    pass


class Account(DbBase, table="accounts"):
    id: int = Column(primary_key=True)
    owner: str


class LogEntry(DbBase, table="log", database="archive"):
    id: int = Column(primary_key=True)
    text: str


# -- raw SQL ----------------------------------------------------------------------------------

def _create(connection):
    uow.create_all(connection, ALL_MODELS)
    connection.execute("INSERT INTO users (id, name, score) VALUES (1, 'ann', 0.0)")


template, path, conn, session, file_session, other = seeded_fixtures(_create, "raw")


def names(connection):
    return [row[0] for row in connection.execute("SELECT name FROM users ORDER BY id")]


def test_raw_sql_sees_a_pending_object_after_an_autoflush(session):
    bob = User(name="bob")
    session.add(bob)
    with uow.capture_sql() as statements:
        found = session.scalar("SELECT id FROM users WHERE name = ?", ("bob",))
    sql = sql_of(statements)
    assert sql[-1] == "SELECT id FROM users WHERE name = ?"
    assert any(s.startswith('INSERT INTO "users"') for s in sql[:-1])
    assert found == bob.id and isinstance(found, int)
    assert state_of(bob) is ObjectState.PERSISTENT


def test_raw_sql_sees_an_unflushed_change(session):
    ann = session.get(User, 1)
    ann.name = "Ann"
    assert session.scalars("SELECT name FROM users") == ["Ann"]
    assert session.dirty == frozenset()


def test_no_autoflush_keeps_pending_objects_out_of_raw_sql(session):
    session.add(User(name="bob"))
    with session.no_autoflush:
        assert session.scalars("SELECT name FROM users") == ["ann"]
    assert session.scalars("SELECT name FROM users ORDER BY id") == ["ann", "bob"]


def test_execute_returns_a_cursor_and_binds_parameters(session):
    cursor = session.execute("SELECT id, name FROM users WHERE id = ?", (1,))
    assert cursor.fetchall() == [(1, "ann")]
    assert session.scalar("SELECT name FROM users WHERE id = ?", (99,)) is None
    assert session.scalars("SELECT name FROM users WHERE id > ?", (99,)) == []


def test_raw_sql_runs_inside_the_sessions_transaction(session, conn):
    assert not conn.in_transaction
    with uow.capture_sql() as statements:
        session.scalar("SELECT 1")
    assert sql_of(statements) == ["BEGIN DEFERRED", "SELECT 1"]
    assert session.in_transaction() and conn.in_transaction


def test_raw_writes_are_committed_by_the_session(file_session, other):
    file_session.execute("INSERT INTO users (name, score) VALUES (?, ?)", ("raw", 1.0))
    assert names(other) == ["ann"]
    file_session.commit()
    assert names(other) == ["ann", "raw"]


def test_rollback_undoes_raw_writes(file_session, other):
    file_session.execute("INSERT INTO users (name, score) VALUES ('raw', 1.0)")
    file_session.execute("UPDATE users SET name = 'renamed' WHERE id = 1")
    file_session.rollback()
    assert file_session.scalars("SELECT name FROM users") == ["ann"]
    file_session.commit()
    assert names(other) == ["ann"]


def test_connection_is_the_sessions_connection_with_a_transaction_begun(session, conn):
    bob = User(name="bob")
    session.add(bob)
    raw = session.connection()
    assert raw is conn
    assert raw.in_transaction and session.in_transaction()
    assert state_of(bob) is ObjectState.PERSISTENT  # autoflushed
    assert raw.execute("SELECT name FROM users WHERE id = ?", (bob.id,)).fetchone() == ("bob",)


def test_rollback_undoes_writes_made_through_connection(file_session, other):
    file_session.connection().execute("INSERT INTO users (name, score) VALUES ('raw', 1.0)")
    file_session.rollback()
    file_session.commit()
    assert names(other) == ["ann"]


def test_raw_sql_does_not_change_held_objects_until_refresh(session):
    ann = session.get(User, 1)
    session.execute("UPDATE users SET name = 'changed behind' WHERE id = 1")
    assert ann.name == "ann"
    session.refresh(ann)
    assert ann.name == "changed behind"
    assert session.dirty_fields(ann) == []


# -- attached databases -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_templates(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attached")
    main, archive = str(folder / "main.db"), str(folder / "archive.db")
    connection = uow.connect(main)
    connection.execute("ATTACH DATABASE ? AS archive", (archive,))
    uow.create_all(connection, [Account, LogEntry])
    connection.close()
    return main, archive


@pytest.fixture
def files(two_templates, tmp_path):
    """``(main path, archive path)``: fresh copies, with the accounts table in main and log in archive."""
    main, archive = str(tmp_path / "main.db"), str(tmp_path / "archive.db")
    shutil.copyfile(two_templates[0], main)
    shutil.copyfile(two_templates[1], archive)
    return main, archive


@pytest.fixture
def bound(files):
    """A session on the main file with the archive bound."""
    connection = uow.connect(files[0])
    s = Session(connection)
    s.bind_mapper(LogEntry, files[1])
    yield s
    s.close()
    connection.close()


def rows_in(path, sql):
    """What another connection sees in one file."""
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def tables_in(path):
    return [row[0] for row in rows_in(path, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]


def test_bind_mapper_attaches_the_file_and_get_bind_names_it(files):
    main, archive = files
    connection = uow.connect(main)
    session = Session(connection)
    try:
        with uow.capture_sql() as statements:
            session.bind_mapper(LogEntry, archive)
        # No BEGIN: SQLite cannot attach inside a transaction.
        assert sql_of(statements) == [
            "PRAGMA database_list", 'ATTACH DATABASE ? AS "archive"', 'PRAGMA "archive".foreign_keys']
        assert session.get_bind(LogEntry) == archive
        assert session.get_bind(Account) == main
        assert not session.in_transaction()
    finally:
        session.close()
        connection.close()


def test_bind_table_binds_the_entity_declaring_that_table(files):
    main, archive = files
    connection = uow.connect(main)
    session = Session(connection)
    try:
        session.bind_table("log", archive, registry=DbBase.__registry__)
        assert session.get_bind(LogEntry) == archive
        session.add(LogEntry(text="via bind_table"))
        session.commit()
        assert rows_in(archive, "SELECT text FROM log") == [("via bind_table",)]
    finally:
        session.close()
        connection.close()


def test_rows_go_to_the_file_their_entity_lives_in(bound, files):
    main, archive = files
    bound.add(Account(owner="ann"))
    bound.add(LogEntry(text="ann opened an account"))
    with uow.capture_sql() as statements:
        bound.commit()
    inserts = [" ".join(sql.split()[:3]) for sql in sql_of(statements) if sql.startswith("INSERT")]
    assert inserts == ['INSERT INTO "accounts"', 'INSERT INTO "archive"."log"']
    assert tables_in(main) == ["accounts"]
    assert tables_in(archive) == ["log"]
    assert rows_in(main, "SELECT owner FROM accounts") == [("ann",)]
    assert rows_in(archive, "SELECT text FROM log") == [("ann opened an account",)]


def test_one_commit_covers_both_files(bound, files):
    main, archive = files
    bound.add(Account(owner="ann"))
    bound.add(LogEntry(text="entry"))
    bound.flush()
    assert rows_in(main, "SELECT count(*) FROM accounts") == [(0,)]
    assert rows_in(archive, "SELECT count(*) FROM log") == [(0,)]
    bound.commit()
    assert rows_in(main, "SELECT count(*) FROM accounts") == [(1,)]
    assert rows_in(archive, "SELECT count(*) FROM log") == [(1,)]


def test_a_rollback_undoes_both_files(bound, files):
    main, archive = files
    account, entry = Account(owner="ann"), LogEntry(text="entry")
    bound.add_all([account, entry])
    bound.flush()
    bound.rollback()
    assert state_of(account) is ObjectState.TRANSIENT and state_of(entry) is ObjectState.TRANSIENT
    bound.commit()
    assert rows_in(main, "SELECT count(*) FROM accounts") == [(0,)]
    assert rows_in(archive, "SELECT count(*) FROM log") == [(0,)]


def test_an_attached_entity_is_read_updated_and_deleted_in_its_file(bound, files):
    archive = files[1]
    bound.add_all([LogEntry(id=1, text="one"), LogEntry(id=2, text="two")])
    bound.commit()
    bound.expunge_all()
    one = bound.get(LogEntry, 1)
    assert one.text == "one"
    assert [entry.text for entry in bound.filter(LogEntry, order_by="-id")] == ["two", "one"]
    one.text = "ONE"
    bound.delete(bound.get(LogEntry, 2))
    with uow.capture_sql() as statements:
        bound.commit()
    assert 'UPDATE "archive"."log" SET "text" = ? WHERE "archive"."log"."id" = ?' in sql_of(statements)
    assert rows_in(archive, "SELECT id, text FROM log") == [(1, "ONE")]
    assert bound.scalar("SELECT count(*) FROM archive.log") == 1


def test_attaching_inside_a_transaction_is_a_clear_error(files):
    main, archive = files
    connection = uow.connect(main)
    session = Session(connection)
    try:
        session.get(Account, 1)  # begins a transaction
        with pytest.raises(errors.TransactionError, match=r"inside a transaction.*commit\(\)"):
            session.bind_mapper(LogEntry, archive)
        assert [row[1] for row in connection.execute("PRAGMA database_list")] == ["main"]
        session.commit()
        session.bind_mapper(LogEntry, archive)
        assert session.get_bind(LogEntry) == archive
    finally:
        session.close()
        connection.close()


def test_binding_again_to_the_same_file_is_fine_and_to_another_is_an_error(bound, files, tmp_path):
    bound.bind_mapper(LogEntry, files[1])
    with pytest.raises(errors.UowError, match="already attached"):
        bound.bind_mapper(LogEntry, str(tmp_path / "elsewhere.db"))
    assert bound.get_bind(LogEntry) == files[1]


def test_get_bind_before_binding_is_an_error(files):
    connection = uow.connect(files[0])
    session = Session(connection)
    try:
        with pytest.raises(errors.UowError, match="bind_mapper"):
            session.get_bind(LogEntry)
    finally:
        session.close()
        connection.close()


def test_bind_mapper_of_an_entity_in_main_is_an_error(bound, files):
    with pytest.raises(errors.UowError, match="main database"):
        bound.bind_mapper(Account, files[1])


def test_bind_table_of_an_unknown_table_is_an_error(bound, files):
    with pytest.raises(errors.UowError, match="no entity declares"):
        bound.bind_table("no_such_table", files[1], registry=DbBase.__registry__)


def test_an_in_memory_database_can_be_attached():
    connection = uow.connect(":memory:")
    session = Session(connection)
    try:
        session.bind_mapper(LogEntry, ":memory:")
        assert session.get_bind(LogEntry) == ""
        uow.create_all(connection, [LogEntry])
        session.add(LogEntry(text="in memory"))
        session.commit()
        session.expunge_all()
        assert [entry.text for entry in session.all(LogEntry)] == ["in memory"]
    finally:
        session.close()
        connection.close()


def test_binding_an_in_memory_database_again_is_fine():
    connection = uow.connect(":memory:")
    session = Session(connection)
    try:
        session.bind_mapper(LogEntry, ":memory:")
        session.bind_mapper(LogEntry, ":memory:")
        assert session.get_bind(LogEntry) == ""
        assert [row[1] for row in connection.execute("PRAGMA database_list")] == ["main", "archive"]
    finally:
        session.close()
        connection.close()


def test_binding_an_in_memory_database_over_an_attached_file_is_refused(bound, files):
    with pytest.raises(errors.UowError) as raised:
        bound.bind_mapper(LogEntry, ":memory:")
    assert str(raised.value) == (f"attach(): database 'archive' is already attached to "
                                 f"{bound.get_bind(LogEntry)!r}; give this one another name, or detach it first")
    assert bound.get_bind(LogEntry) == files[1]


def test_a_foreign_key_across_databases_is_a_mapping_error():
    with pytest.raises(errors.MappingError, match="cannot cross attached databases"):
        class CrossReference(DbBase, table="cross_reference", database="archive"):
            id: int = Column(primary_key=True)
            account_id: int = Column(references=Account)

        uow.create_table_sql(CrossReference)


@pytest.mark.parametrize("name, call", [
    ("execute", lambda session, archive: session.execute("SELECT 1")),
    ("connection", lambda session, archive: session.connection()),
    ("attach", lambda session, archive: session.attach("archive", archive)),
    ("bind_mapper", lambda session, archive: session.bind_mapper(LogEntry, archive)),
    ("bind_table", lambda session, archive: session.bind_table("log", archive, registry=DbBase.__registry__)),
    ("get_bind", lambda session, archive: session.get_bind(User)),
])
def test_a_closed_session_refuses_connection_calls_naming_the_call(files, name, call):
    connection = uow.connect(files[0])
    session = Session(connection)
    session.close()
    try:
        with uow.capture_sql() as statements:
            with pytest.raises(errors.SessionClosedError) as raised:
                call(session, files[1])
        assert str(raised.value).startswith(f"{name}(): this session was closed")
        assert statements == []
    finally:
        connection.close()


def test_a_flush_blocked_by_an_unfinished_raw_statement_says_so(session):
    """SQLite reports this as "busy", but the statement in the way is on the session's own
    connection: the error says which one, not that another connection holds a lock."""
    session.add(User(name="bob"))
    session.flush()
    pending = session.connection().execute("INSERT INTO users (name, score) VALUES ('cy', 0.0), ('dee', 0.0) RETURNING name")
    assert pending.fetchone() == ("cy",)
    session.add(User(name="eve"))
    with pytest.raises(errors.FlushError) as raised:
        session.flush()
    message = str(raised.value)
    assert "SQL statements in progress" in message
    assert "a statement on this connection is still being read" in message
    assert "another connection" not in message


def test_attaching_a_path_sqlite_cannot_open_is_a_uow_error_and_attaches_nothing(tmp_path):
    """A directory, or a file in a folder that does not exist: sqlite3's raw OperationalError came
    through attach() and bind_mapper() (found by the seed audit)."""
    connection = uow.connect(":memory:")
    session = Session(connection)
    try:
        for bad in (tmp_path, tmp_path / "missing" / "archive.db"):
            with pytest.raises(errors.UowError, match=r"attach\('archive'\): SQLite cannot attach"):
                session.bind_mapper(LogEntry, bad)
            assert "archive" not in attached(connection)
        session.bind_mapper(LogEntry, tmp_path / "archive.db")  # the session goes on as before
        assert "archive" in attached(connection)
    finally:
        session.close()
        connection.close()


def attached(connection):
    return [row[1] for row in connection.execute("PRAGMA database_list")]
