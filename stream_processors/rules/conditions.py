"""Field lookup and condition tests. Data only: paths are walked, never evaluated.

Numbers compare with numbers and strings with strings; a bool is not a number; mixed types
never match (``"5"`` is not ``5``). A missing field matches only ``exists: false``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from meterline.schemas.control_plane import EVENT_ATTRIBUTES, Condition, Scalar

MISSING: Final = object()


def lookup(source: object, path: str) -> object:
    """The value at a dotted path, or :data:`MISSING`.

    On a mapping every part is a key. On an event the first part must be one of
    ``EVENT_ATTRIBUTES`` (so no ``__class__`` and friends), the rest are mapping keys or
    list indexes.
    """
    first, *rest = path.split(".")
    if isinstance(source, Mapping):
        current = source.get(first, MISSING)
    elif first in EVENT_ATTRIBUTES:
        current = getattr(source, first, MISSING)
    else:
        return MISSING
    for part in rest:
        if isinstance(current, Mapping):
            current = current.get(part, MISSING)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return MISSING
    return current


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _comparable(a: object, b: object) -> bool:
    return (is_number(a) and is_number(b)) or (isinstance(a, str) and isinstance(b, str))


def _same(a: object, b: object) -> bool:
    if _comparable(a, b):
        return a == b
    if isinstance(a, bool) and isinstance(b, bool):
        return a is b
    return a is None and b is None


def holds(condition: Condition, actual: object) -> bool:
    """Whether ``actual`` (a looked-up value, maybe MISSING) satisfies ``condition``."""
    op, expected = condition.op, condition.value
    if op == "exists":
        present = actual is not MISSING and actual is not None
        return present is (expected is not False)
    if actual is MISSING:
        return False
    if op == "eq":
        return _same(actual, expected)
    if op == "ne":
        return not _same(actual, expected)
    if op == "in":
        return isinstance(expected, list) and any(_same(actual, x) for x in expected)
    if op == "contains":
        if isinstance(actual, str) and isinstance(expected, str):
            return expected in actual
        return isinstance(actual, list) and any(_same(x, expected) for x in actual)
    return _compare(op, actual, expected)


def _compare(op: str, actual: object, expected: Scalar | list[Scalar]) -> bool:
    if not _comparable(actual, expected):
        return False
    a, b = actual, expected
    if op == "gt":
        return a > b  # type: ignore[operator]
    if op == "gte":
        return a >= b  # type: ignore[operator]
    if op == "lt":
        return a < b  # type: ignore[operator]
    return a <= b  # type: ignore[operator]


def all_hold(conditions: tuple[Condition, ...], source: object, match: str = "all") -> bool:
    results = (holds(c, lookup(source, c.field)) for c in conditions)
    return any(results) if match == "any" else all(results)
