"""``uow.class_mapping(User)``: what uow knows of a mapped class, as plain read-only records.

SQLAlchemy answers "how is this class mapped?" with ``class_mapper(User)`` (or ``inspect(User)``),
which hands out its Mapper itself.  uow's :class:`~uow.mapper.Mapper` is built for the hot paths:
prepared tuples, SQL fragments and key functions, which change whenever a path is made faster.
Handing it out would make each such change a break of the public API, so the public answer is a
copy made on request, in frozen dataclasses that say only what the class statement declared and
the database holds::

    >>> mapping = uow.class_mapping(Order)
    >>> mapping.table, mapping.primary_key
    ('orders', ('id',))
    >>> mapping.column("user_id").references
    ('users', 'id')
    >>> [(r.name, r.target.__name__, r.columns) for r in mapping.references]
    [('user', 'User', ('user_id',))]

For an object, ``uow.state_of(obj)``, ``uow.loaded_values(obj)`` and ``uow.identity_key(instance=obj)``
answer the questions SQLAlchemy's ``inspect(obj)`` does.
"""

from dataclasses import dataclass
from typing import Any

from .errors import UnknownFieldError
from .mapper import mapper_of


@dataclass(frozen=True)
class ColumnInfo:
    """One column of a mapped class, as declared: its name, types, and constraints."""

    name: str
    python_type: type      # what the attribute holds (int, str, datetime, a JSON dict ...)
    sql_type: str          # the column's type in CREATE TABLE ('' for no declared type)
    primary_key: bool
    nullable: bool
    unique: bool
    generated: bool        # a key SQLite numbers when the object is inserted without one
    version: bool          # the version column of optimistic locking
    references: tuple[str, str] | None  # (table, column): the key column its foreign key points at


@dataclass(frozen=True)
class ReferenceInfo:
    """A many-to-one relationship (``Reference``): ``order.user``."""

    name: str
    target: type
    columns: tuple[str, ...]   # the foreign-key columns it is kept in
    nullable: bool             # whether it may be None (every column of the key may be NULL)
    cascade: frozenset[str]
    collection: str | None     # the Collection on the target that is its other side, if any


@dataclass(frozen=True)
class CollectionInfo:
    """A one-to-many relationship (``Collection``): ``user.orders``."""

    name: str
    target: type
    reference: str             # the target's Reference back to this class
    cascade: frozenset[str]


@dataclass(frozen=True)
class ClassMapping:
    """How an entity class is mapped: its table, columns, key, version column and relationships."""

    cls: type
    table: str
    database: str              # 'main', or the name of the attached database that holds the table
    columns: tuple[ColumnInfo, ...]   # in declaration order
    primary_key: tuple[str, ...]
    version_column: str | None
    references: tuple[ReferenceInfo, ...]
    collections: tuple[CollectionInfo, ...]

    def column(self, name: str) -> ColumnInfo:
        """The column called ``name``, or UnknownFieldError naming the class's columns."""
        for column in self.columns:
            if column.name == name:
                return column
        raise UnknownFieldError(
            f"class_mapping({self.cls.__name__}).column({name!r}): {self.cls.__name__} has no column {name!r}; "
            f"its columns are {', '.join(column.name for column in self.columns)}"
        )


def class_mapping(entity: Any) -> ClassMapping:
    """How ``entity`` (an entity class, or one of its objects) is mapped, as a :class:`ClassMapping`.

    Relationships to classes declared later are resolved first (as the first session use would),
    so a target that was never declared is a MappingError here, naming it.
    """
    mapper = mapper_of(entity)
    mapper.configure()
    by_column = {}
    for foreign_key in mapper.foreign_keys:
        target = foreign_key.target.__mapper__
        for name, target_name in zip(foreign_key.column_names, target.pk_names):
            by_column[name] = (target.table, target_name)
    columns = tuple(
        ColumnInfo(name=column.name, python_type=column.type.python_type, sql_type=column.type.sql_type,
                   primary_key=column.primary_key, nullable=column.nullable, unique=bool(column.unique),
                   generated=column.generated, version=bool(column.version), references=by_column.get(column.name))
        for column in mapper.columns
    )
    references = tuple(
        ReferenceInfo(name=reference.name, target=reference.target, columns=reference.column_names,
                      nullable=reference.nullable, cascade=reference.cascade,
                      collection=reference.collection.name if reference.collection is not None else None)
        for reference in mapper.references
    )
    collections = tuple(
        CollectionInfo(name=collection.name, target=collection.target, reference=collection.reference_name,
                       cascade=collection.cascade)
        for collection in mapper.collections
    )
    version = mapper.version_column
    return ClassMapping(cls=mapper.cls, table=mapper.table, database=mapper.database, columns=columns,
                        primary_key=mapper.pk_names, version_column=version.name if version is not None else None,
                        references=references, collections=collections)
