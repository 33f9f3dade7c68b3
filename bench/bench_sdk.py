"""Per-call cost of the SDK hot path against a bare ``confluent_kafka.Producer.produce``.

Starts a Tansu broker (``meterline.embedded.broker.TansuBroker``), then, in one run:
- bare:          ``Producer.produce(topic, value=<bytes of the same record>, key=...)``
- track_action:  ``AgentSightTracker.track_action(...)`` (the weather example of the docs,
                 with a longer response: a ~1 KB record on the wire)
- action:        ``with valmi.action("object_detection", user_id=..., properties=...): pass``
- redact:        ``Redactor.record`` of that record, the sender thread's redaction cost

Redaction is on (the client's default ``Redactor``; it runs on the sender thread). The SDK
target of issue 22: track_action under 10 us median with redaction on.

Each call is timed on its own (``perf_counter_ns``); medians, p99 and ratios are printed.
Target: median under 20 us per call and under 3x the bare produce. Prints, never asserts.

    python bench/bench_sdk.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer

from meterline.embedded.broker import TansuBroker
from meterline.ops.admin import ensure_topics
from meterline.ops.progress import ProgressBar
from meterline.producers import DEFAULT_REDACTOR, AgentSightTracker, MeterlineClient, action
from meterline.producers.client import DEFAULT_CONFIG
from meterline.schemas import ActionEvent, Topics, encode

TOOLS = {"api": "OpenWeatherMap", "location": "San Francisco, CA",
         "parameters": {"units": "metric"}}
META = {"location_query": "San Francisco", "units": "celsius", "agent_version": "2.4.1",
        "request_id": "req_7f3a9c2e4b1d", "user_agent": "weather-agent/2.4 (python 3.12)"}
RESPONSE = ("Temperature: 18C, Conditions: Sunny. Light winds from the west at 12 km/h, "
            "humidity 61%, no rain expected before Thursday; the UV index peaks at 6 around "
            "1 pm, so sunscreen is advised. Tomorrow: 19C and partly cloudy, with fog along "
            "the coast in the morning clearing by 10 am. Air quality is good (AQI 32). "
            "Sunset at 7:42 pm.")


def timed(n: int, call: Callable[[int], Any], between: Callable[[], Any] | None = None,
          ) -> list[int]:
    out = [0] * n
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for i in range(n):
            t0 = clock()
            call(i)
            out[i] = clock() - t0
            if between is not None and i % 500 == 499:
                between()
    finally:
        gc.enable()
    return out


def stats(ns: list[int]) -> tuple[float, float]:
    s = sorted(ns)
    return statistics.median(s) / 1000, s[int(len(s) * 0.99)] / 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20_000)
    args = ap.parse_args()
    n = args.calls
    broker = TansuBroker().start()
    try:
        topics = Topics("bench")
        ensure_topics(broker.bootstrap, topics.raw, partitions=4)
        value = encode(ActionEvent(
            event_id="0" * 32, name="weather_lookup", duration_ms=800, session_id="1" * 32,
            properties={"tools_used": TOOLS, "response": RESPONSE},
            metadata=META, source="agentsight"))
        record = ActionEvent(
            event_id="0" * 32, name="weather_lookup", duration_ms=800, session_id="1" * 32,
            properties={"tools_used": TOOLS, "response": RESPONSE}, metadata=META,
            source="agentsight")
        bare = Producer({**DEFAULT_CONFIG, "bootstrap.servers": broker.bootstrap})
        key = "1" * 32
        bare.produce(topics.actions, value=value, key=key)
        bare.flush(10)
        rounds: dict[str, list[int]] = {"bare produce": [], "track_action": [], "action cm": [],
                                        "redact (sender)": []}

        client = MeterlineClient.from_kafka(broker.bootstrap, topic_prefix="bench",
                                            project="bench", max_queue=2 * n + 10)
        tracker = AgentSightTracker(client)

        def track(_i: int) -> None:
            tracker.track_action(action_name="weather_lookup", duration_ms=800,
                                 tools_used=TOOLS, response=RESPONSE, metadata=META)

        def act(_i: int) -> None:
            with action("object_detection", user_id="user_123", client=client,
                        properties={"objects": 3, "response": RESPONSE}, metadata=META):
                pass

        def redact(_i: int) -> None:
            DEFAULT_REDACTOR.record(record)

        def produce(_i: int) -> None:
            bare.produce(topics.actions, value=value, key=key)

        # Warm up, then interleave three rounds so each side sees the same machine state.
        timed(1000, track)
        timed(1000, act)
        timed(1000, produce, lambda: bare.poll(0))
        client.flush(30)
        bare.flush(30)
        bar = ProgressBar("rounds", 3)  # terminal only; updated between timed rounds
        for r in range(3):
            rounds["bare produce"] += timed(n // 3, produce, lambda: bare.poll(0))
            bare.flush(30)
            rounds["track_action"] += timed(n // 3, track)
            client.flush(30)
            rounds["action cm"] += timed(n // 3, act)
            client.flush(30)
            rounds["redact (sender)"] += timed(n // 3, redact)
            bar.update(r + 1)
        bar.close()
        remaining = client.close(30)
        bare_med, _ = stats(rounds["bare produce"])
        print(f"{len(value)}-byte record, {n // 3 * 3} calls each, Tansu at {broker.bootstrap}")
        print("redaction on (the client's default Redactor, on its sender thread)")
        print(f"{'':16} {'median us':>10} {'p99 us':>10} {'x bare (median)':>16}")
        for name, ns in rounds.items():
            med, p99 = stats(ns)
            print(f"{name:16} {med:10.2f} {p99:10.2f} {med / bare_med:16.2f}")
        s = client.stats
        print(f"SDK: delivered={s.delivered} failed={s.failed} dropped={s.dropped} "
              f"build_errors={s.build_errors} undelivered_at_close={remaining}")
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
