"""A narrated walkthrough of uow: ``python -m uow.demo``.

Each chapter teaches one idea of the Unit of Work pattern, in the order a course would: it runs on
a fresh database of its own, prints the real SQL uow sends, one sentence of why, and the modules
to read next.  ``python -m uow.demo --list`` lists the chapters, ``python -m uow.demo 7`` (or a
chapter's name) runs one, and no argument runs them all.  It uses only the public API: read it
side by side with its output.  The chapters live in one module per part of the course, in this
order: ``basics`` (new objects, flush and commit, keys, the identity map, dirty fields, your SQL),
``reading`` (autoflush, lazy loading, expiry), ``ordering`` (cascades, the plan, dependency
processing, the topological sort, cycles) and ``transactions`` (begin modes, rollback,
savepoints, a failed flush, optimistic locking); ``models`` holds their classes and ``output``
the printing, which keeps every line within 100 columns.
"""

import argparse
import os
import sys
from collections.abc import Sequence

from . import basics, ordering, reading, transactions
from .output import Chapter, emit, heading

CHAPTERS: list[Chapter] = [*basics.CHAPTERS, *reading.CHAPTERS, *ordering.CHAPTERS, *transactions.CHAPTERS]


def _pick(wanted: Sequence[str], parser: argparse.ArgumentParser) -> list[tuple[int, Chapter]]:
    numbered = list(enumerate(CHAPTERS, start=1))
    if not wanted:
        return numbered
    by_name = {chapter.name: (number, chapter) for number, chapter in numbered}
    picked = []
    for word in wanted:
        if word.isdigit() and 1 <= int(word) <= len(CHAPTERS):
            picked.append(numbered[int(word) - 1])
        elif word.lower() in by_name:
            picked.append(by_name[word.lower()])
        else:
            parser.error(f"no chapter {word!r}: give a number from 1 to {len(CHAPTERS)} or a name "
                         f"({', '.join(by_name)}); --list shows them")
    return picked


def main(argv: Sequence[str] = ()) -> int:
    """Run the chapters named in ``argv`` (the command line's words; all chapters when empty)."""
    parser = argparse.ArgumentParser(
        prog="python -m uow.demo",
        description="A walkthrough of the Unit of Work pattern, showing the SQL uow sends.")
    parser.add_argument("chapters", nargs="*", metavar="CHAPTER",
                        help="a chapter's number or name (default: every chapter, in order)")
    parser.add_argument("--list", action="store_true", help="list the chapters and exit")
    arguments = parser.parse_args(list(argv))
    picked = _pick(arguments.chapters, parser)
    if arguments.list:
        for number, chapter in picked:
            emit(f"{number:2}. {chapter.name:22} {chapter.title}")
        return 0
    for number, chapter in picked:
        heading(number, chapter.title, chapter.read)
        chapter.run()
    return 0


def run_from_command_line() -> int:
    """main(), made safe to pipe: ``python -m uow.demo | head`` ends quietly when head stops reading."""
    try:
        status = main(sys.argv[1:])
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away.  Point stdout at devnull so that Python's own flush at exit does
        # not fail again (and print a traceback); this is the recipe of Python's signal docs.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return status
