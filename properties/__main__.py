"""``python -m uow_conformance ADAPTER [--profile NAME]`` (``python -m properties`` in a checkout):
run the conformance machine against a unit of work and print the report (see report.py)."""

import sys

from .report import main

sys.exit(main())
