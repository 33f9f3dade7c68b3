"""Secret redaction applied to every record before it leaves the agent process.

Two kinds of pattern, both case-insensitive regular expressions:

- key patterns: a mapping key that matches (after lower-casing and turning ``-``, ``.`` and
  spaces into ``_``) has its whole value replaced, whatever its type;
- value patterns: any matching substring of any string value is replaced. Digit runs that
  look like card numbers are replaced only when they pass the Luhn check.

Redaction also makes payloads JSON-safe: datetimes, UUIDs, enums, sets, bytes and unknown
objects become strings, so a record never fails to serialise because of what a caller put in
``metadata``.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

REDACTED = "[REDACTED]"

#: Keys whose values are always replaced.
DEFAULT_KEY_PATTERNS: tuple[str, ...] = (
    r"passw(or)?d|^pwd$|passphrase",
    r"secret",
    r"(^|_)token$|(access|refresh|id|auth|api|bearer|session|csrf|github|slack)_?token",
    r"api_?key|apikey|access_?key",
    r"authori[sz]ation|^auth$",
    r"bearer",
    r"private_?key",
    r"credit_?card|card_?number|^pan$|^cvv$|^cvc$",
    r"cookie",
)

#: Substrings of string values that are replaced wherever they appear.
DEFAULT_VALUE_PATTERNS: tuple[str, ...] = (
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)",
    r"\bbearer\s+[A-Za-z0-9\-._~+/]+=*",
    r"\bbasic\s+[A-Za-z0-9+/]{8,}=*",
    r"\bsk-[A-Za-z0-9_\-]{8,}",  # OpenAI / Anthropic style keys (sk-..., sk-proj-..., sk-ant-...)
    r"\b(ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{20,}",
    r"\bAKIA[0-9A-Z]{16}\b",
    r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",
    r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}",  # JWT
    r"\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?token)\s*[=:]\s*[^\s&,;\"']+",
)

_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_KEY_NORMALISE = str.maketrans({"-": "_", ".": "_", " ": "_"})
_MAX_DEPTH = 32


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


class Redactor:
    """Replaces secrets in nested JSON-like values. Thread-safe and stateless after init.

    ``key_patterns`` / ``value_patterns`` replace the defaults; ``extra_*`` add to them.
    """

    def __init__(
        self,
        *,
        key_patterns: Iterable[str] = DEFAULT_KEY_PATTERNS,
        value_patterns: Iterable[str] = DEFAULT_VALUE_PATTERNS,
        extra_key_patterns: Iterable[str] = (),
        extra_value_patterns: Iterable[str] = (),
        card_numbers: bool = True,
        replacement: str = REDACTED,
    ) -> None:
        keys = [*key_patterns, *extra_key_patterns]
        values = [*value_patterns, *extra_value_patterns]
        self._key = re.compile("|".join(f"(?:{p})" for p in keys), re.I) if keys else None
        self._value = re.compile("|".join(f"(?:{p})" for p in values), re.I) if values else None
        self._cards = card_numbers
        self.replacement = replacement
        self._key_cache: dict[str, bool] = {}

    def is_secret_key(self, key: str) -> bool:
        hit = self._key_cache.get(key)
        if hit is None:
            norm = key.lower().translate(_KEY_NORMALISE)
            hit = bool(self._key and self._key.search(norm))
            if len(self._key_cache) < 10_000:
                self._key_cache[key] = hit
        return hit

    def text(self, value: str) -> str:
        """Return ``value`` with every secret substring replaced."""
        if self._value is not None and self._value.search(value):
            value = self._value.sub(self.replacement, value)
        if self._cards and _CARD.search(value):
            value = _CARD.sub(self._card, value)
        return value

    def _card(self, m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group())
        return self.replacement if luhn_ok(digits) else m.group()

    def clean(self, value: Any, _depth: int = 0) -> Any:
        """A redacted, JSON-safe copy of ``value`` (the input is never modified)."""
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if _depth >= _MAX_DEPTH:
            return "[TRUNCATED]"
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for k, v in value.items():
                key = k if isinstance(k, str) else str(k)
                out[key] = self.replacement if self.is_secret_key(key) else self.clean(
                    v, _depth + 1
                )
            return out
        if isinstance(value, list | tuple | set | frozenset):
            return [self.clean(v, _depth + 1) for v in value]
        return self.text(_to_text(value))

    def mapping(self, value: Mapping[str, Any] | None) -> dict[str, Any]:
        return self.clean(value) if value else {}  # type: ignore[no-any-return]

    def optional_text(self, value: str | None) -> str | None:
        return None if value is None else self.text(value)


def _to_text(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    return str(value)


DEFAULT_REDACTOR = Redactor()
