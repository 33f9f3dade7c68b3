"""Size and attribute limits applied to every record on the sender thread, after redaction.

Two rules, both configurable with :class:`Limits` (``MeterlineClient(limits=Limits(...))``):

- **Attribute truncation** (OpenTelemetry-style attribute limits). In ``properties``,
  ``metadata`` and every object or list nested in them: an object keeps its first
  ``max_attributes`` keys and a list its first ``max_attributes`` items; a string longer than
  ``max_value_chars`` characters (and an ``error_message``) keeps its first
  ``max_value_chars`` characters followed by ``marker``; an object or list nested more than
  ``max_depth`` levels deep (``properties`` / ``metadata`` are level 1) becomes the string
  :data:`TOO_DEEP`. What was cut is counted in ``metadata["meterline_truncated"]``.
- **Size limit**: a record whose serialised size (``meterline.schemas.encode``) is still over
  ``max_record_bytes`` after truncation raises :class:`RecordTooLarge`; it must not be sent.

A record within every limit is returned as the same object (its bytes are unchanged). The
size check encodes the record only when a cheap upper bound of its size is over the limit.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from itertools import islice
from typing import Any

from meterline.producers.errors import RecordTooLarge
from meterline.schemas import ActionEvent, RawRecord, TrajectoryRecord, encode

#: Same default as the processor's and the gateway's
# ``meterline.schemas.validation.DEFAULT_MAX_RECORD_BYTES`` (not imported: that module needs
# msgspec, which the minimal install does not bring).
DEFAULT_MAX_RECORD_BYTES = 1_000_000
#: OpenTelemetry's default attribute count limit.
DEFAULT_MAX_ATTRIBUTES = 128
DEFAULT_MAX_VALUE_CHARS = 8192
DEFAULT_MAX_DEPTH = 8
#: Appended to a shortened string.
TRUNCATED = "...[truncated]"
#: Replaces an object or list nested deeper than ``max_depth``.
TOO_DEEP = "[truncated: nested too deep]"
#: The metadata key that records what was cut.
TRUNCATION_KEY = "meterline_truncated"

_ATTRIBUTE_FIELDS = frozenset({"properties", "metadata", "error_message"})


@dataclass
class Truncation:
    """What the attribute rule cut from one record (written to ``metadata[TRUNCATION_KEY]``)."""

    dropped_keys: int = 0  # object keys beyond max_attributes
    dropped_items: int = 0  # list items beyond max_attributes
    truncated_values: int = 0  # strings shortened to max_value_chars
    too_deep: int = 0  # objects/lists beyond max_depth replaced by TOO_DEEP

    def __bool__(self) -> bool:
        return bool(self.dropped_keys or self.dropped_items or self.truncated_values
                    or self.too_deep)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Limits:
    """Per-record limits. Immutable; one instance may be shared by clients and threads."""

    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    max_attributes: int = DEFAULT_MAX_ATTRIBUTES
    max_value_chars: int = DEFAULT_MAX_VALUE_CHARS
    max_depth: int = DEFAULT_MAX_DEPTH
    marker: str = TRUNCATED

    def __post_init__(self) -> None:
        for name in ("max_record_bytes", "max_attributes", "max_value_chars", "max_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be >= 1")

    def enforce(self, record: RawRecord) -> tuple[RawRecord, Truncation]:
        """Truncate ``record``'s attributes, then check its size.

        Returns the (possibly truncated) record and what was cut. Raises
        :class:`RecordTooLarge` when the truncated record still serialises to more than
        ``max_record_bytes``.
        """
        cut = Truncation()
        update: dict[str, Any] = {}
        fields_ = record.__dict__
        # per field: name, quotes, separators and any non-string value (numbers up to 64
        # bits, datetimes) fit in 64 bytes; string contents are added on top
        bound = 64 * len(fields_)
        for name, value in fields_.items():
            if name in _ATTRIBUTE_FIELDS:
                new, size = self._walk(value, 1, cut)
                if new is not value:
                    update[name] = new
                bound += size
            elif isinstance(value, str):
                bound += 6 * len(value)
            elif isinstance(value, int) and value.bit_length() > 64:
                bound += value.bit_length() // 3  # digits <= bits * log10(2) < bits / 3
        if cut:
            update["metadata"] = {**update.get("metadata", record.metadata),
                                  TRUNCATION_KEY: cut.as_dict()}
            record = record.model_copy(update=update)
            bound += 200
        if bound > self.max_record_bytes:
            size = len(encode(record))
            if size > self.max_record_bytes:
                raise RecordTooLarge(_record_id(record), size, self.max_record_bytes)
        return record, cut

    def _walk(self, value: Any, depth: int, cut: Truncation) -> tuple[Any, int]:
        """``(value within limits, upper bound of its JSON size in bytes)``; ``value``
        itself when nothing was cut."""
        if isinstance(value, str):
            if len(value) > self.max_value_chars:
                cut.truncated_values += 1
                value = value[: self.max_value_chars] + self.marker
            return value, _str_bound(value)
        if isinstance(value, dict | list) and depth > self.max_depth:
            cut.too_deep += 1
            return TOO_DEEP, len(TOO_DEEP) + 2
        if isinstance(value, dict):
            return self._walk_dict(value, depth, cut)
        if isinstance(value, list):
            return self._walk_list(value, depth, cut)
        return value, _scalar_bound(value)

    def _walk_dict(self, value: dict[str, Any], depth: int, cut: Truncation) -> tuple[Any, int]:
        n = self.max_attributes
        changed = len(value) > n
        if changed:
            cut.dropped_keys += len(value) - n
        out: dict[str, Any] = {}
        bound = 2
        for k, v in islice(value.items(), n):
            if isinstance(v, str) and len(v) <= self.max_value_chars:
                new, size = v, _str_bound(v)  # the common case, without a call to _walk
            else:
                new, size = self._walk(v, depth + 1, cut)
                changed = changed or new is not v
            out[k] = new
            bound += size + 6 * len(k) + 4
        return (out if changed else value), bound

    def _walk_list(self, value: list[Any], depth: int, cut: Truncation) -> tuple[Any, int]:
        n = self.max_attributes
        changed = len(value) > n
        if changed:
            cut.dropped_items += len(value) - n
        out: list[Any] = []
        bound = 2
        for v in islice(value, n):
            new, size = self._walk(v, depth + 1, cut)
            changed = changed or new is not v
            out.append(new)
            bound += size + 1
        return (out if changed else value), bound


DEFAULT_LIMITS = Limits()


def _str_bound(value: str) -> int:
    # JSON escapes a printable ASCII character in at most 2 bytes, anything else in at most 6
    n = len(value)
    return (2 if n > 64 and value.isascii() and value.isprintable() else 6) * n + 2


def _scalar_bound(value: Any) -> int:
    if value is None or isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return value.bit_length() // 3 + 2  # decimal digits <= bits * log10(2) < bits / 3
    if isinstance(value, float):
        return 32
    return 6 * len(str(value)) + 2  # redaction leaves only JSON types; be safe anyway


def _record_id(record: RawRecord) -> str:
    if isinstance(record, TrajectoryRecord):
        return f"trajectory {record.trace_id}"
    kind = "action" if isinstance(record, ActionEvent) else "telemetry"
    return f"{kind} event {record.event_id}"
