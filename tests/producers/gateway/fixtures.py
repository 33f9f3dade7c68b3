"""A gateway in front of the session's real Tansu + chDB pipeline, and its keys."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from meterline.cli.gateway import gateway_config
from meterline.embedded.runtime import Pipeline
from meterline.producers.gateway import GatewayServer, KeyStore


@pytest.fixture
def keystore(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "gateway-keys.json")


@pytest.fixture
def gateway_factory(
    pipeline_factory: Any, keystore: KeyStore
) -> Iterator[Callable[..., tuple[Pipeline, GatewayServer]]]:
    started: list[GatewayServer] = []

    def start(**config: Any) -> tuple[Pipeline, GatewayServer]:
        pipeline = pipeline_factory()
        base = gateway_config(pipeline.settings, port=0, keys=str(keystore.path))
        server = GatewayServer(replace(base, readiness_interval_s=0.5, **config)).start()
        started.append(server)
        wait_ready(server)
        return pipeline, server

    yield start
    for s in started:
        s.stop()


def wait_ready(server: GatewayServer, timeout_s: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not server.ready:
        assert time.monotonic() < deadline, server.readiness_problem
        time.sleep(0.05)
