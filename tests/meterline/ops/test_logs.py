"""Log formats: JSON objects with the record's context, and no passwords in either format."""

from __future__ import annotations

import json
import logging

from meterline.ops.logs import JsonFormatter, TextFormatter, mask_secrets
from meterline.stream_processors.errors import InvalidMessage


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.makeLogRecord({"name": "t", "levelname": "WARNING", "msg": msg, "args": args})
    rec.__dict__.update(extra)
    return rec


def test_json_lines_carry_ids_and_the_source_of_an_invalid_message() -> None:
    exc = InvalidMessage("event_id: Field required", topic="m.actions", partition=2, offset=7)
    line = JsonFormatter().format(record("dead-lettered %s", exc, trace_id="t1", event_id="e1"))
    obj = json.loads(line)
    assert obj["level"] == "warning" and obj["logger"] == "t"
    assert obj["message"] == "dead-lettered m.actions[2]@7: event_id: Field required"
    assert (obj["topic"], obj["partition"], obj["offset"]) == ("m.actions", 2, 7)
    assert (obj["trace_id"], obj["event_id"], obj["error_type"]) == ("t1", "e1", "invalid_record")


def test_passwords_in_urls_are_masked_in_both_formats() -> None:
    msg = "insert failed on http://meterline:s3cret@ch:8123/ and https://u:p@x"
    assert mask_secrets(msg) == "insert failed on http://meterline:***@ch:8123/ and https://u:***@x"
    assert "s3cret" not in TextFormatter().format(record(msg))
    assert "s3cret" not in JsonFormatter().format(record("%s", msg))
