"""The SDK's HTTP transport: records batched and gzip-posted to the gateway's ``/v1/events``.

For agents without Kafka access (``meterline.init(endpoint=..., api_key=...)``, or
``METERLINE_ENDPOINT`` / ``METERLINE_API_KEY``). Standard library only (``http.client``), so
the minimal install stays confluent-kafka + pydantic. :class:`HttpSink` is a
:class:`~meterline.producers.sink.Sink`, like the Kafka one:

- ``send`` encodes the record (one NDJSON line) into an in-memory buffer and returns; one
  daemon thread, ``meterline-http``, posts batches (``max_records`` / ``max_bytes`` per request,
  or whatever waited ``linger_s``), one request at a time on a keep-alive connection.
  ``send`` blocks only when ``max_buffered`` records wait, for at most ``block_timeout_s``,
  then raises :class:`~meterline.producers.errors.QueueFull` (the client counts it in
  ``send_errors``). It runs on the client's sender thread, never on the agent's.
- The API key decides the project: a record with the default project ``"default"`` is sent
  without one and the gateway stamps its key's; a record naming another project than the
  key's is refused by the gateway (reported failed with its reason).
- Delivery report per record, from the posting thread: ``(record, None)`` once the gateway
  answered 200 (it answers 200 only after the broker acknowledged); a record the gateway
  refused (``errors`` of its answer) gets a ``KafkaError`` ``INVALID_RECORD`` with the reason
  (the client does not spool it: it would be refused again). 429, 503, 408, 500, 502, 504 and
  connection errors are retried, waiting ``Retry-After`` when the answer has one, else
  exponential backoff with jitter (``backoff_s`` doubling up to ``max_backoff_s``), until the
  batch's oldest record has waited ``delivery_timeout_s`` (librdkafka's
  ``message.timeout.ms``); then each record gets ``_MSG_TIMED_OUT``. 401/403 and other
  answers fail the batch at once (``_AUTHENTICATION`` / ``_FAIL``); 413 splits it in two.
- ``purge`` (the client's give-up at exit) reports everything buffered or in flight with
  ``_PURGE_QUEUE`` at once; a request still in flight may yet be delivered, so a spooled
  record can arrive twice (the pipeline's dedupe counts it once).

Modules: :mod:`.config` (settings, counters), :mod:`.buffer` (bounded buffer and batches),
:mod:`.wire` (one POST, the answer), :mod:`.sink` (the sink: delivery, retries, lifecycle).
"""

from meterline.producers.http.config import EVENTS_PATH, HttpConfig, HttpStats
from meterline.producers.http.sink import HttpSink

__all__ = ["EVENTS_PATH", "HttpConfig", "HttpSink", "HttpStats"]
