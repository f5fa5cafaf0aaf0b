"""Bulk writes: bulk_insert_mappings, bulk_update_mappings, bulk_save_objects.

Each writes with one statement per statement shape, checks every value before any SQL, keeps
the identity map in step with the rows it changed, and is atomic: a failing call changes
nothing and leaves the session usable.
"""


import pytest

import uow
from uow import Column, Entity, ObjectState, Session, errors, state_of

from .helpers import folded
from .models import ALL_MODELS, Country, User
from .seeded import seeded_fixtures


class BulkBase(Entity, abstract=True):
    pass


class Ticket(BulkBase, table="bulk_tickets"):
    id: int = Column(primary_key=True)
    title: str
    version: int = Column(version=True)


class Doc(BulkBase, table="bulk_docs"):
    id: int = Column(primary_key=True)
    tags: list = Column(default_factory=list)


MODELS = ALL_MODELS + [Ticket, Doc]


def _create(connection):
    uow.create_all(connection, MODELS)
    connection.execute("INSERT INTO countries (code, name) VALUES ('fr', 'France'), ('it', 'Italy')")
    connection.execute("INSERT INTO users (id, name, email, score) VALUES (1, 'ann', 'ann@x.org', 1.0)")
    connection.execute("INSERT INTO bulk_tickets (id, title, version) VALUES (1, 'one', 1), (2, 'two', 1)")
    connection.execute("""INSERT INTO bulk_docs (id, tags) VALUES (1, '["a"]')""")


template, path, conn, session, file_session, other = seeded_fixtures(_create, "bulk")


def dml(statements):
    """``(sql, many)`` for each INSERT, UPDATE and DELETE: its text, and whether it was an executemany."""
    return [(statement.sql, statement.many) for statement in statements
            if statement.sql.startswith(("INSERT", "UPDATE", "DELETE"))]


def countries(connection):
    return connection.execute("SELECT code, name FROM countries ORDER BY code").fetchall()


# -- bulk_insert_mappings ---------------------------------------------------------------------

def test_bulk_insert_is_one_executemany(file_session, other):
    rows = [{"code": f"c{i}", "name": f"country {i}"} for i in range(5)]
    with uow.capture_sql() as statements:
        count = file_session.bulk_insert_mappings(Country, rows)
    assert count == 5
    [(sql, params)] = [pair for pair in folded(statements) if pair[0].startswith("INSERT")]
    assert sql == 'INSERT INTO "countries" ("code", "name") VALUES (?, ?)'
    assert params == [(f"c{i}", f"country {i}") for i in range(5)]
    assert dml(statements) == [(sql, True)]
    assert len(countries(other)) == 2  # not committed yet
    file_session.commit()
    assert len(countries(other)) == 7


def test_bulk_insert_sends_one_executemany_per_shape(session):
    rows = [
        {"name": "a", "score": 1.0},
        {"name": "b", "score": 2.0, "email": "b@x.org"},
        {"name": "c", "score": 3.0},
        {"name": "d", "score": 4.0, "email": "d@x.org"},
    ]
    with uow.capture_sql() as statements:
        session.bulk_insert_mappings(User, rows)
    # Python-side defaults are filled in (email: None), so all four rows have one shape; the
    # generated key is left to SQLite.
    assert dml(statements) == [
        ('INSERT INTO "users" ("name", "email", "score") VALUES (?, ?, ?)', True),
    ]
    with uow.capture_sql() as statements:
        session.bulk_insert_mappings(User, [{"name": "e", "score": 5.0}, {"id": 99, "name": "f", "score": 6.0}])
    assert len(dml(statements)) == 2  # one shape each: with and without an explicit key
    assert session.scalars("SELECT name FROM users ORDER BY name") == ["a", "ann", "b", "c", "d", "e", "f"]


@pytest.mark.parametrize("bad_row, error", [
    ({"code": "xx", "name": 5}, errors.ColumnValueError),
    ({"code": "xx", "name": None}, errors.ColumnValueError),
    ({"code": "xx", "nmae": "typo"}, errors.UnknownFieldError),
], ids=["wrong type", "None in NOT NULL", "unknown field"])
def test_bulk_insert_checks_every_value_before_any_sql(session, bad_row, error):
    rows = [{"code": "de", "name": "Germany"}, {"code": "es", "name": "Spain"}, bad_row]
    with uow.capture_sql() as statements:
        with pytest.raises(error):
            session.bulk_insert_mappings(Country, rows)
    assert statements == []
    assert not session.in_transaction()


def test_bulk_insert_refuses_a_row_that_omits_a_not_null_column_before_any_sql(file_session):
    """Country.name is NOT NULL with no default of any kind: leaving it out cannot work."""
    with uow.capture_sql() as statements:
        with pytest.raises(errors.UowError, match="name"):
            file_session.bulk_insert_mappings(Country, [{"code": "de", "name": "Germany"}, {"code": "es"}])
    assert statements == []


def test_bulk_insert_refuses_nan_naming_the_row(session):
    with uow.capture_sql() as statements:
        with pytest.raises(errors.ColumnValueError, match=r"User\.score = nan"):
            session.bulk_insert_mappings(User, [{"name": "a", "score": 1.0}, {"name": "b", "score": float("nan")}])
    assert statements == []


def test_a_failing_bulk_insert_changes_nothing_and_the_session_goes_on(file_session, other):
    file_session.bulk_insert_mappings(Country, [{"code": "de", "name": "Germany"}])  # earlier work, kept
    with pytest.raises(errors.FlushError):
        file_session.bulk_insert_mappings(Country, [
            {"code": "es", "name": "Spain"},
            {"code": "fr", "name": "France again"},  # the key exists
        ])
    assert file_session.scalars("SELECT code FROM countries ORDER BY code") == ["de", "fr", "it"]
    file_session.add(Country(code="pt", name="Portugal"))
    file_session.commit()
    assert countries(other) == [("de", "Germany"), ("fr", "France"), ("it", "Italy"), ("pt", "Portugal")]


def test_a_bulk_insert_failing_in_its_second_shape_undoes_the_first(session):
    with pytest.raises(errors.FlushError):
        session.bulk_insert_mappings(User, [
            {"name": "new", "score": 1.0},
            {"name": "dup", "score": 1.0, "email": "ann@x.org"},  # unique email taken
        ])
    assert session.scalars("SELECT name FROM users") == ["ann"]


def test_rollback_undoes_a_bulk_insert(file_session, other):
    file_session.bulk_insert_mappings(Country, [{"code": "de", "name": "Germany"}])
    file_session.rollback()
    assert file_session.get(Country, "de") is None
    file_session.commit()
    assert countries(other) == [("fr", "France"), ("it", "Italy")]


def test_bulk_insert_of_json_values(file_session, other):
    file_session.bulk_insert_mappings(Doc, [{"id": 2, "tags": ["x", {"y": 1}]}, {"id": 3, "tags": []}])
    file_session.commit()
    assert other.execute("SELECT id, tags FROM bulk_docs ORDER BY id").fetchall() == [
        (1, '["a"]'), (2, '["x",{"y":1}]'), (3, "[]")]
    with uow.capture_sql() as statements:
        with pytest.raises(errors.ColumnValueError):
            file_session.bulk_insert_mappings(Doc, [{"id": 4, "tags": [(1, 2)]}])
    assert statements == []


# -- bulk_update_mappings ---------------------------------------------------------------------

def test_bulk_update_is_one_executemany_per_shape(file_session, other):
    with uow.capture_sql() as statements:
        count = file_session.bulk_update_mappings(Country, [
            {"code": "fr", "name": "La France"},
            {"code": "it", "name": "Italia"},
        ])
    assert count == 2
    updates = [pair for pair in folded(statements) if pair[0].startswith("UPDATE")]
    assert updates == [('UPDATE "countries" SET "name" = ? WHERE "countries"."code" = ?',
                        [("La France", "fr"), ("Italia", "it")])]
    assert dml(statements) == [(updates[0][0], True)]
    file_session.commit()
    assert countries(other) == [("fr", "La France"), ("it", "Italia")]


def test_bulk_update_with_two_shapes_sends_two_executemany(session):
    session.bulk_insert_mappings(User, [{"id": 2, "name": "bob", "score": 2.0}])
    with uow.capture_sql() as statements:
        session.bulk_update_mappings(User, [
            {"id": 1, "name": "ANN"},
            {"id": 2, "score": 9.0},
        ])
    assert dml(statements) == [
        ('UPDATE "users" SET "name" = ? WHERE "users"."id" = ?', True),
        ('UPDATE "users" SET "score" = ? WHERE "users"."id" = ?', True),
    ]


def test_bulk_update_brings_a_held_object_up_to_date_and_clean(file_session, other):
    held = file_session.get(Country, "fr")
    file_session.bulk_update_mappings(Country, [{"code": "fr", "name": "La France"}])
    assert held.name == "La France"
    assert file_session.dirty_fields(held) == []
    assert file_session.original_value(held, "name") == "La France"
    with uow.capture_sql() as statements:
        file_session.commit()
    assert dml(statements) == []
    assert countries(other)[0] == ("fr", "La France")


def test_bulk_update_keeps_a_held_objects_other_unflushed_change(file_session, other):
    held = file_session.get(User, 1)
    held.score = 5.0
    file_session.bulk_update_mappings(User, [{"id": 1, "name": "ANN"}])
    assert held.name == "ANN"
    assert file_session.dirty_fields(held) == ["score"]
    file_session.commit()
    assert other.execute("SELECT name, score FROM users WHERE id = 1").fetchall() == [("ANN", 5.0)]


def test_bulk_update_of_a_held_json_object(session):
    held = session.get(Doc, 1)
    session.bulk_update_mappings(Doc, [{"id": 1, "tags": ["b"]}])
    assert held.tags == ["b"]
    assert session.dirty_fields(held) == []
    held.tags.append("c")
    assert session.dirty_fields(held) == ["tags"]


def test_bulk_update_of_a_missing_key_is_an_error_and_changes_nothing(file_session, other):
    held = file_session.get(Country, "fr")
    with pytest.raises(errors.FlushError, match="1 matched"):
        file_session.bulk_update_mappings(Country, [
            {"code": "fr", "name": "La France"},
            {"code": "zz", "name": "Nowhere"},
        ])
    assert held.name == "France"
    assert file_session.dirty_fields(held) == []
    assert file_session.scalar("SELECT name FROM countries WHERE code = 'fr'") == "France"
    held.name = "still usable"
    file_session.commit()
    assert countries(other) == [("fr", "still usable"), ("it", "Italy")]


def test_a_bulk_update_that_matches_too_few_rows_names_its_statement(session):
    with pytest.raises(errors.FlushError) as raised:
        session.bulk_update_mappings(Country, [{"code": "zz", "name": "Nowhere"}])
    assert raised.value.statement == 'UPDATE "countries" SET "name" = ? WHERE "countries"."code" = ?'
    assert str(raised.value).startswith("bulk update of Country: 1 row(s) given, 0 matched")


def test_bulk_update_needs_the_key_in_every_row(session):
    with uow.capture_sql() as statements:
        with pytest.raises(errors.ColumnValueError, match="code"):
            session.bulk_update_mappings(Country, [{"code": "fr", "name": "x"}, {"name": "no key"}])
    assert statements == []


def test_bulk_update_checks_values_before_any_sql(session):
    held = session.get(User, 1)
    with uow.capture_sql() as statements:
        with pytest.raises(errors.ColumnValueError, match="NaN"):
            session.bulk_update_mappings(User, [{"id": 1, "name": "ANN"}, {"id": 1, "score": float("nan")}])
    assert statements == []
    assert (held.name, held.score) == ("ann", 1.0)


def test_bulk_update_refuses_a_key_of_the_wrong_type_naming_the_row_before_any_sql(session):
    with uow.capture_sql() as statements:
        with pytest.raises(errors.ColumnValueError) as raised:
            session.bulk_update_mappings(Country, [{"code": "fr", "name": "La France"}, {"code": 5, "name": "x"}])
    assert statements == []
    assert str(raised.value) == (
        "bulk update of Country row {'code': 5, 'name': 'x'}: Country.code = 5 expected str, got int")


def test_an_int_beyond_64_bits_for_a_real_column_is_refused_before_any_sql(file_session):
    """2**64 is exactly a double, but sqlite3 binds a Python int as INTEGER and overflows."""
    with uow.capture_sql() as statements:
        with pytest.raises(errors.ColumnValueError, match="User.score"):
            file_session.bulk_update_mappings(User, [{"id": 1, "score": 2 ** 64}])
    assert statements == []


def test_bulk_update_bumps_the_version_in_the_row_and_the_held_object(file_session, other):
    held = file_session.get(Ticket, 1)
    file_session.bulk_update_mappings(Ticket, [{"id": 1, "title": "ONE"}, {"id": 2, "title": "TWO"}])
    assert (held.title, held.version) == ("ONE", 2)
    assert file_session.dirty_fields(held) == []
    file_session.commit()
    assert other.execute("SELECT id, title, version FROM bulk_tickets ORDER BY id").fetchall() == [
        (1, "ONE", 2), (2, "TWO", 2)]


def test_bulk_update_checked_against_a_newer_version_gives_the_held_object_the_rows_new_version(file_session, other):
    """The held object was read at version 1; another connection moved the row to 2.  The
    mapping names version 2, so the row goes to 3, and so does the object."""
    held = file_session.get(Ticket, 1)
    file_session.commit()
    other.execute("UPDATE bulk_tickets SET version = 2 WHERE id = 1")
    file_session.bulk_update_mappings(Ticket, [{"id": 1, "title": "ONE", "version": 2}])
    assert (held.title, held.version) == ("ONE", 3)
    held.title = "One"
    file_session.commit()  # the UPDATE checks version 3: no StaleDataError
    assert other.execute("SELECT title, version FROM bulk_tickets WHERE id = 1").fetchall() == [("One", 4)]


def test_bulk_update_with_a_stale_version_is_refused(session):
    with pytest.raises(errors.StaleDataError):
        session.bulk_update_mappings(Ticket, [{"id": 1, "title": "ONE", "version": 1},
                                              {"id": 2, "title": "TWO", "version": 7}])
    assert session.scalars("SELECT title FROM bulk_tickets ORDER BY id") == ["one", "two"]


def test_rollback_undoes_a_bulk_update_and_restores_the_held_object(file_session, other):
    held = file_session.get(Country, "fr")
    file_session.commit()
    file_session.bulk_update_mappings(Country, [{"code": "fr", "name": "La France"}])
    file_session.rollback()
    assert held.name == "France"
    assert file_session.dirty_fields(held) == []
    file_session.commit()
    assert countries(other)[0] == ("fr", "France")


# -- bulk_save_objects ------------------------------------------------------------------------

def test_bulk_save_objects_gives_inserted_objects_their_generated_keys(file_session, other):
    users = [User(name=f"u{i}", email=f"u{i}@x.org") for i in range(3)]
    file_session.bulk_save_objects(users)
    ids = [user.id for user in users]
    assert all(isinstance(id, int) for id in ids) and len(set(ids)) == 3 and 1 not in ids
    assert all(user.joined == "today" for user in users)  # the SQL DEFAULT, read back
    assert all(state_of(user) is ObjectState.DETACHED for user in users)
    file_session.commit()
    assert other.execute("SELECT id, name FROM users WHERE id != 1 ORDER BY id").fetchall() == [
        (user.id, user.name) for user in users]


def test_bulk_save_objects_sends_one_insert_per_shape(file_session):
    users = [User(name=f"u{i}") for i in range(4)]
    with uow.capture_sql() as statements:
        file_session.bulk_save_objects(users)
    inserts = [sql for sql, many in dml(statements) if sql.startswith("INSERT")]
    assert len(inserts) == 1, inserts


def test_bulk_save_objects_updates_detached_objects(path, file_session, other):
    connection = uow.connect(path)
    first = Session(connection)
    france, italy = first.get(Country, "fr"), first.get(Country, "it")
    first.commit()
    first.close()
    connection.close()
    france.name = "La France"
    italy.name = "Italia"
    with uow.capture_sql() as statements:
        file_session.bulk_save_objects([france, italy])
    assert dml(statements) == [('UPDATE "countries" SET "name" = ? WHERE "countries"."code" = ?', True)]
    file_session.commit()
    assert countries(other) == [("fr", "La France"), ("it", "Italia")]


def test_bulk_save_objects_of_a_detached_copy_gives_the_held_object_the_rows_new_version(path, file_session, other):
    """The detached copy was read at version 1; its UPDATE moves the row to 2, and the object the
    session holds for that row goes to 2 as well (not 3), so its own next UPDATE is not stale."""
    held = file_session.get(Ticket, 1)
    file_session.commit()
    connection = uow.connect(path)
    first = Session(connection)
    copy = first.get(Ticket, 1)
    first.commit()
    first.close()
    connection.close()
    copy.title = "ONE"
    file_session.bulk_save_objects([copy])
    assert (copy.version, held.title, held.version) == (2, "ONE", 2)
    held.title = "One"
    file_session.commit()  # the UPDATE checks version 2: no StaleDataError
    assert other.execute("SELECT title, version FROM bulk_tickets WHERE id = 1").fetchall() == [("One", 3)]


def test_bulk_update_refuses_an_objects_dict_before_any_sql(path, file_session, other):
    """An instance dict carries uow's state record: it is not a column, so the row is refused before
    any SQL (it used to be written, and then the held object took the other object's state)."""
    held = file_session.get(Country, "fr")
    connection = uow.connect(path)
    first = Session(connection)
    copy = first.get(Country, "fr")
    first.commit()
    first.close()
    connection.close()
    copy.name = "La France"
    with uow.capture_sql() as statements:
        with pytest.raises(errors.UnknownFieldError, match="has no field '_uow_state'"):
            file_session.bulk_update_mappings(Country, [copy.__dict__])
    assert dml(statements) == []
    assert state_of(held) is ObjectState.PERSISTENT and held.name == "France"
    assert countries(other)[0] == ("fr", "France")


def test_bulk_save_objects_checks_every_value_before_any_sql(file_session):
    users = [User(name="a"), User(name="b"), User(name="c", score=float("nan"))]
    with uow.capture_sql() as statements:
        with pytest.raises(errors.ColumnValueError):
            file_session.bulk_save_objects(users)
    assert statements == []
    assert [user.id for user in users] == [None, None, None]


def test_a_failing_bulk_save_changes_nothing(file_session, other):
    first = User(name="new", email="new@x.org")
    duplicate = User(name="dup", email="ann@x.org")  # unique email taken
    with pytest.raises(errors.FlushError):
        file_session.bulk_save_objects([first, duplicate])
    assert file_session.scalars("SELECT name FROM users ORDER BY id") == ["ann"]
    assert first.id is None and state_of(first) is ObjectState.TRANSIENT
    file_session.commit()
    assert other.execute("SELECT name FROM users").fetchall() == [("ann",)]


def test_rollback_takes_back_the_keys_bulk_save_objects_gave(file_session, other):
    """As for pending objects: a rolled-back insert leaves no key behind on the object."""
    user = User(name="bob")
    file_session.bulk_save_objects([user])
    assert isinstance(user.id, int)
    file_session.rollback()
    assert user.id is None
    assert uow.state_of(user) is ObjectState.TRANSIENT
    file_session.add(user)
    file_session.commit()
    assert other.execute("SELECT name FROM users ORDER BY id").fetchall() == [("ann",), ("bob",)]


def test_bulk_save_objects_refuses_an_object_of_a_session(session):
    held = session.get(Country, "fr")
    with uow.capture_sql() as statements:
        with pytest.raises(errors.UowError, match="belongs to a session"):
            session.bulk_save_objects([held])
    assert statements == []


def test_bulk_save_objects_refuses_an_object_whose_row_was_deleted_and_committed(file_session, other):
    """As add() refuses it: the UPDATE it sent matched no row (and no INSERT may bring the row back)."""
    user = file_session.get(User, 1)
    file_session.delete(user)
    file_session.commit()
    user.name = "changed after the delete"
    newcomer = User(name="bob")
    with uow.capture_sql() as statements, pytest.raises(errors.InvalidStateError) as caught:
        file_session.bulk_save_objects([newcomer, user])
    assert str(caught.value) == (
        f"bulk_save_objects(): the row of {user!r} was deleted and the delete committed, so there is no row "
        f"to update; merge() it to write a copy as a new row, or save a new object")
    assert statements == []
    assert (state_of(user), state_of(newcomer)) == (ObjectState.DETACHED, ObjectState.TRANSIENT)
    file_session.commit()
    assert other.execute("SELECT id, name FROM users").fetchall() == []


# -- every bulk method -------------------------------------------------------------------------

BULK_WRITES = [
    ("bulk_insert_mappings", lambda session: session.bulk_insert_mappings(Country, [{"code": "de", "name": "G"}])),
    ("bulk_update_mappings", lambda session: session.bulk_update_mappings(Country, [{"code": "fr", "name": "F"}])),
    ("bulk_save_objects", lambda session: session.bulk_save_objects([Country(code="de", name="G")])),
]


@pytest.mark.parametrize("name, call", BULK_WRITES)
def test_a_closed_session_refuses_bulk_writes_naming_the_call(session, name, call):
    session.close()
    with uow.capture_sql() as statements:
        with pytest.raises(errors.SessionClosedError) as raised:
            call(session)
    assert str(raised.value).startswith(f"{name}(): this session was closed")
    assert statements == []


@pytest.mark.parametrize("name, call", BULK_WRITES)
def test_a_bulk_write_begins_the_transaction_for_writing(session, name, call):
    """A transaction that will write begins IMMEDIATE (see the README: uow owns the transaction)."""
    with uow.capture_sql() as statements:
        call(session)
    assert statements[0].sql == "BEGIN IMMEDIATE"


# -- when SQLite ends the whole transaction itself ---------------------------------------------

REFUSE_XX = """CREATE TRIGGER refuse_xx BEFORE INSERT ON countries WHEN NEW.code = 'xx'
               BEGIN SELECT RAISE(ROLLBACK, 'no xx here'); END"""


@pytest.mark.parametrize("write", ["bulk_insert_mappings", "bulk_save_objects"])
def test_a_bulk_write_that_sqlite_rolls_back_entirely_fails_the_session_until_rollback(file_session, other, write):
    """RAISE(ROLLBACK) ends the transaction, not just the bulk write's savepoint: the object flushed
    before it holds a row that is gone, so only rollback() can put the session back in step."""
    other.execute(REFUSE_XX)
    germany = Country(code="de", name="Germany")
    file_session.add(germany)
    file_session.flush()
    with pytest.raises(errors.FlushError, match="no xx here"):
        if write == "bulk_insert_mappings":
            file_session.bulk_insert_mappings(Country, [{"code": "xx", "name": "Nowhere"}])
        else:
            file_session.bulk_save_objects([Country(code="xx", name="Nowhere")])
    with pytest.raises(errors.PendingRollbackError):
        file_session.add(Country(code="es", name="Spain"))
    with pytest.raises(errors.PendingRollbackError):
        file_session.flush()
    file_session.rollback()
    assert state_of(germany) is ObjectState.TRANSIENT
    file_session.add(germany)
    file_session.commit()
    assert countries(other) == [("de", "Germany"), ("fr", "France"), ("it", "Italy")]


def test_bulk_insert_returns_the_rows_sqlite_inserted(file_session, other):
    """A table whose own trigger skips rows: the count says what was really inserted."""
    other.execute("""CREATE TRIGGER skip_xx BEFORE INSERT ON countries WHEN NEW.code = 'xx'
                     BEGIN SELECT RAISE(IGNORE); END""")
    inserted = file_session.bulk_insert_mappings(Country, [{"code": "xx", "name": "Nowhere"},
                                                           {"code": "de", "name": "Germany"}])
    assert inserted == 1
    file_session.commit()
    assert countries(other) == [("de", "Germany"), ("fr", "France"), ("it", "Italy")]


@pytest.mark.parametrize("write", ["bulk_insert_mappings", "bulk_save_objects"])
def test_after_sqlite_rolls_back_a_bulk_write_entirely_the_refusal_names_the_cause(file_session, other, write):
    other.execute(REFUSE_XX)
    with pytest.raises(errors.FlushError) as failed:
        if write == "bulk_insert_mappings":
            file_session.bulk_insert_mappings(Country, [{"code": "xx", "name": "Nowhere"}])
        else:
            file_session.bulk_save_objects([Country(code="xx", name="Nowhere")])
    with pytest.raises(errors.PendingRollbackError) as raised:
        file_session.flush()
    message = str(raised.value)
    assert message.startswith("flush(): a previous bulk write failed (")
    assert "no xx here" in message
    assert "SQLite rolled back the whole transaction, so earlier flushes are undone too" in message
    assert raised.value.original is failed.value


def test_bulk_save_objects_remembers_what_it_wrote_so_a_second_save_updates_only_what_changed(file_session, other):
    """An inserted object leaves with a snapshot of the row it wrote (found by mutation testing:
    without it a second save could not tell what changed)."""
    user = User(name="ann2", email="a2@x.org")
    file_session.bulk_save_objects([user])
    with uow.capture_sql() as statements:
        file_session.bulk_save_objects([user])
    assert dml(statements) == []
    user.email = "new@x.org"
    with uow.capture_sql() as statements:
        file_session.bulk_save_objects([user])
    assert dml(statements) == [('UPDATE "users" SET "email" = ? WHERE "users"."id" = ?', True)]
    file_session.commit()
    assert other.execute("SELECT name, email FROM users WHERE id = ?", (user.id,)).fetchall() == [("ann2", "new@x.org")]
