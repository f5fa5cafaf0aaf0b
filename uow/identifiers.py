"""Table and column names: which ones uow accepts, and how they are quoted in SQL.

Every name is checked once, when the class is declared (or the database attached), so that a
name never needs more than quoting to be safe and a bad name fails at the class statement rather
than at the first statement that uses it.  Besides SQL's own rule (a plain identifier), a few
names are refused because SQLite, or uow's own API, already gives them a meaning.
"""

import re

from .errors import MappingError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MAX_IDENTIFIER_LENGTH = 128
# Names SQLite gives a meaning of its own, in any case.  A column called rowid, oid or _rowid_
# hides the table's real rowid from every statement that names it; a table called excluded is
# shadowed, inside an upsert, by the pseudo-table of the row being inserted.
_ROWID_NAMES = frozenset({"rowid", "oid", "_rowid_"})
_SHADOWED_TABLE_NAMES = frozenset({"excluded"})
# The parameters Session.filter() takes for itself: filter(Thing, limit=3) must mean LIMIT 3, so a
# column of one of these names could never be filtered on (it silently became the LIMIT).
FILTER_OPTIONS = frozenset({"entity", "order_by", "limit", "load"})


def check_identifier(name, what, error=MappingError):
    """Refuse a table, column or savepoint name that is not a plain identifier (raising ``error``).

    Names are always quoted in SQL as well; the check exists so that a name never needs more
    than quoting to be safe, and so that SQLite's reserved ``sqlite_`` prefix and the empty
    name fail when the class is declared rather than when the first statement runs.
    """
    if type(name) is not str or not _IDENTIFIER.match(name):
        raise error(
            f"{what} {name!r} is not a plain identifier: use letters, digits and underscores, "
            f"starting with a letter or underscore"
        )
    if len(name) > _MAX_IDENTIFIER_LENGTH:
        raise error(f"{what} {name[:20]!r}... is longer than {_MAX_IDENTIFIER_LENGTH} characters")
    if name.lower().startswith("sqlite_"):
        raise error(f"{what} {name!r} starts with 'sqlite_', a prefix SQLite reserves for itself")


def check_table_name(cls, table, database):
    """Refuse a table (or attached database) name that ``cls`` could not be stored under."""
    check_identifier(table, f"table name of {cls.__name__}:")
    if table.lower() in _SHADOWED_TABLE_NAMES:
        raise MappingError(
            f"table name of {cls.__name__}: {table!r} is the name SQLite gives the row being inserted "
            f"inside an upsert (ON CONFLICT ... excluded.column), so upsert() could not reach this "
            f"table's own columns; choose another table name"
        )
    if database != "main":
        check_identifier(database, f"database name of {cls.__name__}:")


def check_column_name(cls, name):
    """Refuse an attribute name that could not be a column of ``cls``."""
    if type(name) is str and name.lower() in _ROWID_NAMES:
        raise MappingError(
            f"{cls.__name__}.{name}: {name!r} is one of SQLite's names for the row's rowid (rowid, "
            f"oid, _rowid_, in any case); a column of that name would hide the rowid from every "
            f"statement that names it. Rename the attribute"
        )
    if name.startswith("_"):
        raise MappingError(
            f"{cls.__name__}.{name}: column names may not start with '_' (uow keeps its own "
            f"bookkeeping there); annotate it as ClassVar if it is not a column"
        )
    check_identifier(name, f"column name in {cls.__name__}:")
    if name in FILTER_OPTIONS:
        raise MappingError(
            f"{cls.__name__}.{name}: {name!r} is a parameter of session.filter() ("
            f"{', '.join(sorted(FILTER_OPTIONS))}), so filter({cls.__name__}, {name}=...) could not mean "
            f"this column. Rename the attribute"
        )


def quote(name):
    """Quote an identifier for SQL.  Names are checked at declaration, so no escaping is needed."""
    return '"' + name + '"'
