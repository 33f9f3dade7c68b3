"""Request bodies -> checked raw records, with the processor's validation rules.

Each record is checked on its own, in order (index ``#i`` counts from 0 in the request):
a JSON object; its ``project`` absent or the API key's own (then stamped with the key's
project); then exactly the rules of the processor's validate step
(:mod:`meterline.schemas.validation`: size, schema, ids, event-time range), so a record the
gateway accepts is one the processor accepts. Refused records are answered, never produced.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from meterline.producers.gateway.errors import BadRequest, TooLarge
from meterline.schemas import InvalidRecord, Topics
from meterline.schemas.validation import UnexpectedValidationError, check_record

log = logging.getLogger(__name__)

#: reason label of a record naming another project than its key's
WRONG_PROJECT = "wrong_project"
NOT_AN_OBJECT = "not_an_object"


@dataclass(frozen=True)
class Checked:
    """One accepted record, ready to produce."""

    topic: str
    key: bytes
    value: bytes


@dataclass
class CheckResult:
    accepted: list[Checked] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: error type of each refused record (metrics label)
    reasons: list[str] = field(default_factory=list)

    def refuse(self, index: int, reason: str, error_type: str) -> None:
        self.errors.append(f"#{index}: {reason}")
        self.reasons.append(error_type)


def limits_message(max_records: int, max_bytes: int) -> str:
    return (
        f"limits: at most {max_records} records and {max_bytes} bytes "
        "(after decompression) per request"
    )


def split_records(body: bytes, max_records: int, max_bytes: int) -> list[Any]:
    """A JSON array's items, or NDJSON's lines parsed (a line that is not JSON becomes an
    :class:`_Unparsable` so that it is refused as that record, not the whole request)."""
    text = body.lstrip()
    if text.startswith(b"["):
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"body is not a valid JSON array: {exc}") from None
        if not isinstance(items, list):
            raise BadRequest("body must be a JSON array or NDJSON of records")
    else:
        items = [_parse_line(line) for line in body.split(b"\n") if line.strip()]
    if len(items) > max_records:
        raise TooLarge(limits_message(max_records, max_bytes))
    return items


class _Unparsable:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parse_line(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return _Unparsable(f"not valid JSON: {exc}")


def check_records(items: Iterable[Any], project: str, topics: Topics) -> CheckResult:
    """Stamp and validate each record (see the module docstring)."""
    result = CheckResult()
    by_type = {"action": topics.actions, "telemetry": topics.telemetry,
               "trajectory": topics.trajectories}  # fmt: skip  (Topics.for_record by tag)
    for i, item in enumerate(items):
        if isinstance(item, _Unparsable):
            result.refuse(i, item.reason, "invalid_json")
            continue
        if not isinstance(item, dict):
            result.refuse(i, "not a JSON object", NOT_AN_OBJECT)
            continue
        named = item.get("project", project)
        if named != project:
            result.refuse(
                i, f"project: {named!r} is not this API key's project {project!r}",
                WRONG_PROJECT,
            )  # fmt: skip
            continue
        item["project"] = project
        value = orjson.dumps(item)
        try:
            record = check_record(value)
        except InvalidRecord as exc:
            if isinstance(exc, UnexpectedValidationError):
                log.error("unexpected error validating record #%d", i, exc_info=exc.__cause__)
            result.refuse(i, exc.reason, exc.error_type)
            continue
        result.accepted.append(
            Checked(by_type[item["type"]], record.routing_key.encode(), value)
        )
    return result
