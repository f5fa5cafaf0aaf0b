"""A narrated walkthrough of uow: ``python -m uow.demo``.

It runs on a fresh in-memory database and prints every SQL statement uow sends, so you can watch
the unit of work decide what to write.  It uses only the public API; read it side by side with
its output.
"""

import textwrap

import uow
from uow import Column, Entity, Session, capture_sql, state_of


class DemoBase(Entity, abstract=True):
    """The demo's own registry, so its classes never clash with yours."""


class Author(DemoBase, table="authors"):
    id: int = Column(primary_key=True)
    name: str
    email: str | None = Column(unique=True)


class Book(DemoBase, table="books"):
    id: int = Column(primary_key=True)
    title: str
    author_id: int = Column(references=Author)
    copies: int = 0


def say(text):
    print()
    print(textwrap.dedent(text).strip())


def show_sql(statements):
    for statement in statements:
        print(f"    SQL> {statement}")
    if not statements:
        print("    SQL> (nothing: no statement was sent)")


def chapter(title):
    print()
    print(title)
    print("=" * len(title))


def main():
    connection = uow.connect(":memory:")
    uow.create_all(connection, DemoBase)
    session = Session(connection)

    chapter("1. Objects and their states")
    ann = Author(name="Ann", email="ann@example.org")
    say(f"""
        A new object is transient: no session knows it.
            ann = {ann!r}   state: {state_of(ann).value}""")
    session.add(ann)
    say(f"""
        session.add(ann) makes it pending: it will be INSERTed at the next flush.
            state: {state_of(ann).value};  session.new = {sorted(map(repr, session.new))}""")

    chapter("2. A flush, and the SQL it sends")
    with capture_sql() as statements:
        session.flush()
    say(f"""
        session.flush() sends the INSERT.  SQLite generates the id, and uow reads it back
        (it never guesses it):
            ann = {ann!r}""")
    show_sql(statements)
    book = Book(title="Notes", author_id=ann.id)
    session.add(book)
    with capture_sql() as statements:
        session.flush()
        book.copies = 3
        session.flush()
    say(f"""
        A book referencing ann, flushed; then one field changed and flushed again.  The UPDATE
        sets only the column that changed:
            book = {book!r}""")
    show_sql(statements)

    chapter("3. The identity map: one object per row")
    with capture_sql() as statements:
        again = session.get(Author, ann.id)
    say(f"""
        session.get(Author, {ann.id}) returns the object the session already holds,
        so `again is ann` is {again is ann}, and no SQL was needed:""")
    show_sql(statements)

    chapter("4. Dirty means 'differs from the database', not 'was assigned'")
    session.commit()
    ann.name = "Annie"
    say(f"""
        After ann.name = "Annie":  dirty_fields(ann) = {session.dirty_fields(ann)},
        original_value(ann, "name") = {session.original_value(ann, "name")!r}""")
    ann.name = "Ann"
    with capture_sql() as statements:
        session.flush()
    say(f"""
        Setting it back to "Ann" makes it clean again: dirty_fields(ann) = {session.dirty_fields(ann)},
        so the flush has nothing to send:""")
    show_sql(statements)

    chapter("5. Rollback puts objects back exactly, without SQL")
    ann.name = "Changed"
    book.copies = 99
    extra = Book(title="Draft", author_id=ann.id)
    session.add(extra)
    session.flush()
    say(f"""
        Inside a transaction we changed ann and book, added and flushed a new book:
            ann   = {ann!r}
            book  = {book!r}
            extra = {extra!r}""")
    with capture_sql() as statements:
        session.rollback()
    say(f"""
        session.rollback() rolls the database back and restores every object the session
        touched since the last commit, from its undo log:
            ann   = {ann!r}
            book  = {book!r}
            extra = {extra!r}   (transient again, without the id the flush gave it)
        The only statement sent:""")
    show_sql(statements)

    chapter("6. The flush plan is data")
    session.add(Author(name="Bo"))
    session.delete(book)
    ann.email = "a@example.org"
    plan = session.plan()
    say("""
        session.plan() shows what the next flush would do, and why, without running it:""")
    print(textwrap.indent(str(plan), "    "))
    with capture_sql() as statements:
        session.commit()
    say("session.commit() then runs it:")
    show_sql(statements)

    print()
    print(f"Done. {session.stats()}")
    session.close()


if __name__ == "__main__":
    main()
