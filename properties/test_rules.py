"""RULES.rst and the oracle must not drift apart, nor the capabilities from either.

The oracle cites a rule by writing its id as a plain string literal (``rule="RBK-2"``,
``self.cite("RBK-2")``, ``f"[RBK-2] ..."`` in the machine's checks).  These tests read the
source of the oracle and the machine (they import nothing from them) and check that:

* every id they cite is written in RULES.rst, and every id written there is cited;
* every predicted error (``Refused(...)``) names its rule;
* every capability has a docstring that ends by naming the rules it changes, each of which exists
  and whose text names the capability back (a reader of the rule learns that it can be declared
  away, and how);
* every capability RULES.rst names exists;
* every difference the adapters that ship declare comes with a reason the report prints;
* a failure names the rule it broke, and the report prints that rule's text.
"""

import ast
import dataclasses
import os
import re
import tokenize

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from . import report, rules
from .adapter import Capabilities
from .relations_machine import build_machine
from .uow_adapter import UowAdapter

HERE = os.path.dirname(os.path.abspath(__file__))
CITING = ("oracle.py", "relations_oracle.py", "machine.py", "relations_machine.py")
DOCUMENTED = rules.load()
_WHOLE_ID = re.compile(rf"^(?:\[)?({rules.RULE_ID.pattern})(?:\])?")


def _cited_in(filename):
    """``{rule id: [line numbers]}`` of the ids a module's string literals start with."""
    found = {}
    with tokenize.open(os.path.join(HERE, filename)) as source:
        tokens = list(tokenize.generate_tokens(source.readline))
    for token in tokens:
        text = None
        if token.type == tokenize.STRING:
            text = token.string.lstrip("rbfuRBFU").strip("\"'")
        elif token.type == getattr(tokenize, "FSTRING_MIDDLE", None):
            text = token.string
        if text is None:
            continue
        match = _WHOLE_ID.match(text)
        if match is not None and (text == match.group(1) or text.startswith(f"[{match.group(1)}]")):
            found.setdefault(match.group(1), []).append(token.start[0])
    return found


def _all_cited():
    cited = {}
    for filename in CITING:
        for rule, lines in _cited_in(filename).items():
            cited.setdefault(rule, []).extend(f"{filename}:{line}" for line in lines)
    return cited


def test_rules_are_written_once_each_with_text():
    assert len(DOCUMENTED) > 50
    for rule, text in DOCUMENTED.items():
        assert len(text) > 40, f"RULES.rst: {rule} has no text worth the name: {text!r}"
        assert rules.RULE_ID.fullmatch(rule), f"RULES.rst: {rule} does not look like a rule id (see rules.RULE_ID)"


def test_every_rule_the_oracle_cites_is_written_in_rules_rst():
    unknown = {rule: places for rule, places in _all_cited().items() if rule not in DOCUMENTED}
    assert not unknown, f"cited but not written in RULES.rst: {unknown}"


def test_every_rule_written_in_rules_rst_is_cited_by_the_oracle():
    cited = _all_cited()
    uncited = [rule for rule in DOCUMENTED if rule not in cited]
    assert not uncited, (f"written in RULES.rst but cited nowhere in {', '.join(CITING)}: {uncited} "
                         f"(cite each where the oracle applies it, or remove it)")


@pytest.mark.parametrize("filename", ("oracle.py", "relations_oracle.py"))
def test_every_predicted_error_names_its_rule(filename):
    with open(os.path.join(HERE, filename), encoding="utf-8") as source:
        tree = ast.parse(source.read())
    unnamed = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Refused":
            if not any(keyword.arg == "rule" for keyword in node.keywords):
                unnamed.append(node.lineno)
    assert not unnamed, f"{filename}: Refused(...) without rule= at lines {unnamed}"


def _capability_docstrings():
    """``{field name: docstring}`` from adapter.py's source (attribute docstrings)."""
    with open(os.path.join(HERE, "adapter.py"), encoding="utf-8") as source:
        tree = ast.parse(source.read())
    (cls,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Capabilities"]
    found = {}
    body = cls.body
    for node, following in zip(body, body[1:] + [None]):
        if isinstance(node, ast.AnnAssign):
            docstring = None
            if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                docstring = following.value.value
            found[node.target.id] = docstring
    return found


def test_every_capability_says_which_rules_it_changes_and_each_rule_says_so_back():
    docstrings = _capability_docstrings()
    assert set(docstrings) == {field.name for field in dataclasses.fields(Capabilities)}
    for name, docstring in docstrings.items():
        assert docstring, f"Capabilities.{name} has no docstring"
        match = re.search(r"Rules: ([A-Z0-9-, ]+)\.$", " ".join(docstring.split()))
        assert match, f"Capabilities.{name}: its docstring must end with 'Rules: ID-1, ...' (the rules it changes)"
        for rule in [part.strip() for part in match.group(1).split(",")]:
            assert rule in DOCUMENTED, f"Capabilities.{name} names {rule}, which RULES.rst does not have"
            assert name in DOCUMENTED[rule], f"RULES.rst {rule} does not say that {name} changes it"


def test_every_capability_rules_rst_names_exists():
    with open(rules.RULES_FILE, encoding="utf-8") as handle:
        text = handle.read()
    named = set(re.findall(r"``([a-z_0-9]+)``", text))
    fields = {field.name for field in dataclasses.fields(Capabilities)}
    # Literal values and method names also appear in double back-quotes; a capability name is
    # one that is followed by "=" or ":" where it is declared.
    declared = set(re.findall(r"``([a-z_0-9]+)``\s*(?:=|:)", text))
    assert declared <= fields, f"RULES.rst declares capabilities that do not exist: {sorted(declared - fields)}"
    assert fields <= named, f"capabilities RULES.rst never names: {sorted(fields - named)}"


def _shipped_adapters():
    from .examples.minisession_adapter import MiniSessionAdapter
    adapters = [UowAdapter, MiniSessionAdapter]
    try:  # SQLAlchemy and Pony are test dependencies: without one there is nothing of it to check
        from .sqlalchemy_adapter import SQLAlchemyAdapter
        adapters.append(SQLAlchemyAdapter)
    except ImportError:
        pass
    try:
        from .pony_adapter import PonyAdapter
        adapters.append(PonyAdapter)
    except ImportError:
        pass
    return adapters


@pytest.mark.parametrize("adapter", _shipped_adapters(), ids=lambda adapter: adapter.name)
def test_every_declared_difference_has_a_reason(adapter):
    missing = sorted(set(adapter.capabilities.differences()) - set(adapter.reasons))
    assert not missing, f"{adapter.name} declares {missing} without a reason in its adapter's reasons"
    stray = sorted(set(adapter.reasons) - set(adapter.capabilities.differences()))
    assert not stray, f"{adapter.name} gives reasons for capabilities it does not declare: {stray}"


class _ExpireForgetsNothing(UowAdapter):
    """uow with a seeded bug: expire() leaves every field loaded."""

    name = "expire forgets nothing"

    def expire(self, obj):
        pass


@settings(max_examples=1, database=None)
@given(st.none())  # the machine's note() and event() need a running Hypothesis test
def _run_expire_then_check(_):
    state = build_machine(_ExpireForgetsNothing)()
    try:
        state.setup(shape="single", names=("ant", "bee", "cow", "doe"), generated=(True, False, False, False),
                    unique=(False, False, False, False), seeded=1)
        (loaded,) = state.get(pick=("ant", (1,)))
        state.agrees_with_oracle()
        state.expire(handle=loaded)
        state.agrees_with_oracle()
    finally:
        state.teardown()


def test_a_failure_names_the_rule_it_broke_and_the_rules_the_step_applied(capsys):
    with pytest.raises(AssertionError) as failure:
        _run_expire_then_check()
    message = str(failure.value)
    assert "[TRK-4] objects_0 holds {" in message
    assert message.endswith("rules the oracle applied in this step: EXP-2")
    report.print_rules(message)
    printed = capsys.readouterr().out
    assert "  TRK-4  What is loaded is exactly what the oracle says" in printed
    assert "  EXP-2  expire(). expire(obj) forgets every field of a persistent object" in printed
