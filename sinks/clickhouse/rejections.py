"""Which insert failures are the data's fault.

An insert fails either because of the rows (a value the column or a materialized view cannot
hold) or because of everything else (the server is unreachable, overloaded, out of memory,
the table is missing). Only the first kind is worth isolating row by row: a retry of the same
rows fails the same way, and holding the batch would stall every tenant behind one bad row.
Anything not known to be about the data is treated as transient and retried, so a good row is
never dead-lettered because ClickHouse was unwell.
"""

from __future__ import annotations

import struct

from clickhouse_connect.driver.exceptions import DatabaseError, DataError

#: ClickHouse server error codes that mean "this data cannot be stored" (ErrorCodes.cpp).
DATA_ERROR_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        26,  # CANNOT_PARSE_QUOTED_STRING
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        153,  # ILLEGAL_DIVISION
        190,  # SIZES_OF_ARRAYS_DONT_MATCH
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
        395,  # FUNCTION_THROW_IF_VALUE_IS_NON_ZERO
        407,  # DECIMAL_OVERFLOW
        469,  # VIOLATED_CONSTRAINT (a CHECK constraint on the table)
        691,  # UNKNOWN_ELEMENT_OF_ENUM
    }
)

#: Raised by clickhouse-connect while it encodes rows into the Native format (a str where a
#: datetime goes, an int out of a column's range): the rows, before anything was sent.
_ENCODING_ERRORS = (DataError, TypeError, ValueError, AttributeError, OverflowError, struct.error)


def is_data_error(exc: BaseException) -> bool:
    """True when ``exc``, raised by an insert, says the rows cannot be stored as they are."""
    if isinstance(exc, _ENCODING_ERRORS):
        return True
    return isinstance(exc, DatabaseError) and getattr(exc, "code", None) in DATA_ERROR_CODES
