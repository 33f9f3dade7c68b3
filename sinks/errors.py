"""Errors raised by meterline sinks."""

from __future__ import annotations


class SinkError(Exception):
    """Base class for every error raised by :mod:`sinks`."""


class SinkWriteError(SinkError):
    """A batch could not be written. Recoverable: offsets were not committed; retry."""


class ConfigurationError(SinkError):
    """The sink target is misconfigured (bad URL, missing optional dependency)."""


class SinkRowsRejected(SinkWriteError):
    """ClickHouse, or the client encoding the insert, refused the rows' data (a value out of
    range, a type it cannot convert). Retrying the same rows cannot succeed: the sink finds
    the rows at fault and dead-letters them (:mod:`meterline.sinks.isolate`)."""
