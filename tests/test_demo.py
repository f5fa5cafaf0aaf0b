"""The walkthrough (``python -m uow.demo``): every chapter runs and shows the SQL it is about,
chapters can be picked by number or name, the output fits 100 columns, and it is safe to pipe.

The chapters are checked for the statements they explain, not for their whole text, so that
wording can improve without breaking the tests while a chapter that stopped showing its idea
(a cascade that sends no DELETE, a savepoint chapter without RELEASE) fails.
"""

import contextlib
import io
import os
import pathlib
import re
import subprocess
import sys

import pytest

from uow import demo
from uow.demo.output import WIDTH

# For each chapter, text its output must contain: the SQL (or the result) it is there to show.
SHOWS = {
    "states": ["<transient>", "<pending>", "SQL> (nothing: no statement was sent)"],
    "flush": ['INSERT INTO "authors"', "still sees 0 authors", "SQL> COMMIT", "sees 1 author"],
    "keys": ['RETURNING "id"', 'SELECT max("books"."id") FROM "books"', "executemany x3",
             'WHERE "books"."id" > ?', "books = [1, 2, 3]"],
    "identity-map": ["first is again: True", "first is listed: True"],
    "dirty": ["dirty_fields(ann) = ['name']", "SQL> (nothing: no statement was sent)",
              'UPDATE "authors" SET "email" = ?'],
    "your-sql": ["uow.sql DEBUG: SELECT", "uow.sql DEBUG: COMMIT"],
    "autoflush": ['INSERT INTO "authors"', "finds her ([Author(id=1", "cannot see Bo ([])"],
    "lazy-loading": ['FROM "books" WHERE "books"."author_id" = ?', "['Notes', 'Poems']", "is ann: True"],
    "expire-refresh": ["ann = Author(id=1)<persistent>", "'Ann (edited elsewhere)'"],
    "cascades": ["session.new holds 3 objects", "executemany x2: [('Notes', 1, 0), ('Poems', 1, 0)]",
                 'DELETE FROM "books"', 'WHERE "books"."author_id" = ?', 'DELETE FROM "authors"'],
    "plan": ["Flush plan:", "Because:", "is unique and is freed first", "references authors.id"],
    "why": ["- save-update: it is in Author(new #1).books, and Author.books cascades save-update",
            "name 'Ann' -> 'Annie'", "- delete: Author(id=1) is marked for deletion",
            "SQL> (nothing: no statement was sent)", 'DELETE FROM "books"'],
    "dependencies": ["books.author_id references authors.id", "('Notes', 1, 0)"],
    "topological-sort": ["categories.parent_id references", "('crime', 1)", "('noir', 3)"],
    "cycles": ["[post-update]", "to break a cycle", 'UPDATE "departments" SET "head_id" = ?',
               'UPDATE "employees" SET "department_id" = ?'],
    "begin-modes": ["BEGIN DEFERRED", "BEGIN IMMEDIATE"],
    "rollback": ["SQL> ROLLBACK", "(id=None, title='Draft'", "<transient>"],
    "savepoints": ['SAVEPOINT "uow_sp_1"', 'ROLLBACK TO "uow_sp_1"', 'RELEASE "uow_sp_1"',
                   'SAVEPOINT "add_cy"', 'RELEASE "add_cy"', "dee = Author(id=None"],
    "failed-flush": ["FlushError: INSERT of Author", 'ROLLBACK TO "uow_flush"', "PendingRollbackError",
                     "ann.name = 'Ann')"],
    "optimistic-locking": ['"version" = "version" + 1', 'AND "accounts"."version" = ?',
                           "StaleDataError: UPDATE of Account(id=1)", "balance = 150, version = 2"],
}


def run(*argv):
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        status = demo.main(list(argv))
    return status, output.getvalue()


def flat(text):
    """The text with every run of whitespace one space: a long line is wrapped where it falls."""
    return " ".join(text.split())


def command_line(*argv, **options):
    environment = dict(os.environ, **options.pop("env", {}))
    return subprocess.run([sys.executable, "-m", "uow.demo", *argv], capture_output=True, text=True,
                          env=environment, **options)


def in_order(text, fragments):
    """Whether the fragments occur in text in this order."""
    position = 0
    for fragment in fragments:
        position = flat(text).find(flat(fragment), position)
        if position < 0:
            return False
    return True


def test_every_chapter_has_its_checks():
    assert [chapter.name for chapter in demo.CHAPTERS] == list(SHOWS)


@pytest.mark.parametrize("name", list(SHOWS))
def test_each_chapter_shows_its_sql_and_why(name):
    status, text = run(name)
    assert status == 0
    for fragment in SHOWS[name]:
        assert flat(fragment) in flat(text), f"chapter {name!r} no longer shows {fragment!r}"
    assert "\nWhy: " in text
    assert re.search(r"^\(read: uow/\S+\.py", text, re.M)


def test_the_sql_appears_in_the_order_the_idea_needs():
    """Order is the point of some chapters: check it, not just presence."""
    assert in_order(run("dependencies")[1], ['INSERT INTO "authors"', 'INSERT INTO "books"'])
    assert in_order(run("topological-sort")[1], ["('fiction', None)", "('crime', 1)", "('noir', 3)",
                                                 "[(4,)]", "[(3,)]", "[(1,)]"])
    assert in_order(run("savepoints")[1], ['ROLLBACK TO "uow_sp_1"', 'RELEASE "uow_sp_1"'])
    assert in_order(run("cycles")[1], ['INSERT INTO "departments"', 'INSERT INTO "employees"',
                                       'UPDATE "departments" SET "head_id"', 'UPDATE "employees"',
                                       'DELETE FROM "departments"'])
    assert in_order(run("autoflush")[1], ['INSERT INTO "authors"', 'SELECT "authors"."id"'])
    assert in_order(run("cascades")[1], ['INSERT INTO "authors"', 'INSERT INTO "books"',
                                         'DELETE FROM "books"', 'DELETE FROM "authors"'])


def test_the_whole_walkthrough_by_default_fits_100_columns():
    status, text = run()
    assert status == 0
    assert text.count("\nWhy: ") == len(demo.CHAPTERS)
    wide = [line for line in text.splitlines() if len(line) > WIDTH]
    assert WIDTH == 100
    assert wide == [], f"{len(wide)} lines are wider than 100 columns, the first: {wide[:1]}"


def test_a_chapter_by_number_is_the_chapter_by_name():
    number = str([chapter.name for chapter in demo.CHAPTERS].index("savepoints") + 1)
    assert run(number)[1] == run("savepoints")[1] == run("SAVEPOINTS")[1]
    assert run(number)[1].startswith(f"\n{number}. Savepoints")
    assert run("3", "1")[1].index("\n3. ") < run("3", "1")[1].index("\n1. ")


def test_list_names_every_chapter_in_order():
    status, text = run("--list")
    assert status == 0
    lines = text.splitlines()
    assert len(lines) == len(demo.CHAPTERS)
    for number, (line, chapter) in enumerate(zip(lines, demo.CHAPTERS), start=1):
        assert line.split()[:2] == [f"{number}.", chapter.name]


def test_help_and_an_unknown_chapter_from_the_command_line():
    helped = command_line("--help")
    assert helped.returncode == 0
    assert "--list" in helped.stdout and "CHAPTER" in helped.stdout
    wrong = command_line("99")
    assert wrong.returncode == 2
    assert "no chapter '99'" in wrong.stderr and "savepoints" in wrong.stderr
    assert wrong.stdout == ""


@pytest.mark.parametrize("buffering", ["unbuffered", "buffered"])
def test_piping_into_a_reader_that_stops_ends_quietly(buffering):
    """``python -m uow.demo | head`` : the reader goes away early, and the demo ends without a
    traceback (it used to end in BrokenPipeError)."""
    environment = dict(os.environ, PYTHONUNBUFFERED="1" if buffering == "unbuffered" else "")
    if buffering == "buffered":
        del environment["PYTHONUNBUFFERED"]
    process = subprocess.Popen([sys.executable, "-m", "uow.demo"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=environment)
    first = process.stdout.read(200)
    process.stdout.close()  # what head does after its ten lines
    errors = process.stderr.read()
    process.stderr.close()
    status = process.wait()
    assert b"New objects" in first
    assert errors == b"", errors.decode()
    assert status in (0, 1)


def test_the_command_line_runs_the_whole_walkthrough():
    finished = command_line()
    assert finished.returncode == 0, finished.stderr
    assert finished.stderr == ""
    assert finished.stdout.count("\nWhy: ") == len(demo.CHAPTERS)


def test_the_readme_example_names_a_chapter_by_its_number_and_name():
    readme = (pathlib.Path(demo.__file__).parents[2] / "README.rst").read_text(encoding="utf-8")
    number, name = re.search(r"``python -m uow\.demo (\d+)`` or ``python -m uow\.demo ([a-z-]+)``",
                             readme).groups()
    assert demo.CHAPTERS[int(number) - 1].name == name
