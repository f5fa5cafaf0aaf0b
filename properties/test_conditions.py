"""The oracle's reading of the query form (conditions.py), checked against SQLite itself: the
same conditions, order and paging, sent as SQL to an in-memory database of the same rows."""

import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st

from . import conditions
from .conditions import And, Compare, In, IsNull, Like, Not, Or, Query

ROWS = [(1, "ann", None), (2, "Bob", "x"), (3, "cy", "w"), (4, "ann", "x"), (5, "b_n", None)]


def _sql(condition, params):
    """The SQL text of a condition, its values appended to ``params``."""
    if isinstance(condition, (And, Or)):
        joint = " AND " if isinstance(condition, And) else " OR "
        return "(" + joint.join(_sql(part, params) for part in condition.parts) + ")"
    if isinstance(condition, Not):
        return f"(NOT {_sql(condition.part, params)})"
    if isinstance(condition, IsNull):
        return f"{condition.field} IS {'NOT ' if condition.negated else ''}NULL"
    if isinstance(condition, In):
        params.extend(condition.values)
        return f"{condition.field} IN ({', '.join('?' for _ in condition.values)})"
    if isinstance(condition, Like):
        params.append(condition.pattern)
        return f"{condition.field} LIKE ?"
    params.append(condition.value)
    return f"{condition.field} {'=' if condition.op == '==' else condition.op} ?"


fields = st.sampled_from(["id", "name", "note"])
values = {"id": st.integers(0, 6), "name": st.sampled_from(["ann", "bob", "b", "cy"]), "note": st.sampled_from(["x", "w"])}
leaf = fields.flatmap(lambda field: st.one_of(
    st.builds(Compare, st.just(field), st.sampled_from(sorted(conditions.OPERATORS)), values[field]),
    st.builds(In, st.just(field), st.lists(values[field], min_size=1, max_size=2).map(tuple)),
    st.builds(IsNull, st.just(field), st.booleans()),
    st.builds(Like, st.just(field), st.sampled_from(["a%", "B%", "_n%", "%_%", "%X"])) if field != "id" else st.nothing()))
condition = st.recursive(leaf, lambda children: st.one_of(
    st.lists(children, min_size=2, max_size=3).map(tuple).map(And),
    st.lists(children, min_size=2, max_size=3).map(tuple).map(Or),
    children.map(Not)), max_leaves=5)


@settings(max_examples=300, database=None, derandomize=True, deadline=None)
@given(where=st.lists(condition, max_size=2), order=st.lists(st.tuples(st.sampled_from(["name", "note"]), st.booleans()),
                                                             max_size=2, unique_by=lambda term: term[0]),
       limit=st.none() | st.integers(0, 3), offset=st.none() | st.integers(0, 2))
def test_the_oracle_answers_as_sqlite_does(where, order, limit, offset):
    database = sqlite3.connect(":memory:")
    database.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, note TEXT)")
    database.executemany("INSERT INTO t VALUES (?, ?, ?)", ROWS)
    query = Query(tuple(where), tuple(order) + (("id", False),), limit, offset)
    params = []
    text = " AND ".join(_sql(part, params) for part in where) or "1"
    terms = ", ".join(f"{field}{' DESC' if descending else ''}" for field, descending in query.order_by)
    sql = f"SELECT id FROM t WHERE {text} ORDER BY {terms} LIMIT ? OFFSET ?"
    expected = [key for (key,) in database.execute(sql, params + [-1 if limit is None else limit, offset or 0])]
    rows = {(key,): {"id": key, "name": name, "note": note} for key, name, note in ROWS}
    assert [key for (key,) in conditions.answer(query, rows)] == expected, sql
