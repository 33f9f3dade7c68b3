"""Errors of the billing commands (backfill, report, sql)."""

from __future__ import annotations

from meterline.errors import MeterlineError


class BillingError(MeterlineError):
    """Base class for errors of :mod:`meterline.billing`."""


class ClickHouseUnavailable(BillingError):
    """ClickHouse cannot be opened (e.g. the chDB path is held by a running ``meterline up``)."""


class QueryFailed(BillingError):
    """ClickHouse rejected a query; the message is ClickHouse's."""
