"""Chapters on what a flush writes and in which order: cascades, the plan and its reasons, asking
why a row is in it, dependency processing, the topological sort of rows, and cycles broken by a
post-update."""

from uow import capture_sql, state_of

from .models import Author, Book, Category, Department, Employee, fresh_session
from .output import Chapter, say, show, show_sql, why


def cascades() -> None:
    session = fresh_session()
    notes = Book(title="Notes")
    ann = Author(name="Ann", books=[notes, Book(title="Poems")])
    session.add(ann)
    say(f"""
        save-update: session.add(ann) also registers the books in ann.books, through the
        cascade of Author.books (cascade="all, delete-orphan"), and a Reference does the same for
        the object it points at:  session.new holds {len(session.new)} objects.  The commit
        inserts them all, the parent first:""")
    with capture_sql() as statements:
        session.commit()
    show_sql(statements)
    ann.books.remove(notes)
    with capture_sql() as statements:
        session.flush()
    say("""
        delete-orphan: removing a book from ann.books deletes it, as a book cannot live without
        an author:""")
    show_sql(statements)
    session.commit()
    session.expunge_all()
    ann = session.get_one(Author, 1)
    with capture_sql() as statements:
        session.delete(ann)
        session.flush()
    say("""
        delete: deleting ann (read afresh, her books not loaded) loads and deletes her remaining
        book too, before her own row:""")
    show_sql(statements)
    why("""a cascade says which operations travel along a relationship, so that a whole graph of
        objects is added or deleted by naming its root, and no row is left pointing at nothing.""")


def plan() -> None:
    session = fresh_session()
    ann = Author(name="Ann", email="ann@example.org")
    session.add_all([ann, Book(title="Notes", author=ann)])
    session.commit()
    bo = Author(name="Bo", email="ann@example.org")
    session.add(Book(title="Songs", author=bo))
    session.delete(session.get_one(Book, 1))
    ann.email = "a@example.org"
    say("""
        A new author Bo takes the email ann gives up, with a new book of his, and ann's book is
        deleted.  session.plan() shows what the next flush would do, and why, without running it:""")
    show(session.plan())
    with capture_sql() as statements:
        session.commit()
    say("session.commit() flushes that plan, then commits:")
    show_sql(statements)
    why("""planning first and executing second makes the flush plain data you can print, compare
        and test, before a single statement reaches the database.""")


def asking_why() -> None:
    session = fresh_session()
    notes = Book(title="Notes")
    ann = Author(name="Ann", books=[notes])
    session.add(ann)
    say("""
        session.explain(obj) answers "why is this row in the flush?".  Only ann was add()ed;
        her book came in by a cascade, and explain() says which, from which object, and what
        orders its INSERT:""")
    show(session.explain(notes))
    session.commit()
    ann.name = "Annie"
    say("""
        For a changed object it shows each field old -> new, and the UPDATE that writes it:""")
    show(session.explain(ann))
    session.commit()
    session.delete(ann)
    with capture_sql() as statements:
        explained = session.explain(notes)
    say("""
        Deleting ann pulls her book in through the delete cascade, ordered before her row.
        Asking sends no SQL:""")
    show(explained)
    show_sql(statements)
    with capture_sql() as statements:
        session.commit()
    say("The commit then does what explain() said:")
    show_sql(statements)
    why("""a unit of work decides much on your behalf (what to write, pulled in from where, in
        which order), so it should be able to give its reasons for each row on demand.""")


def dependencies() -> None:
    session = fresh_session()
    ann = Author(name="Ann")
    session.add(Book(title="Notes", author=ann))
    say("""
        A new book referencing a new author: neither has a key yet.  The plan says the book's
        INSERT depends on the author's:""")
    show(session.plan())
    with capture_sql() as statements:
        session.flush()
    say("""
        Dependency processing: after the author's INSERT returns its key, the flush copies it into
        the book's author_id before the book's INSERT is sent (see the 1 in its parameters):""")
    show_sql(statements)
    why("""a foreign key can only hold a key that exists, so the unit of work, not you, orders the
        parent first and carries its new key across to the child.""")


def topological_sort() -> None:
    session = fresh_session()
    fiction = Category(name="fiction")
    crime = Category(name="crime", parent=fiction)
    noir = Category(name="noir", parent=crime)
    session.add_all([noir, Category(name="poetry")])
    say("""
        Three levels of a tree in one table, added child first, and an unrelated category.
        An order of tables cannot help here (there is one table): the planner sorts rows, a
        topological sort of the row actions along their foreign keys, every parent before its
        children; rows with no order between them share a step (a "wave").""")
    show(session.plan())
    with capture_sql() as statements:
        session.flush()
    show_sql(statements)
    session.delete(fiction)
    session.delete(crime)
    session.delete(noir)
    say("""
        Deleting the tree, root first, runs the same sort the other way: children before parents,
        whatever order delete() was called in:""")
    with capture_sql() as statements:
        session.flush()
    show_sql(statements)
    why("""a table-level order (parents' table first) is enough only while no table refers to
        itself; a row-level sort orders any graph without cycles, and names each edge's reason.""")


def cycles() -> None:
    session = fresh_session()
    lab = Department(name="Lab")
    kim = Employee(name="Kim", department=lab)
    lab.head = kim
    session.add(lab)
    say("""
        A department headed by an employee who works in it: each new row needs the other's key
        first, a cycle no order can satisfy.  The planner breaks it at a nullable foreign key:
        insert the department with head_id NULL, then set it in a post-update:""")
    show(session.plan())
    with capture_sql() as statements:
        session.commit()
    show_sql(statements)
    session.delete(kim)
    session.delete(lab)
    with capture_sql() as statements:
        session.flush()
    say("""
        Deleting both breaks the cycle the other way: an UPDATE clears one foreign key (Kim's
        department_id) before the rows are deleted:""")
    show_sql(statements)
    why("""a topological sort fails on a cycle, so one of its edges must become an UPDATE after
        (or before) the rows; a cycle with no nullable column raises CycleError naming the rows.""")


CHAPTERS = [
    Chapter("cascades", "Cascades: save-update, delete, delete-orphan", ("cascades", "relationships"),
            cascades),
    Chapter("plan", "The flush plan is data, with its reasons", ("planner/records", "planner/actions"), plan),
    Chapter("why", "Asking why: session.explain(obj)", ("explain",), asking_why),
    Chapter("dependencies", "Dependency processing: a new key copied into the child",
            ("planner/edges", "writing"), dependencies),
    Chapter("topological-sort", "The topological sort orders rows, not tables",
            ("planner/edges", "planner/topological"), topological_sort),
    Chapter("cycles", "Cycles, broken by a post-update", ("planner/schedule",), cycles),
]
