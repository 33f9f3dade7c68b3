"""Errors raised while turning bytes into meterline records."""

from __future__ import annotations


class SchemaError(Exception):
    """Base class for every error raised by :mod:`schemas`."""


class InvalidRecord(SchemaError):
    """The bytes are not a valid meterline record.

    ``reason`` is a one-line, human-readable message naming the offending field(s),
    e.g. ``"event_id: Field required"``. It is what lands in the dead-letter table.
    """

    def __init__(self, reason: str, *, error_type: str = "invalid_record") -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_type = error_type


class UnsupportedSchemaVersion(InvalidRecord):
    """The record declares a ``schema_version`` newer than this code understands."""

    def __init__(self, version: object, supported: int) -> None:
        super().__init__(
            f"schema_version: {version!r} is not supported (this worker reads up to {supported})",
            error_type="unsupported_schema_version",
        )
