"""Errors of the product shell (command line, embedded runtime, operations, billing,
dashboard), under one base class apart from the core packages' trees."""

from __future__ import annotations


class MeterlineError(Exception):
    """Base class of the shell's errors; each shell package subclasses it once."""


class RuntimeFailure(MeterlineError):
    """The embedded runtime could not start or keep a component running (broker, sink,
    workers), or could not create the topics it needs."""
