"""session.select(): conditions on class attributes, order, paging, count/exists/one, on real databases.

Every result is checked against the same question asked of the rows in Python; every refusal is
checked to send no SQL and leave the session as it was.
"""

import decimal
import math
import sqlite3
import threading

import pytest

import uow
from uow import Column, Entity, errors


class QueryBase(Entity, abstract=True):
    """This module's own registry."""


class Person(QueryBase, table="people"):
    id: int = Column(primary_key=True)
    name: str
    age: int | None = None
    score: float = 0.0
    price: decimal.Decimal = decimal.Decimal("0")
    tags: list | None = None
    nick: str | None = None


class Pet(QueryBase, table="pets"):
    id: int = Column(primary_key=True)
    owner_id: int = Column(references=Person)
    name: str


PEOPLE = [("ann", 30, 1.5), ("bob", 17, 2.0), ("cy", None, 0.5), ("al", 18, 2.0), ("Abe", 45, 1.0),
          ("dora", 30, 3.5), ("100%", 5, 0.0)]


@pytest.fixture(params=["memory", "file"])
def conn(request, tmp_path):
    path = ":memory:" if request.param == "memory" else str(tmp_path / "query.db")
    connection = uow.connect(path)
    assert connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    uow.create_all(connection, [Person, Pet])
    for index, (name, age, score) in enumerate(PEOPLE, start=1):
        connection.execute("INSERT INTO people (id, name, age, score, price) VALUES (?, ?, ?, ?, ?)",
                           (index, name, age, score, str(index * 10)))
    connection.execute("INSERT INTO pets (owner_id, name) VALUES (1, 'rex')")
    yield connection
    connection.close()


@pytest.fixture
def session(conn):
    s = uow.Session(conn)
    yield s
    s.close()


def selects(statements):
    """The statements that are not the transaction's BEGIN."""
    return [statement for statement in statements if not statement.sql.startswith("BEGIN")]


def names(objects):
    return [person.name for person in objects]


def rows_where(test):
    """The names of the rows meeting ``test`` (a function of name, age, score), in key order."""
    return [name for name, age, score in PEOPLE if test(name, age, score)]


@pytest.mark.parametrize("condition, expected", [
    (lambda: Person.age >= 18, lambda n, a, s: a is not None and a >= 18),
    (lambda: Person.age > 18, lambda n, a, s: a is not None and a > 18),
    (lambda: Person.age < 18, lambda n, a, s: a is not None and a < 18),
    (lambda: Person.age <= 18, lambda n, a, s: a is not None and a <= 18),
    (lambda: Person.age == 30, lambda n, a, s: a == 30),
    (lambda: Person.age != 30, lambda n, a, s: a is not None and a != 30),  # SQL: NULL is not != 30
    (lambda: Person.age == None, lambda n, a, s: a is None),  # noqa: E711 (this is the API)
    (lambda: Person.age != None, lambda n, a, s: a is not None),  # noqa: E711
    (lambda: Person.age.is_(None), lambda n, a, s: a is None),
    (lambda: Person.age.is_not(None), lambda n, a, s: a is not None),
    (lambda: Person.name.in_(["ann", "cy", "zed"]), lambda n, a, s: n in ("ann", "cy", "zed")),
    (lambda: Person.name.in_({"bob"}), lambda n, a, s: n == "bob"),
    (lambda: Person.name.in_([]), lambda n, a, s: False),
    (lambda: Person.age.not_in([30, 17]), lambda n, a, s: a is not None and a not in (30, 17)),
    (lambda: Person.name.like("a%"), lambda n, a, s: n.lower().startswith("a")),  # ASCII: any case
    (lambda: Person.name.like("_o%"), lambda n, a, s: len(n) > 1 and n[1] == "o"),
    (lambda: Person.name.like("100!%", escape="!"), lambda n, a, s: n == "100%"),
    (lambda: Person.score == 2, lambda n, a, s: s == 2.0),  # an int for a float column, exact
    (lambda: Person.score > 1.0, lambda n, a, s: s > 1.0),
    (lambda: (Person.age >= 18) & (Person.score >= 2), lambda n, a, s: a is not None and a >= 18 and s >= 2),
    (lambda: (Person.age < 18) | (Person.name == "ann"), lambda n, a, s: (a is not None and a < 18) or n == "ann"),
    (lambda: ~(Person.age >= 18), lambda n, a, s: a is not None and not a >= 18),
    (lambda: ~Person.age.is_(None) & ~(Person.name.like("a%") | (Person.age == 30)),
     lambda n, a, s: a is not None and not (n.lower().startswith("a") or a == 30)),
], ids=lambda value: "")
def test_each_comparison_finds_the_rows_python_would(session, condition, expected):
    assert names(session.select(Person).where(condition())) == rows_where(expected)


def test_several_where_conditions_must_all_hold_and_an_or_keeps_its_parentheses(session):
    query = session.select(Person).where(Person.age >= 18, Person.name.like("a%") | Person.age.is_(None))
    with uow.capture_sql() as statements:
        found = query.all()
    assert names(found) == ["ann", "al", "Abe"]
    assert [(s.sql, list(s.params)) for s in selects(statements)] == [(
        'SELECT "people"."id", "people"."name", "people"."age", "people"."score", "people"."price", '
        '"people"."tags", "people"."nick" FROM "people" WHERE "people"."age" >= ? AND ("people"."name" LIKE ? '
        'OR "people"."age" IS NULL) ORDER BY "people"."id"', [18, "a%"])]
    assert names(query.where(Person.score >= 1.5)) == ["ann", "al"]  # a second where() adds an AND


def test_order_by_several_columns_descending_with_the_key_last(session):
    query = session.select(Person).where(Person.age.is_not(None)).order_by(Person.age.desc(), Person.name)
    assert [(p.age, p.name) for p in query] == sorted(
        [(a, n) for n, a, s in PEOPLE if a is not None], key=lambda pair: (-pair[0], pair[1]))
    with uow.capture_sql() as statements:
        session.select(Person).order_by(Person.score.desc()).all()
    assert statements[-1].sql.endswith('ORDER BY "people"."score" DESC, "people"."id"')
    # equal scores (bob, al: 2.0) come in key order, so pages are stable
    assert names(session.select(Person).order_by(Person.score.desc())) == ["dora", "bob", "al", "ann", "Abe",
                                                                          "cy", "100%"]
    assert names(session.select(Person).order_by(Person.score).order_by(Person.name.asc())) == [
        "100%", "cy", "Abe", "ann", "al", "bob", "dora"]


def test_limit_and_offset_page_through_every_row_once(session):
    ordered = session.select(Person).order_by(Person.score.desc())
    pages = [names(ordered.limit(3).offset(start)) for start in range(0, 9, 3)]
    assert pages == [["dora", "bob", "al"], ["ann", "Abe", "cy"], ["100%"]]
    assert names(ordered.offset(5)) == ["cy", "100%"]  # OFFSET without LIMIT: LIMIT -1
    assert ordered.limit(0).all() == []


def test_count_exists_first_respect_conditions_and_paging(session):
    adults = session.select(Person).where(Person.age >= 18)
    with uow.capture_sql() as statements:
        assert adults.count() == 4
        assert adults.exists() is True
        assert session.select(Person).where(Person.age > 100).exists() is False
        assert adults.limit(2).count() == 2
        assert adults.offset(3).count() == 1
        assert adults.offset(4).exists() is False
    statements = selects(statements)
    assert [s.sql for s in statements][:2] == [
        'SELECT count(*) FROM "people" WHERE "people"."age" >= ?',
        'SELECT EXISTS (SELECT 1 FROM "people" WHERE "people"."age" >= ?)']
    assert statements[3].sql == 'SELECT count(*) FROM (SELECT 1 FROM "people" WHERE "people"."age" >= ? LIMIT ?)'
    assert adults.first().name == "ann"
    assert session.select(Person).where(Person.age > 100).first() is None
    assert adults.order_by(Person.age.desc()).first().name == "Abe"


def test_one_and_one_or_none(session):
    assert session.select(Person).where(Person.name == "bob").one().age == 17
    assert session.select(Person).where(Person.name == "bob").one_or_none().age == 17
    assert session.select(Person).where(Person.name == "zed").one_or_none() is None
    with pytest.raises(errors.NotFoundError, match=r"one\(\): no row for select\(Person\)\.where\(Person.name = 'zed'\)"):
        session.select(Person).where(Person.name == "zed").one()
    with pytest.raises(errors.MultipleResultsError, match="Person.age = 30"):
        session.select(Person).where(Person.age == 30).one()
    with pytest.raises(errors.MultipleResultsError):
        session.select(Person).where(Person.age == 30).one_or_none()
    assert session.select(Person).where(Person.age == 30).limit(1).one().name == "ann"


def test_rows_go_through_the_identity_map_and_unflushed_changes_win(session):
    ann = session.get(Person, 1)
    with session.no_autoflush:
        ann.age = 99  # not flushed: the database still says 30
        found = session.select(Person).where(Person.age == 30).all()
    assert found[0] is ann and ann.age == 99  # the held object, with its change
    assert names(found) == ["ann", "dora"]
    assert session.select(Person).where(Person.age == 30).all() == [session.get(Person, 6)]  # autoflushed now


def test_a_query_autoflushes_pending_objects_and_commit_makes_them_visible(conn, session, tmp_path):
    eve = Person(name="eve", age=50)
    session.add(eve)
    assert session.select(Person).where(Person.age >= 45).order_by(Person.age).all() == [
        session.get(Person, 5), eve]
    assert session.select(Person).where(Person.name == "eve").count() == 1
    session.commit()
    database = conn.execute("PRAGMA database_list").fetchone()[2]
    if database:  # a file: a second connection reads what was committed
        other = sqlite3.connect(database)
        try:
            assert other.execute("SELECT age FROM people WHERE name = 'eve'").fetchall() == [(50,)]
        finally:
            other.close()


def test_values_are_bound_never_written_into_the_sql(session):
    hostile = "x' OR '1'='1"
    with uow.capture_sql() as statements:
        assert session.select(Person).where(Person.name == hostile).all() == []
        assert session.select(Person).where(Person.name.in_([hostile, "ann"])).count() == 1
        assert session.select(Person).where(Person.name.like(hostile)).exists() is False
    assert all(hostile not in s.sql for s in statements)
    assert [list(s.params) for s in selects(statements)] == [[hostile], [hostile, "ann"], [hostile]]


def test_a_query_is_refined_without_changing_the_one_it_came_from(session):
    base = session.select(Person).where(Person.age >= 18)
    older = base.where(Person.age > 30).order_by(Person.name).limit(1)
    assert base.count() == 4 and older.count() == 1
    assert repr(older) == "select(Person).where(Person.age >= 18).where(Person.age > 30).order_by(Person.name).limit(1)"


REFUSED = [
    (lambda: Person.age >= "18", errors.ColumnValueError, "Person.age >= '18': the value expected int, got str"),
    (lambda: Person.age == True, errors.ColumnValueError, "Person.age = True"),  # noqa: E712 (bool is not int)
    (lambda: Person.age == 2 ** 64, errors.ColumnValueError, str(2 ** 64)),
    (lambda: Person.score < math.nan, errors.ColumnValueError, "nan"),
    (lambda: Person.name == "\ud800", errors.ColumnValueError, "surrogate"),
    (lambda: Person.name.in_(["ann", 3]), errors.ColumnValueError, "Person.name = 3"),
    (lambda: Person.name.in_(["ann", None]), errors.ColumnValueError, "is_(None)"),
    (lambda: Person.price < decimal.Decimal("10"), errors.ConditionError, "does not sort"),
    (lambda: Person.tags > [1], errors.ConditionError, "does not sort"),
    (lambda: Person.age.like("3%"), errors.ConditionError, "like() matches text"),
    (lambda: Person.name.like(3), errors.ConditionError, "str pattern"),
    (lambda: Person.name.like("a", escape="!!"), errors.ConditionError, "one character"),
    # A lone surrogate is one character, but not UTF-8: sqlite3 raised UnicodeEncodeError after the query was sent.
    (lambda: Person.name.like("a", escape="\ud800"), errors.ConditionError, "can be stored as UTF-8"),
    (lambda: Person.age < None, errors.ConditionError, "is_(None)"),
    (lambda: Person.age.is_(3), errors.ConditionError, "None only"),
    (lambda: Pet.name == "rex", errors.ConditionError, "Pet.name, which is not a column of Person"),
    (lambda: Person.name > Person.age, errors.ConditionError, "different types"),
    (lambda: True, errors.ConditionError, "got True"),
    (lambda: "age > 3", errors.ConditionError, "'age > 3'"),
]


@pytest.mark.parametrize("condition, error, message", REFUSED, ids=[m for _, _, m in REFUSED])
def test_a_condition_that_cannot_be_answered_is_refused_before_any_sql(session, condition, error, message):
    ann = session.get(Person, 1)
    ann.name = "changed"  # unflushed: a refusal must not autoflush it
    with uow.capture_sql() as statements:
        with pytest.raises(error) as caught:
            session.select(Person).where(condition()).all()
    assert message in str(caught.value)
    assert statements == []
    assert session.dirty == {ann}


def test_python_truth_tests_on_conditions_are_refused_with_the_fix():
    with pytest.raises(errors.ConditionError, match="combine conditions with & and |"):
        (Person.age > 3) and (Person.age < 9)
    with pytest.raises(errors.ConditionError):
        3 < Person.age < 9
    with pytest.raises(errors.ConditionError, match="& combines query conditions"):
        (Person.age > 3) & 5
    with pytest.raises(errors.ConditionError, match="takes a list"):
        Person.name.in_("ann")


@pytest.mark.parametrize("build, error, says", [
    (lambda: Person.age + 1 > 5, errors.ConditionError, "no arithmetic on columns"),
    (lambda: 1 + Person.age, errors.ConditionError, "Person.age: a query"),
    (lambda: -Person.score, errors.ConditionError, "Person.score: a query"),
    (lambda: Person.name.startswith("a"), errors.UnknownFieldError, "write Person.name.like('abc%')"),
    (lambda: Person.name.ilike("a%"), errors.UnknownFieldError, "already ignores case"),
    (lambda: Person.age.between(1, 9), errors.UnknownFieldError, "(Person.age >= low) & (Person.age <= high)"),
    (lambda: Person.age.no_such_method, errors.UnknownFieldError, "Person.age.no_such_method"),
])
def test_what_other_orms_columns_do_is_refused_naming_the_attribute_and_what_to_write(build, error, says):
    """Python's raw TypeError ('unsupported operand type(s) for +: ColumnAttribute and int') and
    AttributeError ('ColumnAttribute' object has no attribute 'startswith') named neither the
    attribute nor what uow writes instead."""
    with pytest.raises(error) as caught:
        build()
    assert says in str(caught.value)
    assert isinstance(caught.value, TypeError if error is errors.ConditionError else AttributeError)


def test_a_query_has_no_truth_value(session):
    with pytest.raises(errors.ConditionError, match=r"use \.exists\(\)"):
        bool(session.select(Person))


def test_columns_and_attributes_still_work_in_sets_and_lists():
    columns = {column for column in Person.__mapper__.columns}
    assert Person.__mapper__.column("age") in columns
    assert Person.age in [Person.name, Person.age]
    assert [Person.name, Person.age].index(Person.age) == 1
    assert {Person.age: "x"}[Person.age] == "x"
    assert Person.age is Person.age
    assert bool(Person.age != Person.name) is True


def test_filter_order_by_accepts_attributes_and_desc(session):
    assert names(session.filter(Person, age=30, order_by=Person.name.desc())) == ["dora", "ann"]


def test_a_query_binding_more_values_than_sqlite_allows_is_refused(conn, session):
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 10)
    with uow.capture_sql() as statements, pytest.raises(errors.ConditionError, match="SQLITE_LIMIT_VARIABLE_NUMBER"):
        session.select(Person).where(Person.id.in_(list(range(20)))).all()
    assert statements == []


def test_a_like_pattern_longer_than_sqlite_matches_is_refused_before_any_sql(conn, session):
    """SQLite answers a pattern over SQLITE_LIMIT_LIKE_PATTERN_LENGTH bytes with a raw "LIKE or GLOB
    pattern too complex" once the query is sent; uow reads the connection's limit and refuses first."""
    conn.setlimit(sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 10)
    assert session.select(Person).where(Person.name.like("%" + "é" * 4 + "%")).all() == []  # 10 bytes: allowed
    ann = session.get(Person, 1)
    ann.name = "changed"  # unflushed: the refusal must not autoflush it
    with uow.capture_sql() as statements, pytest.raises(errors.ConditionError, match="11 bytes long.*LIKE_PATTERN"):
        session.select(Person).where(Person.nick.is_(None) & Person.name.like("%" + "é" * 4 + "x%")).count()
    assert statements == []
    assert session.dirty == {ann}


@pytest.mark.parametrize("step", ["limit", "offset"])
def test_a_limit_or_offset_past_sqlites_integers_is_refused_before_any_sql(session, step):
    """sqlite3 raised a raw OverflowError for a LIMIT of 2**63, after the query was sent."""
    largest = 2 ** 63 - 1
    assert names(getattr(session.select(Person), step)(largest).all()) == ([] if step == "offset" else
                                                                           names(session.select(Person)))
    with uow.capture_sql() as statements, pytest.raises(errors.ArgumentError, match="at most 9,223,372,036,854,775,807"):
        getattr(session.select(Person), step)(largest + 1)
    with pytest.raises(errors.ColumnValueError, match="at most"):
        session.filter(Person, limit=largest + 1)
    assert statements == []


def test_a_query_belongs_to_its_sessions_thread(session):
    query = session.select(Person)
    caught = []
    thread = threading.Thread(target=lambda: caught.append(_error_of(query.count)))
    thread.start()
    thread.join()
    assert isinstance(caught[0], errors.WrongThreadError)


def _error_of(call):
    try:
        call()
    except Exception as error:
        return error
    return None
