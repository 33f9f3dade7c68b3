"""What every command shares: the connection flags and the :class:`Settings` they override."""

from __future__ import annotations

import argparse
from pathlib import Path

from meterline.settings import Settings


def settings(args: argparse.Namespace) -> Settings:
    """The environment's settings with this command's flags applied."""
    return Settings.from_env().with_overrides(
        kafka_bootstrap=args.kafka_bootstrap,
        clickhouse_url=args.clickhouse_url,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        control_plane=Path(cp) if (cp := getattr(args, "control_plane", None)) else None,
    )


def add_common(sp: argparse.ArgumentParser) -> None:
    """``--kafka-bootstrap``, ``--clickhouse-url`` and ``--data-dir``."""
    sp.add_argument(
        "--kafka-bootstrap",
        help="Kafka bootstrap servers "
        "(env METERLINE_KAFKA_BOOTSTRAP; unset = embedded Tansu broker)",
    )
    sp.add_argument(
        "--clickhouse-url",
        help="http(s)://... or chdb:///abs/path "
        "(env METERLINE_CLICKHOUSE_URL; unset = chDB under the data dir)",
    )
    sp.add_argument(
        "--data-dir",
        help="embedded data directory (env METERLINE_DATA_DIR, default ./.meterline)",
    )
