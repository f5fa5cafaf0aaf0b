"""Root pytest configuration: the Hypothesis profiles exist before any test module is imported.

``HYPOTHESIS_PROFILE`` picks one (dev by default; CI uses ci); see properties/profiles.py.
"""

from properties import profiles  # noqa: F401  (registering the profiles is the import's effect)
