"""A UUID key that another program stored in a form other than uow's.

Class of defect searched for: **one value, two stored forms**.  uow stores a ``uuid.UUID`` as its
canonical text (36 characters, lower case, with hyphens) and compares that text in every key look-up
and query.  A row another program wrote in upper case, as 32 hex digits, in braces, as a URN or as a
16-byte blob is the same UUID to Python but other text to SQLite: ``get()`` missed it, adding an
object with that UUID wrote a second row, and loading the table gave the session two persistent
objects with equal keys.  Now the one form is enforced at both ends: a table ``create_all`` made
refuses the other forms (a CHECK), and reading another form from a table made otherwise is a
ColumnValueError that names the attribute, the row and the fix, holding nothing.  The same holds
for every key whose stored text is one of several forms its value reads from (a datetime keyed in
SQLite's own ``'2020-01-02 03:04:05'``, a date as ``'20200102'``): reading it is refused.
"""

import datetime
import sqlite3
import uuid

import pytest

import uow
from uow import Column, Entity, Reference, errors

from .harness import db_rows

VALUE = uuid.UUID("12345678-1234-5678-1234-56789abcdef0")

# Every form uuid.UUID() reads back as VALUE but SQLite compares as other text.
OTHER_FORMS = {
    "upper case": str(VALUE).upper(),
    "32 hex digits": VALUE.hex,
    "32 upper hex digits": VALUE.hex.upper(),
    "braces": "{%s}" % VALUE,
    "urn": VALUE.urn,
    "16-byte blob": VALUE.bytes,
}


class FormsBase(Entity, abstract=True):
    """This module's own registry."""


class Token(FormsBase, table="form_tokens"):
    id: uuid.UUID = Column(primary_key=True)
    name: str


class Use(FormsBase, table="form_uses"):
    id: int = Column(primary_key=True)
    token_id: uuid.UUID = Column(references=Token)
    token = Reference("token_id")


@pytest.fixture(params=["memory", "file"])
def path(request, tmp_path):
    return ":memory:" if request.param == "memory" else str(tmp_path / "forms.db")


def test_create_all_declares_the_canonical_form_as_a_check():
    assert f'''"id" TEXT NOT NULL CHECK ("id" GLOB '{uow.columntypes.UuidType.CANONICAL_GLOB}')''' in \
        uow.create_table_sql(Token)
    assert '"token_id" TEXT NOT NULL CHECK ("token_id" GLOB' in uow.create_table_sql(Use)


@pytest.mark.parametrize("form", OTHER_FORMS.values(), ids=OTHER_FORMS.keys())
def test_a_table_create_all_made_refuses_another_program_writing_another_form(path, form):
    connection = uow.connect(path)
    uow.create_all(connection, [Token, Use])
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        connection.execute("INSERT INTO form_tokens (id, name) VALUES (?, 'other program')", (form,))
    # The canonical form goes in, and the session finds it, adds nothing twice, and commits.
    connection.execute("INSERT INTO form_tokens (id, name) VALUES (?, 'other program')", (str(VALUE),))
    session = uow.Session(connection)
    token = session.get(Token, VALUE)
    assert token is not None and token.id == VALUE and token.name == "other program"
    with pytest.raises(errors.DuplicateIdentityError):
        session.add(Token(id=VALUE, name="mine"))
    session.add(Use(token=token))
    session.commit()
    reader = sqlite3.connect(path) if path != ":memory:" else connection
    assert reader.execute("SELECT id FROM form_tokens").fetchall() == [(str(VALUE),)]
    assert reader.execute("SELECT token_id FROM form_uses").fetchall() == [(str(VALUE),)]
    session.close()
    connection.close()


@pytest.mark.parametrize("form", OTHER_FORMS.values(), ids=OTHER_FORMS.keys())
def test_reading_another_form_from_a_table_made_otherwise_names_the_row_and_holds_nothing(path, form):
    connection = uow.connect(path)
    connection.execute("CREATE TABLE form_tokens (id TEXT NOT NULL PRIMARY KEY, name TEXT NOT NULL)")
    connection.execute("INSERT INTO form_tokens (id, name) VALUES (?, 'other program')", (form,))
    before = db_rows(connection)
    session = uow.Session(connection)
    for read in (lambda: session.all(Token), lambda: session.select(Token).where(Token.name == "other program").all(),
                 lambda: session.filter(Token, name="other program")):
        with pytest.raises(errors.ColumnValueError) as refused:
            read()
        message = str(refused.value)
        assert "Token.id" in message and repr(form) in message and "canonical" in message, message
        assert "second" in message, message  # it says what would go wrong: a second row for the UUID
        assert len(session.identity_map) == 0
    session.rollback()
    assert db_rows(connection) == before
    session.close()
    connection.close()


def test_the_canonical_form_round_trips_and_is_found_again(path):
    connection = uow.connect(path)
    uow.create_all(connection, [Token, Use])
    session = uow.Session(connection)
    session.add(Token(id=VALUE, name="mine"))
    session.commit()
    session.close()
    other = uow.Session(connection)
    assert other.get(Token, VALUE).name == "mine"
    assert [token.id for token in other.all(Token)] == [VALUE]
    other.close()
    connection.close()


# The same class for every key type whose stored text is one of several a value could be read from.
class Event(FormsBase, table="form_events"):
    at: datetime.datetime = Column(primary_key=True)
    name: str


class Day(FormsBase, table="form_days"):
    day: datetime.date = Column(primary_key=True)
    name: str


class Stamped(FormsBase, table="form_stamped"):
    id: int = Column(primary_key=True)
    at: datetime.datetime = Column(server_default="CURRENT_TIMESTAMP")


OTHER_KEY_FORMS = [
    (Event, "2020-01-02 03:04:05", datetime.datetime(2020, 1, 2, 3, 4, 5)),  # SQLite's own datetime() text
    (Event, "2020-01-02T03:04:05.000000", datetime.datetime(2020, 1, 2, 3, 4, 5)),
    (Day, "20200102", datetime.date(2020, 1, 2)),
]


@pytest.mark.parametrize("cls, stored, value", OTHER_KEY_FORMS, ids=[form for _, form, _ in OTHER_KEY_FORMS])
def test_a_key_stored_in_another_form_than_uow_writes_is_refused_when_read(path, cls, stored, value):
    """get() looked the row up by the text uow writes and missed it, even while the session held
    the object that all() had loaded from it; adding an object with the key wrote a second row."""
    connection = uow.connect(path)
    uow.create_all(connection, [cls])
    table = cls.__mapper__.table
    connection.execute(f"INSERT INTO {table} VALUES (?, 'other program')", (stored,))
    before = db_rows(connection)
    session = uow.Session(connection)
    name = f"{cls.__name__}.{cls.__mapper__.pk_names[0]}"
    for read in (lambda: session.all(cls), lambda: session.filter(cls, name="other program")):
        with pytest.raises(errors.ColumnValueError, match="second row") as refused:
            read()
        assert name in str(refused.value) and repr(stored) in str(refused.value)
        assert len(session.identity_map) == 0
    assert session.get(cls, value) is None  # (the look-up by the text uow writes, as before)
    session.rollback()
    assert db_rows(connection) == before
    # What uow writes itself is read back and found again.
    session.add(cls(**{cls.__mapper__.pk_names[0]: value.replace(year=2021), "name": "mine"}))
    session.commit()
    other = uow.Session(connection)
    assert other.get(cls, value.replace(year=2021)).name == "mine"
    other.close()
    session.close()
    connection.close()


def test_a_value_column_in_sqlites_own_datetime_text_still_reads(path):
    """Only keys must be in uow's form: CURRENT_TIMESTAMP writes '2020-01-02 03:04:05'."""
    connection = uow.connect(path)
    uow.create_all(connection, [Stamped])
    connection.execute("INSERT INTO form_stamped (id) VALUES (1)")
    session = uow.Session(connection)
    assert isinstance(session.get(Stamped, 1).at, datetime.datetime)
    session.close()
    connection.close()
