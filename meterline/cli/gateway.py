"""``meterline gateway`` and ``meterline keys create|list|revoke`` (the ingestion edge).

The shell side of :mod:`meterline.producers.gateway`: builds its :class:`GatewayConfig` from
:class:`Settings` and flags. The keys file is ``<data dir>/gateway-keys.json`` unless
``--keys-file`` / ``METERLINE_GATEWAY_KEYS`` says otherwise; the CLI and running gateways
share it (a key created or revoked takes effect within about a second).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meterline.settings import Settings

if TYPE_CHECKING:
    from meterline.producers.gateway import GatewayConfig

#: default port of the gateway (``meterline gateway`` and ``meterline up --ingest-port``)
INGEST_PORT = 8322


def keys_file(settings: Settings, flag: str | None = None) -> Path:
    path = flag or os.environ.get("METERLINE_GATEWAY_KEYS")
    return Path(path) if path else settings.data_dir / "gateway-keys.json"


def gateway_config(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = INGEST_PORT,
    keys: str | None = None,
    rate_per_s: float | None = None,
    burst: float | None = None,
) -> GatewayConfig:
    from meterline.producers.gateway import GatewayConfig

    assert settings.kafka_bootstrap, "the gateway needs a broker"
    extra: dict[str, Any] = {}
    if rate_per_s is not None:
        extra["rate_per_s"] = rate_per_s
    if burst is not None:
        extra["burst"] = burst
    return GatewayConfig(
        kafka_bootstrap=settings.kafka_bootstrap,
        keys_file=keys_file(settings, keys),
        topics=settings.topics,
        host=host,
        port=port,
        kafka_config=dict(settings.kafka_client_config()),
        **extra,
    )


def cmd_gateway(args: argparse.Namespace, settings: Settings) -> int:
    from meterline.producers.gateway import GatewayServer

    if not settings.kafka_bootstrap:
        print("meterline gateway: set METERLINE_KAFKA_BOOTSTRAP (or --kafka-bootstrap)",
              file=sys.stderr)  # fmt: skip
        return 2
    config = gateway_config(
        settings, host=args.host, port=args.port, keys=args.keys_file,
        rate_per_s=args.rate_limit, burst=args.burst,
    )  # fmt: skip
    server = GatewayServer(config)
    print(f"meterline gateway: http://{args.host}:{args.port}  (POST /v1/events, /v1/traces; "
          f"keys {config.keys_file}). Ctrl-C to stop.", flush=True)  # fmt: skip
    server.run()
    return 0


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from meterline.producers.gateway.keys import KeyStore

    store = KeyStore(keys_file(settings, args.keys_file))
    if args.keys_command == "create":
        entry, key = store.create(args.project, args.name)
        print(f"key id {entry.key_id} for project {entry.project} ({entry.name}); "
              "the key (shown once, store it now):", file=sys.stderr)  # fmt: skip
        print(key)
        return 0
    if args.keys_command == "revoke":
        try:
            entry = store.revoke(args.key_id)
        except KeyError:
            print(f"meterline keys revoke: no key {args.key_id!r}", file=sys.stderr)
            return 1
        print(f"revoked {entry.key_id} ({entry.project}/{entry.name}) at {entry.revoked_at}")
        return 0
    print(f"{'key id':<14} {'project':<20} {'name':<20} {'created':<26} revoked")
    for k in store.list():
        print(f"{k.key_id:<14} {k.project:<20} {k.name:<20} {k.created_at:<26} "
              f"{k.revoked_at or '-'}")  # fmt: skip
    return 0


def add_parsers(sub: Any, common: Any, settings_of: Any) -> None:
    """Register ``gateway`` and ``keys`` (``settings_of(args)`` builds the Settings)."""

    def keys_flag(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--keys-file", help="API keys file (env METERLINE_GATEWAY_KEYS; "
                        "default <data dir>/gateway-keys.json)")  # fmt: skip

    gw = sub.add_parser("gateway", help="serve the ingestion gateway (HTTP events, OTLP traces)")
    common(gw)
    keys_flag(gw)
    gw.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0: all)")
    gw.add_argument("--port", type=int, default=INGEST_PORT, help=f"default {INGEST_PORT}")
    gw.add_argument("--rate-limit", type=float, help="requests/s per key (default 100)")
    gw.add_argument("--burst", type=float, help="token-bucket size per key (default 200)")
    gw.set_defaults(func=lambda a: cmd_gateway(a, settings_of(a)))

    keys = sub.add_parser("keys", help="create, list or revoke the gateway's API keys")
    common(keys)
    keys_flag(keys)
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    create = ksub.add_parser("create", help="create a key (printed once)")
    create.add_argument("--project", required=True)
    create.add_argument("--name", required=True, help="what the key is for, e.g. ci")
    ksub.add_parser("list", help="list keys (ids, projects; never the keys)")
    revoke = ksub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    keys.set_defaults(func=lambda a: cmd_keys(a, settings_of(a)))
