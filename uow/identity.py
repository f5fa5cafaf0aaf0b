"""The identity map: at most one object per row in a session.

Fowler's Identity Map in a dozen lines.  Its key is ``(EntityClass, (primary-key values...))``
(the same shape SQLAlchemy's ``identity_key`` returns), each value in the form SQLite stores and
compares it (``Mapper.key_for``: two Decimals equal in Python but stored as different texts are
two rows, so two keys), its value the one object that stands for
that row.  Loading goes through it, so ``session.get(User, 3) is session.get(User, 3)``, and a
query that returns the row again returns the same object instead of a copy that could
disagree with it.

It holds strong references.  A weak map would let unused objects vanish and save memory, but it
makes behaviour depend on when the garbage collector runs; objects leave only through expunge,
close, rollback, a flushed delete or a new row taking a key SQLite handed out again, each of which
is visible in the code that calls it.

Reading is plain ``dict`` reading (``get``, ``in``, iteration), which keeps a cache hit as cheap
as a dictionary lookup; writing goes through :meth:`add` and :meth:`discard`, which refuse to
let two objects claim one row.  (The two hottest loops, building loaded objects and applying a
flush's inserts, write the dict directly, each after looking at what the key already holds.)

Objects enter the map in batches of thousands, so :func:`collector_paused` lives here too: it
keeps the garbage collector from walking the whole program while a batch is built.
"""

import contextlib
import gc

from .errors import DuplicateIdentityError

BULK_ROWS = 1000


class IdentityMap(dict):
    """``{identity key: object}`` with guarded writes."""

    def add(self, key, obj):
        """Map ``key`` to ``obj``; a different object already there is an error, not a replacement."""
        held = self.get(key, obj)
        if held is not obj:
            raise DuplicateIdentityError(
                f"{held!r} already holds the identity {format_key(key)} in this session, so {obj!r} "
                f"cannot; use session.merge(obj) to copy its values onto the held object, or expunge one of them"
            )
        self[key] = obj

    def discard(self, key, obj):
        """Forget ``key`` if (and only if) it maps to ``obj``."""
        if self.get(key) is obj:
            del self[key]


def format_key(key):
    """``User(3)`` or ``Pair(1, 'x')``: an identity key as error messages print it."""
    cls = key[0]
    # The key holds stored forms (the text of a Decimal key); show the values the user knows.
    return f"{cls.__name__}({', '.join(map(repr, cls.__mapper__.key_values(key)))})"


@contextlib.contextmanager
def collector_paused(rows):
    """Pause CPython's cyclic garbage collector while a batch of ``rows`` objects is built.

    Each loaded object and its state record point at each other, and building many of them
    triggers the cyclic collector every few hundred allocations; its full passes walk *every*
    object the program holds, so without this a load would get slower the more the program has
    in memory.  Nothing built in the batch is garbage, so there is nothing for the collector to
    find until the batch is done.  Small batches are left alone, and a collector the program
    disabled itself stays disabled.
    """
    if rows < BULK_ROWS or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
