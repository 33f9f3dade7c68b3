"""ClickHouse identifiers that meterline interpolates into SQL (database names)."""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def check_identifier(name: str) -> str:
    """Database names are interpolated into DDL, so they must be plain identifiers."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"invalid ClickHouse identifier {name!r}: use letters, digits and _")
    return name
