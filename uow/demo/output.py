"""How the walkthrough prints: prose, SQL and plans, every line at most 100 columns wide.

Chapters print only through these helpers, so that the width limit and the chapter heading (which
``tests/test_tour.py`` reads) are kept in one place.  A line too long is wrapped at spaces, its
continuation indented under it, rather than cut: an error message must be readable whole.
"""

import dataclasses
import textwrap
from collections.abc import Callable, Iterable

from uow import Statement

WIDTH = 100


def emit(line: str = "") -> None:
    """Print one line, wrapped to WIDTH columns; continuation lines are indented four more."""
    if len(line) <= WIDTH:
        print(line)
        return
    indent = line[: len(line) - len(line.lstrip())]
    for wrapped in textwrap.wrap(line.strip(), WIDTH, initial_indent=indent,
                                 subsequent_indent=indent + "    ", break_on_hyphens=False):
        print(wrapped)


def heading(number: int, title: str, read: Iterable[str]) -> None:
    """A chapter's title, underlined, and the modules that implement what it shows."""
    text = f"{number}. {title}"
    emit()
    emit(text)
    emit("=" * len(text))
    emit(f"(read: {', '.join(f'uow/{name}.py' for name in read)})")


def say(text: str) -> None:
    """Explanation, dedented (chapters write it indented in the source): its prose lines are
    filled to WIDTH as one paragraph, and indented lines (values, examples) kept as they are."""
    emit()
    prose: list[str] = []
    for line in textwrap.dedent(text).strip().splitlines() + [" "]:
        if line and not line[0].isspace():
            prose.append(line)
            continue
        if prose:
            print(textwrap.fill(" ".join(prose), WIDTH, break_on_hyphens=False))
            prose = []
        if line.strip():
            emit(line)


def why(text: str) -> None:
    """The chapter's one sentence of why, marked so a reader skimming the output finds it."""
    emit()
    for line in textwrap.wrap("Why: " + " ".join(text.split()), WIDTH, subsequent_indent="     "):
        emit(line)


def show(text: object) -> None:
    """Something uow printed itself (a plan, a repr), indented."""
    for line in str(text).splitlines():
        emit("    " + line)


def show_sql(statements: list[Statement]) -> None:
    """The statements captured with ``uow.capture_sql()``, one per line."""
    for statement in statements:
        emit(f"    SQL> {statement}")
    if not statements:
        emit("    SQL> (nothing: no statement was sent)")


@dataclasses.dataclass(frozen=True)
class Chapter:
    """One chapter: the name to ask for it by, its title, the modules to read next, and its code."""

    name: str
    title: str
    read: tuple[str, ...]
    run: Callable[[], None]
