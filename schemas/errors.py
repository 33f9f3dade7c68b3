"""Errors raised while turning bytes into meterline records."""

from __future__ import annotations

#: ``error_type`` of a record whose validation raised something no rule expected (a bug).
UNEXPECTED_ERROR = "unexpected_error"


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


class TimestampOutOfRange(InvalidRecord):
    """A record's event time is outside the accepted range
    (:class:`meterline.schemas.validation.TimeBounds`); ``reason`` (and ``str()``) names the
    field, its value and the bound."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, error_type="timestamp_out_of_range")


class UnexpectedValidationError(InvalidRecord):
    """Validating a record raised something no rule expected (a bug). The record is refused
    like an invalid one, so that it alone pays for it; ``__cause__`` is the original error,
    for the caller to log with its traceback."""

    def __init__(self, exc: Exception) -> None:
        super().__init__(
            f"unexpected {type(exc).__name__} while validating: {exc}",
            error_type=UNEXPECTED_ERROR,
        )
