"""The one encoder of enriched events (``<prefix>.enriched``), for every path out: joined,
unjoined, late-joined and sent after the grace period.

An enriched event is assembled from JSON already serialised
(:func:`meterline.schemas.codec.encode_enriched`): the event's JSON, the trajectory's JSON
(or none), the version and the processing time. The event's JSON is the validated raw record
as received when there is one; otherwise it is encoded here from the event in whichever form
the steps hold it (a msgspec Struct of the fast path or a pydantic model), without building a
model for a Struct.
"""

from __future__ import annotations

import msgspec

from meterline.schemas import encode
from meterline.schemas.codec import encode_enriched
from meterline.schemas.fast_decode import AnyEvent, FastActionEvent, FastTelemetryEvent

_ENCODER = msgspec.json.Encoder()


def event_json(event: AnyEvent, received: bytes | None = None) -> bytes:
    """The event's JSON in an enriched event: ``received`` (the validated raw record as it
    came) if given, else the event encoded. A Struct encodes to the same JSON value as its
    model's :func:`~meterline.schemas.codec.encode` (keys in another order)."""
    if received is not None:
        return received
    if isinstance(event, FastActionEvent | FastTelemetryEvent):
        return _ENCODER.encode(event)
    return encode(event)


def encode_enriched_event(
    event: AnyEvent, received: bytes | None, trajectory_json: bytes | None, version: int,
    processed_at: bytes, pricing_json: bytes | None = None,
) -> bytes:  # fmt: skip
    """The wire form of one enriched event: ``event`` (its JSON: :func:`event_json`) with the
    trajectory's JSON (None: unjoined), ``version``, ``processed_at``
    (:func:`~meterline.schemas.codec.encode_timestamp`) and its ``pricing`` JSON (None: not
    priced)."""
    body = event_json(event, received)
    return encode_enriched(body, trajectory_json, version, processed_at, pricing_json)
