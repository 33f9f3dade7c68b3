"""The stand-in for the process-wide client while nothing is configured (no broker, no
gateway endpoint): records nothing, counts every call, warns once."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

from meterline.producers.limits import DEFAULT_LIMITS
from meterline.producers.redact import DEFAULT_REDACTOR
from meterline.producers.sdk import Built, MeterlineClient
from meterline.producers.sink import DeliveryCallback
from meterline.producers.stats import SdkStats
from meterline.schemas import RawRecord

log = logging.getLogger("producers")

__all__ = ["UnconfiguredClient"]


class _NullSink:
    """The stand-in client's sink: refuses every record with a delivery error."""

    def send(self, record: RawRecord, on_delivery: DeliveryCallback | None = None) -> None:
        if on_delivery is not None:
            on_delivery(record, KafkaError(KafkaError._TRANSPORT, "meterline is not configured"))

    def poll(self, timeout: float = 0.0) -> int:
        return 0

    def flush(self, timeout: float = 30.0) -> int:
        return 0

    def close(self, timeout: float = 30.0) -> int:
        return 0


class UnconfiguredClient(MeterlineClient):
    """Stands in for the process-wide client while no broker or gateway is configured.

    Records nothing: every recording call returns False (``status: "error"`` from
    ``track_action``), is counted in :attr:`stats` (``dropped``) and logged once. No thread.
    """

    drop_reason = ("meterline is not configured (no meterline.init, no METERLINE_KAFKA_BOOTSTRAP "
                   "or METERLINE_ENDPOINT)")

    def __init__(self) -> None:  # no sender thread, no producer, no exit hook
        self.sink = _NullSink()
        self.project = "default"
        self.agent_id = None
        self.redactor = DEFAULT_REDACTOR
        self.limits = DEFAULT_LIMITS
        self.stats = SdkStats()
        self._queue = deque()
        self._closed = True
        self._warned = False
        self._on_delivery = None
        self._on_error = None

    def warn_once(self) -> None:
        if not self._warned:
            self._warned = True
            log.warning("meterline: %s; events are dropped and counted in stats.dropped "
                        "(meterline.init(strict=True) raises instead)", self.drop_reason)

    def submit(self, build: Callable[..., Built], *args: Any) -> bool:
        self.stats.bump("dropped", self.drop_reason)
        self.warn_once()
        return False

    def flush(self, timeout: float = 30.0) -> int:
        return 0

    def close(self, timeout: float | None = None) -> int:
        return 0
