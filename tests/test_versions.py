"""Version columns (optimistic concurrency) when the version the session holds is expired or stale.

Another writer is a second, plain sqlite3 connection to the same file; what was committed is read
back through it.
"""

import pytest

import uow
from uow import Column, Entity, Session, capture_sql, errors

from .helpers import folded, sql_of
from .seeded import seeded_fixtures


class VersionBase(Entity, abstract=True):
    pass


class Ticket(VersionBase, table="version_tickets"):
    id: int = Column(primary_key=True)
    title: str
    version: int = Column(version=True)


SELECT_TICKET = ('SELECT "version_tickets"."id", "version_tickets"."title", "version_tickets"."version" '
                 'FROM "version_tickets" WHERE "version_tickets"."id" = ?')
UPDATE_TICKET = ('UPDATE "version_tickets" SET "title" = ?, "version" = "version" + 1 '
                 'WHERE "version_tickets"."id" = ? AND "version_tickets"."version" = ?')


def _create(connection):
    uow.create_all(connection, [Ticket])
    connection.execute("INSERT INTO version_tickets (id, title, version) VALUES (1, 'old', 1)")


template, path, conn, session, file_session, other = seeded_fixtures(_create, "versions")


def committed(other):
    return other.execute("SELECT id, title, version FROM version_tickets").fetchall()


@pytest.fixture
def expiring(path):
    connection = uow.connect(path)
    opened = Session(connection, expire_on_commit=True)
    yield opened
    opened.close()
    connection.close()


def test_an_update_of_an_object_whose_version_was_expired_reads_the_version_first(expiring, other):
    """The flush needs the version to check; the object never read it, so the flush does (one SELECT)."""
    ticket = expiring.get(Ticket, 1)
    expiring.commit()  # expire_on_commit: the version is expired too
    ticket.title = "new"
    with capture_sql() as statements:
        expiring.commit()
    assert [(sql, params) for sql, params in folded(statements) if sql.startswith(("SELECT", "UPDATE"))] == [
        (SELECT_TICKET, (1,)),
        (UPDATE_TICKET, [("new", 1, 1)]),
    ]
    assert committed(other) == [(1, "new", 2)]


def test_an_expired_version_sees_what_another_writer_committed(expiring, other):
    """Read at the flush, the version is the one the row holds now: the other writer's change is
    not reported as a conflict, because this session never saw the older version."""
    ticket = expiring.get(Ticket, 1)
    expiring.commit()
    other.execute("UPDATE version_tickets SET title = 'theirs', version = version + 1 WHERE id = 1")
    ticket.title = "mine"
    expiring.commit()
    assert committed(other) == [(1, "mine", 3)]


def test_an_expired_versioned_object_whose_row_is_gone_is_a_stale_data_error_before_any_write(expiring, other):
    ticket = expiring.get(Ticket, 1)
    expiring.commit()
    other.execute("DELETE FROM version_tickets WHERE id = 1")
    ticket.title = "mine"
    with capture_sql() as statements:
        with pytest.raises(errors.StaleDataError,
                           match=r"Ticket\(id=1\) was expired and its row is gone.*no Ticket.version to check"):
            expiring.flush()
    assert [verb for verb in (s.sql.split()[0] for s in statements) if verb in ("INSERT", "UPDATE", "DELETE")] == []
    assert expiring.is_active  # nothing was written: the session goes on
    expiring.expunge(ticket)
    expiring.commit()


def test_a_stale_error_found_before_the_flush_writes_leaves_every_object_as_it_was(expiring, other):
    """The flush reads the rows of expired objects it may write before it plans; when one of those
    rows is gone (a stale error), the rows read for the others are not applied either, so the
    refused flush changes no object: each stays expired and as dirty as it was."""
    other.execute("INSERT INTO version_tickets (id, title, version) VALUES (2, 'two', 1)")
    first = expiring.get(Ticket, 1)
    second = expiring.get(Ticket, 2)
    expiring.commit()  # expire_on_commit: both versions expired
    other.execute("DELETE FROM version_tickets WHERE id = 2")
    first.title = "old"  # the title its row holds: a change until the row is read
    second.title = "mine"
    assert set(expiring.dirty) == {first, second}
    with pytest.raises(errors.StaleDataError, match=r"Ticket\(id=2\) was expired and its row is gone"):
        expiring.flush()
    assert set(expiring.dirty) == {first, second}
    with capture_sql() as statements:
        assert first.version == 1  # still expired: read only now
    assert sql_of(statements) == [SELECT_TICKET]
    assert first not in expiring.dirty  # the row, read now, holds the title assigned


def test_after_a_stale_update_and_rollback_the_natural_retry_succeeds(file_session, other):
    ticket = file_session.get(Ticket, 1)
    file_session.commit()
    other.execute("UPDATE version_tickets SET title = 'theirs', version = version + 1 WHERE id = 1")
    ticket.title = "mine"
    with pytest.raises(errors.StaleDataError):
        file_session.commit()
    file_session.rollback()
    # The retry as a user writes it: get the object again, apply the change, commit.
    again = file_session.get(Ticket, 1)
    assert again is ticket
    assert again.title == "theirs" and again.version == 2  # reloaded: the rollback expired it
    again.title = "mine"
    file_session.commit()
    assert committed(other) == [(1, "mine", 3)]


def test_a_stale_object_expired_by_the_rollback_stays_expired_through_a_later_rollback(file_session, other):
    """The expiry leaves no memento: rolling back again cannot bring the stale version back."""
    ticket = file_session.get(Ticket, 1)
    file_session.commit()
    other.execute("UPDATE version_tickets SET version = version + 1 WHERE id = 1")
    ticket.title = "mine"
    with pytest.raises(errors.StaleDataError):
        file_session.flush()
    file_session.rollback()
    file_session.rollback()
    with capture_sql() as statements:
        assert ticket.version == 2
    assert "SELECT" in " ".join(sql_of(statements))
