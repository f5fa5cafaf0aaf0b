"""uow's public API is typed, and a type checker reads entity declarations as users write them.

mypy (pinned in the ``test`` extra, configured in setup.cfg) runs over a script written the way a
user writes one (``typing_user.py``: no error allowed) and over a few lines with the mistakes an
entity's annotations exist to catch (each must be flagged, or the typing would be Any in
disguise).  The script is run too: what the type checker accepts must also work.
"""

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("mypy", reason="mypy is not installed; pip install -e '.[test]' brings it")

ROOT = pathlib.Path(__file__).resolve().parent.parent
USER_SCRIPT = ROOT / "tests" / "typing_user.py"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One mypy cache for the module's runs (the standard library is read once), kept out of the checkout."""
    return tmp_path_factory.mktemp("mypy_cache")


def mypy(cache_dir, *arguments):
    """Run mypy as a user would, from the checkout (so it reads this tree's uow and setup.cfg):
    (exit status, the error and note lines)."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "setup.cfg"), "--cache-dir", str(cache_dir),
         "--no-error-summary", "--hide-error-context", *arguments],
        cwd=ROOT, capture_output=True, text=True,
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert not result.stderr.strip(), result.stderr
    return result.returncode, lines


def test_user_script_type_checks(cache_dir):
    # Errors inside uow are test_package_type_checks' business: a user's run reports their own.
    status, lines = mypy(cache_dir, "--follow-imports=silent", str(USER_SCRIPT))
    assert lines == []
    assert status == 0


def test_user_script_runs():
    result = subprocess.run([sys.executable, str(USER_SCRIPT)], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert "INSERT orders (user_id, total, tags) reading back (id): 2 rows" in result.stdout


def readme_example():
    """The README's first example, as a program."""
    text = (ROOT / "README.rst").read_text()
    block = text.split(".. code-block:: python", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines)


def test_readme_example_type_checks_and_runs(cache_dir, tmp_path):
    script = tmp_path / "readme_example.py"
    script.write_text(readme_example())
    status, lines = mypy(cache_dir, "--follow-imports=silent", str(script))
    assert lines == []
    assert status == 0
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr


MISTAKES = '''\
from uow import Collection, Column, Entity, Reference


class Author(Entity, table="authors"):
    id: int = Column(primary_key=True)
    name: str
    books: Collection["Book"] = Collection("Book", "author")


class Book(Entity, table="books"):
    id: int = Column(primary_key=True)
    title: str
    author_id: int | None = Column(references=Author)
    author: Reference[Author] = Reference("author_id")


ann = Author(name=3)                                  # line 17: a str column given an int
Author(name="Ann", nickname="A")                      # line 18: no such field
Author()                                              # line 19: name is NOT NULL, no default
book = Book(title="Emma", author=ann)
book.author = book                                    # line 21: a Book is not an Author
ann.books.append(ann)                                 # line 22: nor in a list of Book
title: int = book.title                               # line 23: a title is a str
Column(primary_key="yes")                             # line 24: a flag is a bool
'''


def test_type_checker_flags_the_mistakes_annotations_exist_to_catch(cache_dir, tmp_path):
    script = tmp_path / "mistakes.py"
    script.write_text(MISTAKES)
    status, lines = mypy(cache_dir, "--follow-imports=silent", str(script))
    flagged = sorted({int(line.split(":")[1]) for line in lines if ": error:" in line})
    assert flagged == [17, 18, 19, 21, 22, 23, 24], "\n".join(lines)
    assert status == 1
    assert any('Argument "name" to "Author" has incompatible type "int"; expected "str"' in line for line in lines)
    assert any('Unexpected keyword argument "nickname" for "Author"' in line for line in lines)
    assert any('Missing named argument "name" for "Author"' in line for line in lines)


def _public_callables():
    """``(name, function)`` for every public function, method and property of uow's public API:
    what ``uow`` exports, the exceptions, the events module and the planner's records."""
    import inspect

    import uow
    import uow.planner
    from uow.features import events

    seen = set()
    for module in (uow, uow.errors, uow.planner, events):
        for name in module.__all__ if hasattr(module, "__all__") else dir(module):
            value = getattr(module, name)
            if name.startswith("_") or id(value) in seen or not getattr(value, "__module__", "").startswith("uow"):
                continue
            seen.add(id(value))
            if inspect.isfunction(value):
                yield f"{module.__name__}.{name}", value
            elif inspect.isclass(value):
                for klass in value.__mro__:
                    if not klass.__module__.startswith("uow"):
                        continue
                    for member_name, member in vars(klass).items():
                        if member_name.startswith("_") and member_name not in _PUBLIC_DUNDERS:
                            continue
                        if isinstance(member, (staticmethod, classmethod)):
                            member = member.__func__
                        elif isinstance(member, property):
                            member = member.fget
                        elif hasattr(member, "func") and hasattr(member, "attrname"):  # functools.cached_property
                            member = member.func
                        if inspect.isfunction(member):
                            yield f"{name}.{member_name} ({klass.__module__}.{klass.__qualname__})", member


# The dunders a user calls through syntax: construction, with-blocks, descriptors, iteration.
_PUBLIC_DUNDERS = {"__init__", "__init_subclass__", "__enter__", "__exit__", "__get__", "__set__", "__iter__",
                   "__len__", "__contains__", "__call__", "__getitem__"}


def test_every_public_signature_is_annotated():
    import inspect

    missing = []
    for name, function in _public_callables():
        signature = inspect.signature(function)
        parameters = list(signature.parameters.values())
        if parameters and parameters[0].name in ("self", "cls"):
            parameters = parameters[1:]
        unannotated = [p.name for p in parameters if p.annotation is inspect.Parameter.empty]
        if signature.return_annotation is inspect.Signature.empty:
            unannotated.append("return")
        if unannotated:
            missing.append(f"{name}: {', '.join(unannotated)}")
    assert missing == []


def test_package_type_checks(cache_dir):
    """mypy over uow/ with setup.cfg's settings: no error, in the package a user's checker reads."""
    status, lines = mypy(cache_dir, "uow")
    assert lines == []
    assert status == 0
