"""The conformance suite for the implementation named by ``UOW_IMPL`` (default: uow itself).

Run it with ``pytest properties`` or ``python -m properties.report``; ``HYPOTHESIS_PROFILE``
chooses the settings (see conftest.py).
"""

from hypothesis import settings

from .adapter import load_adapter
from .profiles import PROFILE
from .machine import build_machine

Machine = build_machine(load_adapter())
TestConformance = Machine.TestCase
TestConformance.settings = settings(settings.get_profile(PROFILE))
