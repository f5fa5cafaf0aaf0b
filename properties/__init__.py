"""Conformance properties for units of work: Hypothesis state machines checked against an oracle.

Installed as ``uow_conformance`` (this folder is ``properties`` in a checkout of uow).  ``oracle``
is the specification (plain dicts, no ORM imports); ``machine`` runs random programs against an
implementation through an ``adapter``; ``python -m uow_conformance mypkg.adapter:Adapter`` prints
a conformance report (``report``).
"""
