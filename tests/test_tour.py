"""The maps a learner reads before the code stay true to the code.

README.rst's module tour and reading order, ``uow/__init__.py``'s tour and the walkthrough's
"read:" lines name modules; a module added, renamed or grown without them would send a learner
to the wrong file, so these tests compare them with the files that exist.
"""

import contextlib
import io
import pathlib
import re

import uow
from uow import demo

PACKAGE = pathlib.Path(uow.__file__).parent
README = (PACKAGE.parent / "README.rst").read_text(encoding="utf-8")


def modules():
    """Every module of the package, as the tours name it (``planner/edges`` for a subpackage's)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).with_suffix("")
        if relative.name == "__init__":
            relative = relative.parent
        if str(relative) != ".":
            found[str(relative)] = path
    return found


def line_count(path):
    return len(path.read_text(encoding="utf-8").splitlines())


def section(text, title):
    start = text.index(f"{title}\n{'-' * len(title)}\n")
    following = re.search(r"\n[^\n]+\n-{3,}\n", text[start + 2 * len(title) + 2:])
    return text[start:start + 2 * len(title) + 2 + (following.start() if following else len(text))]


def test_the_readme_tour_names_every_module():
    tour = section(README, "A tour of the modules")
    named = set(re.findall(r"^``([a-z_]+)``", tour, re.M))
    top_level = {name for name in modules() if "/" not in name and name != "demo"}
    assert top_level - named == set(), "modules missing from README.rst's tour"
    assert named - top_level == set(), "README.rst's tour names modules that do not exist"
    for sub in ("planner", "features"):
        for name in modules():
            if name.startswith(sub + "/"):
                assert f"``{name.split('/')[1]}``" in tour, f"README.rst's tour does not name {name}"


def test_the_package_docstring_tour_names_every_module():
    listed = set(re.findall(r"^\* ``([a-z_]+)``", uow.__doc__, re.M))
    named = set(re.findall(r"``([a-z_]+)``", uow.__doc__))  # the session's parts are named in its line
    top_level = {name for name in modules() if "/" not in name and name != "demo"}
    assert top_level - named == set(), "modules missing from uow/__init__.py's tour"
    assert listed - top_level == set(), "uow/__init__.py's tour names modules that do not exist"


def test_the_reading_order_gives_line_counts_close_to_the_files():
    """The counts may lag a small edit, not a rewrite: within 10% (or 15 lines)."""
    order = section(README, "Reading order")
    counted = re.findall(r"``([a-z_]+)`` \((\d+)", order)
    assert len(counted) >= 15
    paths = modules()
    for name, stated in counted:
        path = paths.get(name) or paths.get(f"planner/{name}")
        assert path is not None, f"the reading order names {name!r}, which is not a module"
        actual = line_count(path)
        assert abs(actual - int(stated)) <= max(15, actual // 10), (
            f"README.rst's reading order gives {name} {stated} lines; it has {actual}: update the count")


def test_every_walkthrough_chapter_names_modules_that_exist():
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        demo.main()
    text = output.getvalue()
    titles = re.findall(r"^(\d+)\. .+\n=+\n\(read: ([^)]+)\)$", text, re.M)
    assert [int(number) for number, _ in titles] == list(range(1, len(titles) + 1))
    assert len(titles) == text.count("\n====") , "a chapter does not say which modules to read"
    for _, read in titles:
        for path in read.split(", "):
            assert (PACKAGE.parent / path).is_file(), f"the walkthrough names {path}, which does not exist"


MODULE_BUDGET = 400


def test_every_module_fits_the_budget():
    """One concept per module keeps each file readable in one sitting; a module that grows past
    the budget has usually taken on a second concept, which wants a module (and a tour line) of
    its own -- not fewer comments."""
    over = {name: line_count(path) for name, path in modules().items() if line_count(path) > MODULE_BUDGET}
    assert over == {}, (f"modules over {MODULE_BUDGET} lines: {over}; move a whole concept out into a "
                        f"module of its own and name it in both tours")
