"""flush(): which statements, in which order, batched how; generated keys and SQL DEFAULTs
reaching their objects; autobegin and autoflush."""

import sqlite3
from decimal import Decimal

import pytest

import uow

from .helpers import folded, sql_of, verb_and_table
from .models import City, Country, Order, Pair, PairNote, Sample, User
from .relationship_models import Node


def writes(statements):
    """``(verb, table)`` for each INSERT, UPDATE and DELETE, in the order they were sent."""
    return [verb_and_table(sql) for sql in sql_of(statements) if sql.startswith(("INSERT", "UPDATE", "DELETE"))]


# -- autobegin -----------------------------------------------------------------------------

def test_a_new_session_has_no_transaction(session, conn):
    assert not session.in_transaction()
    assert not conn.in_transaction


def test_the_first_read_sends_begin(session, conn):
    with uow.capture_sql() as statements:
        session.get(User, 1)
    assert statements[0].sql == "BEGIN DEFERRED"
    assert session.in_transaction()
    assert conn.in_transaction


def test_the_first_query_sends_begin(session):
    with uow.capture_sql() as statements:
        session.all(User)
    assert statements[0].sql.startswith("BEGIN")
    assert session.in_transaction()


def test_the_first_write_sends_begin_immediate(session, conn):
    session.add(User(name="ann"))
    assert not conn.in_transaction  # add() alone does not touch the database
    with uow.capture_sql() as statements:
        session.flush()
    assert statements[0].sql == "BEGIN IMMEDIATE"
    assert sql_of(statements).count("BEGIN IMMEDIATE") == 1
    with uow.capture_sql() as statements:
        session.get(User, 99)
    assert not any(s.startswith("BEGIN") for s in sql_of(statements))


def test_a_flush_with_nothing_to_do_sends_nothing(session):
    with uow.capture_sql() as statements:
        session.flush()
    assert statements == []
    assert not session.in_transaction()


def test_explicit_begin(session, conn):
    with uow.capture_sql() as statements:
        session.begin("IMMEDIATE")
    assert sql_of(statements) == ["BEGIN IMMEDIATE"]
    with pytest.raises(uow.errors.TransactionError):
        session.begin()


# -- autoflush -----------------------------------------------------------------------------

def test_autoflush_before_filter(session):
    user = User(name="ann")
    session.add(user)
    with uow.capture_sql() as statements:
        found = session.filter(User, name="ann")
    assert found == [user]
    assert writes(statements) == [("INSERT", "users")]
    assert sql_of(statements)[-1].startswith("SELECT")


def test_autoflush_before_all(session):
    user = User(name="ann")
    session.add(user)
    assert session.all(User) == [user]
    assert user.id is not None


def test_autoflush_before_a_get_that_queries(session):
    session.add(User(name="ann"))
    with uow.capture_sql() as statements:
        session.get(User, 99)
    assert writes(statements) == [("INSERT", "users")]
    assert sql_of(statements).index('SAVEPOINT "uow_flush"') < len(statements) - 1


def test_a_get_answered_by_the_identity_map_does_not_flush(session):
    country = Country(code="fr", name="France")
    session.add(country)
    session.flush()
    country.name = "République"
    with uow.capture_sql() as statements:
        assert session.get(Country, "fr") is country
    assert statements == []
    assert session.dirty == {country}


def test_autoflush_sends_updates_before_the_query(session, conn):
    users = [User(name="a"), User(name="b")]
    session.add_all(users)
    session.commit()
    users[1].name = "a"
    assert session.filter(User, name="a") == users


def test_no_autoflush_suspends_it(session):
    user = User(name="ann")
    session.add(user)
    with session.no_autoflush:
        with uow.capture_sql() as statements:
            found = session.filter(User, name="ann")
        assert found == []
        assert writes(statements) == []
    assert session.new == {user}
    assert session.filter(User, name="ann") == [user]


def test_no_autoflush_nests(session):
    session.add(User(name="ann"))
    with session.no_autoflush:
        with session.no_autoflush:
            pass
        assert session.all(User) == []
    assert len(session.all(User)) == 1


def test_a_session_without_autoflush(conn):
    session = uow.Session(conn, autoflush=False)
    user = User(name="ann")
    session.add(user)
    with uow.capture_sql() as statements:
        assert session.all(User) == []
    assert writes(statements) == []
    session.flush()
    assert session.all(User) == [user]
    session.close()


# -- order of statements -------------------------------------------------------------------

def test_insert_update_delete_in_one_flush(session, conn):
    stays, goes = User(name="stays"), User(name="goes")
    session.add_all([stays, goes])
    session.commit()
    stays.name = "stayed"
    session.delete(goes)
    session.add(User(name="new"))
    with uow.capture_sql() as statements:
        session.flush()
    assert writes(statements) == [("UPDATE", "users"), ("INSERT", "users"), ("DELETE", "users")]
    assert conn.execute("SELECT name FROM users ORDER BY id").fetchall() == [("stayed",), ("new",)]


def test_parents_are_inserted_before_children_whatever_the_order_of_add(session, conn):
    order = Order(user_id=10, total=Decimal("1.50"))
    session.add(order)
    session.add(User(id=10, name="ann"))
    note = PairNote(pair_a=1, pair_b="x")
    session.add(note)
    session.add(Pair(a=1, b="x"))
    city = City(country="fr", name="Paris")
    session.add(city)
    session.add(Country(code="fr", name="France"))
    with uow.capture_sql() as statements:
        session.flush()
    inserted = [table for verb, table in writes(statements)]
    assert inserted.index("users") < inserted.index("orders")
    assert inserted.index("pairs") < inserted.index("pair_notes")
    assert inserted.index("countries") < inserted.index("cities")
    assert conn.execute("SELECT user_id, total FROM orders").fetchall() == [(10, "1.50")]


def test_children_are_deleted_before_parents_whatever_the_order_of_delete(session, conn):
    user = User(id=10, name="ann")
    order = Order(user_id=10)
    country = Country(code="fr", name="France")
    city = City(country="fr", name="Paris")
    session.add_all([user, order, country, city])
    session.commit()
    session.delete(user)
    session.delete(country)
    session.delete(order)
    session.delete(city)
    with uow.capture_sql() as statements:
        session.flush()
    deleted = [table for verb, table in writes(statements)]
    assert deleted.index("orders") < deleted.index("users")
    assert deleted.index("cities") < deleted.index("countries")
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0


def test_a_parent_update_and_a_child_insert_and_delete(session, conn):
    user = User(id=1, name="ann")
    old = Order(id=1, user_id=1)
    session.add_all([user, old])
    session.commit()
    session.delete(old)
    session.add(Order(id=2, user_id=1))
    user.name = "bob"
    with uow.capture_sql() as statements:
        session.flush()
    assert writes(statements) == [("UPDATE", "users"), ("INSERT", "orders"), ("DELETE", "orders")]


def test_within_a_table_rows_go_in_the_order_they_entered_the_session(session, conn):
    session.add_all([Country(code=c, name=c.upper()) for c in ["mm", "aa", "zz", "bb"]])
    with uow.capture_sql() as statements:
        session.flush()
    assert folded(statements) == [
        ("BEGIN IMMEDIATE", ()),
        ('SAVEPOINT "uow_flush"', ()),
        ('INSERT INTO "countries" ("code", "name") VALUES (?, ?)',
         [("mm", "MM"), ("aa", "AA"), ("zz", "ZZ"), ("bb", "BB")]),
        ('RELEASE "uow_flush"', ()),
    ]


def test_updates_and_deletes_follow_session_order(session, conn):
    countries = [Country(code=c, name=c) for c in ["aa", "bb", "cc", "dd"]]
    session.add_all(countries)
    session.commit()
    for country in reversed(countries):
        country.name = "x"
    session.delete(countries[3])
    session.delete(countries[1])
    with uow.capture_sql() as statements:
        session.flush()
    updates = [p for s, p in folded(statements) if s.startswith("UPDATE")]
    deletes = [p for s, p in folded(statements) if s.startswith("DELETE")]
    # Marked objects are not updated; the rest in the order they entered the session.
    assert updates == [[("x", "aa"), ("x", "cc")]]
    assert deletes == [[("bb",), ("dd",)]]


def test_the_same_operations_always_give_the_same_statements(conn):
    def run():
        session = uow.Session(conn)
        session.add(Order(user_id=7))
        session.add(Country(code="fr", name="F"))
        session.add(User(id=7, name="x"))
        session.add(City(country="fr", name="P"))
        with uow.capture_sql() as statements:
            session.flush()
        session.rollback()
        session.close()
        return folded(statements)

    assert run() == run()


# -- batching ------------------------------------------------------------------------------

def test_consecutive_rows_of_the_same_shape_go_out_as_one_executemany(session, conn):
    session.add_all([Sample(i=n) for n in range(5)])
    with uow.capture_sql() as statements:
        session.flush()
    inserts = [s for s in statements if s.sql.startswith("INSERT")]
    assert len(inserts) == 1
    assert inserts[0].many
    assert [row[0] for row in inserts[0].params] == [0, 1, 2, 3, 4]


def test_rows_of_different_shapes_are_separate_statements(session, conn):
    a = User(name="a")
    b = User(id=50, name="b")
    c = User(name="c")
    d = User(name="d")
    session.add_all([a, b, c, d])
    with uow.capture_sql() as statements:
        session.flush()
    inserts = [s.sql for s in statements if s.sql.startswith("INSERT")]
    assert len({sql.split(" RETURNING")[0] for sql in inserts}) == 2
    assert {u.name: u.id for u in (a, b, c, d)} == dict(conn.execute("SELECT name, id FROM users"))
    assert b.id == 50


def test_rows_of_one_table_are_inserted_in_session_order_across_shapes(session, conn):
    # "within a table in the order objects entered the session": a, then b (key 50), then c and d
    a = User(name="a")
    b = User(id=50, name="b")
    c = User(name="c")
    d = User(name="d")
    session.add_all([a, b, c, d])
    session.flush()
    assert (a.id, b.id, c.id, d.id) == (1, 50, 51, 52)


def test_generated_keys_and_defaults_reach_many_objects(session, conn):
    users = [User(name=f"u{n}") for n in range(50)]
    session.add_all(users)
    session.flush()
    stored = dict(conn.execute("SELECT name, id FROM users"))
    assert [u.id for u in users] == [stored[u.name] for u in users]
    assert len({u.id for u in users}) == 50
    assert all(u.joined == "today" for u in users)
    assert session.dirty == frozenset()
    assert all(session.identity_map[(User, (u.id,))] is u for u in users)


def test_generated_keys_after_existing_rows_and_gaps(session, conn):
    conn.execute("INSERT INTO users (id, name, score) VALUES (7, 'old', 0.0)")
    users = [User(name=f"u{n}") for n in range(3)]
    session.add_all(users)
    session.flush()
    assert [u.id for u in users] == [8, 9, 10]


def test_a_batch_larger_than_the_bound_variable_limit(session, conn):
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    samples = [Sample(i=n, s=f"s{n}") for n in range(3000)]
    session.add_all(samples)
    session.flush()
    assert conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 3000
    stored = dict(conn.execute("SELECT i, id FROM samples"))
    assert all(sample.id == stored[sample.i] for sample in samples)
    for sample in samples:
        sample.s = "changed"
    session.flush()
    assert conn.execute("SELECT count(*) FROM samples WHERE s = 'changed'").fetchone()[0] == 3000
    assert len(session.all(Sample)) == 3000
    for sample in samples:
        session.delete(sample)
    session.commit()
    assert conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 0


def test_the_flushed_objects_are_persistent_and_clean(session):
    users = [User(name="a"), User(name="b")]
    session.add_all(users)
    session.flush()
    assert all(uow.state_of(u) is uow.ObjectState.PERSISTENT for u in users)
    assert all(session.is_modified(u) is False for u in users)
    assert session.original_value(users[0], "joined") == "today"


def test_plan_shows_what_the_next_flush_would_do_without_running_it(session):
    session.add(Order(user_id=1))
    session.add(User(id=1, name="ann"))
    with uow.capture_sql() as statements:
        plan = session.plan()
    assert statements == []
    assert [(step.kind.value, step.table) for step in plan.steps] == [("INSERT", "users"), ("INSERT", "orders")]
    assert any("users" in str(c) and "orders" in str(c) for c in plan.constraints)


def test_a_failed_batch_is_replayed_one_row_at_a_time_to_name_the_row(session, conn):
    # The replay runs inside its own savepoint, rolled back afterwards; each row goes out as the
    # statement a flush of that one row sends, and the replay stops at the row SQLite refuses.
    session.add(User(name="ann", email="a@x"))
    session.commit()
    users = [User(name="b"), User(name="c", email="a@x"), User(name="d")]
    session.add_all(users)
    with uow.capture_sql() as statements, pytest.raises(uow.errors.FlushError) as caught:
        session.flush()
    assert caught.value.obj is users[1]
    insert = 'INSERT INTO "users" ("name", "email", "score") VALUES (?, ?, ?)'
    assert folded(statements) == [
        ("BEGIN IMMEDIATE", ()),
        ('SAVEPOINT "uow_flush"', ()),
        ('SELECT max("users"."id") FROM "users"', ()),
        (insert, [("b", None, 0.0), ("c", "a@x", 0.0), ("d", None, 0.0)]),
        ('ROLLBACK TO "uow_flush"', ()),
        ('RELEASE "uow_flush"', ()),
        ('SAVEPOINT "uow_locate"', ()),
        (insert + ' RETURNING "id", "joined"', ("b", None, 0.0)),
        (insert + ' RETURNING "id", "joined"', ("c", "a@x", 0.0)),
        ('ROLLBACK TO "uow_locate"', ()),
        ('RELEASE "uow_locate"', ()),
    ]
    assert conn.execute("SELECT name FROM users").fetchall() == [("ann",)]


def test_a_failed_batch_of_children_of_a_new_parent_is_replayed_with_the_parent_key_filled_in(session, conn):
    uow.create_all(conn, [Node])
    conn.execute("INSERT INTO nodes (name) VALUES ('taken')")
    root = Node(name="root")
    children = [Node(name="a", parent=root), Node(name="taken", parent=root)]
    session.add(root)
    with uow.capture_sql() as statements, pytest.raises(uow.errors.FlushError) as caught:
        session.flush()
    assert caught.value.obj is children[1]
    assert "UNIQUE constraint failed: nodes.name" in str(caught.value)
    insert = 'INSERT INTO "nodes" ("name", "parent_id") VALUES (?, ?)'
    replay = folded(statements)[folded(statements).index(('SAVEPOINT "uow_locate"', ())):]
    assert replay == [
        ('SAVEPOINT "uow_locate"', ()),
        (insert + ' RETURNING "id"', ("root", None)),
        (insert + ' RETURNING "id"', ("a", 2)),
        (insert + ' RETURNING "id"', ("taken", 2)),
        ('ROLLBACK TO "uow_locate"', ()),
        ('RELEASE "uow_locate"', ()),
    ]
    assert conn.execute("SELECT name FROM nodes").fetchall() == [("taken",)]


def test_rows_a_trigger_adds_during_a_batch_insert_fail_the_flush_before_keys_are_mixed_up(session, conn):
    """The keys of a batch are read back as the rows after the table's largest rowid: an extra row
    there would hand out wrong keys, so the flush is undone instead."""
    conn.execute("""CREATE TRIGGER shadow AFTER INSERT ON users WHEN NEW.name = 'ann'
                    BEGIN INSERT INTO users (name, score) VALUES ('shadow', 0.0); END""")
    users = [User(name="ann"), User(name="bob")]
    session.add_all(users)
    with pytest.raises(uow.errors.FlushError) as caught:
        session.flush()
    assert str(caught.value) == ("inserted 2 row(s) into users but found 3 new row(s) when reading back generated "
                                 "values; a trigger or another writer changed the table")
    assert caught.value.statement == (
        'SELECT "users"."id", "users"."joined" FROM "users" WHERE "users"."id" > ? ORDER BY "users"."id"')
    assert [u.id for u in users] == [None, None]
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0
    with pytest.raises(uow.errors.PendingRollbackError):
        session.flush()


def test_a_begin_that_sqlite_refuses_fails_the_flush_and_writes_nothing(session, conn):
    conn.set_progress_handler(lambda: 1, 1)  # cancels every statement, BEGIN included
    user = User(name="ann")
    session.add(user)
    with uow.capture_sql() as statements, pytest.raises(uow.errors.FlushError) as caught:
        session.flush()
    conn.set_progress_handler(None, 1)
    assert str(caught.value) == "BEGIN IMMEDIATE failed: interrupted; nothing was written"
    assert caught.value.statement == "BEGIN IMMEDIATE"
    assert sql_of(statements) == ["BEGIN IMMEDIATE"]
    assert not conn.in_transaction
    with pytest.raises(uow.errors.PendingRollbackError):
        session.flush()
    session.rollback()
    session.add(user)
    session.commit()
    assert conn.execute("SELECT name FROM users").fetchall() == [("ann",)]


def test_a_flush_called_from_a_listener_while_a_flush_runs_is_refused(session, conn):
    uow.listen(session, "after_begin", lambda s, **info: s.flush())
    session.add(User(name="ann"))
    with pytest.raises(uow.errors.TransactionError) as caught:
        session.flush()
    assert str(caught.value) == (
        "flush() was called from an after_begin listener, while beginning the transaction is in progress; a "
        "listener cannot begin or end a flush, transaction or savepoint. Stage work there instead (add(), "
        "delete(), changing objects), or call flush() once beginning the transaction has returned")
    session.rollback()
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0


# -- two objects claiming one key ----------------------------------------------------------

def test_a_new_object_given_the_key_of_a_loaded_one_is_refused_before_any_sql(session, conn):
    conn.execute("INSERT INTO countries (code, name) VALUES ('fr', 'France')")
    held = session.get(Country, "fr")
    newcomer = Country(code="xx", name="Other")
    session.add(newcomer)
    newcomer.code = "fr"
    with uow.capture_sql() as statements, pytest.raises(uow.errors.DuplicateIdentityError) as caught:
        session.flush()
    assert str(caught.value) == (
        "flush(): Country(code='fr', name='Other')<pending> and Country(code='fr', name='France')<persistent> "
        "both claim the identity Country('fr'); change one key, or expunge one of them")
    assert statements == []
    assert session.get(Country, "fr") is held


def test_a_row_switch_does_not_let_a_later_duplicate_key_through(session, conn):
    """A new object may take the key of one marked for deletion (one UPDATE); the new objects after
    it are still checked."""
    conn.execute("INSERT INTO countries (code, name) VALUES ('fr', 'France'), ('de', 'Germany')")
    old_france, germany = session.get(Country, "fr"), session.get(Country, "de")
    session.delete(old_france)
    session.add(Country(code="fr", name="France 2"))
    newcomer = Country(code="xx", name="Other")
    session.add(newcomer)
    newcomer.code = "de"
    with uow.capture_sql() as statements, pytest.raises(uow.errors.DuplicateIdentityError) as caught:
        session.flush()
    assert str(caught.value) == (
        "flush(): Country(code='de', name='Other')<pending> and Country(code='de', name='Germany')<persistent> "
        "both claim the identity Country('de'); change one key, or expunge one of them")
    assert statements == []
    assert session.get(Country, "de") is germany


# -- rows another connection deleted -----------------------------------------------------------

def _two_users_then_the_second_deleted_elsewhere(file_session, other):
    ann, bob = User(name="ann"), User(name="bob")
    file_session.add_all([ann, bob])
    file_session.commit()
    other.execute("DELETE FROM users WHERE id = ?", (bob.id,))
    return ann, bob


def test_a_new_row_given_the_key_of_a_row_deleted_elsewhere_replaces_the_stale_object(file_session, other):
    """SQLite hands out the largest free rowid again: the held object whose row went is stale,
    so it is detached and the new object takes its key; rollback() puts both back."""
    ann, bob = _two_users_then_the_second_deleted_elsewhere(file_session, other)
    cy = User(name="cy")
    file_session.add(cy)
    file_session.flush()
    assert cy.id == bob.id
    assert file_session.get(User, cy.id) is cy
    assert uow.state_of(bob) is uow.ObjectState.DETACHED
    assert file_session.new == frozenset()
    file_session.rollback()
    assert uow.state_of(cy) is uow.ObjectState.TRANSIENT and cy.id is None
    assert uow.state_of(bob) is uow.ObjectState.PERSISTENT
    assert file_session.identity_map[uow.identity_key(User, bob.id)] is bob
    file_session.add(cy)
    file_session.commit()
    assert other.execute("SELECT id, name FROM users ORDER BY id").fetchall() == [(ann.id, "ann"), (bob.id, "cy")]


def test_a_flush_that_would_delete_a_new_row_given_a_doomed_key_is_undone(file_session, other):
    """Deleting the stale object would delete the new row that took its key: the flush stops first."""
    ann, bob = _two_users_then_the_second_deleted_elsewhere(file_session, other)
    cy = User(name="cy")
    file_session.add(cy)
    file_session.delete(bob)
    with pytest.raises(uow.errors.FlushError) as raised:
        file_session.flush()
    message = str(raised.value)
    assert message.startswith("SQLite gave the new User(new #")
    assert f"the key {bob.id} of User(id={bob.id}" in message
    assert "which this flush deletes: that row was already deleted after the object was read" in message
    assert cy.id is None and uow.state_of(cy) is uow.ObjectState.PENDING
    with pytest.raises(uow.errors.PendingRollbackError):
        file_session.flush()
    file_session.rollback()
    assert other.execute("SELECT id, name FROM users ORDER BY id").fetchall() == [(ann.id, "ann")]
