"""Errors of the gateway: one base class; each carries the HTTP status it is answered with."""

from __future__ import annotations


class GatewayError(Exception):
    """A request the gateway refuses as a whole; ``status`` is the HTTP answer."""

    status = 400

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class BadRequest(GatewayError):
    status = 400


class Unauthorized(GatewayError):
    status = 401


class TooLarge(GatewayError):
    status = 413


class UnsupportedMediaType(GatewayError):
    status = 415


class RateLimited(GatewayError):
    status = 429


class Unavailable(GatewayError):
    """The broker did not acknowledge (or is unreachable): retry later, nothing was accepted
    for sure (a retry is exact after the processor's dedupe)."""

    status = 503
