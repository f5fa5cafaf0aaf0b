"""Chapters on the unit of work's registers: new objects, flush and commit, keys, the identity map,
what "dirty" means, and how to see the SQL of your own program."""

import logging
import os
import tempfile

import uow
from uow import capture_sql, state_of

from .models import Author, Book, fresh_session
from .output import Chapter, emit, say, show_sql, why


def states() -> None:
    session = fresh_session()
    ann = Author(name="Ann", email="ann@example.org")
    say(f"""
        A new object is transient: no session knows it, and nothing will be written for it.
            ann = {ann!r}""")
    with capture_sql() as statements:
        session.add(ann)
    say(f"""
        session.add(ann) registers it as new: it is pending, and the next flush will INSERT it.
            ann = {ann!r}
            session.new = {sorted(map(repr, session.new))}
        Registering sends no SQL:""")
    show_sql(statements)
    why("""the unit of work collects what you did in memory and writes it all at once later, so
        add() is a note in a register (pending), not a statement.""")


def flush_and_commit() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "demo.db")
        session = fresh_session(path)
        ann = Author(name="Ann")
        session.add(ann)
        session.add(Book(title="Notes", author=ann))
        with capture_sql() as statements:
            session.flush()
        say("""
            session.flush() sends the INSERTs inside a transaction it begins itself (the
            savepoint around them lets a failed flush undo just its own statements):""")
        show_sql(statements)
        other = uow.connect(path)
        seen = other.execute("SELECT count(*) FROM authors").fetchone()[0]
        say(f"""
            A second connection still sees {seen} authors: a flush writes, but does not commit.""")
        with capture_sql() as statements:
            session.commit()
        show_sql(statements)
        seen = other.execute("SELECT count(*) FROM authors").fetchone()[0]
        say(f"""
            After session.commit() the second connection sees {seen} author, and ann is
            {state_of(ann).value}.""")
        other.close()
        session.close()
    why("""flush sends SQL so that queries in the same transaction see your changes; commit makes
        them durable and visible to others, so the two are separate steps.""")


def generated_keys() -> None:
    session = fresh_session()
    ann = Author(name="Ann")
    session.add(ann)
    with capture_sql() as statements:
        session.flush()
    say(f"""
        One new row: the INSERT asks SQLite for the key it generated (RETURNING), and ann
        gets it:
            ann = {ann!r}""")
    show_sql(statements)
    books = [Book(title=title, author=ann) for title in ("A", "B", "C")]
    session.add_all(books)
    with capture_sql() as statements:
        session.flush()
    say(f"""
        Several new rows of one table go in one executemany, which cannot return rows.  So uow
        reads the largest key first (SELECT max), inserts, then reads the keys above it in order:
        SQLite gives a new row a rowid one larger than the largest, and the flush holds the write
        lock, so those are exactly the new rows.
            books = {[book.id for book in books]}""")
    show_sql(statements)
    why("""an object must know its key to enter the identity map and to be pointed at by other
        rows, and uow reads the key back from SQLite rather than guessing it.""")


def identity_map() -> None:
    session = fresh_session()
    session.add(Author(name="Ann"))
    session.commit()
    session.expunge_all()
    with capture_sql() as statements:
        first = session.get(Author, 1)
        again = session.get(Author, 1)
        listed = session.all(Author)[0]
    say(f"""
        session.get(Author, 1) twice, then session.all(Author): one object, however it was found
        (first is again: {first is again}, first is listed: {listed is first}).  The first get
        reads the row; the second sends no SQL at all; the query reads the table again, but its
        row is matched by key to the object already held, not made into a second object:""")
    show_sql(statements)
    emit(f"    session.identity_map keys: {list(session.identity_map)}")
    why("""one object per row means a change made through one reference is seen through all of
        them, and the flush never has two conflicting versions of one row to write.""")


def dirty() -> None:
    session = fresh_session()
    ann = Author(name="Ann")
    session.add(ann)
    session.commit()
    ann.name = "Annie"
    say(f"""
        After ann.name = "Annie":
            session.dirty_fields(ann) = {session.dirty_fields(ann)}
            session.original_value(ann, "name") = {session.original_value(ann, "name")!r}""")
    ann.name = "Ann"
    with capture_sql() as statements:
        session.flush()
    say(f"""
        Setting it back to "Ann" makes it clean again (dirty_fields = {session.dirty_fields(ann)}),
        so the flush sends nothing:""")
    show_sql(statements)
    ann.email = "ann@example.org"
    with capture_sql() as statements:
        session.flush()
    say("A real change is written, and only the column that changed:")
    show_sql(statements)
    why("""dirty means "differs from the snapshot of the row as loaded", not "was assigned", so
        writes that change nothing cost nothing and never overwrite another writer's column.""")


def your_sql() -> None:
    session = fresh_session()
    say("""
        Two ways to see the SQL of your own program.  uow.capture_sql() collects the statements
        sent inside a with-block, as Statement objects (sql, params):""")
    with capture_sql() as statements:
        session.add(Author(name="Ann"))
        session.flush()
    show_sql(statements)
    say("""
        The "uow.sql" logger logs every statement at DEBUG; turn it on with the logging module:
            logging.basicConfig(); logging.getLogger("uow.sql").setLevel(logging.DEBUG)
        Here a handler prints what it receives:""")
    logger = logging.getLogger("uow.sql")
    handler = _PrintHandler()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        session.get(Author, 2)
        session.commit()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    why("""an ORM writes SQL for you, so it must let you read it: the log is how you check that a
        loop did not send one query per object.""")


class _PrintHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        emit(f"    {record.name} {record.levelname}: {record.getMessage()}")


CHAPTERS = [
    Chapter("states", "New objects and their states", ("states", "lifecycle", "registers"), states),
    Chapter("flush", "Flush, then commit", ("flush", "boundaries"), flush_and_commit),
    Chapter("keys", "Generated keys are read back", ("writing",), generated_keys),
    Chapter("identity-map", "The identity map: one object per row", ("identity", "loading"), identity_map),
    Chapter("dirty", "Dirty means 'differs from the snapshot'", ("tracking", "hooks"), dirty),
    Chapter("your-sql", "Seeing the SQL of your own program", ("executor",), your_sql),
]
