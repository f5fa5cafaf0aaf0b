"""The uow benchmark: run ``python bench/run.py`` (or ``python -m bench.run``); see README.rst."""
