"""Issue 22 section 3: no secret shape leaves the process, benign look-alikes do.

Every string field a record carries is tried (name, error type and message, properties and
metadata values and keys, trajectory metadata), through ``MeterlineClient`` (wire bytes of
the memory sink) and ``MeterlineProducer`` (bytes read back from a real Tansu topic).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from meterline.ops.admin import ensure_topics
from meterline.producers import MeterlineClient, MeterlineProducer, Redactor
from meterline.producers.testing import MemorySink
from meterline.schemas import (
    ActionEvent,
    RawRecord,
    TelemetryEvent,
    Topics,
    TrajectoryRecord,
    encode,
)
from tests.producers.redaction_corpus import BENIGN, SECRETS


def test_the_corpus_is_as_large_as_the_issue_asks() -> None:
    assert len(SECRETS) >= 60 and len(BENIGN) >= 60
    # no secret part occurs in a benign text (the producer test reads them back together)
    assert not [s for _, s in SECRETS if any(s in b for b in BENIGN)]


def _records(i: int, text: str) -> list[RawRecord]:
    """One record per field the text can travel in."""
    return [
        ActionEvent(event_id=f"n{i}", name=text, error_type=text, error_message=text),
        ActionEvent(event_id=f"p{i}", name="x", properties={"v": text, "list": [text]},
                    metadata={"m": {"deep": text}}),
        ActionEvent(event_id=f"k{i}", name="x", properties={text: 1}),
        TelemetryEvent(event_id=f"t{i}", event_type=text, properties={"v": text}),
        TrajectoryRecord(trace_id=f"tr{i}", metadata={"note": text, text: "v"}),
    ]


def _secret_part(secret: str) -> list[str]:
    # the secret as it appears raw and JSON-escaped (a PEM key's newlines)
    return [secret, json.dumps(secret)[1:-1]]


def _client_wire(texts: list[str]) -> dict[int, bytes]:
    sink = MemorySink()
    client = MeterlineClient(sink, project="p", flush_at_exit=False)
    for i, text in enumerate(texts):
        for rec in _records(i, text):
            assert client.record(rec)
    assert client.flush(10) == 0
    client.close(5)
    out: dict[int, bytes] = {}
    for rec in sink.records:
        i = int(_index(rec))
        out[i] = out.get(i, b"") + encode(rec)
    return out


def _index(rec: RawRecord) -> str:
    ident = rec.trace_id if isinstance(rec, TrajectoryRecord) else rec.event_id
    return ident.lstrip("npktr")


def test_no_secret_reaches_the_wire_through_the_client() -> None:
    wire = _client_wire([text for text, _ in SECRETS])
    leaks = [(text, secret) for i, (text, secret) in enumerate(SECRETS)
             if any(part.encode() in wire[i] for part in _secret_part(secret))]
    assert leaks == []


def test_benign_look_alikes_reach_the_wire_through_the_client() -> None:
    r = Redactor()
    changed = [text for text in BENIGN if r.text(text) != text]
    assert len(changed) <= 2, changed
    wire = _client_wire(BENIGN)
    assert all(json.dumps(text)[1:-1].encode() in wire[i] for i, text in enumerate(BENIGN)
               if text not in changed)


def test_random_ids_are_never_redacted() -> None:
    r = Redactor()
    ids = [uuid.uuid4().hex for _ in range(20_000)] + [str(uuid.uuid4()) for _ in range(5_000)]
    assert [i for i in ids if r.text(i) != i] == []


def test_secret_mapping_keys_are_redacted_whatever_the_value() -> None:
    r = Redactor()
    data = {"pass": "p", "credentials": {"u": 1}, "session": "s", "x_forwarded_for": "1.2.3.4",
            "set-cookie": "a", "mysql_pwd": "m", "csrftoken": "c", "prompt_tokens": 5}
    assert r.clean(data) == {**{k: "[REDACTED]" for k in data}, "prompt_tokens": 5}


def test_ids_carrying_a_secret_are_replaced_by_a_stable_hash() -> None:
    r = Redactor()
    a = r.record(ActionEvent(event_id="e1", name="x", session_id="ghp_" + "a1" * 18))
    b = r.record(ActionEvent(event_id="e2", name="x", session_id="ghp_" + "a1" * 18))
    assert a.session_id == b.session_id and "ghp_" not in (a.session_id or "")


@pytest.mark.integration
def test_no_secret_reaches_the_topic_through_the_low_level_producer(tansu: Any) -> None:
    topics = Topics(f"red{uuid.uuid4().hex[:8]}")
    ensure_topics(tansu.bootstrap, topics.raw, 1)
    producer = MeterlineProducer(tansu.bootstrap, topics=topics)  # redacts by default
    texts = [text for text, _ in SECRETS] + BENIGN
    sent = 0
    for i, text in enumerate(texts):
        for rec in _records(i, text):
            producer.send(rec)
            sent += 1
    # pre-serialised bytes are redacted too
    producer.send_encoded(topics.actions, b"raw", b'{"type":"action","password":"rawpw9"}')
    producer.send_bytes(topics.actions, b"raw2", b"--password rawpw8 in a log line")
    assert producer.close(30) == 0
    wire = _read_all(tansu.bootstrap, topics, sent + 2)
    for text, secret in SECRETS:
        assert not any(part.encode() in wire for part in _secret_part(secret)), text
    assert b"rawpw9" not in wire and b"rawpw8" not in wire
    kept = [text for text in BENIGN if json.dumps(text)[1:-1].encode() in wire]
    assert len(kept) >= len(BENIGN) - 2


def test_the_low_level_producer_opt_out_keeps_bytes_as_they_are() -> None:
    r = Redactor()
    raw = b'{"password":"x"}'
    assert r.encoded(raw) != raw
    assert r.encoded(b'{"a":"benign"}') == b'{"a":"benign"}'


def _read_all(bootstrap: str, topics: Topics, expected: int) -> bytes:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g{uuid.uuid4().hex[:6]}"})
    c.assign([TopicPartition(t, 0, 0) for t in (topics.actions, topics.telemetry,
                                                  topics.trajectories)])
    chunks: list[bytes] = []
    lines = 0
    try:
        while lines < expected:
            batch = c.consume(1000, 5.0)
            assert batch, f"read {lines} of {expected} records back"
            for m in batch:
                assert m.error() is None
                value = m.value() or b""
                chunks.append(value)
                lines += value.count(b"\n") + 1 if value.startswith(b"{") else 1
    finally:
        c.close()
    return b"\n".join(chunks)
