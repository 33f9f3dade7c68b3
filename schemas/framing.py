"""Record framing on the raw topics: one record per Kafka message, or a batch of them.

A *batch message* carries several raw records (all for one partition) as newline-delimited
JSON (NDJSON), marked by the header ``content-type: application/x-ndjson``. Every other
message is one record. Compact JSON never contains a raw newline (JSON escapes it inside
strings), so splitting on ``\\n`` recovers each record's exact bytes; a producer never
frames a value that contains one.

Why: a stream processor pays a fixed cost per Kafka message (fetch, dispatch, offset
tracking) that is large next to the cost of validating one small JSON record. Framing lets
the SDK amortise that cost over a batch, the way librdkafka amortises network round trips.
The processor still validates, deduplicates and dead-letters each record on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

_Value = str | bytes | None
CONTENT_TYPE = "content-type"
NDJSON = b"application/x-ndjson"
#: Header list for a batch message (confluent-kafka and aiokafka accept this shape).
BATCH_HEADERS: list[tuple[str, _Value]] = [(CONTENT_TYPE, NDJSON)]

Headers = Sequence[tuple[str, _Value]] | Mapping[str, _Value] | None


def is_batch(headers: Headers) -> bool:
    """True if the message headers mark an NDJSON batch."""
    if not headers:
        return False
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        if name.lower() == CONTENT_TYPE and value is not None:
            raw = value.encode() if isinstance(value, str) else value
            return raw.strip().lower() == NDJSON
    return False


def frameable(value: bytes) -> bool:
    """Whether ``value`` can travel inside a batch (no raw newline in it)."""
    return b"\n" not in value


def join(values: Iterable[bytes]) -> bytes:
    """Frame records into one batch value. Each value must be :func:`frameable`."""
    return b"\n".join(values)


def split(value: bytes | None) -> list[bytes]:
    """The records in a batch value, in order. Blank lines (e.g. a trailing newline) are
    skipped; everything else comes back byte for byte."""
    if not value:
        return []
    return [line for line in value.split(b"\n") if line.strip()]
