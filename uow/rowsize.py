"""SQLite's limit on a whole row: the least size of the record a written row becomes.

SQLite refuses a row whose record exceeds the connection's length limit (SQLITE_LIMIT_LENGTH),
even when every value fits on its own; ``valuechecks`` checks the values one by one, this module
the row.  The measure is a floor, never above the real size, so a row refused here would surely
be refused by SQLite, and it is refused before any SQL runs, with the row named.
"""


def _varint_size(number):
    size = 1
    while number >= 0x80 and size < 9:
        number >>= 7
        size += 1
    return size


def _integer_size(value):
    """The bytes SQLite's record format takes for an integer (0 and 1 take none)."""
    if value in (0, 1):
        return 0
    for size, bits in ((1, 8), (2, 16), (3, 24), (4, 32), (6, 48)):
        if -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
            return size
    return 8


def record_size_floor(bound_row, integers=False):
    """The least number of bytes SQLite's record of a row holding ``bound_row`` can take.

    SQLite refuses a row whose record (a header of one type code per column, then the text and
    blob bytes) exceeds the length limit, even when every value fits on its own.  Numbers are
    counted as taking no bytes, and columns not given as taking one header byte, so the result
    never exceeds the real size: a row refused by this measure would surely be refused by SQLite.
    ``integers=True`` counts integers' bytes too: right for the row a RETURNING clause hands
    back (SQLite builds a record of it), where an INTEGER PRIMARY KEY is a stored value; in the
    table's own record that key takes no bytes, so it is not counted there.
    """
    header = 0
    body = 0
    for value in bound_row:
        if type(value) is str:
            size = len(value.encode("utf-8", "surrogatepass"))
            header += _varint_size(2 * size + 13)
        elif type(value) is bytes:
            size = len(value)
            header += _varint_size(2 * size + 12)
        elif integers and type(value) is int:
            size = _integer_size(value)
            header += 1
        else:
            size = 0
            header += 1
        body += size
    return header + _varint_size(header) + body


def oversized_row(bound_columns, max_length, integers=False):
    """``(index, size)`` of the first row whose record surely exceeds ``max_length``, or None.

    ``bound_columns`` holds one list of bound values per column (all of the same length).
    """
    if max_length is None or not bound_columns:
        return None
    # Four bytes per character and nine per column bound every record from above: when the
    # widest values of each column fit together, no row needs to be measured.
    rough = 9
    for values in bound_columns:
        sized = [value for value in values if type(value) is str or type(value) is bytes]
        rough += 9 + (max(map(len, sized)) * 4 if sized else 0)
    if rough <= max_length:
        return None
    for index, row in enumerate(zip(*bound_columns)):
        size = record_size_floor(row, integers)
        if size > max_length:
            return index, size
    return None
