"""Conformance properties for units of work: Hypothesis state machines checked against an oracle.

``oracle`` is the specification (plain dicts, no ORM imports); ``machine`` runs random programs
against an implementation through an ``adapter``; ``report`` prints a conformance report.
Choose the implementation with ``UOW_IMPL="module:factory"`` (default: uow's own adapter).
"""
