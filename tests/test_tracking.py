"""Change tracking (dirty means "differs from the loaded value"), refresh, expire and expire_on_commit."""

import datetime
from decimal import Decimal

import pytest

import uow
from uow import errors

from .helpers import folded, same, sql_of
from .models import City, Country, Pair, Sample, User


@pytest.fixture
def ann(session):
    """A committed user, loaded in the session."""
    user = User(name="ann", email="ann@x", score=1.0)
    session.add(user)
    session.commit()
    return user


def test_dirty_fields_original_value_and_is_modified(session, ann):
    assert session.dirty_fields(ann) == []
    assert session.is_modified(ann) is False
    ann.name = "bob"
    ann.score = 2.0
    assert session.dirty_fields(ann) == ["name", "score"]
    assert session.original_value(ann, "name") == "ann"
    assert session.original_value(ann, "score") == 1.0
    assert session.is_modified(ann) is True
    assert session.dirty == {ann}


def test_original_value_of_an_unknown_field(session, ann):
    with pytest.raises(errors.UnknownFieldError, match="nmae"):
        session.original_value(ann, "nmae")


def test_questions_about_an_object_outside_the_session_name_the_call(session):
    user = User(name="ann")
    calls = {
        "dirty_fields": lambda: session.dirty_fields(user),
        "original_value": lambda: session.original_value(user, "name"),
        "is_modified": lambda: session.is_modified(user),
    }
    for name, call in calls.items():
        with pytest.raises(errors.InvalidStateError) as caught:
            call()
        assert str(caught.value) == (
            f"{name}(): {user!r} is transient and belongs to no session; it must be in this session (add() it first)")


def test_a_pending_object_is_modified_and_has_no_dirty_fields(session):
    user = User(name="ann")
    session.add(user)
    assert session.is_modified(user) is True
    assert session.dirty_fields(user) == []


def test_setting_a_field_back_to_its_loaded_value_is_no_change(session, ann):
    ann.name = "bob"
    ann.name = "ann"
    assert session.dirty_fields(ann) == []
    assert session.is_modified(ann) is False
    assert session.dirty == frozenset()
    with uow.capture_sql() as statements:
        session.flush()
    assert statements == []


def test_assigning_the_same_value_sends_nothing(session, ann):
    ann.score = 1.0
    with uow.capture_sql() as statements:
        session.commit()
    assert [s for s in sql_of(statements) if s.startswith("UPDATE")] == []


def test_an_update_sets_only_the_changed_columns(session, ann, conn):
    ann.email = "new@x"
    with uow.capture_sql() as statements:
        session.flush()
    assert folded(statements) == [
        ("BEGIN IMMEDIATE", ()),
        ('SAVEPOINT "uow_flush"', ()),
        ('UPDATE "users" SET "email" = ? WHERE "users"."id" = ?', [("new@x", ann.id)]),
        ('RELEASE "uow_flush"', ()),
    ]
    assert session.dirty_fields(ann) == []
    assert session.original_value(ann, "email") == "new@x"


def test_objects_with_the_same_changed_columns_share_one_executemany(session, conn):
    users = [User(name=f"u{i}") for i in range(4)]
    session.add_all(users)
    session.commit()
    users[0].name = "A"
    users[1].score = 9.0
    users[2].name = "C"
    with uow.capture_sql() as statements:
        session.flush()
    updates = [(sql, params) for sql, params in folded(statements) if sql.startswith("UPDATE")]
    assert updates == [
        ('UPDATE "users" SET "name" = ? WHERE "users"."id" = ?', [("A", users[0].id), ("C", users[2].id)]),
        ('UPDATE "users" SET "score" = ? WHERE "users"."id" = ?', [(9.0, users[1].id)]),
    ]


def test_flush_cost_follows_what_changed_not_what_is_loaded(session, conn):
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO users (id, name, score) VALUES (?, ?, 0.0)",
                     [(n, f"u{n}") for n in range(1, 1001)])
    conn.execute("COMMIT")
    users = session.all(User)
    assert len(users) == 1000
    users[500].name = "changed"
    with uow.capture_sql() as statements:
        session.flush()
    assert folded(statements) == [
        ('SAVEPOINT "uow_flush"', ()),
        ('UPDATE "users" SET "name" = ? WHERE "users"."id" = ?', [("changed", 501)]),
        ('RELEASE "uow_flush"', ()),
    ]


def test_changing_a_natural_primary_key_updates_the_row_by_its_old_key(session, conn):
    country = Country(code="fr", name="France")
    session.add(country)
    session.commit()
    country.code = "fx"
    with uow.capture_sql() as statements:
        session.flush()
    assert ('UPDATE "countries" SET "code" = ? WHERE "countries"."code" = ?', [("fx", "fr")]) in folded(statements)
    assert conn.execute("SELECT code FROM countries").fetchall() == [("fx",)]
    assert session.identity_map[(Country, ("fx",))] is country
    assert (Country, ("fr",)) not in session.identity_map
    assert uow.identity_key(instance=country) == (Country, ("fx",))
    with uow.capture_sql() as statements:
        assert session.get(Country, "fx") is country
    assert statements == []
    assert session.get(Country, "fr") is None


def test_changing_a_natural_key_repoints_loaded_children_and_rollback_restores_both(session, conn):
    country = Country(code="fr", name="France")
    session.add(country)
    session.flush()
    city = City(country="fr", name="Paris")
    session.add(city)
    session.commit()
    country.code = "fx"
    session.flush()
    assert conn.execute("SELECT country FROM cities").fetchall() == [("fx",)]
    assert city.country == "fx"
    assert session.dirty_fields(city) == []
    with uow.capture_sql() as statements:
        session.rollback()
        assert (country.code, city.country) == ("fr", "fr")
    assert sql_of(statements) == ["ROLLBACK"]
    assert conn.execute("SELECT country FROM cities").fetchall() == [("fr",)]
    assert session.get(Country, "fr") is country


def test_changing_part_of_a_composite_key(session, conn):
    pair = Pair(a=1, b="x")
    session.add(pair)
    session.commit()
    pair.b = "y"
    session.commit()
    assert conn.execute("SELECT a, b FROM pairs").fetchall() == [(1, "y")]
    assert session.get(Pair, (1, "y")) is pair


def test_changing_a_generated_key(session, conn, ann):
    old = ann.id
    ann.id = 100
    session.commit()
    assert conn.execute("SELECT id FROM users").fetchall() == [(100,)]
    assert session.get(User, 100) is ann
    assert (User, (old,)) not in session.identity_map


def test_swapping_two_keys_in_one_flush_is_a_cycle_refused_before_any_sql(session, conn):
    """Each row must give up its key before the other takes it; the error says how to do it in
    two flushes, and the session stays usable to do so."""
    a, b = Country(code="aa", name="A"), Country(code="bb", name="B")
    session.add_all([a, b])
    session.commit()
    a.code, b.code = "bb", "aa"
    with uow.capture_sql() as statements, pytest.raises(errors.CycleError, match="countries.code = 'aa' is unique"):
        session.flush()
    assert statements == []
    a.code = "tmp"
    session.flush()
    a.code = "bb"
    session.commit()
    assert conn.execute("SELECT code, name FROM countries ORDER BY code").fetchall() == [("aa", "B"), ("bb", "A")]
    assert session.get(Country, "aa") is b


# -- changes Python calls equal but the database tells apart -------------------------------

@pytest.mark.parametrize("field, before, after", [
    ("dec", Decimal("1.10"), Decimal("1.1")),
    ("dec", Decimal("0"), Decimal("0.000")),
    ("dec", Decimal("0"), Decimal("-0")),
    ("dt", datetime.datetime(2024, 1, 1, 12, tzinfo=datetime.timezone.utc),
     datetime.datetime(2024, 1, 1, 13, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))),
], ids=["decimal-trailing-zero", "decimal-exponent", "decimal-sign", "datetime-offset"])
def test_a_change_between_equal_but_different_values_is_written(session, conn, field, before, after):
    sample = Sample(**{field: before})
    session.add(sample)
    session.commit()
    setattr(sample, field, after)
    assert session.dirty_fields(sample) == [field]
    session.commit()
    reader = uow.Session(conn)
    assert same(getattr(reader.get(Sample, sample.id), field)) == same(after)
    reader.close()


def test_changing_zero_to_minus_zero_is_refused_not_ignored(session, conn):
    sample = Sample(f=0.0)
    session.add(sample)
    session.commit()
    sample.f = -0.0
    with uow.capture_sql() as statements, pytest.raises(errors.ColumnValueError, match="Sample.f"):
        session.flush()
    assert statements == []


def test_assigning_an_equal_value_of_the_wrong_type_is_refused_not_ignored(session):
    sample = Sample(flag=False, i=1)
    session.add(sample)
    session.commit()
    sample.flag = 0
    with pytest.raises(errors.ColumnValueError, match="Sample.flag"):
        session.flush()
    sample.flag = False
    sample.i = True
    with pytest.raises(errors.ColumnValueError, match="Sample.i"):
        session.flush()


# -- refresh and expire --------------------------------------------------------------------

def test_refresh_discards_unflushed_changes_without_autoflush(session, ann, conn):
    ann.name = "changed"
    ann.score = 5.0
    with uow.capture_sql() as statements:
        session.refresh(ann)
    assert not any(s.startswith("UPDATE") for s in sql_of(statements))
    assert [s for s in sql_of(statements) if s.startswith("SELECT")] == [
        'SELECT "users"."id", "users"."name", "users"."email", "users"."score", "users"."joined" '
        'FROM "users" WHERE "users"."id" = ?'
    ]
    assert (ann.name, ann.score) == ("ann", 1.0)
    assert session.dirty_fields(ann) == []
    assert session.dirty == frozenset()


def test_refresh_of_some_fields(session, ann):
    ann.name = "changed"
    ann.score = 5.0
    with uow.capture_sql() as statements:
        session.refresh(ann, ["name"])
    assert 'SELECT "users"."name" FROM "users" WHERE "users"."id" = ?' in sql_of(statements)
    assert ann.name == "ann"
    assert ann.score == 5.0
    assert session.dirty_fields(ann) == ["score"]


def test_refresh_sees_what_another_connection_committed(file_session, other):
    user = User(name="ann")
    file_session.add(user)
    file_session.commit()
    other.execute("UPDATE users SET name = 'bob' WHERE id = ?", (user.id,))
    file_session.refresh(user)
    assert user.name == "bob"
    assert file_session.dirty_fields(user) == []


def test_refresh_of_a_pending_object_is_refused(session):
    user = User(name="ann")
    session.add(user)
    with pytest.raises(errors.InvalidStateError, match="User"):
        session.refresh(user)


def test_refresh_of_an_object_whose_row_is_gone(file_session, other):
    user = User(name="ann")
    file_session.add(user)
    file_session.commit()
    other.execute("DELETE FROM users")
    with pytest.raises(errors.ObjectDeletedError):
        file_session.refresh(user)


def test_expire_reloads_on_next_access_not_before(session, ann):
    ann.name = "changed"
    with uow.capture_sql() as statements:
        session.expire(ann, ["name"])
    assert statements == []
    with uow.capture_sql() as statements:
        assert ann.score == 1.0  # not expired: no SQL
    assert statements == []
    with uow.capture_sql() as statements:
        assert ann.name == "ann"
    assert [s for s in sql_of(statements) if s.startswith("SELECT")] == [
        'SELECT "users"."id", "users"."name", "users"."email", "users"."score", "users"."joined" '
        'FROM "users" WHERE "users"."id" = ?'
    ]
    with uow.capture_sql() as statements:
        assert ann.name == "ann"
    assert statements == []
    assert session.dirty_fields(ann) == []


def test_expire_whole_object(session, ann):
    ann.score = 7.0
    session.expire(ann)
    assert session.dirty == frozenset()
    with uow.capture_sql() as statements:
        assert ann.score == 1.0
        assert ann.email == "ann@x"
    assert len([s for s in sql_of(statements) if s.startswith("SELECT")]) == 1


def test_expire_sees_what_another_connection_committed(file_session, other):
    user = User(name="ann")
    file_session.add(user)
    file_session.commit()
    other.execute("UPDATE users SET name = 'bob' WHERE id = ?", (user.id,))
    file_session.expire(user)
    assert user.name == "bob"


SELECT_USER = ('SELECT "users"."id", "users"."name", "users"."email", "users"."score", "users"."joined" '
               'FROM "users" WHERE "users"."id" = ?')


def _committed_then_expired(file_session):
    """A committed user, expired; and its key (read before the expiry: reading an expired field
    would begin a read transaction, and the other connection could not write)."""
    user = User(name="ann")
    file_session.add(user)
    file_session.commit()
    key = user.id
    file_session.expire(user)
    return user, key


def test_get_of_an_expired_object_whose_row_another_connection_deleted_returns_none(file_session, other):
    """One SELECT finds the row gone: the object leaves the session, as for a key it does not hold."""
    user, key = _committed_then_expired(file_session)
    other.execute("DELETE FROM users WHERE id = ?", (key,))
    with uow.capture_sql() as statements:
        assert file_session.get(User, key) is None
    assert [(sql, params) for sql, params in folded(statements) if sql.startswith("SELECT")] == [
        (SELECT_USER, (key,))]
    assert uow.state_of(user) is uow.ObjectState.DETACHED and user not in file_session
    assert len(file_session.identity_map) == 0
    assert file_session.get(User, key) is None  # a plain miss now
    assert other.execute("SELECT count(*) FROM users").fetchone()[0] == 0


def test_get_of_an_expired_object_reloads_it_with_what_was_committed_since(file_session, other):
    user, key = _committed_then_expired(file_session)
    other.execute("UPDATE users SET name = 'bob' WHERE id = ?", (key,))
    with uow.capture_sql() as statements:
        assert file_session.get(User, key) is user
        assert user.name == "bob"
    assert [sql for sql in sql_of(statements) if sql.startswith("SELECT")] == [SELECT_USER]


def test_get_by_a_composite_key_of_an_expired_object_whose_row_is_gone_returns_none(file_session, other):
    pair = Pair(a=1, b="x")
    file_session.add(pair)
    file_session.commit()
    file_session.expire(pair)
    other.execute("DELETE FROM pairs")
    assert file_session.get(Pair, (1, "x")) is None
    assert uow.state_of(pair) is uow.ObjectState.DETACHED


def test_rollback_brings_back_an_object_get_found_without_a_row(file_session, other):
    user, key = _committed_then_expired(file_session)
    other.execute("DELETE FROM users WHERE id = ?", (key,))
    assert file_session.get(User, key) is None
    file_session.rollback()  # undoes the drop and the expire() before it: as at the last commit
    assert uow.state_of(user) is uow.ObjectState.PERSISTENT
    assert file_session.identity_map[(User, (key,))] is user
    assert user.__dict__["name"] == "ann"


def test_get_of_a_held_object_with_loaded_key_runs_no_sql_even_if_other_fields_were_expired(session, ann):
    session.expire(ann, ["name"])
    with uow.capture_sql() as statements:
        assert session.get(User, ann.id) is ann
    assert statements == []


def test_expire_all(session):
    users = [User(name=f"u{i}") for i in range(3)]
    session.add_all(users)
    session.commit()
    with uow.capture_sql() as statements:
        session.expire_all()
    assert statements == []
    with uow.capture_sql() as statements:
        assert [u.name for u in users] == ["u0", "u1", "u2"]
    assert len([s for s in sql_of(statements) if s.startswith("SELECT")]) == 3


def test_assigning_an_expired_field_counts_as_a_change(session, ann, conn):
    session.expire(ann, ["name"])
    ann.name = "bob"
    assert session.dirty_fields(ann) == ["name"]
    session.commit()
    assert conn.execute("SELECT name FROM users").fetchall() == [("bob",)]


def test_expire_of_an_unknown_field(session, ann):
    with pytest.raises(errors.UnknownFieldError, match="nmae"):
        session.expire(ann, ["nmae"])


def test_values_are_kept_after_commit_by_default(session, ann):
    ann.name = "bob"
    session.commit()
    with uow.capture_sql() as statements:
        assert ann.name == "bob"
        assert ann.score == 1.0
    assert statements == []


def test_expire_on_commit_reloads_after_commit(conn):
    session = uow.Session(conn, expire_on_commit=True)
    user = User(name="ann")
    session.add(user)
    session.commit()
    with uow.capture_sql() as statements:
        assert user.name == "ann"
    assert [s for s in sql_of(statements) if s.startswith("SELECT")] == [
        'SELECT "users"."id", "users"."name", "users"."email", "users"."score", "users"."joined" '
        'FROM "users" WHERE "users"."id" = ?'
    ]
    session.close()


def test_expire_on_commit_picks_up_other_writers(tmp_path):
    path = str(tmp_path / "x.db")
    connection = uow.connect(path)
    uow.create_all(connection, [User])
    session = uow.Session(connection, expire_on_commit=True)
    user = User(name="ann")
    session.add(user)
    session.commit()
    writer = uow.connect(path)
    writer.execute("UPDATE users SET name = 'bob'")
    writer.close()
    assert user.name == "bob"
    session.close()
    connection.close()
