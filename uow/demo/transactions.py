"""Chapters on transactions: how they begin, exact rollback, savepoints, a failed flush, and
optimistic locking with a version column."""

import os
import tempfile

from uow import capture_sql, errors

from .models import Account, Author, Book, fresh_session
from .output import Chapter, emit, say, show_sql, why


def begin_modes() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "demo.db")
        reader = fresh_session(path)
        writer = fresh_session(path)
        with capture_sql() as statements:
            reader.all(Author)
        say("A session that starts by reading begins DEFERRED: it takes no lock until it reads:")
        show_sql(statements)
        with capture_sql() as statements:
            writer.add(Author(name="Ann"))
            writer.flush()
        say("""
            A session that starts by writing (a flush) begins IMMEDIATE: it takes the write lock
            at BEGIN, where SQLite's busy timeout can wait for it:""")
        show_sql(statements)
        with capture_sql() as statements:
            seen = reader.all(Author)
        say(f"""
            While the writer holds that lock, the reader still reads, side by side, and sees the
            last committed state ({seen}):""")
        show_sql(statements)
        reader.commit()  # in rollback-journal mode an open read would block the writer's COMMIT
        with capture_sql() as statements:
            writer.commit()
        say("""
            The reader's transaction ends (commit), and the writer's COMMIT can take the file:""")
        show_sql(statements)
        reader.close()
        writer.close()
    why("""a DEFERRED transaction that has read and then wants to write cannot wait for the write
        lock (SQLite fails it at once with "database is locked"), so uow begins DEFERRED only to
        read and IMMEDIATE to write; Session(begin_mode=...) overrides both.""")


def rollback() -> None:
    session = fresh_session()
    ann = Author(name="Ann")
    book = Book(title="Notes", author=ann)
    session.add(book)
    session.commit()
    ann.name = "Changed"
    book.copies = 99
    extra = Book(title="Draft", author=ann)
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
        session.rollback() rolls the database back, and puts back every object the session
        touched since the last commit from its undo log, without reading anything:
            ann   = {ann!r}
            book  = {book!r}
            extra = {extra!r}   (transient again: the id the flush gave it is gone)
        The only statement sent:""")
    show_sql(statements)
    why("""after a rollback the objects must say what the database says, exactly; an undo log
        restores them without a SELECT, including keys and list memberships a flush had changed.""")


def savepoints() -> None:
    session = fresh_session()
    ann = Author(name="Ann")
    session.add(ann)
    session.commit()
    with capture_sql() as statements:
        nested = session.begin_nested()
        dee = Author(name="Dee")
        session.add(dee)
        session.flush()
        ann.name = "Ann B."
    say("""
        session.begin_nested() begins the transaction if none is open, then sends SAVEPOINT; the
        work inside it is flushed as usual (in the flush's own savepoint):""")
    show_sql(statements)
    with capture_sql() as statements:
        nested.rollback()
    say(f"""
        Rolling the savepoint back sends ROLLBACK TO and then RELEASE: ROLLBACK TO undoes the
        work but leaves the savepoint open on SQLite's stack, and RELEASE removes it, so the
        stack matches the session's.  The objects are back too:
            dee = {dee!r}
            ann = {ann!r}""")
    show_sql(statements)
    with capture_sql() as statements:
        with session.savepoint("add_cy"):
            session.add(Author(name="Cy"))
    say("""
        A savepoint whose block ends normally is released, and its work kept.  session.savepoint()
        is begin_nested() with a name of your own, which then appears in the SQL:""")
    show_sql(statements)
    session.commit()
    why("""a savepoint lets one part of a transaction fail and be retried without giving up the
        rest, both in the database and in the objects.""")


def failed_flush() -> None:
    session = fresh_session()
    ann = Author(name="Ann", email="ann@example.org")
    session.add(ann)
    session.commit()
    session.add(Author(name="Eve", email="ann@example.org"))
    ann.name = "Ann C."
    with capture_sql() as statements:
        try:
            session.flush()
        except errors.FlushError as error:
            failure = error
    say("The new author's email is taken.  The flush fails as a whole:")
    show_sql(statements)
    emit(f"    {type(failure).__name__}: {failure}")
    say(f"""
        ROLLBACK TO the flush's savepoint undid its own statements; the objects are as before the
        flush (ann.name is still {ann.name!r}, Eve still pending), and the session refuses other
        work until you roll back:""")
    try:
        session.get(Author, 1)
    except errors.PendingRollbackError as error:
        emit(f"    {type(error).__name__}: {error}")
    with capture_sql() as statements:
        session.rollback()
    show_sql(statements)
    say(f"""
        After session.rollback() everything is as at the last commit (ann.name = {ann.name!r}),
        and the session works again.""")
    why("""a flush is all or nothing, so a failure leaves nothing half-written, and the session
        makes you decide (roll back, fix, retry) instead of carrying on past the error.""")


def optimistic_locking() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "demo.db")
        first = fresh_session(path)
        first.add(Account(owner="Ann", balance=100))
        first.commit()
        second = fresh_session(path)
        mine = first.get_one(Account, 1)
        theirs = second.get_one(Account, 1)
        first.commit()
        second.commit()  # both have read version 1 and hold no lock now: an "offline" edit
        say(f"""
            Account has a column declared Column(version=True).  Two sessions read it:
                {mine!r}""")
        theirs.balance = 150
        with capture_sql() as statements:
            second.commit()
        say("The second session writes first; its UPDATE checks the version and increments it:")
        show_sql(statements)
        mine.balance = 80
        with capture_sql() as statements:
            try:
                first.commit()
            except errors.StaleDataError as error:
                failure = error
        say("""
            The first session's UPDATE still expects version 1, so it matches no row, and uow
            raises instead of overwriting the other change:""")
        show_sql(statements)
        emit(f"    StaleDataError: {failure}")
        first.rollback()
        expired = repr(mine)
        with capture_sql() as statements:
            balance = mine.balance
        say(f"""
            After rollback the stale object is expired ({expired}), so its next read loads the
            row as it is now (balance = {balance}, version = {mine.version}); reapply the change:""")
        show_sql(statements)
        first.close()
        second.close()
    why("""Fowler's Optimistic Offline Lock: no lock is held between reading and writing, and the
        version in the WHERE clause detects a write made in between, so no update is lost.""")


CHAPTERS = [
    Chapter("begin-modes", "Reads begin DEFERRED, writes IMMEDIATE", ("transaction", "boundaries"),
            begin_modes),
    Chapter("rollback", "Rollback puts objects back exactly", ("rollback", "transaction"), rollback),
    Chapter("savepoints", "Savepoints: SAVEPOINT, ROLLBACK TO, RELEASE",
            ("transaction", "transactionscopes", "boundaries", "executor"), savepoints),
    Chapter("failed-flush", "A failed flush, and recovering from it", ("flush", "guard", "rollback"),
            failed_flush),
    Chapter("optimistic-locking", "Optimistic locking with a version column",
            ("stepsql", "writing", "flush"), optimistic_locking),
]
