"""CREATE TABLE statements from entity declarations, and ``create_all`` to run them.

Each column becomes ``"name" TYPE [NOT NULL] [UNIQUE] [DEFAULT (expr)] [CHECK (...)]`` (the check
from its type: a UUID's one stored form); the key becomes
``"id" INTEGER PRIMARY KEY`` (SQLite's rowid, which SQLite numbers by itself) for a single
integer key, or a ``PRIMARY KEY (...)`` clause otherwise; each foreign key becomes a
``FOREIGN KEY (...) REFERENCES ...`` clause.  Foreign keys are not DEFERRABLE: uow orders its
statements so that every reference is valid when each statement runs, and an immediate check
is what proves that it does.  They are ``ON UPDATE CASCADE``: when a natural primary key changes,
SQLite re-points the rows that reference it, and the session updates the loaded children to match.

Each foreign key also gets an index on its columns (``foreign_key_index_sql``), as SQLite's
foreign-key documentation advises: without one, deleting a parent row scans the whole child table,
once for SQLite's own check and once for the session's look-up of the children it must unlink or
delete, so deleting n parents costs n times the child table (bench/scaling.py found it: 2.8x the
cost per row at 4x the rows).  A key whose columns already lead the primary key, or that is one
UNIQUE column, has an index already and gets none.
"""

import sqlite3
from collections.abc import Iterable

from .arguments import listed
from .errors import ArgumentError, MappingError
from .executor import Executor
from .entity import Entity
from .identifiers import quote
from .mapper import Mapper, mapper_of, mapper_of_class
from .planner.topological import waves


def create_table_sql(cls: type[Entity]) -> str:
    """The CREATE TABLE statement for one entity class."""
    mapper = mapper_of_class(cls, "create_table_sql")
    mapper.configure()
    lines = []
    for column in mapper.columns:
        parts = [quote(column.name), column.type.sql_type]
        if column is mapper.generated_key:
            parts.append("PRIMARY KEY")
        elif not column.nullable:
            parts.append("NOT NULL")
        if column.unique:
            parts.append("UNIQUE")
        if column.server_default is not None:
            parts.append(f"DEFAULT ({column.server_default})")
        check = column.type.check_sql(quote(column.name))
        if check is not None:
            parts.append(f"CHECK ({check})")
        lines.append(" ".join(parts))
    if mapper.generated_key is None:
        lines.append(f"PRIMARY KEY ({', '.join(map(quote, mapper.pk_names))})")
    for foreign_key in mapper.foreign_keys:
        target = foreign_key.target.__mapper__
        lines.append(
            f"FOREIGN KEY ({', '.join(map(quote, foreign_key.column_names))}) "
            f"REFERENCES {quote(target.table)} ({', '.join(map(quote, target.pk_names))}) ON UPDATE CASCADE"
        )
    body = ",\n    ".join(lines)
    return f"CREATE TABLE IF NOT EXISTS {mapper.quoted_table} (\n    {body}\n)"


def foreign_key_index_sql(cls: type[Entity]) -> list[str]:
    """The CREATE INDEX statements for ``cls``'s foreign keys (see the module docstring), one per key
    that no index leads with already: ``ix_<table>_<columns>``, as SQLAlchemy's naming convention."""
    mapper = mapper_of_class(cls, "foreign_key_index_sql")
    mapper.configure()
    statements = []
    for foreign_key in mapper.foreign_keys:
        names = tuple(foreign_key.column_names)
        if names == tuple(mapper.pk_names[:len(names)]):
            continue  # the primary key's index (or the rowid) leads with these columns
        if len(names) == 1 and any(column.unique for column in mapper.columns if column.name == names[0]):
            continue  # a UNIQUE column has its own index
        index = "_".join(("ix", mapper.table) + names)
        where = "" if mapper.database == "main" else f"{quote(mapper.database)}."
        statements.append(f"CREATE INDEX IF NOT EXISTS {where}{quote(index)} ON {quote(mapper.table)} "
                          f"({', '.join(map(quote, names))})")
    return statements


def tables_in_dependency_order(classes: Iterable[type[Entity]]) -> list[Mapper]:
    """Referenced tables first, one level at a time, each level by table name; a table that
    references itself is fine.

    The order comes from the topological sort the flush planner uses (``planner.topological``):
    given the tables by name, it places every table whose referenced tables are placed, level by
    level.  SQLite accepts a reference to a table created later, so a cycle of tables only loses
    the nice order (the tables then go by name); the flush planner deals with cycles between rows.
    """
    mappers = sorted((mapper_of(cls) for cls in classes), key=lambda mapper: mapper.table)
    by_class = {mapper.cls: mapper for mapper in mappers}
    edges = []
    for mapper in mappers:
        mapper.configure()
        for foreign_key in mapper.foreign_keys:
            target = by_class.get(foreign_key.target)
            if target is not None and target is not mapper:
                edges.append((target, mapper))  # (two foreign keys to one table: the pair twice, harmless)
    levels, stuck = waves(mappers, edges)
    if stuck:
        return mappers
    return [mapper for level in levels for mapper in level]


def create_all(connection: sqlite3.Connection, classes: Iterable[type[Entity]] | type[Entity] | None = None) -> None:
    """Create the tables of ``classes`` (default: every entity declared on ``Entity``) in one transaction.

    ``classes`` may also be an abstract base, meaning every entity declared on it.  Tables that
    already exist are left alone, but their columns are checked against the declaration so a
    mismatch fails here instead of at the first flush.
    """
    if classes is None:
        classes = list(Entity.__registry__.classes.values())
    elif isinstance(classes, type) and "__mapper__" not in vars(classes) and hasattr(classes, "__registry__"):
        classes = list(classes.__registry__.classes.values())
    elif isinstance(classes, type) and "__mapper__" in vars(classes):
        raise ArgumentError(f"create_all(): classes must be a list of entity classes or an abstract base, got the "
                            f"entity class {classes.__name__}; pass [{classes.__name__}]")
    else:
        classes = listed(classes, "create_all", "classes")
    seen_tables: dict[str, type[Entity]] = {}
    for cls in classes:
        table = mapper_of_class(cls, "create_all").table.lower()
        if table in seen_tables and seen_tables[table] is not cls:
            raise MappingError(f"{cls.__name__} and {seen_tables[table].__name__} both map to table {table!r}")
        seen_tables[table] = cls
    mappers = tables_in_dependency_order(classes)
    _check_server_defaults(mappers)
    executor = Executor(connection)
    executor.execute("BEGIN")
    try:
        for mapper in mappers:
            existing = executor.fetchall(f"PRAGMA {quote(mapper.database)}.table_info({quote(mapper.table)})")
            if existing:  # left alone, its indexes too, once its columns are checked
                _check_existing_columns(existing, mapper)
            executor.execute(create_table_sql(mapper.cls))
            if not existing:
                for statement in foreign_key_index_sql(mapper.cls):
                    executor.execute(statement)
        executor.execute("COMMIT")
    except BaseException:
        if executor.in_transaction:
            executor.execute("ROLLBACK")
        raise


def _check_server_defaults(mappers: list[Mapper]) -> None:
    """Each ``server_default`` is SQL pasted into CREATE TABLE: try it on a scratch database first.

    A malformed expression, one SQLite does not take as a DEFAULT (not constant), or text that
    closes the DEFAULT's parenthesis to declare more than the one column, is a MappingError naming
    the attribute, before the real database sees any statement.
    """
    # A private in-memory database, not the user's: its statements are not uow's work, so they
    # are not sent through (or logged by) an Executor.
    scratch = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for mapper in mappers:
            for column in mapper.columns:
                expression = column.server_default
                if expression is None:
                    continue
                problem = None
                if not isinstance(expression, str):
                    problem = "is not a string of SQL"
                else:
                    try:
                        scratch.execute(f'CREATE TABLE "scratch" ("value" DEFAULT ({expression}))')
                        if len(scratch.execute('PRAGMA table_info("scratch")').fetchall()) != 1:
                            problem = "declares more than a default value"
                        scratch.execute('DROP TABLE "scratch"')
                    except (sqlite3.Error, ValueError) as error:
                        problem = f"is not an expression SQLite takes as a DEFAULT ({error})"
                if problem is not None:
                    raise MappingError(
                        f"{column.qualified_name}: server_default {expression!r} {problem}; give one constant SQL "
                        f"expression, such as server_default=\"0\", \"'text'\" or \"CURRENT_TIMESTAMP\""
                    )
    finally:
        scratch.close()


def _check_existing_columns(rows: list, mapper: Mapper) -> None:
    """``rows``: PRAGMA table_info of the mapper's table, which exists already."""
    existing = {row[1].lower() for row in rows}
    missing = [name for name in mapper.column_names if name.lower() not in existing]
    if missing:
        raise MappingError(
            f"table {mapper.table!r} already exists without column(s) {', '.join(missing)} that "
            f"{mapper.cls.__name__} declares; migrate the table or rename the attributes"
        )
