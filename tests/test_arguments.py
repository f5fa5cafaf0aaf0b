"""Arguments of the wrong kind (None or one object where a list belongs, a number where SQL text
or a path belongs, a duration that is not a number) are ArgumentErrors naming the call and the
value, before any SQL and before anything changes.  Each raised a raw Python or sqlite3 error."""

import math
import os

import pytest

import uow
from uow import errors

from .models import User

CASES = [
    ("load_related", lambda s: s.load_related(None, "orders"),
     "load_related(): objects must be a list, got None; pass [..] even for one"),
    ("filter", lambda s: s.filter(User, load=42),
     "filter(): load must be a list, got 42; pass [..] even for one"),
    ("execute", lambda s: s.execute(42),
     "execute(): the SQL must be a string, got 42"),
    ("execute", lambda s: s.execute("SELECT ?", 42),
     "execute(): params must be a tuple or list (for ? placeholders) or a dict (for :name), got 42"),
    ("scalar", lambda s: s.scalar(None),
     "execute(): the SQL must be a string, got None"),
    ("attach", lambda s: s.attach("other", 42),
     "attach(): the path must be a str or os.PathLike, got 42"),
]


@pytest.mark.parametrize("call, message", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_wrong_kind_of_argument_is_refused_before_anything_changes(session, call, message, tmp_path, monkeypatch):
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)  # attach("other", 42) created a file called 42 here
    session.add(User(name="pending"))
    before = (session.new, session.dirty, session.deleted, dict(session.identity_map))
    with uow.capture_sql() as statements, pytest.raises(errors.ArgumentError) as caught:
        call(session)
    assert str(caught.value) == message
    assert isinstance(caught.value, TypeError)
    assert statements == []
    assert (session.new, session.dirty, session.deleted, dict(session.identity_map)) == before
    assert os.listdir(here) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"database": None}, "connect(): the path must be a str or os.PathLike, got None"),
    ({"database": 42}, "connect(): the path must be a str or os.PathLike, got 42"),
    ({"timeout": math.nan}, "connect(): timeout must be a number of seconds >= 0, got nan"),
    ({"timeout": -1}, "connect(): timeout must be a number of seconds >= 0, got -1"),
    ({"timeout": "5"}, "connect(): timeout must be a number of seconds >= 0, got '5'"),
    ({"timeout": True}, "connect(): timeout must be a number of seconds >= 0, got True"),
])
def test_connect_refuses_a_wrong_path_or_timeout(kwargs, message):
    with pytest.raises(errors.ArgumentError) as caught:
        uow.connect(**kwargs)
    assert str(caught.value) == message


def test_create_all_given_one_entity_class_says_to_pass_a_list(conn):
    with pytest.raises(errors.ArgumentError) as caught:
        uow.create_all(conn, User)
    assert str(caught.value) == ("create_all(): classes must be a list of entity classes or an abstract base, got "
                                 "the entity class User; pass [User]")


def test_a_busy_timeout_of_nan_is_refused_naming_it(conn):
    with pytest.raises(errors.TransactionError) as caught:
        uow.Session(conn, busy_timeout=math.nan)
    assert str(caught.value) == "busy_timeout must be a number of seconds >= 0, got nan"


# -- an object where its class belongs ------------------------------------------------------------

OBJECT_FOR_CLASS = [
    ("get", lambda s, u: s.get(u, 1)),
    ("get_one", lambda s, u: s.get_one(u, 1)),
    ("filter", lambda s, u: s.filter(u)),
    ("filter", lambda s, u: s.all(u)),
    ("bulk_insert_mappings", lambda s, u: s.bulk_insert_mappings(u, [{"name": "b"}])),
    ("bulk_update_mappings", lambda s, u: s.bulk_update_mappings(u, [{"id": 1, "name": "b"}])),
    ("identity_key", lambda s, u: s.identity_key(u, 1)),
    ("identity_key", lambda s, u: uow.identity_key(u, 1)),
    ("get_bind", lambda s, u: s.get_bind(u)),
    ("bind_mapper", lambda s, u: s.bind_mapper(u, ":memory:")),
    ("create_table_sql", lambda s, u: uow.create_table_sql(u)),
]


@pytest.mark.parametrize("operation, call", OBJECT_FOR_CLASS, ids=[case[0] for case in OBJECT_FOR_CLASS])
def test_an_object_handed_where_its_class_belongs_is_refused_naming_the_call(session, operation, call):
    """get(user, 1) found User 1 (the object stood for its class); the bulk writes wrote rows of it."""
    user = User(id=1, name="ann")
    session.add(user)
    session.flush()
    with uow.capture_sql() as statements, pytest.raises(errors.UnmappedClassError) as caught:
        call(session, user)
    assert str(caught.value) == (f"{operation}(): the class User is needed, not an object of it ({user!r}); "
                                 f"pass User itself")
    assert statements == []
