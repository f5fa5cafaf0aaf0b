"""Chapters on reading: autoflush before a query, lazy loading of relationships, and expired
("ghost") objects that reload on first access, with expire() and refresh()."""

import os
import tempfile

import uow
from uow import capture_sql

from .models import Author, Book, fresh_session
from .output import Chapter, emit, say, show_sql, why


def autoflush() -> None:
    session = fresh_session()
    session.add(Author(name="Ann"))
    with capture_sql() as statements:
        found = session.select(Author).where(Author.name == "Ann").all()
    say(f"""
        Ann is only pending, yet session.select(Author).where(Author.name == "Ann").all() finds
        her ({found}): the query first flushes what is staged, then SELECTs:""")
    show_sql(statements)
    session.add(Author(name="Bo"))
    with session.no_autoflush:
        with capture_sql() as statements:
            found = session.select(Author).where(Author.name == "Bo").all()
    say(f"""
        Inside `with session.no_autoflush:` the query runs alone, and cannot see Bo ({found}):""")
    show_sql(statements)
    why("""a query is answered by the database, so the unit of work writes its pending changes
        first; otherwise a query would contradict the objects you hold.""")


def lazy_loading() -> None:
    session = fresh_session()
    ann = Author(name="Ann", books=[Book(title="Notes"), Book(title="Poems")])
    session.add(ann)
    session.commit()
    session.expunge_all()
    with capture_sql() as statements:
        ann = session.get_one(Author, 1)
    say("""
        A fresh read of ann loads her row only; her books are not loaded yet:""")
    show_sql(statements)
    with capture_sql() as statements:
        titles = [book.title for book in ann.books]
    say(f"""
        The first access to ann.books loads them (lazy load), one SELECT on the foreign key:
            ann.books titles = {titles}""")
    show_sql(statements)
    with capture_sql() as statements:
        same = ann.books[0].author is ann
    say(f"""
        book.author needs no SQL: the key it holds is found in the identity map (is ann: {same}):""")
    show_sql(statements)
    why("""loading related rows only when they are used keeps a read cheap, at the price of one
        SELECT per first access: filter(..., load=["books"]) loads them up front when you know.""")


def expire_refresh() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "demo.db")
        session = fresh_session(path)
        ann = Author(name="Ann")
        session.add(ann)
        session.commit()
        session.expire(ann)
        say(f"""
            session.expire(ann) forgets her loaded values: she is a "ghost", her key known, her
            columns not (printing her loads nothing):
                ann = {ann!r}""")
        with capture_sql() as statements:
            name = ann.name
        say(f"""
            Reading any column reloads the row (ann.name = {name!r}):""")
        show_sql(statements)
        session.commit()  # end the read transaction, so the other connection may write
        other = uow.connect(path)
        other.execute("UPDATE authors SET name = 'Ann (edited elsewhere)' WHERE id = 1")
        with capture_sql() as statements:
            session.refresh(ann)
        say(f"""
            Another connection renamed her.  session.refresh(ann) reloads now, discarding any
            change not flushed:
                ann.name = {ann.name!r}""")
        show_sql(statements)
        other.close()
        session.close()
    why("""the session keeps what it loaded and never re-reads on its own; expire() and refresh()
        are how you say the database may know better.""")


CHAPTERS = [
    Chapter("autoflush", "Autoflush: a query sees what you staged", ("flusher", "features/querying"),
            autoflush),
    Chapter("lazy-loading", "Lazy loading of relationships", ("loading", "relationships", "collection"),
            lazy_loading),
    Chapter("expire-refresh", "Expired objects, expire() and refresh()", ("expiry", "loading", "sentinels"),
            expire_refresh),
]
