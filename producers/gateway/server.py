"""The gateway's HTTP server (aiohttp): routes, authentication, limits, answers.

Contract of ``POST /v1/events`` and ``POST /v1/traces``: 200 only once the broker has
acknowledged every accepted record; a broker that is unreachable (readiness), does not
acknowledge within ``ack_timeout_s`` or fails a delivery answers 503 with ``Retry-After``
(the client retries the whole request; event ids make the retry exact after dedupe). CPU
work (decompress, parse, validate, produce) runs on one worker thread, so probes and
``/metrics`` stay answered while a large request is checked.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from confluent_kafka.admin import AdminClient
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from meterline.producers.gateway import otlp
from meterline.producers.gateway.config import GatewayConfig
from meterline.producers.gateway.delivery import Acks, GatewayProducer
from meterline.producers.gateway.errors import (
    GatewayError,
    RateLimited,
    TooLarge,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from meterline.producers.gateway.keys import ApiKey, KeyStore
from meterline.producers.gateway.metrics import GatewayMetrics
from meterline.producers.gateway.ratelimit import TokenBuckets
from meterline.producers.gateway.records import (
    CheckResult,
    check_records,
    limits_message,
    split_records,
)

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OTLP_TYPES = ("application/x-protobuf", "application/json")


class GatewayServer:
    """Start with :meth:`start` (a background thread, for ``meterline up`` and tests) or
    :meth:`run` (blocking, for ``meterline gateway``); stop with :meth:`stop`."""

    def __init__(self, config: GatewayConfig, metrics: GatewayMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or GatewayMetrics()
        self.keys = KeyStore(config.keys_file)
        self.buckets = TokenBuckets(config.rate_per_s, config.burst)
        self.ready = False
        self.readiness_problem = "broker not checked yet"
        self.port: int | None = None
        self._producer: GatewayProducer | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="gateway-ingest")
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._reloader: asyncio.Task[None] | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host
        return f"http://{host}:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_bytes + 1)
        app.router.add_post("/v1/events", self._timed("events", self._events))
        app.router.add_post("/v1/traces", self._timed("traces", self._traces))
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def _open(self) -> None:
        c = self.config
        self._producer = GatewayProducer(c.kafka_bootstrap, c.topics, c.ack_timeout_s,
                                         c.kafka_config)  # fmt: skip
        threading.Thread(target=self._watch_broker, name="gateway-readiness", daemon=True).start()
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, c.host, c.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else c.port
        self._reloader = asyncio.get_running_loop().create_task(self._reload_keys())
        log.info("gateway listening on %s", self.url)

    async def _close(self) -> None:
        if self._reloader is not None:
            self._reloader.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        self._stop.set()
        self._pool.shutdown(wait=True)
        if self._producer is not None:
            self._producer.close()

    def start(self, timeout_s: float = 30.0) -> GatewayServer:
        """Serve on a daemon thread; returns once listening (raises what failed)."""
        self._thread = threading.Thread(target=self._serve, name="gateway", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s):
            raise RuntimeError("gateway did not start listening in time")
        if self._start_error is not None:
            raise self._start_error
        return self

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._open())
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            return
        self._started.set()
        loop.run_until_complete(self._until_stopped())
        loop.run_until_complete(self._close())
        loop.close()

    async def _until_stopped(self) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(0.1)

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM (``meterline gateway``)."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self._stop.set())
        self._serve()
        if self._start_error is not None:
            raise self._start_error

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    async def _reload_keys(self) -> None:
        while not self._stop.is_set():
            try:
                self.keys.refresh()
            except Exception:  # a half-written file by hand: keep the last good keys
                log.exception("gateway: cannot read the keys file %s", self.keys.path)
            await asyncio.sleep(self.config.keys_reload_s)

    def _watch_broker(self) -> None:
        c = self.config
        admin = AdminClient({"bootstrap.servers": c.kafka_bootstrap, **c.kafka_config})
        while not self._stop.is_set():
            try:
                meta = admin.list_topics(timeout=max(1.0, c.readiness_interval_s))
                missing = [t for t in c.topics.raw if t not in meta.topics]
                self.readiness_problem = f"raw topics missing: {missing}" if missing else ""
            except Exception as exc:
                self.readiness_problem = f"broker unreachable: {exc}"
            self.ready = not self.readiness_problem
            self._stop.wait(c.readiness_interval_s)

    # -- requests ----------------------------------------------------------------------------

    def _timed(self, endpoint: str, handler: Callable[[web.Request], Awaitable[tuple[
            web.StreamResponse, str]]]) -> Handler:  # fmt: skip
        async def run(request: web.Request) -> web.StreamResponse:
            t0 = time.perf_counter()
            key_id = "-"
            try:
                response, key_id = await handler(request)
            except GatewayError as exc:
                key_id = getattr(exc, "key_id", key_id)
                response = _error(exc)
            self.metrics.requests.labels(endpoint, str(response.status), key_id).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - t0)
            return response

        return run

    def _authenticate(self, request: web.Request) -> ApiKey:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        key = self.keys.authenticate(token.strip())
        if key is None and self.keys.refresh():  # a key created since the last reload
            key = self.keys.authenticate(token.strip())
        if key is None:
            raise Unauthorized("unknown or revoked API key")
        wait = self.buckets.take(key.key_id)
        if wait:
            exc = RateLimited(f"rate limit of key {key.key_id} exceeded", retry_after_s=wait)
            exc.key_id = key.key_id  # type: ignore[attr-defined]
            raise exc
        return key

    async def _body(self, request: web.Request) -> bytes:
        c = self.config
        if request.content_length is not None and request.content_length > c.max_bytes:
            raise TooLarge(limits_message(c.max_records, c.max_bytes))
        # aiohttp decodes Content-Encoding (gzip, deflate) as the body streams in: the limit
        # counts decompressed bytes, so a small gzip bomb stops at max_bytes
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > c.max_bytes:
                raise TooLarge(limits_message(c.max_records, c.max_bytes))
            chunks.append(chunk)
        return b"".join(chunks)

    def _check_ready(self) -> None:
        if not self.ready:
            raise Unavailable(
                f"not ready: {self.readiness_problem}", retry_after_s=self.config.retry_after_s
            )

    async def _produce(self, run: Callable[[Acks], CheckResult]) -> CheckResult:
        """Check and produce on the worker thread, then wait for every acknowledgement."""
        loop = asyncio.get_running_loop()
        acks = Acks(loop)
        result = await loop.run_in_executor(self._pool, run, acks)
        retry = self.config.retry_after_s
        try:
            await asyncio.wait_for(asyncio.shield(acks.done), self.config.ack_timeout_s + 2)
        except TimeoutError:
            raise Unavailable("the broker did not acknowledge in time; retry",
                              retry_after_s=retry) from None  # fmt: skip
        if acks.failed:
            raise Unavailable(
                f"the broker did not acknowledge {acks.failed} record(s) ({acks.last_error}); "
                "retry the request", retry_after_s=retry,
            )  # fmt: skip
        return result

    async def _events(self, request: web.Request) -> tuple[web.StreamResponse, str]:
        key = self._authenticate(request)
        body = await self._body(request)
        self._check_ready()
        c, producer = self.config, self._producer
        assert producer is not None

        def run(acks: Acks) -> CheckResult:
            result = check_records(split_records(body, c.max_records, c.max_bytes),
                                   key.project, c.topics)  # fmt: skip
            producer.produce(result.accepted, acks)
            return result

        result = await self._tagged(key, self._produce(run))
        self.metrics.counted("events", key.key_id, len(result.accepted), result.reasons)
        answer = {"pushed": len(result.accepted), "skipped": len(result.errors),
                  "errors": result.errors}  # fmt: skip
        return web.json_response(answer), key.key_id

    async def _traces(self, request: web.Request) -> tuple[web.StreamResponse, str]:
        key = self._authenticate(request)
        ctype = request.content_type
        if ctype not in OTLP_TYPES:
            raise UnsupportedMediaType(f"Content-Type {ctype!r}: use one of {OTLP_TYPES}")
        body = await self._body(request)
        self._check_ready()
        c, producer = self.config, self._producer
        assert producer is not None
        ignored = 0

        def run(acks: Acks) -> CheckResult:
            nonlocal ignored
            mapped = otlp.map_request(otlp.decode(body, ctype))
            ignored = mapped.ignored
            result = check_records(mapped.records, key.project, c.topics)
            producer.produce(result.accepted, acks)
            return result

        result = await self._tagged(key, self._produce(run))
        self.metrics.counted("traces", key.key_id, len(result.accepted), result.reasons)
        if ignored:
            self.metrics.ignored.labels(key.key_id).inc(ignored)
        message = "; ".join(result.errors[:20])
        if ignored:
            note = f"{ignored} span(s) without GenAI mapping ignored"
            message = f"{message}; {note}" if message else note
        payload = otlp.response(len(result.errors), message, ctype)
        return web.Response(body=payload, content_type=ctype), key.key_id

    @staticmethod
    async def _tagged(key: ApiKey, work: Awaitable[CheckResult]) -> CheckResult:
        try:
            return await work
        except GatewayError as exc:
            exc.key_id = key.key_id  # type: ignore[attr-defined]
            raise

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        if self.ready:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready", "problems": [self.readiness_problem]},
                                 status=503)  # fmt: skip

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _error(exc: GatewayError) -> web.Response:
    headers: dict[str, Any] = {}
    if exc.retry_after_s is not None:
        headers["Retry-After"] = str(exc.retry_after_s)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="meterline"'
    return web.json_response({"error": exc.message}, status=exc.status, headers=headers)
