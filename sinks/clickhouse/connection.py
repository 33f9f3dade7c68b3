"""Open a clickhouse-connect client from a URL: ``http(s)://...`` or ``chdb:///abs/path``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from meterline.sinks.errors import ConfigurationError

_SCHEMES = ("http", "https", "chdb")


def connect(url: str) -> Any:
    """Return a clickhouse-connect client for ``url``.

    ``chdb://`` runs ClickHouse in this process (needs the ``embedded`` extra); only one
    process may open a given chDB path at a time.
    """
    try:
        import clickhouse_connect
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigurationError(
            "clickhouse-connect is not installed: pip install 'meterline[pipeline]'"
        ) from exc
    scheme = urlsplit(url).scheme
    if scheme not in _SCHEMES:
        raise ConfigurationError(
            f"unsupported ClickHouse URL {redact_url(url)!r}: expected http://, https:// or chdb://"
        )
    if scheme == "chdb":
        try:
            import chdb  # noqa: F401
        except ImportError as exc:
            raise ConfigurationError(
                "chdb:// needs chDB: pip install 'meterline[embedded]'"
            ) from exc
    return clickhouse_connect.get_client(dsn=url)


def redact_url(url: str) -> str:
    """``url`` with any password replaced, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()
