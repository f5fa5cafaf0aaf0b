"""Hypothesis profiles for the property suites, chosen by ``HYPOTHESIS_PROFILE`` (default: dev).

Every profile keeps ``deadline=None`` and suppresses health checks, as a state machine's own
TestCase settings do: a profile is the parent the TestCase settings are built from, so a
deadline left out here would come back.  Only one failure is shrunk and
reported: shrinking several distinct failures of a state machine takes minutes.

* dev       fast feedback while editing (random, with the example database)
* ci        derandomized, no example database, well under a minute per implementation
* thorough  thousands of longer programs, for a nightly run
* mutation  derandomized and small, so every mutant sees the same programs (mutmut)

The profile is loaded globally only when ``HYPOTHESIS_PROFILE`` is set; the conformance test
applies it to itself either way (see test_conformance.py), and tests/ derive their own settings
from these profiles by name.  This module is imported by ``properties/conftest.py`` and by the
repository's root ``conftest.py``, so the profiles exist before any test module is imported.
"""


import contextlib
import os

from hypothesis import HealthCheck, Phase, settings
from hypothesis.internal.conjecture import providers

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "dev")
NAMES = ("dev", "ci", "thorough", "mutation")

_common = dict(deadline=None, suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
# The explain phase re-runs a failure many times to point at lines; slow for a state machine.
_no_explain = tuple(phase for phase in Phase if phase is not Phase.explain)

settings.register_profile("dev", max_examples=100, stateful_step_count=40, phases=_no_explain, **_common)
settings.register_profile("ci", max_examples=1000, stateful_step_count=50, derandomize=True, database=None,
                          print_blob=True, phases=_no_explain, **_common)
settings.register_profile("thorough", max_examples=5000, stateful_step_count=80, **_common)
settings.register_profile("mutation", max_examples=50, stateful_step_count=30, derandomize=True,
                          database=None, phases=_no_explain, **_common)
if "HYPOTHESIS_PROFILE" in os.environ:
    settings.load_profile(PROFILE)


@contextlib.contextmanager
def fixed_draws():
    """Within it, what Hypothesis draws depends on the seed and the strategies alone, not on
    which modules the process has loaded.

    Hypothesis sometimes (one draw in twenty) draws a constant it read in the source of the
    modules loaded from the project instead of a random value: integers from 100 up and short
    strings, from every loaded module outside site-packages and the standard library whose path
    has no ``test`` or ``tests`` folder (uow/, properties/, bench/).  That pool grows as modules
    are imported, so the programs a derandomized profile draws depended on what else pytest had
    collected (``test_conformance[pony]`` drew other programs in the whole suite than alone: a
    choice among more than 128 references, say, could take 128 or 150 from a module only the
    whole suite imports), and on every constant any helper adds anywhere in uow.  Here the pool
    is empty: CI, a lone run and ``python -m properties`` draw the same programs.  (A private
    hook of Hypothesis 6.155, ``providers._get_local_constants``; where it is missing, the
    context changes nothing.)"""
    if not hasattr(providers, "_get_local_constants"):
        yield
        return
    found = providers._get_local_constants
    empty = providers.Constants()
    providers._get_local_constants = lambda: empty
    providers.CONSTANTS_CACHE.cache.clear()  # constants allowed per kind of draw, from the old pool
    try:
        yield
    finally:
        providers._get_local_constants = found
        providers.CONSTANTS_CACHE.cache.clear()
