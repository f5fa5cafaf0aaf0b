"""The two marker values uow uses where None is a real value.

* ``MISSING``: no value was given (a Column without a default; a field a merge did not carry).
* ``NOT_LOADED``: the value is unknown because the attribute was expired; it fills a snapshot's
  entry for that column (see ``tracking``) until the row is read again.

Both are single objects compared by identity (``value is NOT_LOADED``), so no stored value can
ever be mistaken for them.
"""


class _Missing:
    """Marks "no value given", where None is a real value."""

    def __repr__(self):
        return "MISSING"


MISSING = _Missing()


class _NotLoaded:
    """Marks a snapshot entry whose value is unknown (the attribute was expired).

    It equals nothing but itself (object's default equality), so assigning an expired attribute
    always counts as a change; and having no ``__eq__`` of its own keeps ``NOT_LOADED in row``
    a C-speed identity scan.
    """

    def __repr__(self):
        return "NOT_LOADED"


NOT_LOADED = _NotLoaded()
