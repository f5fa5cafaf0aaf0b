"""Every exception uow raises, in one hierarchy under :class:`UowError`.

Why one module: a reader who wants to know "what can go wrong" finds the whole list here, each
class with the situation that raises it.  Where a Python built-in exception already names the
kind of mistake (a wrong type, a missing key), the uow exception also derives from it, so
``except TypeError`` keeps working for code that does not know uow.

Messages follow one formula: what was attempted, on which object or value, what was found,
and what to do instead.
"""

import os
import sys
import types
import warnings
from collections.abc import Iterable


class UowError(Exception):
    """Base class of every exception raised by uow.

    Raised as itself for a mistake in setting uow up that no class below describes: a connection
    uow cannot use, an unknown event, a database name already attached.
    """


# --- declaring entities -------------------------------------------------------------------

class MappingError(UowError, TypeError):
    """A class declaration cannot be mapped to a table (bad identifier, annotation, key...).

    Raised when the class statement runs, before any database is involved; what depends on other
    classes (a foreign key to a class declared later, two classes on one table) is checked when
    they are first used.  A Reference or Collection given an object of the wrong class raises it
    too: the mapping says what it may hold.
    """


class ArgumentError(UowError, TypeError):
    """An argument of the wrong kind was handed to a uow call: None or a single object where a
    list belongs, a number where SQL text or a path belongs, a duration that is not a number.

    Raised before the call changes anything or sends any SQL (see ``arguments``).
    """


class UnmappedClassError(UowError, TypeError):
    """An object or class that is not a uow entity was handed to the session, or an entity class
    was handed to a call that needs an instance of it (``session.add(User)``)."""


class UnknownFieldError(UowError, AttributeError):
    """A field name that the entity does not declare (in a constructor, query or call)."""


class MissingFieldError(UowError, TypeError):
    """A constructor was not given a value for a NOT NULL column that has no default."""


class ColumnValueError(UowError, ValueError):
    """A value that its column cannot store and give back unchanged.

    SQLite would silently turn NaN into NULL, reject integers beyond 64 bits, or change a type on
    the way back; uow refuses such values before any SQL runs.
    """


class ConditionError(UowError, TypeError):
    """A query condition that cannot mean what it says: a condition used as a truth value
    (``and``, ``or``, ``if``, ``1 < User.age < 9``: write ``&`` and ``|``), ``&`` with something
    that is not a condition, an attribute of another class, or an operator the column's type
    cannot answer (``<`` on a Decimal stored as text, ``like()`` on a number).  A query used as a
    truth value (``if query:``), or an AsyncSession's query awaited itself, raises it too.

    Raised before any SQL runs.  A value the column cannot hold is a ColumnValueError instead.
    """


class MultipleResultsError(UowError, LookupError):
    """``one()`` or ``one_or_none()`` found more than one row; narrow the query, or use ``first()``."""


# --- identity and object state -------------------------------------------------------------

class IdentityError(UowError, LookupError):
    """A primary-key value that no row can have was given to get(), get_one() or identity_key().

    Its shape is wrong (two values for a one-column key), or a value is of the wrong type or one
    the column cannot store (None, an int beyond 64 bits, a lone surrogate).  Also raised when a
    query meets a row whose primary key holds NULL (SQLite allows it in a key column that is not
    an INTEGER PRIMARY KEY): such a row has no identity, so no object is made from it.
    """


class NotFoundError(UowError, LookupError):
    """get_one() found no row with the given primary key, or a query's ``one()`` found no row."""


class DuplicateIdentityError(UowError):
    """Two different objects claim the same identity (class and primary key) in one session."""


class InvalidStateError(UowError):
    """An operation is not allowed in the object's current lifecycle state.

    For example deleting a transient object, or adding an object that belongs to another session.
    The message names the operation, the object, its state and what to do instead.
    """


class DetachedInstanceError(InvalidStateError):
    """An expired attribute was read on an object that no longer has a session to load it."""


class ObjectDeletedError(InvalidStateError):
    """An expired object was read, but its row is no longer in the database."""


# --- sessions and transactions -------------------------------------------------------------

class SessionClosedError(UowError):
    """The session was closed; it cannot be used again."""


class ConnectionClosedError(SessionClosedError):
    """The sqlite3 connection under a session was closed outside uow; the session cannot reach it."""


class WrongThreadError(UowError):
    """A session was used from a thread other than the one that created it."""


class LazyLoadError(UowError):
    """An attribute that is not loaded was read where loading it is not allowed: on the event loop's
    thread, for an object of an :class:`~uow.features.asyncio.AsyncSession` (a load there would
    block the loop).  The message names the attribute and the explicit way to load it.  An
    AsyncSession's query iterated with a plain ``for`` raises it too: write ``async for``."""


class TransactionError(UowError):
    """A transaction operation does not fit the current transaction state.

    For example ``begin()`` while a transaction is already open, or committing a savepoint that
    is not the innermost one.
    """


class FlushError(UowError):
    """A statement of a flush failed; the database and the session are as they were before it.

    ``statement`` is the SQL that failed, ``obj`` the object it was written for (when one row can
    be named), and ``__cause__`` the original sqlite3 exception.
    """

    def __init__(self, message: str, statement: str | None = None, obj: object = None) -> None:
        super().__init__(message)
        self.statement = statement
        self.obj = obj


class StaleDataError(FlushError):
    """An UPDATE or DELETE found that someone else changed or deleted the row since it was loaded.

    Raised for entities with a version column (``Column(version=True)``); nothing was overwritten.
    ``expected`` is the version this session loaded, ``found`` what the row holds now (None when
    the row is gone).
    """

    def __init__(self, message: str, statement: str | None = None, obj: object = None,
                 expected: int | None = None, found: int | None = None) -> None:
        super().__init__(message, statement=statement, obj=obj)
        self.expected = expected
        self.found = found


class DatabaseLockedError(TransactionError):
    """A read waited longer than the busy timeout for another connection's lock.

    Nothing changed: the session and its transaction are as they were, so the read can be tried
    again, or the transaction rolled back.  (A flush or a COMMIT that meets a lock fails as a
    FlushError or TransactionError that says the same.)  ``__cause__`` is sqlite3's error.
    """


class ReadOnlyError(TransactionError):
    """A flush was attempted in a read-only transaction; nothing was sent."""


class CycleError(UowError):
    """The rows of a flush depend on each other in a cycle that no nullable foreign key can break.

    Raised while planning, before any SQL runs.  ``cycle`` lists ``(before, after, reason)``
    for each dependency in the cycle, naming the rows, columns and values.
    """

    def __init__(self, message: str, cycle: Iterable[tuple[str, str, str]] = ()) -> None:
        super().__init__(message)
        self.cycle = list(cycle)


class PendingRollbackError(UowError):
    """A previous flush failed; call ``rollback()`` before using the session again.

    ``original`` is the FlushError (or other exception) that put the session in this state.
    """

    def __init__(self, message: str, original: BaseException | None = None) -> None:
        super().__init__(message)
        self.original = original


# --- warnings ------------------------------------------------------------------------------

class UowWarning(UserWarning):
    """Something uow did that is allowed, but is rarely what was meant: issued through Python's
    ``warnings``, never raised.

    Where SQLAlchemy warns rather than fails, uow warns too, with this class, so that a test suite
    can make every one of them an error (``warnings.simplefilter("error", uow.UowWarning)``, or
    pytest's ``-W error::uow.errors.UowWarning``).  Issued for: an object reachable only through a
    relationship without save-update, left out of a flush; ``merge()`` of an object already pending
    in the session; a commit across attached files that is not atomic (WAL); ``close_all_sessions()``
    leaving sessions of other threads open.
    """



_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str) -> None:
    """Issue a :class:`UowWarning` attributed to the first caller outside uow, so that the warning
    names the user's line (and Python's once-per-line filter counts the user's lines, not ours)."""
    level = 2  # (1 is this function)
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    warnings.warn(message, UowWarning, stacklevel=level)


# What ``from uow.errors import *`` (and so ``uow``) exports: every exception and warning class
# (not warn(), nor the modules imported above).  Kept last, so that it sees every class.
__all__ = [name for name, value in list(globals().items())
           if isinstance(value, type) and issubclass(value, (UowError, UowWarning))]
