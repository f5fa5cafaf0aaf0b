"""The kit's worked example keeps passing: the conformance machine against minisession
(properties/examples/), with its declared capabilities.

The run is shorter than the main conformance test's (at most 200 programs of the active profile),
since its purpose is that the example and the kit's documented protocol do not drift apart, not
to search minisession for bugs.
"""

from hypothesis import settings

from .examples.minisession_adapter import MiniSessionAdapter
from .profiles import PROFILE
from .relations_machine import build_machine

_profile = settings.get_profile(PROFILE)

TestMiniSessionConformance = build_machine(MiniSessionAdapter).TestCase
TestMiniSessionConformance.settings = settings(_profile, max_examples=min(_profile.max_examples, 200))
