"""README.rst runs: its examples are executed, its shown output compared, its tables kept whole.

A README whose examples drift from the code teaches the wrong thing with full confidence.  So:

* every ``.. code-block:: python`` block is executed and every ``.. code-block:: pycon`` block is
  run as a doctest (its output must be what the code prints), in the order they appear, in one
  namespace, in a fresh directory: later examples continue the first one, as a reader does.
  A plan, an explanation or SQL shown in the README is therefore produced by uow, not copied.
  (A block that must not run, a shell command or a table, is a plain ``::`` literal block.)
* the "Two commands" begin by making a virtual environment with the Python version the package
  declares as its floor;
* the exceptions table names every exception class in ``uow.errors`` and no other.
"""

import configparser
import doctest
import inspect
import pathlib
import re

import pytest

import uow.errors

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.rst").read_text(encoding="utf-8")


def code_blocks(text):
    """``[(language, first line number, code)]`` for each ``.. code-block::`` of ``text``, in order."""
    blocks = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        match = re.fullmatch(r"\.\. code-block:: (\w+)\s*", line)
        if match is None:
            continue
        body = []
        start = None
        for index in range(number + 1, len(lines)):
            following = lines[index]
            if following and not following.startswith("    "):
                break
            if following and start is None:
                start = index + 1
            body.append(following[4:])
        blocks.append((match.group(1), start, "\n".join(body).strip("\n") + "\n"))
    return blocks


def section(title):
    start = README.index(f"\n{title}\n{'-' * len(title)}\n")
    end = re.search(r"\n[^\n]+\n-{3,}\n", README[start + 2 * len(title) + 3:])
    return README[start:start + 2 * len(title) + 3 + (end.start() if end else len(README))]


def test_the_readme_has_examples_in_python_and_pycon_only():
    languages = {language for language, _, _ in code_blocks(README)}
    assert languages <= {"python", "pycon"}, "tests/test_readme.py runs python and pycon blocks only"
    assert {"python", "pycon"} <= languages


def test_every_example_runs_and_prints_what_the_readme_shows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the first example makes shop.db in the current directory
    namespace = {"__name__": "readme"}
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for language, line, code in code_blocks(README):
        if language == "python":
            exec(compile(code, f"README.rst, line {line}", "exec"), namespace)
            continue
        test = parser.get_doctest(code, namespace, f"README.rst, line {line}", "README.rst", line - 1)
        output = []
        result = runner.run(test, out=output.append, clear_globs=False)
        assert result.failed == 0, "".join(output)
        namespace.update(test.globs)  # (a DocTest runs in a copy of the namespace it is given)
    assert runner.tries > 10  # the pycon blocks really ran


def test_the_two_commands_begin_with_a_virtual_environment_of_the_declared_python():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    floor = re.fullmatch(r">=\s*(3\.\d+)", config["options"]["python_requires"].strip()).group(1)
    text = section("Two commands")
    assert f"Python {floor} or newer" in text
    first_command = re.search(r"::\n\n    (.+)\n", text).group(1)
    assert first_command.startswith(f"python{floor} -m venv .venv"), first_command
    commands = re.findall(r"^    (python .+)$", text, re.M)
    assert commands == ["python -m pip install -e . && python -m uow.demo",
                        "python -m pip install -e '.[test]' && python -m pytest"]


def exception_classes():
    return {name for name, value in vars(uow.errors).items()
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == "uow.errors"}


def test_the_exceptions_table_names_every_exception_and_says_what_to_do():
    table = section("Exceptions")
    rows = re.findall(r"^``(\w+)``\s{2,}(\S.*)$", table, re.M)
    named = {name for name, _ in rows}
    assert exception_classes() - named == set(), "README.rst's exceptions table misses these"
    assert named - exception_classes() == set(), "README.rst's exceptions table names classes uow.errors lacks"
    for name in named:
        entry = re.search(rf"^``{name}``\s{{2,}}(.+?)(?=\n``|\n=)", table, re.M | re.S).group(1)
        assert "What to do:" in " ".join(entry.split()), f"the row of {name} does not say what to do"


@pytest.mark.parametrize("name", ["uow.sql", "capture_sql"])
def test_the_readme_shows_how_to_see_your_own_sql(name):
    assert name in section("Seeing the SQL of your program")
