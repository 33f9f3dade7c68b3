"""Open ClickHouse for the billing commands, wherever it is."""

from __future__ import annotations

from typing import Any

from meterline.billing import endpoint
from meterline.billing.errors import ClickHouseUnavailable
from meterline.settings import Settings
from meterline.sinks import connect, redact_url


def open_client(settings: Settings) -> Any:
    """http(s):// -> a clickhouse-connect client. chdb:// -> the query endpoint of a running
    ``meterline up`` on the same data dir if there is one, else chDB opened here.

    Raises :class:`ClickHouseUnavailable` when the chDB path is held by another process
    that serves no endpoint.
    """
    url = settings.effective_clickhouse_url
    if not url.startswith("chdb://"):
        return connect(url)
    remote = endpoint.find(settings.data_dir)
    if remote is not None:
        return remote
    try:
        return connect(url)
    except Exception as exc:
        raise ClickHouseUnavailable(
            f"cannot open {redact_url(url)}: {exc}\nchDB allows one process per data path. "
            "If `meterline up` runs on this data dir, pass the same --data-dir so the command "
            "goes through its query endpoint; otherwise stop the process holding the path."
        ) from exc
