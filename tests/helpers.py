"""Small helpers shared by the example tests: reading captured SQL, comparing values exactly, and
calling from another thread."""

import threading


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


def verb_and_table(sql):
    """``("INSERT", "users")`` for an INSERT, UPDATE or DELETE statement uow sent."""
    words = sql.split()
    if words[0] == "UPDATE":
        return "UPDATE", words[1].strip('"')
    return words[0], words[2].strip('"')


def same(value):
    """A comparison key that tells apart values Python calls equal: 1 and True, -0.0 and 0.0,
    Decimal('1.1') and Decimal('1.10'), two datetimes at one instant with different offsets."""
    return type(value), repr(value)


def in_other_thread(call):
    """Run ``call`` in a new thread; return (the exception it raised or None, that thread's ident)."""
    result = {}

    def target():
        result["thread"] = threading.get_ident()
        try:
            call()
        except BaseException as error:  # noqa: B036 - the test inspects whatever was raised
            result["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    return result.get("error"), result["thread"]
