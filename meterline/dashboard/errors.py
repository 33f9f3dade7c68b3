"""Errors of the dashboard, under one base class."""

from __future__ import annotations

from meterline.errors import MeterlineError


class DashboardError(MeterlineError):
    """Base class of the dashboard's errors."""


class BadRequest(DashboardError):
    """A filter value the dashboard refuses (answered with HTTP 400 and this message)."""
