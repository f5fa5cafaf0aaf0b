"""Small helpers shared by the example tests: reading captured SQL, and comparing values exactly."""


def folded(statements):
    """Captured statements as ``(sql, params)`` pairs; an executemany keeps its list of rows."""
    result = []
    for statement in statements:
        if statement.many:
            result.append((statement.sql, [tuple(row) for row in statement.params]))
        else:
            result.append((statement.sql, tuple(statement.params)))
    return result


def sql_of(statements):
    """Just the SQL text of each captured statement."""
    return [statement.sql for statement in statements]


def same(value):
    """A comparison key that tells apart values Python calls equal: 1 and True, -0.0 and 0.0,
    Decimal('1.1') and Decimal('1.10'), two datetimes at one instant with different offsets."""
    return type(value), repr(value)
