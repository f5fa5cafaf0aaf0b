"""Every statement uow sends goes to the 'uow.sql' logger, with its parameters."""

import logging

import uow

from .models import User


def test_every_statement_is_logged_with_its_parameters(conn, caplog):
    session = uow.Session(conn)
    session.add(User(name="ann", email="a@x"))
    with caplog.at_level(logging.DEBUG, logger="uow.sql"), uow.capture_sql() as statements:
        session.flush()
        session.get(User, 99)
        session.commit()
    records = [record for record in caplog.records if record.name == "uow.sql"]
    assert len(records) == len(statements) > 0
    assert all(record.levelno == logging.DEBUG for record in records)
    insert = next(record for record in records if "INSERT" in record.getMessage())
    assert "'ann'" in insert.getMessage()
    assert "'a@x'" in insert.getMessage()
    select = next(record for record in records if record.getMessage().startswith("SELECT"))
    assert "(99,)" in select.getMessage()
    assert [record.uow_statement for record in records] == statements


def test_executemany_is_logged_once_with_every_row(conn, caplog):
    session = uow.Session(conn)
    session.add_all([User(name="ann"), User(name="bob"), User(name="cy")])
    with caplog.at_level(logging.DEBUG, logger="uow.sql"):
        session.flush()
    inserts = [r for r in caplog.records if r.name == "uow.sql" and r.getMessage().startswith("INSERT")]
    assert len(inserts) == 1
    statement = inserts[0].uow_statement
    assert statement.many
    assert [row[0] for row in statement.params] == ["ann", "bob", "cy"]


def test_an_executemany_of_more_than_three_rows_is_logged_with_its_count_not_its_rows(conn, caplog):
    """The log line stays short for a big batch; the rows are still on the record's statement."""
    session = uow.Session(conn)
    session.add_all([User(name=name) for name in ("ann", "bob", "cy", "dee")])
    with caplog.at_level(logging.DEBUG, logger="uow.sql"):
        session.flush()
    [insert] = [r for r in caplog.records if r.name == "uow.sql" and r.getMessage().startswith("INSERT")]
    statement = insert.uow_statement
    assert insert.getMessage() == f"{statement.sql}  -- executemany x4"
    assert [row[0] for row in statement.params] == ["ann", "bob", "cy", "dee"]


def test_an_executemany_of_up_to_three_rows_is_logged_with_its_rows(conn, caplog):
    session = uow.Session(conn)
    session.add_all([User(name=name) for name in ("ann", "bob", "cy")])
    with caplog.at_level(logging.DEBUG, logger="uow.sql"):
        session.flush()
    [insert] = [r for r in caplog.records if r.name == "uow.sql" and r.getMessage().startswith("INSERT")]
    assert insert.getMessage() == (
        'INSERT INTO "users" ("name", "email", "score") VALUES (?, ?, ?)  -- executemany x3: '
        "[('ann', None, 0.0), ('bob', None, 0.0), ('cy', None, 0.0)]")


def test_nothing_is_logged_above_debug(conn, caplog):
    session = uow.Session(conn)
    session.add(User(name="ann"))
    with caplog.at_level(logging.INFO, logger="uow.sql"):
        session.commit()
    assert [r for r in caplog.records if r.name == "uow.sql"] == []
