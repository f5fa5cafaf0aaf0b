"""The rules of RULES.rst as data: ``{rule id: text}``, and the ids a failure message cites.

RULES.rst is the specification a person reads; the oracle cites a rule by its id (``"RBK-2"``)
wherever it predicts an outcome, so a failure names the rule it found broken, and the report
prints that rule's text under the failure.  ``test_rules.py`` keeps the two from drifting.
"""

import os
import re

RULES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RULES.rst")
RULE_ID = re.compile(r"\b(?:ID|LIF|TRK|VAL|EXP|QRY|FLU|ORD|FAIL|TXN|RBK|SVP|VER|OUT|MRG|REL|KEY)-\d+\b")
_HEADING = re.compile(r"^(?P<id>[A-Z]+-\d+)$")
_MARKUP = re.compile(r"\*\*|``|\*")


def load(path=RULES_FILE):
    """``{rule id: text}`` in the order RULES.rst gives them; the text is one line, without markup.

    A rule is a definition-list entry: its id alone on a line, then its paragraphs indented.
    """
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    found = {}
    current = None
    for line in lines:
        heading = _HEADING.match(line)
        if heading is not None:
            current = heading.group("id")
            if current in found:
                raise ValueError(f"{path}: rule {current} is written twice")
            found[current] = []
        elif current is not None and (line.startswith(" ") or not line.strip()):
            found[current].append(line.strip())
        else:
            current = None
    return {rule: _MARKUP.sub("", " ".join(" ".join(text).split())) for rule, text in found.items()}


def cited(text):
    """The rule ids ``text`` names, in order of first mention."""
    found = []
    for rule in RULE_ID.findall(text):
        if rule not in found:
            found.append(rule)
    return found
