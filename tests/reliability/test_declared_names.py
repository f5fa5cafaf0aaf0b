"""Declared names that SQLite gives a meaning of its own, as table, key-column and column names.

Class of defect searched for: **a name the user may take that uow's own SQL also uses**.  A column
called ``rowid`` made uow read generated keys back from the user's column (objects swapped keys);
a table called ``excluded`` made ``upsert()`` keep the old values.  Any keyword or special name
that reaches uow's SQL unquoted, or that SQLite resolves to something other than the user's
column, is the same defect.

The names tried:

* every keyword SQLite itself reports (``sqlite3_keyword_name()``, read through ctypes from the
  library the ``sqlite3`` module is linked against; where that is not possible, the list on
  https://www.sqlite.org/lang_keywords.html, written down below once), in lower case, in every
  position, exhaustively;
* uow's own: the parameters of ``session.filter()`` (a column called ``limit`` became the LIMIT);
* SQLite's special names: ``rowid``, ``oid``, ``_rowid_`` in every mix of case, names with the
  ``sqlite_`` prefix, and ``excluded``, exhaustively in lower case and by Hypothesis in any case;
* Hypothesis also draws tables whose table name *and* column names are all such names.

Each declaration must either be refused at once with a uow ``MappingError`` whose message names
the name, or round-trip on a file database: several objects added and committed in one
multi-row insert, their generated keys read back and compared with a second connection's view,
an update, a delete, ``upsert()`` of an existing and of a new key, ``get()`` and ``filter()`` --
each checked row by row from the second connection.

Heavier run by hand (20 times the Hypothesis examples)::

    UOW_RELIABILITY_HEAVY=1 PYTHONPATH=$PWD python -m pytest -q -p no:cacheprovider \\
        tests/reliability/test_declared_names.py
"""

import collections
import ctypes
import itertools
import sqlite3

import pytest
from hypothesis import given, strategies as st

import uow
from uow import Column, Entity
from uow.errors import MappingError

from .harness import hypothesis_settings

# https://www.sqlite.org/lang_keywords.html (SQLite 3.40): the fallback when the library cannot be asked.
DOCUMENTED_KEYWORDS = """
ABORT ACTION ADD AFTER ALL ALTER ALWAYS ANALYZE AND AS ASC ATTACH AUTOINCREMENT BEFORE BEGIN BETWEEN BY
CASCADE CASE CAST CHECK COLLATE COLUMN COMMIT CONFLICT CONSTRAINT CREATE CROSS CURRENT CURRENT_DATE
CURRENT_TIME CURRENT_TIMESTAMP DATABASE DEFAULT DEFERRABLE DEFERRED DELETE DESC DETACH DISTINCT DO DROP
EACH ELSE END ESCAPE EXCEPT EXCLUDE EXCLUSIVE EXISTS EXPLAIN FAIL FILTER FIRST FOLLOWING FOR FOREIGN FROM
FULL GENERATED GLOB GROUP GROUPS HAVING IF IGNORE IMMEDIATE IN INDEX INDEXED INITIALLY INNER INSERT INSTEAD
INTERSECT INTO IS ISNULL JOIN KEY LAST LEFT LIKE LIMIT MATCH MATERIALIZED NATURAL NO NOT NOTHING NOTNULL
NULL NULLS OF OFFSET ON OR ORDER OTHERS OUTER OVER PARTITION PLAN PRAGMA PRECEDING PRIMARY QUERY RAISE
RANGE RECURSIVE REFERENCES REGEXP REINDEX RELEASE RENAME REPLACE RESTRICT RETURNING RIGHT ROLLBACK ROW
ROWS SAVEPOINT SELECT SET TABLE TEMP TEMPORARY THEN TIES TO TRANSACTION TRIGGER UNBOUNDED UNION UNIQUE
UPDATE USING VACUUM VALUES VIEW VIRTUAL WHEN WHERE WINDOW WITH WITHOUT
""".split()


def reported_keywords():
    """The keywords the linked SQLite library reports, or None when it cannot be asked."""
    import _sqlite3

    try:
        library = ctypes.CDLL(_sqlite3.__file__)
        count = library.sqlite3_keyword_count()
        library.sqlite3_keyword_name.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p),
                                                 ctypes.POINTER(ctypes.c_int)]
    except (OSError, AttributeError):
        return None
    words = []
    for index in range(count):
        text, size = ctypes.c_char_p(), ctypes.c_int()
        library.sqlite3_keyword_name(index, ctypes.byref(text), ctypes.byref(size))
        words.append(text.value[:size.value].decode())
    return words


KEYWORDS = sorted(reported_keywords() or DOCUMENTED_KEYWORDS)
ROWID_NAMES = ["rowid", "oid", "_rowid_"]
# The last four are not SQLite's but uow's own: the parameters of session.filter().
SPECIAL = ROWID_NAMES + ["excluded", "sqlite_master", "sqlite_sequence", "sqlite_stat1", "sqlite_x", "sqlite_",
                         "entity", "order_by", "limit", "load"]
BASE_NAMES = [word.lower() for word in KEYWORDS] + SPECIAL
POSITIONS = ("table", "key", "column")

TALLY = collections.Counter()  # (position, outcome) -> count, for the report


def declare(table, key, column):
    """A fresh entity class (in its own registry) on ``table`` with an integer key ``key``, a text
    column ``column`` and an integer column ``n``."""
    base = type("NamesBase", (Entity,), {}, abstract=True)
    annotations = {key: int, column: str, "n": int}
    return type("Named", (base,), {"__annotations__": annotations, key: Column(primary_key=True)}, table=table)


def names_for(position, name):
    """(table, key, column) with ``name`` in the given position and plain names elsewhere."""
    table, key, column = "named_things", "id", "label"
    if position == "table":
        table = name
    elif position == "key":
        key = name
    else:
        column = name
    return table, key, column


def rows_seen_by_another_connection(path, table, key, column):
    other = sqlite3.connect(path, isolation_level=None)
    try:
        quoted = ", ".join(f'"{name}"' for name in (key, column, "n"))
        return {row[0]: row[1:] for row in other.execute(f'SELECT {quoted} FROM "{table}"')}
    finally:
        other.close()


def declare_or_refuse(table, key, column):
    """The class, or None when the declaration was refused with a MappingError naming the culprit."""
    try:
        cls = declare(table, key, column)
    except MappingError as refused:
        message = str(refused)
        assert any(repr(name) in message or f".{name}" in message for name in (table, key, column)), (
            f"the MappingError does not name the refused name: {message}")
        return None
    return cls


def round_trip(cls, table, key, column, path):
    """Write and read through every channel; every step is checked from a second connection."""
    conn = uow.connect(path)
    conn.execute("PRAGMA synchronous = OFF")  # many small commits; durability is not under test here
    try:
        uow.create_all(conn, [cls])
        session = uow.Session(conn)
        objects = [cls(**{column: f"v{i}", "n": i}) for i in range(4)]
        session.add_all(objects)
        session.commit()  # one flush of four new rows: the multi-row insert path

        def expect(when):
            mine = {getattr(obj, key): (getattr(obj, column), obj.n) for obj in objects
                    if uow.state_of(obj) is uow.ObjectState.PERSISTENT}
            seen = rows_seen_by_another_connection(path, table, key, column)
            assert seen == mine, f"{when}: the database holds {seen}, the objects say {mine}"

        keys = [getattr(obj, key) for obj in objects]
        assert len(set(keys)) == 4 and None not in keys, f"generated keys {keys}"
        expect("after the insert")

        objects[1].__setattr__(column, "changed")
        objects[2].n = 20
        session.commit()
        expect("after an update")

        session.delete(objects[0])
        session.commit()
        expect("after a delete")

        held = session.upsert(cls(**{key: keys[3], column: "upserted", "n": 33}))
        assert held is objects[3]
        fresh = session.upsert(cls(**{key: 999, column: "new", "n": 9}))
        objects.append(fresh)
        session.commit()
        assert (getattr(objects[3], column), objects[3].n) == ("upserted", 33)
        expect("after upsert")

        assert session.get(cls, 999) is fresh
        assert session.filter(cls, **{column: "changed"}) == [objects[1]]
        assert session.filter(cls, **{key: keys[2]}) == [objects[2]]
        session.close()

        reader = uow.Session(uow.connect(path))
        found = {getattr(obj, key): (getattr(obj, column), obj.n) for obj in reader.all(cls)}
        assert found == {keys[1]: ("changed", 1), keys[2]: ("v2", 20), keys[3]: ("upserted", 33), 999: ("new", 9)}
        reader.connection().close()
    finally:
        conn.close()


def try_names(table, key, column, path):
    cls = declare_or_refuse(table, key, column)
    if cls is None:
        return "refused"
    round_trip(cls, table, key, column, path)
    return "round-trip"


def test_keyword_list_is_sqlites_own():
    """The keyword list is what the linked SQLite reports; the documented list is a subset of it."""
    reported = reported_keywords()
    if reported is None:
        pytest.skip("the SQLite library cannot be asked through ctypes; the documented list is used")
    assert set(DOCUMENTED_KEYWORDS) <= set(reported), set(DOCUMENTED_KEYWORDS) - set(reported)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("name", BASE_NAMES)
def test_name_is_refused_or_round_trips(name, position, tmp_path):
    table, key, column = names_for(position, name)
    TALLY[(position, try_names(table, key, column, str(tmp_path / "names.db")))] += 1


@pytest.mark.parametrize("position", ["key", "column"])
@pytest.mark.parametrize("name", ["".join(letters) for base in ROWID_NAMES
                                  for letters in itertools.product(*[(c.lower(), c.upper()) for c in base])])
def test_every_case_of_a_rowid_name_is_refused(name, position):
    """rowid, oid and _rowid_ are one name to SQLite in any case: each spelling must be refused."""
    assert declare_or_refuse(*names_for(position, name)) is None, f"{name!r} was accepted as a {position} name"


def _any_case(name):
    return st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
        lambda upper: "".join(c.upper() if up else c for c, up in zip(name, upper)))


special_name = st.sampled_from(BASE_NAMES).flatmap(_any_case)


@hypothesis_settings({"dev": 40, "ci": 60, "thorough": 1000, "mutation": 10})
@given(table=special_name, key=special_name, column=special_name)
def test_tables_made_only_of_special_names(table, key, column, tmp_path_factory):
    """A table whose name and columns are all keywords or special names, in any case."""
    if len({key.lower(), column.lower(), "n"}) < 3:
        return  # two columns of one name is a different mistake
    path = str(tmp_path_factory.mktemp("names") / "names.db")
    TALLY[("all three", try_names(table, key, column, path))] += 1
