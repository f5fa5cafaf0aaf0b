"""SELECT statements for the session's simple queries: filter by equality, order, limit.

uow is a unit of work, not a query language: queries return whole objects of one entity, filtered
by column equality.  Everything the caller names is checked against the mapping before any SQL
is written (an unknown field is an UnknownFieldError, a value its column cannot hold a
ColumnValueError), every column is qualified with its table (so a typo can never become SQLite's
double-quoted string literal), and every value is a bound parameter.
"""

from typing import Any

from .valuechecks import Refusal, bind_column
from .errors import ColumnValueError, UnknownFieldError
from .columns import Column
from .identifiers import quote
from .mapper import Mapper


def select_sql(mapper: Mapper, equals: dict[str, Any], order_by: object, limit: int | None,
               max_length: int | None = None) -> tuple[str, list[Any]]:
    """``(sql, params)`` selecting the entity's rows where each named column equals its value.

    Each value passes the same gate as a value written by a flush (``valuechecks.bind_column``,
    with the connection's length limit ``max_length``), so what SQLite would refuse or
    misread is refused here, before any SQL."""
    table = mapper.quoted_table
    conditions = []
    params = []
    for name, value in equals.items():
        column = mapper.column(name)
        if value is None:
            conditions.append(f"{table}.{quote(name)} IS NULL")
            continue
        try:
            params.extend(bind_column(column.type, [value], True, max_length))
        except Refusal as refusal:
            raise ColumnValueError(f"filter(): {refusal.explain(column.qualified_name, value)}") from None
        conditions.append(f"{table}.{quote(name)} = ?")
    sql = f"SELECT {mapper.select_list} FROM {table}"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    sql += " ORDER BY " + ", ".join(_order_terms(mapper, order_by))
    if limit is not None:
        if type(limit) is not int or limit < 0:
            raise ColumnValueError(f"filter(): limit must be a non-negative int, got {limit!r}")
        sql += " LIMIT ?"
        params.append(limit)
    return sql, params


def _order_terms(mapper: Mapper, order_by: object) -> list[str]:
    """``"name"`` ascending, ``"-name"`` descending, a Column, or a list of those; default: the key."""
    if order_by is None:
        return [f"{mapper.quoted_table}.{quote(name)}" for name in mapper.pk_names]
    if isinstance(order_by, (str, Column)):
        order_by = [order_by]
    if not isinstance(order_by, (list, tuple)):
        raise UnknownFieldError(
            f"order_by: expected a field name of {mapper.cls.__name__}, a Column, or a list of them, "
            f"got {order_by!r}"
        )
    terms = []
    for item in order_by:
        descending = False
        if isinstance(item, Column):
            if item.entity is not mapper.cls:
                raise UnknownFieldError(f"order_by: {item!r} is not a column of {mapper.cls.__name__}")
            name = item.name
        elif isinstance(item, str):
            descending = item.startswith("-")
            name = item[1:] if descending else item
        else:
            raise UnknownFieldError(f"order_by: expected a field name or Column, got {item!r}")
        mapper.column(name)
        terms.append(f"{mapper.quoted_table}.{quote(name)}{' DESC' if descending else ''}")
    return terms
