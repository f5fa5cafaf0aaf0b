"""``python -m uow.demo``: see the package docstring."""

import sys

from . import run_from_command_line

sys.exit(run_from_command_line())
