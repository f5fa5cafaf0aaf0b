"""The identity map: at most one object per row in a session.

Fowler's Identity Map in a dozen lines.  Its key is ``(EntityClass, (primary-key values...))``
(the same shape SQLAlchemy's ``identity_key`` returns), its value the one object that stands for
that row.  Loading goes through it, so ``session.get(User, 3) is session.get(User, 3)``, and a
query that returns the row again returns the same object instead of a copy that could
disagree with it.

It holds strong references.  A weak map would let unused objects vanish and save memory, but it
makes behaviour depend on when the garbage collector runs; objects leave only through expunge,
close, rollback or a committed delete, each of which is visible in the code that calls it.

Reading is plain ``dict`` reading (``get``, ``in``, iteration), which keeps a cache hit as cheap
as a dictionary lookup; writing goes through :meth:`add` and :meth:`discard`, which refuse to
let two objects claim one row.
"""

from .errors import DuplicateIdentityError


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
    cls, values = key
    return f"{cls.__name__}({', '.join(map(repr, values))})"
