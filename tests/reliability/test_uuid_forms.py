"""A UUID key that another program stored in a form other than uow's.

Class of defect searched for: **one value, two stored forms**.  uow stores a ``uuid.UUID`` as its
canonical text (36 characters, lower case, with hyphens) and compares that text in every key look-up
and query.  A row another program wrote in upper case, as 32 hex digits, in braces, as a URN or as a
16-byte blob is the same UUID to Python but other text to SQLite: ``get()`` missed it, adding an
object with that UUID wrote a second row, and loading the table gave the session two persistent
objects with equal keys.  Now the one form is enforced at both ends: a table ``create_all`` made
refuses the other forms (a CHECK), and reading another form from a table made otherwise is a
ColumnValueError that names the attribute, the row and the fix, holding nothing.
"""

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
