"""A narrated walkthrough of uow: ``python -m uow.demo``.

It runs on a fresh in-memory database and prints the SQL uow sends at each step it explains, so
you can watch the unit of work decide what to write.  It uses only the public API; read it side by side with
its output.
"""

import textwrap

import uow
from uow import Collection, Column, Entity, Reference, Session, capture_sql, errors, state_of


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
    author: Reference[Author] = Reference("author_id")
    copies: int = 0


class Category(DemoBase, table="categories"):
    """A tree: each category may have a parent category."""

    id: int = Column(primary_key=True)
    name: str = Column(unique=True)
    parent_id: int | None = Column(references="Category")
    parent: Reference["Category"] = Reference("parent_id")
    children: Collection["Category"] = Collection("Category", "parent", cascade="all")


def say(text):
    print()
    print(textwrap.dedent(text).strip())


def show_sql(statements):
    for statement in statements:
        print(f"    SQL> {statement}")
    if not statements:
        print("    SQL> (nothing: no statement was sent)")


def chapter(title, read):
    """Start a chapter; ``read`` names the modules where what it shows is implemented."""
    print()
    print(title)
    print("=" * len(title))
    print(f"(read: {', '.join(f'uow/{name}.py' for name in read)})")


def main():
    connection = uow.connect(":memory:")
    uow.create_all(connection, DemoBase)
    session = Session(connection)

    chapter("1. Objects and their states", ["states", "lifecycle"])
    ann = Author(name="Ann", email="ann@example.org")
    say(f"""
        A new object is transient: no session knows it.
            ann = {ann!r}   state: {state_of(ann).value}""")
    session.add(ann)
    say(f"""
        session.add(ann) makes it pending: it will be INSERTed at the next flush.
            state: {state_of(ann).value};  session.new = {sorted(map(repr, session.new))}""")

    chapter("2. A flush, and the SQL it sends", ["flush", "writing"])
    with capture_sql() as statements:
        session.flush()
    say(f"""
        session.flush() sends the INSERT.  SQLite generates the id, and uow reads it back
        (it never guesses it):
            ann = {ann!r}""")
    show_sql(statements)
    book = Book(title="Notes", author=ann)
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

    chapter("3. The identity map: one object per row", ["identity", "registers"])
    with capture_sql() as statements:
        again = session.get(Author, ann.id)
    say(f"""
        session.get(Author, {ann.id}) returns the object the session already holds,
        so `again is ann` is {again is ann}, and no SQL was needed:""")
    show_sql(statements)

    chapter("4. Dirty means 'differs from the database', not 'was assigned'", ["tracking", "hooks"])
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

    chapter("5. Rollback puts objects back exactly, without SQL", ["rollback", "transaction"])
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

    chapter("6. The flush plan is data", ["planner/records", "planner/actions"])
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

    chapter("7. Flush ordering: rows depend on rows", ["planner/edges", "planner/topological", "planner/schedule"])
    fiction = Category(name="fiction")
    crime = Category(name="crime", parent=fiction)
    noir = Category(name="noir", parent=crime)
    poetry = Category(name="poetry")
    session.add_all([noir, poetry])
    say("""
        Three levels of a tree, added child first, and an unrelated category.  The planner
        orders rows, not tables: every parent before its children, one batch per level, and
        each ordering constraint carries its reason.  (Adding noir added its parents too: the
        save-update cascade follows references.)""")
    print(textwrap.indent(str(session.plan()), "    "))
    with capture_sql() as statements:
        session.flush()
    say("The SQL; each child's parent_id is the key SQLite generated for its parent a moment earlier:")
    show_sql(statements)
    session.delete(poetry)
    session.add(Category(name="poetry"))
    say("""
        Deleting 'poetry' and adding a new category with the same unique name in one flush:
        the row that frees the value is written first.""")
    print(textwrap.indent(str(session.plan()), "    "))
    session.commit()

    chapter("8. Savepoints", ["transaction", "boundaries", "executor"])
    with session.begin_nested():
        session.add(Author(name="Cy"))
    inner = session.begin_nested()
    dee = Author(name="Dee")
    session.add(dee)
    session.flush()
    ann.name = "Ann B."
    say("""
        A savepoint that was released keeps its work (Cy); a second one added and flushed Dee
        and renamed ann.  Now roll the second one back:""")
    with capture_sql() as statements:
        inner.rollback()
    show_sql(statements)
    say(f"""
        The database is back at the savepoint, and so are the objects:
            dee = {dee!r}
            ann = {ann!r}""")
    session.commit()

    chapter("9. A failed flush, and recovering from it", ["flush", "guard"])
    session.add(Author(name="Eve", email="a@example.org"))
    ann.name = "Ann C."
    try:
        session.flush()
    except errors.FlushError as error:
        say(f"""
            The email is already taken.  The flush fails as a whole, and says where:
                {error}
            The database and every object are exactly as before the flush (ann.name is still
            {ann.name!r}, the new author still pending), and the session refuses to go on:""")
    try:
        session.get(Author, 1)
    except errors.PendingRollbackError as error:
        print(f"    PendingRollbackError: {str(error)[:100]}...")
    session.rollback()
    say(f"""
        session.rollback() starts over from the last commit: ann.name = {ann.name!r}, and
        the session works again: session.get(Author, 1) = {session.get(Author, 1)!r}""")

    print()
    print(f"Done. {session.stats()}")
    session.close()


if __name__ == "__main__":
    main()
