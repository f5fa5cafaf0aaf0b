"""Objects that come from elsewhere: merge, upsert, save_or_update, update and mark_dirty.

Every claim about what was committed is checked from a second, plain sqlite3 connection to the
same file; every claim about "no SQL" is checked with capture_sql().
"""


import pytest

import uow
from uow import Column, Entity, ObjectState, Session, errors, object_session, state_of

from .helpers import folded, sql_of
from .models import ALL_MODELS, City, Country, Stamp, User
from .seeded import seeded_fixtures


class MergeBase(Entity, abstract=True):
    pass


class Ticket(MergeBase, table="merge_tickets"):
    """A versioned entity: upsert must refuse it."""

    id: int = Column(primary_key=True)
    title: str
    version: int = Column(version=True)


class Note(MergeBase, table="merge_notes"):
    """A natural key and a JSON column, to check that merge does not share mutable values."""

    code: str = Column(primary_key=True)
    tags: list = Column(default_factory=list)


class Seat(MergeBase, table="merge_seats"):
    """A composite natural key and a column with an SQL DEFAULT: an upsert of only the key."""

    section: str = Column(primary_key=True)
    number: int = Column(primary_key=True)
    holder: str | None = Column(server_default="'nobody'")


MODELS = ALL_MODELS + [Ticket, Note, Seat]
UPDATE_NAME = 'UPDATE "countries" SET "name" = ? WHERE "countries"."code" = ?'
UPDATE_TAGS = 'UPDATE "merge_notes" SET "tags" = ? WHERE "merge_notes"."code" = ?'


def _create(connection):
    uow.create_all(connection, MODELS)
    connection.execute("INSERT INTO countries (code, name) VALUES ('fr', 'France'), ('it', 'Italy')")
    connection.execute("INSERT INTO users (id, name, email, score) VALUES (1, 'ann', 'ann@x.org', 0.0)")
    connection.execute("INSERT INTO merge_tickets (id, title, version) VALUES (1, 'old', 1)")
    connection.execute("""INSERT INTO merge_notes (code, tags) VALUES ('n', '["a"]')""")


template, path, conn, session, file_session, other = seeded_fixtures(_create, "merging")


def detached_country(path, code):
    """A Country loaded by another session on its own connection, committed, then detached by close()."""
    connection = uow.connect(path)
    s = Session(connection)
    obj = s.get(Country, code)
    s.commit()
    s.close()
    connection.close()
    assert state_of(obj) is ObjectState.DETACHED
    return obj


def without_begin(statements):
    return [sql for sql in sql_of(statements) if not sql.startswith("BEGIN")]


# -- merge(load=True) -------------------------------------------------------------------------

def test_merge_onto_the_held_object_runs_no_sql(session):
    held = session.get(Country, "fr")
    given = Country(code="fr", name="La France")
    with uow.capture_sql() as statements:
        result = session.merge(given)
    assert statements == []
    assert result is held
    assert held.name == "La France"
    assert session.dirty_fields(held) == ["name"]
    assert session.original_value(held, "name") == "France"


def test_merge_loads_the_row_when_nothing_holds_it(session):
    given = Country(code="fr", name="La France")
    with uow.capture_sql() as statements:
        result = session.merge(given)
    assert [sql.split()[0] for sql in without_begin(statements)] == ["SELECT"]
    assert result is not given
    assert state_of(result) is ObjectState.PERSISTENT
    assert session.get(Country, "fr") is result
    assert result.name == "La France"
    assert session.dirty_fields(result) == ["name"]
    assert session.original_value(result, "name") == "France"


def test_merge_of_a_detached_object_is_committed_and_the_object_stays_detached(path, file_session, other):
    detached = detached_country(path, "fr")
    detached.name = "La France"
    result = file_session.merge(detached)
    assert result is not detached
    assert state_of(detached) is ObjectState.DETACHED
    assert object_session(detached) is None
    assert object_session(result) is file_session
    with uow.capture_sql() as statements:
        file_session.commit()
    assert (UPDATE_NAME, [("La France", "fr")]) in folded(statements)
    assert other.execute("SELECT name FROM countries WHERE code = 'fr'").fetchall() == [("La France",)]


def test_merge_of_an_expired_detached_object_uses_its_identity(path, file_session, other):
    """expire_on_commit expires the object, close() detaches it; the object still knows its key."""
    connection = uow.connect(path)
    first = Session(connection, expire_on_commit=True)
    detached = first.get(Country, "fr")
    first.commit()
    first.close()
    connection.close()
    assert "code" not in detached.__dict__ and uow.identity_key(instance=detached) == (Country, ("fr",))
    detached.name = "La France"
    result = file_session.merge(detached)
    assert state_of(result) is ObjectState.PERSISTENT
    assert result.code == "fr"
    file_session.commit()
    assert other.execute("SELECT code, name FROM countries ORDER BY code").fetchall() == [
        ("fr", "La France"), ("it", "Italy")]


def test_merge_without_a_row_makes_a_new_pending_object(file_session, other):
    given = Country(code="de", name="Germany")
    result = file_session.merge(given)
    assert result is not given
    assert state_of(result) is ObjectState.PENDING
    assert file_session.new == {result}
    assert (result.code, result.name) == ("de", "Germany")
    assert state_of(given) is ObjectState.TRANSIENT
    assert object_session(given) is None
    file_session.commit()
    assert other.execute("SELECT name FROM countries WHERE code = 'de'").fetchall() == [("Germany",)]


def test_merge_without_a_key_makes_a_new_pending_object_and_the_given_one_gets_no_key(file_session, other):
    given = User(name="bob")
    result = file_session.merge(given)
    assert state_of(result) is ObjectState.PENDING
    file_session.commit()
    assert isinstance(result.id, int) and result.id != 1
    assert given.id is None
    assert state_of(given) is ObjectState.TRANSIENT
    assert other.execute("SELECT name FROM users WHERE id = ?", (result.id,)).fetchall() == [("bob",)]


@pytest.mark.parametrize("held", [True, False], ids=["held", "loaded"])
def test_merge_leaves_the_given_object_exactly_as_it_was(session, held):
    if held:
        session.get(Country, "fr")
    given = Country(code="fr", name="La France")
    before = dict(given.__dict__)
    result = session.merge(given)
    result.name = "changed afterwards"
    assert given.__dict__ == before
    assert "_uow_state" not in given.__dict__
    assert given not in session


def test_merging_twice_gives_the_same_object(session):
    first = session.merge(Country(code="fr", name="one"))
    second = session.merge(Country(code="fr", name="two"))
    assert first is second
    assert first.name == "two"


def test_merge_of_an_object_of_this_session_returns_it_unchanged(session):
    held = session.get(Country, "fr")
    held.name = "edited"
    assert session.merge(held) is held
    assert held.name == "edited"


def test_rollback_undoes_a_merge_onto_a_held_object(session):
    held = session.get(Country, "fr")
    session.commit()
    session.merge(Country(code="fr", name="La France"))
    session.rollback()
    assert held.name == "France"
    assert session.dirty == frozenset()


def test_merge_does_not_share_a_json_value_with_the_given_object(path):
    """The given object is left unchanged, also when the session's object is changed in place later."""
    changed = {}
    for load in (True, False):
        for held in (True, False):
            connection = uow.connect(path)
            session = Session(connection)
            if held:
                session.get(Note, "n")
            given = Note(code="n", tags=["a", "b"])
            result = session.merge(given, load=load)
            result.tags.append("c")
            changed[f"load={load}, held={held}"] = given.tags
            session.close()
            connection.close()
    connection = uow.connect(path)
    session = Session(connection)
    given = Note(code="no row yet", tags=["a", "b"])
    session.merge(given).tags.append("c")
    changed["no row"] = given.tags
    session.close()
    connection.close()
    assert changed == {combination: ["a", "b"] for combination in changed}


def test_merge_of_a_current_versioned_object_updates_and_bumps_the_version(file_session, other):
    result = file_session.merge(Ticket(id=1, title="new", version=1))
    assert file_session.dirty_fields(result) == ["title"]
    file_session.commit()
    assert other.execute("SELECT title, version FROM merge_tickets").fetchall() == [("new", 2)]


def test_merge_of_a_current_versioned_object_onto_an_expired_held_object(file_session, other):
    """The held object's snapshot has no version (expired, as after expire_on_commit or a
    rollback): the merge compares with the version the row holds, not with NOT_LOADED."""
    held = file_session.get(Ticket, 1)
    file_session.expire(held)
    result = file_session.merge(Ticket(id=1, title="new", version=1))
    assert result is held and held.title == "new"
    file_session.commit()
    assert other.execute("SELECT title, version FROM merge_tickets").fetchall() == [("new", 2)]


def test_merge_of_a_stale_versioned_object_is_a_stale_data_error(file_session, other):
    """upsert() sends users to merge() and commit() because they check the version."""
    other.execute("UPDATE merge_tickets SET title = 'theirs', version = 2 WHERE id = 1")
    stale = Ticket(id=1, title="mine", version=1)
    with pytest.raises(errors.StaleDataError):
        file_session.merge(stale)
        file_session.commit()
    file_session.rollback()
    assert other.execute("SELECT title, version FROM merge_tickets").fetchall() == [("theirs", 2)]


def test_a_stale_merge_error_names_the_object_and_both_versions(file_session, other):
    other.execute("UPDATE merge_tickets SET title = 'theirs', version = 2 WHERE id = 1")
    stale = Ticket(id=1, title="mine", version=1)
    with pytest.raises(errors.StaleDataError) as raised:
        file_session.merge(stale)
    assert raised.value.obj is stale
    assert (raised.value.expected, raised.value.found) == (1, 2)
    message = str(raised.value)
    assert message.startswith("merge(): Ticket(id=1, title='mine', version=1)")
    assert "Ticket.version = 1, but the row is at version 2" in message


# -- merge(load=False) ------------------------------------------------------------------------

def test_merge_without_loading_runs_no_sql_and_returns_a_clean_persistent_object(session):
    given = Country(code="fr", name="France")
    with uow.capture_sql() as statements:
        result = session.merge(given, load=False)
        assert session.get(Country, "fr") is result
    assert statements == []
    assert result is not given
    assert state_of(result) is ObjectState.PERSISTENT
    assert session.dirty_fields(result) == []
    assert not session.is_modified(result)
    assert session.dirty == frozenset() and session.new == frozenset()
    assert state_of(given) is ObjectState.TRANSIENT
    with uow.capture_sql() as statements:
        session.flush()
    assert statements == []


def test_merge_without_loading_trusts_the_values_then_tracks_changes(file_session, other):
    result = file_session.merge(Country(code="fr", name="France"), load=False)
    result.name = "La France"
    assert file_session.dirty_fields(result) == ["name"]
    with uow.capture_sql() as statements:
        file_session.commit()
    assert (UPDATE_NAME, [("La France", "fr")]) in folded(statements)
    assert other.execute("SELECT name FROM countries WHERE code = 'fr'").fetchall() == [("La France",)]


def test_merge_without_loading_onto_a_held_object_makes_it_clean(session):
    held = session.get(Country, "fr")
    held.name = "edited"
    with uow.capture_sql() as statements:
        result = session.merge(Country(code="fr", name="From cache"), load=False)
    assert statements == []
    assert result is held
    assert held.name == "From cache"
    assert session.dirty_fields(held) == []
    assert session.original_value(held, "name") == "From cache"


def test_rollback_expires_an_object_merged_without_loading(file_session):
    """load=False trusts the given values like a load: a rollback forgets them, and the object
    reloads from its row (here the cache was out of date)."""
    result = file_session.merge(Country(code="fr", name="From cache"), load=False)
    file_session.rollback()
    assert state_of(result) is ObjectState.PERSISTENT
    with uow.capture_sql() as statements:
        assert file_session.get(Country, "fr") is result  # expired: get() reloads it
    assert [sql.split()[0] for sql in without_begin(statements)] == ["SELECT"]
    assert result.name == "France"


def test_merge_without_loading_refuses_unflushed_changes(path, session):
    detached = detached_country(path, "fr")
    detached.name = "changed while detached"
    with uow.capture_sql() as statements:
        with pytest.raises(errors.InvalidStateError, match=r"merge\(load=False\).*unflushed changes.*name"):
            session.merge(detached, load=False)
    assert statements == []
    assert len(session.identity_map) == 0


def test_merge_without_loading_refuses_an_object_without_a_key(session):
    with uow.capture_sql() as statements:
        with pytest.raises(errors.InvalidStateError, match=r"merge\(load=False\).*primary key column\(s\) User.id;"):
            session.merge(User(name="bob"), load=False)
    assert statements == []
    assert session.new == frozenset() and len(session.identity_map) == 0


@pytest.mark.parametrize("given, missing", [
    ({"section": "A", "number": None}, "Seat.number"),
    ({"section": None, "number": 7}, "Seat.section"),
    ({"section": None, "number": None}, "Seat.section, Seat.number"),
])
def test_merge_without_loading_names_the_key_columns_it_lacks(session, given, missing):
    """A composite key set only in part was reported as "no primary key", which it had."""
    seat = Seat(**given)
    with uow.capture_sql() as statements, pytest.raises(errors.InvalidStateError) as caught:
        session.merge(seat, load=False)
    assert str(caught.value) == (
        f"merge(load=False): {seat!r} has no value for the primary key column(s) {missing}; load=False "
        f"needs the whole key of an existing row: set them, or merge() with loading to insert a new row")
    assert statements == []
    assert session.new == frozenset() and len(session.identity_map) == 0


def test_merge_without_loading_tracks_in_place_changes_of_json_values(file_session):
    result = file_session.merge(Note(code="n", tags=["a"]), load=False)
    result.tags.append("b")
    assert file_session.dirty == {result}
    with uow.capture_sql() as statements:
        file_session.flush()
    assert (UPDATE_TAGS, [('["a","b"]', "n")]) in folded(statements)


# -- upsert -----------------------------------------------------------------------------------

def test_upsert_is_one_insert_on_conflict_do_update_statement(session):
    with uow.capture_sql() as statements:
        session.upsert(Country(code="fr", name="La France"))
    [sql] = without_begin(statements)
    assert sql.startswith('INSERT INTO "countries" ("code", "name") VALUES (?, ?) ON CONFLICT ("code") DO UPDATE SET')
    assert '"name" = excluded."name"' in sql


def test_upsert_inserts_a_new_row_and_the_object_becomes_persistent(file_session, other):
    given = Country(code="de", name="Germany")
    result = file_session.upsert(given)
    assert result is given
    assert state_of(given) is ObjectState.PERSISTENT
    assert file_session.get(Country, "de") is given
    assert file_session.dirty_fields(given) == []
    file_session.commit()
    assert other.execute("SELECT name FROM countries WHERE code = 'de'").fetchall() == [("Germany",)]


def test_upsert_updates_an_existing_row_nothing_held(file_session, other):
    given = Country(code="fr", name="La France")
    result = file_session.upsert(given)
    assert result is given
    assert state_of(given) is ObjectState.PERSISTENT
    assert file_session.get(Country, "fr") is given
    file_session.commit()
    assert other.execute("SELECT code, name FROM countries ORDER BY code").fetchall() == [
        ("fr", "La France"), ("it", "Italy")]


def test_upsert_updates_the_held_object_which_ends_clean(file_session, other):
    held = file_session.get(Country, "fr")
    given = Country(code="fr", name="La France")
    result = file_session.upsert(given)
    assert result is held
    assert held.name == "La France"
    assert file_session.dirty_fields(held) == []
    assert file_session.original_value(held, "name") == "La France"
    assert state_of(given) is ObjectState.TRANSIENT
    with uow.capture_sql() as statements:
        file_session.commit()
    assert without_begin(statements) == ["COMMIT"]
    assert other.execute("SELECT name FROM countries WHERE code = 'fr'").fetchall() == [("La France",)]


def test_upsert_gives_the_object_what_the_database_holds(session):
    session.upsert(Stamp(code="s", n=7))
    kept = Stamp(code="s", note="second")  # n is not given: the row keeps its 7
    result = session.upsert(kept)
    assert (result.n, result.note) == (7, "second")
    fresh = session.upsert(Stamp(code="t", note="x"))
    assert fresh.n == 42  # the SQL DEFAULT, read back


def test_upsert_of_only_a_key_inserts_the_row_or_leaves_the_existing_one_alone(session):
    with uow.capture_sql() as statements:
        new = session.upsert(Stamp(code="s"))
    assert without_begin(statements) == [
        'INSERT INTO "stamps" ("code") VALUES (?) ON CONFLICT ("code") DO NOTHING RETURNING "code", "n", "note"']
    assert (new.n, new.note) == (42, "fresh")
    session.execute("INSERT INTO stamps (code, n, note) VALUES ('t', 7, 'kept')")
    given = Stamp(code="t")
    with uow.capture_sql() as statements:
        result = session.upsert(given)
    # DO NOTHING returns no row, so the row is read back.
    assert [sql.split()[0] for sql in without_begin(statements)] == ["INSERT", "SELECT"]
    assert result is given
    assert (given.n, given.note) == (7, "kept")
    assert state_of(given) is ObjectState.PERSISTENT
    assert session.dirty_fields(given) == []
    assert session.scalars("SELECT n FROM stamps ORDER BY code") == [42, 7]


def test_upsert_of_only_a_composite_key_reads_the_existing_row_back_by_every_key_column(session):
    session.execute("INSERT INTO merge_seats (section, number, holder) VALUES ('A', 2, 'other'), ('A', 1, 'kept')")
    given = Seat(section="A", number=1)
    with uow.capture_sql() as statements:
        result = session.upsert(given)
    assert folded(statements) == [
        ('INSERT INTO "merge_seats" ("section", "number") VALUES (?, ?) ON CONFLICT ("section", "number") '
         'DO NOTHING RETURNING "section", "number", "holder"', ("A", 1)),
        ('SELECT "merge_seats"."section", "merge_seats"."number", "merge_seats"."holder" FROM "merge_seats" '
         'WHERE "merge_seats"."section" = ? AND "merge_seats"."number" = ?', ("A", 1)),
    ]
    assert result is given
    assert (given.section, given.number, given.holder) == ("A", 1, "kept")
    assert session.dirty_fields(given) == []


def test_upsert_begins_the_transaction_for_writing(session):
    """A transaction that will write begins IMMEDIATE (see the README: uow owns the transaction)."""
    with uow.capture_sql() as statements:
        session.upsert(Country(code="de", name="Germany"))
    assert sql_of(statements)[0] == "BEGIN IMMEDIATE"


def test_upsert_flushes_pending_changes_first(file_session, other):
    held = file_session.get(Country, "it")
    held.name = "Italia"
    file_session.add(Country(code="de", name="Germany"))
    with uow.capture_sql() as statements:
        file_session.upsert(City(id=10, country="de", name="Berlin"))  # needs the pending parent
    verbs = [sql.split()[0] for sql in without_begin(statements) if not sql.startswith(("SAVEPOINT", "RELEASE"))]
    assert verbs[-1] == "INSERT" and "ON CONFLICT" in without_begin(statements)[-1]
    assert verbs.count("INSERT") == 2 and verbs.count("UPDATE") == 1
    assert file_session.new == frozenset() and file_session.dirty == frozenset()
    file_session.commit()
    assert other.execute("SELECT id, country, name FROM cities").fetchall() == [(10, "de", "Berlin")]
    assert other.execute("SELECT name FROM countries WHERE code = 'it'").fetchall() == [("Italia",)]


def test_upsert_refuses_a_versioned_entity(session):
    with uow.capture_sql() as statements:
        with pytest.raises(errors.InvalidStateError, match="version"):
            session.upsert(Ticket(id=1, title="new"))
    assert statements == []


@pytest.mark.parametrize("flushed", [False, True], ids=["marked", "row deleted"])
def test_upsert_refuses_an_object_deleted_in_this_transaction(file_session, other, flushed):
    """As add() does: the object's row is (about to be) gone, and rollback() is what brings it back."""
    france = file_session.get(Country, "fr")
    file_session.delete(france)
    if flushed:
        file_session.flush()
    before = (file_session.new, file_session.deleted, dict(file_session.identity_map), state_of(france))
    with uow.capture_sql() as statements:
        with pytest.raises(errors.InvalidStateError) as raised:
            file_session.upsert(france)
    assert statements == []
    assert str(raised.value) == (f"upsert(): {france!r} is deleted in this transaction; rollback() to bring it "
                                 f"back, or upsert a new object with its key")
    assert (file_session.new, file_session.deleted, dict(file_session.identity_map), state_of(france)) == before
    file_session.rollback()
    assert state_of(france) is ObjectState.PERSISTENT
    assert file_session.upsert(france) is france
    file_session.commit()
    assert other.execute("SELECT code, name FROM countries WHERE code = 'fr'").fetchall() == [("fr", "France")]


def test_upsert_refuses_an_object_without_a_key(session):
    with uow.capture_sql() as statements:
        with pytest.raises(errors.InvalidStateError, match="no primary key"):
            session.upsert(User(name="bob"))
    assert statements == []


def test_upsert_refuses_a_bad_value_before_its_statement(session):
    with uow.capture_sql() as statements:
        with pytest.raises(errors.ColumnValueError):
            session.upsert(User(id=5, name="bob", score=float("nan")))
    assert not any(sql.startswith("INSERT") for sql in sql_of(statements))
    assert session.get(User, 5) is None


def test_rollback_undoes_an_upsert(file_session, other):
    held = file_session.get(Country, "fr")
    file_session.commit()
    file_session.upsert(Country(code="fr", name="La France"))
    given = Country(code="de", name="Germany")
    file_session.upsert(given)
    file_session.rollback()
    assert held.name == "France"
    assert state_of(given) is ObjectState.TRANSIENT
    assert file_session.get(Country, "de") is None
    assert other.execute("SELECT code, name FROM countries ORDER BY code").fetchall() == [
        ("fr", "France"), ("it", "Italy")]


def test_upsert_keeps_tracking_in_place_changes_of_json_values(file_session):
    held = file_session.get(Note, "n")
    file_session.upsert(Note(code="n", tags=["x"]))
    held.tags.append("y")
    assert file_session.dirty == {held}
    given = Note(code="m", tags=[])
    file_session.upsert(given)  # flushes first: held's in-place change is written
    assert file_session.scalar("SELECT tags FROM merge_notes WHERE code = 'n'") == '["x","y"]'
    given.tags.append("z")
    assert file_session.dirty == {given}


# -- update and save_or_update ----------------------------------------------------------------

@pytest.mark.parametrize("method", ["update", "save_or_update"])
def test_attaching_a_detached_object_flushes_its_detached_changes(path, file_session, other, method):
    detached = detached_country(path, "fr")
    detached.name = "La France"
    getattr(file_session, method)(detached)
    assert state_of(detached) is ObjectState.PERSISTENT
    assert file_session.get(Country, "fr") is detached
    assert file_session.dirty_fields(detached) == ["name"]
    with uow.capture_sql() as statements:
        file_session.commit()
    assert (UPDATE_NAME, [("La France", "fr")]) in folded(statements)
    assert other.execute("SELECT name FROM countries WHERE code = 'fr'").fetchall() == [("La France",)]


def test_save_or_update_adds_a_transient_object(file_session, other):
    new = Country(code="de", name="Germany")
    file_session.save_or_update(new)
    assert state_of(new) is ObjectState.PENDING
    file_session.commit()
    assert other.execute("SELECT name FROM countries WHERE code = 'de'").fetchall() == [("Germany",)]


def test_save_or_update_of_an_object_already_here_does_nothing(session):
    held = session.get(Country, "fr")
    with uow.capture_sql() as statements:
        session.save_or_update(held)
    assert statements == []
    assert state_of(held) is ObjectState.PERSISTENT and session.dirty == frozenset()


def test_update_of_a_transient_object_is_an_error(session):
    new = Country(code="de", name="Germany")
    with pytest.raises(errors.InvalidStateError, match=r"update\(\).*transient.*add\(\)"):
        session.update(new)
    assert state_of(new) is ObjectState.TRANSIENT
    assert session.new == frozenset()


def test_update_of_a_pending_object_is_an_error(session):
    new = Country(code="de", name="Germany")
    session.add(new)
    with pytest.raises(errors.InvalidStateError, match="pending"):
        session.update(new)
    assert state_of(new) is ObjectState.PENDING


@pytest.mark.parametrize("method", ["update", "save_or_update"])
def test_attaching_over_a_held_identity_is_a_duplicate_identity_error(path, session, method):
    held = session.get(Country, "fr")
    detached = detached_country(path, "fr")
    with pytest.raises(errors.DuplicateIdentityError) as raised:
        getattr(session, method)(detached)
    assert "'fr'" in str(raised.value) and "merge()" in str(raised.value)
    assert state_of(detached) is ObjectState.DETACHED
    assert session.get(Country, "fr") is held


def test_update_of_an_object_of_another_session_is_an_error(session, path):
    connection = uow.connect(path)
    elsewhere = Session(connection)
    try:
        obj = elsewhere.get(Country, "fr")
        with pytest.raises(errors.InvalidStateError):
            session.update(obj)
        assert object_session(obj) is elsewhere
    finally:
        elsewhere.close()
        connection.close()


def test_update_keeps_tracking_in_place_changes_of_json_values_after_a_flush(path, file_session, other):
    connection = uow.connect(path)
    first = Session(connection)
    note = first.get(Note, "n")
    first.commit()
    first.close()
    connection.close()
    file_session.update(note)
    note.tags.append("b")
    file_session.flush()
    note.tags.append("c")
    assert file_session.dirty == {note}
    file_session.commit()
    assert other.execute("SELECT tags FROM merge_notes WHERE code = 'n'").fetchall() == [('["a","b","c"]',)]


# -- mark_dirty -------------------------------------------------------------------------------

def test_mark_dirty_makes_the_next_flush_write_every_non_key_column(file_session, other):
    user = file_session.get(User, 1)
    file_session.mark_dirty(user)
    with uow.capture_sql() as statements:
        file_session.flush()
    assert folded(statements)[-2:] == [
        ('UPDATE "users" SET "name" = ?, "email" = ?, "score" = ?, "joined" = ? WHERE "users"."id" = ?',
         [("ann", "ann@x.org", 0.0, "today", 1)]),
        ('RELEASE "uow_flush"', ()),
    ]
    with uow.capture_sql() as statements:
        file_session.flush()
    assert statements == []
    file_session.commit()
    assert other.execute("SELECT name, email FROM users WHERE id = 1").fetchall() == [("ann", "ann@x.org")]


def test_rollback_forgets_mark_dirty(session):
    user = session.get(User, 1)
    session.commit()
    session.mark_dirty(user)
    session.rollback()
    with uow.capture_sql() as statements:
        session.flush()
    assert statements == []


@pytest.mark.parametrize("how", ["transient", "pending"])
def test_mark_dirty_needs_a_persistent_object(session, how):
    obj = Country(code="de", name="Germany")
    if how == "pending":
        session.add(obj)
    with pytest.raises(errors.InvalidStateError, match="mark_dirty"):
        session.mark_dirty(obj)


def test_mark_dirty_after_a_key_change_still_writes_the_new_key(file_session, other):
    italy = file_session.get(Country, "it")
    italy.code = "itl"
    file_session.mark_dirty(italy)
    file_session.commit()
    assert other.execute("SELECT code, name FROM countries ORDER BY code").fetchall() == [
        ("fr", "France"), ("itl", "Italy")]
    assert file_session.get(Country, "itl") is italy
