"""pytest configuration for the property suite: register the Hypothesis profiles (see profiles.py)."""

from . import profiles  # noqa: F401  (registering the profiles is the import's effect)
