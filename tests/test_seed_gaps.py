"""The seeds' session calls the audit of 2026-12-05 found missing (see README "SQLAlchemy's
session surface"): Session(twophase=True) refused as prepare() is, Session(info=...), Ormdantic's
savepoint() without a name, SQLAlchemy 0.3's is_expired(), and get_one(populate_existing=True)
(0.3's load()).  Real sqlite3 databases, in memory and in a file; commits are read back from a
second connection."""

import dataclasses
import sqlite3

import pytest

import uow
from uow import Collection, Column, Entity, Reference
from uow.errors import ArgumentError, InvalidStateError, NotFoundError, TransactionError, UnknownFieldError


class SeedBase(Entity, abstract=True):
    """This module's own registry."""


class Flavor(SeedBase, table="seed_flavors"):
    id: int = Column(primary_key=True)
    name: str


@pytest.fixture(params=["memory", "file"])
def path(request, tmp_path):
    return ":memory:" if request.param == "memory" else str(tmp_path / "seed.db")


@pytest.fixture
def conn(path):
    connection = uow.connect(path)
    uow.create_all(connection, [Flavor])
    connection.execute("INSERT INTO seed_flavors (id, name) VALUES (1, 'vanilla')")
    yield connection
    connection.close()


@pytest.fixture
def file_path(tmp_path):
    path = str(tmp_path / "seed.db")
    connection = uow.connect(path)
    uow.create_all(connection, [Flavor])
    connection.execute("INSERT INTO seed_flavors (id, name) VALUES (1, 'vanilla')")
    connection.close()
    return path


def rows(path, sql):
    other = sqlite3.connect(path)
    try:
        return other.execute(sql).fetchall()
    finally:
        other.close()


def committed(connection, path, sql):
    """What a second connection reads (the session's own, for an in-memory database)."""
    return connection.execute(sql).fetchall() if path == ":memory:" else rows(path, sql)


def change_elsewhere(path, sql):
    writer = sqlite3.connect(path)
    writer.execute(sql)
    writer.commit()
    writer.close()


# -- Session(twophase=...), Session(info=...) ---------------------------------------------------

def test_twophase_is_refused_before_anything_is_opened(conn):
    with uow.capture_sql() as statements:
        with pytest.raises(TransactionError, match=r"twophase=True.*two-phase commit.*commit\(\)"):
            uow.Session(conn, twophase=True)
        with pytest.raises(ArgumentError, match=r"twophase=.*True or False, got 'yes'"):
            uow.Session(conn, twophase="yes")
    assert statements == []
    assert not conn.in_transaction
    session = uow.Session(conn, twophase=False)  # the one value SQLite honours
    assert session.get_one(Flavor, 1).name == "vanilla"
    session.close()


def test_info_option_gives_the_first_contents_copied(conn):
    given = {"request_id": 7}
    session = uow.Session(conn, info=given)
    session.info["user"] = "ann"
    assert session.info == {"request_id": 7, "user": "ann"}
    assert given == {"request_id": 7}, "the caller's dict is copied, as SQLAlchemy does"
    with pytest.raises(ArgumentError, match=r"info=.*must be a dict.*got list"):
        uow.Session(conn, info=["request_id"])
    session.close()


# -- savepoint() without a name (Ormdantic's savepoint(name=None)) ------------------------------

def test_savepoint_without_a_name_rolls_back_rows_and_objects(conn, path):
    session = uow.Session(conn)
    base = Flavor(id=2, name="base")
    session.add(base)
    session.flush()
    with uow.capture_sql() as statements:
        with pytest.raises(RuntimeError, match="discard trial"):
            with session.savepoint() as savepoint:
                trial = Flavor(id=3, name="trial")
                session.add(trial)
                base.name = "changed"
                session.flush()
                raise RuntimeError("discard trial")
    sql = [statement.sql for statement in statements]
    name = savepoint.name
    assert name.startswith("uow_") and f'SAVEPOINT "{name}"' in sql and f'ROLLBACK TO "{name}"' in sql
    assert trial not in session and base.name == "base"
    with session.savepoint() as kept:
        session.add(Flavor(id=4, name="kept"))
    assert kept.name.startswith("uow_") and not kept.is_active
    session.commit()
    expected = [(1, "vanilla"), (2, "base"), (4, "kept")]
    assert conn.execute("SELECT id, name FROM seed_flavors ORDER BY id").fetchall() == expected
    if path != ":memory:":
        assert rows(path, "SELECT id, name FROM seed_flavors ORDER BY id") == expected
    session.close()


def test_savepoint_names_are_still_checked(conn):
    session = uow.Session(conn)
    with uow.capture_sql() as statements:
        with pytest.raises(ArgumentError):
            session.savepoint("")
        with pytest.raises(ArgumentError):
            session.savepoint(7)  # type: ignore[arg-type]
    assert statements == []
    session.close()


# -- is_expired() (SQLAlchemy 0.3) ---------------------------------------------------------------

def test_is_expired_follows_expire_reads_and_commit(conn):
    session = uow.Session(conn, expire_on_commit=True)
    flavor = session.get_one(Flavor, 1)
    with uow.capture_sql() as statements:
        assert not session.is_expired(flavor)
        session.expire(flavor, ["name"])
        assert session.is_expired(flavor) and session.is_expired(flavor, "name")
        assert not session.is_expired(flavor, "id")
    assert statements == [], "asking sends nothing"
    assert flavor.name == "vanilla"  # the read reloads it
    assert not session.is_expired(flavor, "name")
    pending = Flavor(id=5, name="new")
    session.add(pending)
    assert not session.is_expired(pending), "a pending object has nothing to reload"
    session.commit()
    assert session.is_expired(flavor) and session.is_expired(pending)
    session.close()


def test_is_expired_refuses_what_it_cannot_answer(conn):
    session = uow.Session(conn)
    flavor = session.get_one(Flavor, 1)
    with uow.capture_sql() as statements:
        with pytest.raises(UnknownFieldError, match=r"Flavor has no field 'flavour'.*id, name"):
            session.is_expired(flavor, "flavour")
        with pytest.raises(UnknownFieldError, match=r"is_expired\(\): field must be one of Flavor's field names"):
            session.is_expired(flavor, ["name"])  # type: ignore[arg-type]
        with pytest.raises(InvalidStateError, match=r"is_expired\(\).*add\(\) it first"):
            session.is_expired(Flavor(id=9, name="stray"))
    assert statements == []
    session.close()


# -- get_one(populate_existing=True) (SQLAlchemy 0.3's load()) ----------------------------------

def test_get_one_populate_existing_overwrites_the_held_object(file_path):
    session = uow.Session(uow.connect(file_path))
    flavor = session.get_one(Flavor, 1)
    session.rollback()  # end the read transaction, so that the other connection can write
    flavor.name = "unflushed"
    change_elsewhere(file_path, "UPDATE seed_flavors SET name = 'mint' WHERE id = 1")
    assert session.get_one(Flavor, 1).name == "unflushed"  # the identity map, no SQL
    assert session.get_one(Flavor, 1, populate_existing=True) is flavor
    assert flavor.name == "mint" and not session.is_modified(flavor)
    session.commit()
    assert rows(file_path, "SELECT name FROM seed_flavors WHERE id = 1") == [("mint",)]
    session.close()


def test_get_one_populate_existing_of_a_row_gone_raises_not_found(file_path):
    session = uow.Session(uow.connect(file_path))
    flavor = session.get_one(Flavor, 1)
    session.rollback()
    change_elsewhere(file_path, "DELETE FROM seed_flavors WHERE id = 1")
    with pytest.raises(NotFoundError, match=r"get_one\(\): no Flavor.*1"):
        session.get_one(Flavor, 1, populate_existing=True)
    assert flavor not in session
    with pytest.raises(NotFoundError, match="get_one"):
        session.get_one(Flavor, 2, populate_existing=True)
    session.close()


def test_get_one_populate_existing_in_memory(conn):
    session = uow.Session(conn)
    flavor = session.get_one(Flavor, 1)
    flavor.name = "unflushed"
    conn.execute("UPDATE seed_flavors SET name = 'mint' WHERE id = 1")  # behind the session's back
    assert session.get_one(Flavor, 1, populate_existing=True).name == "mint"
    session.commit()
    assert conn.execute("SELECT name FROM seed_flavors").fetchall() == [("mint",)]
    session.close()


# -- Session(binds={Class: path}) (SQLAlchemy 2.x's binds=) ------------------------------------

class Archived(SeedBase, table="seed_archived", database="archive"):
    id: int = Column(primary_key=True)
    name: str


@pytest.fixture
def files(tmp_path):
    """``(main path, archive path)``: flavors in main, archived in archive."""
    main, archive = str(tmp_path / "main.db"), str(tmp_path / "archive.db")
    connection = uow.connect(main)
    connection.execute("ATTACH DATABASE ? AS archive", (archive,))
    uow.create_all(connection, [Flavor, Archived])
    connection.close()
    return main, archive


def attached(connection):
    return [row[1] for row in connection.execute("PRAGMA database_list")]


def test_binds_attaches_each_class_file_and_one_commit_covers_both(files):
    main, archive = files
    connection = uow.connect(main)
    session = uow.Session(connection, binds={Archived: archive})
    assert session.get_bind(Archived) == archive and not session.in_transaction()
    session.add_all([Flavor(id=1, name="vanilla"), Archived(id=1, name="old vanilla")])
    session.commit()
    assert rows(main, "SELECT name FROM seed_flavors") == [("vanilla",)]
    assert rows(archive, "SELECT name FROM seed_archived") == [("old vanilla",)]
    session.close()
    connection.close()


@pytest.mark.parametrize("binds, error, says", [
    ([(Archived, "x.db")], ArgumentError, r"binds=.*dict of \{entity class: path\}.*got list"),
    ({"seed_archived": "x.db"}, ArgumentError, r"keys are entity classes.*'seed_archived'.*bind_table"),
    ({Flavor: "x.db"}, uow.errors.UowError, r"binds=\{Flavor: \.\.\.\}.*main database.*database='name'"),
    ({Archived: 42}, ArgumentError, r"path must be a str or os.PathLike, got 42"),
    ({int: "x.db"}, uow.errors.UnmappedClassError, r"int"),
])
def test_binds_misuse_is_refused_before_any_attach(files, binds, error, says):
    connection = uow.connect(files[0])
    with uow.capture_sql() as statements:
        with pytest.raises(error, match=says):
            uow.Session(connection, binds=binds)
    assert statements == [] and attached(connection) == ["main"]
    connection.close()


def test_binds_that_fail_part_way_detach_what_they_attached(files, tmp_path):
    class Ledger(SeedBase, table="seed_ledger", database="ledger"):
        id: int = Column(primary_key=True)

    connection = uow.connect(files[0])
    missing = str(tmp_path / "no_such_folder" / "ledger.db")  # SQLite cannot open it
    with pytest.raises(uow.errors.UowError, match="SQLite cannot attach"):
        uow.Session(connection, binds={Archived: files[1], Ledger: missing})
    assert attached(connection) == ["main"]
    session = uow.Session(connection, binds={Archived: files[1]})  # the connection is as it was
    assert session.get_bind(Archived) == files[1]
    session.close()
    connection.close()


# -- get(..., with_for_update=True): SQLite's write lock (see uow/writelock.py) ------------------

def writer_refused(path):
    """True when another connection cannot take the write lock now (BEGIN IMMEDIATE, which a mere
    reader does not stop; its busy timeout is zero: no waiting)."""
    writer = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("ROLLBACK")
    except sqlite3.OperationalError as error:
        assert "locked" in str(error)
        return True
    finally:
        writer.close()
    return False


def test_get_with_for_update_begins_immediate_and_rereads_a_held_object(file_path):
    session = uow.Session(uow.connect(file_path))
    flavor = session.get(Flavor, 1)
    session.commit()  # flavor keeps 'vanilla' (expire_on_commit=False)
    change_elsewhere(file_path, "UPDATE seed_flavors SET name = 'mint' WHERE id = 1")
    with uow.capture_sql() as statements:
        assert session.get(Flavor, 1, with_for_update=True) is flavor
    assert [s.sql.split(" ")[0] for s in statements] == ["BEGIN", "SELECT"]
    assert statements[0].sql == "BEGIN IMMEDIATE"
    assert flavor.name == "mint" and not session.is_modified(flavor)  # read under the lock
    assert writer_refused(file_path)  # no other connection can change the row until commit
    flavor.name = "mint and chip"
    session.commit()
    assert not writer_refused(file_path)  # the lock ended with the transaction
    assert rows(file_path, "SELECT name FROM seed_flavors WHERE id = 1") == [("mint and chip",)]
    session.close()


def test_get_with_for_update_in_a_deferred_transaction_takes_the_lock_there(file_path):
    session = uow.Session(uow.connect(file_path))
    with session.begin():  # BEGIN DEFERRED: no write lock until the first write
        assert session.get(Flavor, 2) is None
        assert not writer_refused(file_path)
        with uow.capture_sql() as statements:
            flavor = session.get(Flavor, 1, with_for_update=True)
        assert [s.sql for s in statements][0] == 'UPDATE "seed_flavors" SET "id" = "id" WHERE 0'
        assert writer_refused(file_path)
        flavor.name = "locked in"
    assert rows(file_path, "SELECT name FROM seed_flavors WHERE id = 1") == [("locked in",)]
    session.close()


def test_get_with_for_update_refuses_a_stale_wal_snapshot_and_changes_nothing(file_path):
    session = uow.Session(uow.connect(file_path, journal_mode="wal"))
    session.begin()
    flavor = session.get(Flavor, 1)  # this transaction's snapshot starts here
    change_elsewhere(file_path, "UPDATE seed_flavors SET name = 'mint' WHERE id = 1")
    with pytest.raises(uow.errors.DatabaseLockedError, match=r"get\(with_for_update=True\).*WAL.*rollback\(\)"):
        session.get(Flavor, 1, with_for_update=True)
    assert flavor.name == "vanilla" and session.is_active and session.in_transaction()
    session.rollback()
    assert session.get(Flavor, 1, with_for_update=True).name == "mint"  # retried: current, and locked
    assert writer_refused(file_path)
    session.commit()
    session.close()


def test_get_with_for_update_keeps_unflushed_changes_unless_populate_existing(conn):
    session = uow.Session(conn)
    flavor = session.get(Flavor, 1)
    session.rollback()
    flavor.name = "unflushed"
    conn.execute("UPDATE seed_flavors SET name = 'mint' WHERE id = 1")  # behind the session's back
    assert session.get(Flavor, 1, with_for_update=True).name == "unflushed"  # as SQLAlchemy keeps it
    session.rollback()
    flavor.name = "unflushed"
    assert session.get_one(Flavor, 1, with_for_update=True, populate_existing=True).name == "mint"
    assert session.get(Flavor, 7, with_for_update=True) is None
    with pytest.raises(NotFoundError, match="get_one"):
        session.get_one(Flavor, 7, with_for_update=True)
    session.add(Flavor(id=7, name="new"))
    session.commit()
    assert conn.execute("SELECT id, name FROM seed_flavors ORDER BY id").fetchall() == [(1, "mint"), (7, "new")]
    session.close()


@pytest.mark.parametrize("value, says", [
    ({"nowait": True}, r"takes True \(or False\), got \{'nowait': True\}.*busy_timeout=0"),
    ({}, r"takes True \(or False\), got \{\}"),  # (falsy, yet SQLAlchemy's FOR UPDATE: not taken as False)
    ("yes", r"takes True \(or False\), got 'yes'"),
    (1, r"takes True \(or False\), got 1"),
])
def test_get_with_for_update_flags_sqlite_cannot_honour_are_refused(conn, value, says):
    session = uow.Session(conn)
    with uow.capture_sql() as statements:
        with pytest.raises(ArgumentError, match=says):
            session.get(Flavor, 1, with_for_update=value)
    assert statements == [] and not conn.in_transaction
    assert session.get(Flavor, 1, with_for_update=False).name == "vanilla"  # False: no lock, as get()
    session.close()


def test_get_with_for_update_refused_where_no_write_lock_may_be_taken(conn):
    reader = uow.Session(conn, read_only=True)
    with uow.capture_sql() as statements:
        with pytest.raises(TransactionError, match=r"get\(with_for_update=True\): the transaction is read-only"):
            reader.get(Flavor, 1, with_for_update=True)
    reader.close()
    waiting = uow.Session(conn, autobegin=False)
    with uow.capture_sql() as more:
        with pytest.raises(TransactionError, match=r"get\(with_for_update=True\): .*autobegin=False.*begin\(\)"):
            waiting.get(Flavor, 1, with_for_update=True)
    assert statements == [] and more == [] and not conn.in_transaction
    with waiting.begin():
        assert waiting.get(Flavor, 1, with_for_update=True).name == "vanilla"
    waiting.close()


# -- flush(objects=...) and in_() of an iterable: refusals that say what to write ---------------

def test_flush_of_some_objects_only_is_refused_before_anything_is_written(conn):
    session = uow.Session(conn)
    flavor = Flavor(id=2, name="mint")
    session.add(flavor)
    with uow.capture_sql() as statements:
        with pytest.raises(ArgumentError, match=r"flush\(objects=\.\.\.\).*got \[Flavor\(id=2.*expunge\(\)"):
            session.flush([flavor])
        with pytest.raises(ArgumentError, match=r"flush\(objects=\.\.\.\)"):
            session.flush(objects=[])
    assert statements == [] and flavor in session.new
    session.commit()
    assert conn.execute("SELECT id FROM seed_flavors ORDER BY id").fetchall() == [(1,), (2,)]
    session.close()


@pytest.mark.parametrize("values, says", [
    ((n for n in [1, 2]), r"Flavor\.id\.in_\(list\(\.\.\.\)\) to pass the values it yields"),
    (range(1, 3), r"Flavor\.id\.in_\(list\(\.\.\.\)\)"),
    ({1: "a"}, r"Flavor\.id\.in_\(list\(d\.keys\(\)\)\) or Flavor\.id\.in_\(list\(d\.values\(\)\)\)"),
    (1, r"Flavor\.id\.in_\(\[1\]\) for one value"),
])
def test_in_of_another_iterable_says_how_to_pass_its_values(values, says):
    with pytest.raises(uow.errors.ConditionError, match=says) as refused:
        Flavor.id.in_(values)
    assert "in_([<" not in str(refused.value)


# -- is_modified(obj, include_collections=True) (SQLAlchemy's default) --------------------------

class Shelf(SeedBase, table="seed_shelves"):
    id: int = Column(primary_key=True)
    jars = Collection("Jar", "shelf")


class Jar(SeedBase, table="seed_jars"):
    id: int = Column(primary_key=True)
    shelf_id: int | None = Column(references=Shelf)
    shelf = Reference("shelf_id")


@pytest.fixture
def pantry(path):
    connection = uow.connect(path)
    uow.create_all(connection, [Shelf, Jar])
    connection.execute("INSERT INTO seed_shelves (id) VALUES (1), (2)")
    connection.execute("INSERT INTO seed_jars (id, shelf_id) VALUES (1, 1), (2, 1)")
    yield connection
    connection.close()


def test_is_modified_counts_a_collection_that_gained_or_lost_a_child(pantry, path):
    session = uow.Session(pantry)
    top, bottom = session.get(Shelf, 1), session.get(Shelf, 2)
    jar = session.get(Jar, 1)
    assert len(top.jars) == 2  # top's collection loaded; bottom's is not
    bottom.jars.append(jar)  # loads bottom.jars, then moves the jar
    assert session.is_modified(top) and session.is_modified(bottom) and session.is_modified(jar)
    with uow.capture_sql() as statements:
        assert not session.is_modified(top, include_collections=False)  # no column of its own changed
        assert not session.is_modified(bottom, include_collections=False)
    assert statements == []
    assert session.dirty == {jar}  # only the jar's row is written
    jar.shelf = top  # back where it was: no net change, as for a column set back
    assert not session.is_modified(top) and not session.is_modified(bottom)
    other = session.get(Jar, 2)
    other.shelf_id = 2  # the foreign key itself, with bottom.jars loaded or not
    fresh = Jar(id=3, shelf=top)
    session.add(fresh)
    assert session.is_modified(top) and session.is_modified(bottom)
    session.flush()
    assert not session.is_modified(top) and not session.is_modified(bottom)
    session.delete(fresh)  # a child marked for deletion still holds its key: no collection change
    assert not session.is_modified(top)
    session.commit()
    if path != ":memory:":
        assert rows(path, "SELECT id, shelf_id FROM seed_jars ORDER BY id") == [(1, 1), (2, 2)]
    session.close()


def test_is_modified_include_collections_takes_only_a_flag(pantry):
    session = uow.Session(pantry)
    top = session.get(Shelf, 1)
    with uow.capture_sql() as statements:
        with pytest.raises(ArgumentError, match=r"is_modified\(\): include_collections must be True or False, got 'no'"):
            session.is_modified(top, include_collections="no")
        with pytest.raises(InvalidStateError, match=r"is_modified\(\)"):
            session.is_modified(Shelf(id=5))
    assert statements == []
    session.close()


# -- uow.class_mapping(User) (SQLAlchemy's class_mapper / inspect(User)) -----------------------

def test_class_mapping_describes_the_class_as_the_database_holds_it(pantry):
    jar_mapping = uow.class_mapping(Jar)
    assert jar_mapping == uow.class_mapping(Jar(id=9))  # an object stands for its class
    assert (jar_mapping.cls, jar_mapping.table, jar_mapping.database) == (Jar, "seed_jars", "main")
    assert jar_mapping.primary_key == ("id",) and jar_mapping.version_column is None
    shelf_id = jar_mapping.column("shelf_id")
    assert (shelf_id.python_type, shelf_id.sql_type, shelf_id.nullable) == (int, "INTEGER", True)
    assert shelf_id.references == ("seed_shelves", "id") and not shelf_id.primary_key
    assert jar_mapping.column("id").generated and jar_mapping.column("id").primary_key
    (shelf,) = jar_mapping.references
    assert (shelf.name, shelf.target, shelf.columns, shelf.nullable, shelf.collection) == (
        "shelf", Shelf, ("shelf_id",), True, "jars")
    (jars,) = uow.class_mapping(Shelf).collections
    assert (jars.name, jars.target, jars.reference) == ("jars", Jar, "shelf")
    assert "save-update" in jars.cascade and "delete" not in jars.cascade
    # What it says is what CREATE TABLE made of the class: read back from the database.
    for mapping in (jar_mapping, uow.class_mapping(Shelf)):
        table = pantry.execute(f"PRAGMA table_info({mapping.table})").fetchall()
        assert [(c.name, c.sql_type, c.primary_key) for c in mapping.columns] == [
            (name, kind, bool(pk)) for _, name, kind, notnull, default, pk in table]
        keys = pantry.execute(f"PRAGMA foreign_key_list({mapping.table})").fetchall()
        assert {c.name: c.references for c in mapping.columns if c.references} == {
            row[3]: (row[2], row[4]) for row in keys}


def test_class_mapping_is_a_read_only_copy_and_refuses_what_is_not_mapped():
    mapping = uow.class_mapping(Archived)
    assert mapping.database == "archive"
    with pytest.raises(dataclasses.FrozenInstanceError):
        mapping.table = "other"  # type: ignore[misc]
    assert uow.class_mapping(Archived).table == "seed_archived"
    with pytest.raises(UnknownFieldError, match=r"Archived has no column 'nmae'; its columns are id, name"):
        mapping.column("nmae")
    with pytest.raises(uow.errors.UnmappedClassError, match=r"class 'str' is not mapped"):
        uow.class_mapping("seed_archived")
    with pytest.raises(uow.errors.UnmappedClassError, match=r"class 'SeedBase' is not mapped"):
        uow.class_mapping(SeedBase)


# -- autobegin=False: the refusal names the call that needed a transaction ----------------------

def _expired(session, obj):
    session.expire(obj)
    return obj


REFUSED_WITHOUT_BEGIN = [
    ("get()", lambda s, top: s.get(Shelf, 2)),
    ("get()", lambda s, top: s.get_one(Shelf, 2)),
    ("get()", lambda s, top: s.get(Shelf, 1, populate_existing=True)),
    ("get(with_for_update=True)", lambda s, top: s.get(Shelf, 1, with_for_update=True)),
    ("filter()", lambda s, top: s.all(Jar)),
    ("filter()", lambda s, top: s.filter(Jar, shelf_id=1)),
    ("all()", lambda s, top: s.select(Jar).all()),
    ("count()", lambda s, top: s.select(Jar).count()),
    ("refresh()", lambda s, top: s.refresh(top)),
    ("execute()", lambda s, top: s.execute("SELECT 1")),
    ("connection()", lambda s, top: s.connection()),
    ("begin_nested()", lambda s, top: s.begin_nested()),
    ("savepoint()", lambda s, top: s.savepoint("mine")),
    ("loading Shelf(id=1).jars", lambda s, top: top.jars),
    ("reading expired Shelf(id=1)", lambda s, top: _expired(s, top).id),
    ("load_related()", lambda s, top: s.load_related([top], "jars")),
    ("delete()", lambda s, top: s.delete(top)),  # (its cascade reads the children after marking it)
    ("bulk_insert_mappings()", lambda s, top: s.bulk_insert_mappings(Jar, [{"id": 9, "shelf_id": None}])),
    ("upsert()", lambda s, top: s.upsert(Jar(id=9, shelf_id=None))),
]


@pytest.mark.parametrize("call, attempt", REFUSED_WITHOUT_BEGIN)
def test_autobegin_false_names_the_call_it_refused(pantry, call, attempt):
    session = uow.Session(pantry, autobegin=False)
    with session.begin():
        top = session.get(Shelf, 1)
    with uow.capture_sql() as statements:
        with pytest.raises(TransactionError) as refused:
            attempt(session, top)
    assert str(refused.value).startswith(f"{call}: this session was made with autobegin=False"), str(refused.value)
    assert "session.begin()" in str(refused.value)
    assert statements == [] and not pantry.in_transaction
    assert not (session.new or session.dirty or session.deleted) and session.is_active
    with session.begin():
        assert session.get(Shelf, 1) is top and len(top.jars) == 2  # still usable, nothing changed
    session.close()


class Desk(SeedBase, table="seed_desks"):
    id: int = Column(primary_key=True)
    pens = Collection("Pen", "desk")          # no delete cascade: delete() unlinks them
    pencils = Collection("Pencil", "desk")


class Pen(SeedBase, table="seed_pens"):
    id: int = Column(primary_key=True)
    desk_id: int | None = Column(references=Desk)
    desk = Reference("desk_id")


class Pencil(SeedBase, table="seed_pencils"):
    id: int = Column(primary_key=True)
    desk_id: int | None = Column(references=Desk)
    desk = Reference("desk_id")


def test_wb_a_delete_whose_second_childrens_read_fails_unlinks_nothing(path, monkeypatch):
    # delete() of a desk unlinks its pens and its pencils, reading each collection's children
    # first.  The pencils' read failing (here by hand; a lock past the busy timeout does it for
    # real) used to leave the pens unlinked, with the desk no longer marked: half a delete.
    connection = uow.connect(path)
    uow.create_all(connection, [Desk, Pen, Pencil])
    connection.execute("INSERT INTO seed_desks (id) VALUES (1)")
    connection.execute("INSERT INTO seed_pens (id, desk_id) VALUES (1, 1), (2, 1)")
    connection.execute("INSERT INTO seed_pencils (id, desk_id) VALUES (1, 1)")
    session = uow.Session(connection)
    desk = session.get(Desk, 1)
    pens = session.all(Pen)
    reads = []
    select_referring = session.loader.select_referring

    def second_read_fails(mapper, *arguments):
        reads.append(mapper.cls)
        if len(reads) == 2:
            raise uow.errors.DatabaseLockedError("the pencils' read fails")
        return select_referring(mapper, *arguments)

    monkeypatch.setattr(session.loader, "select_referring", second_read_fails)
    with pytest.raises(uow.errors.DatabaseLockedError):
        session.delete(desk)
    assert reads == [Pen, Pencil]
    assert all(pen.desk is desk and pen.desk_id == 1 for pen in pens)
    assert not (session.deleted or session.dirty or session.new)
    monkeypatch.undo()
    session.commit()
    assert committed(connection, path, "SELECT id, desk_id FROM seed_pens ORDER BY id") == [(1, 1), (2, 1)]
    session.delete(desk)  # and a delete that can read does it all
    session.commit()
    everything = "SELECT desk_id FROM seed_pens UNION ALL SELECT desk_id FROM seed_pencils"
    assert committed(connection, path, everything) == [(None,)] * 3
    session.close()
    connection.close()
