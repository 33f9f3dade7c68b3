from __future__ import annotations

import pytest

from meterline.sinks import ConfigurationError, connect, redact_url
from meterline.sinks.clickhouse.ddl import statements
from meterline.sinks.clickhouse.identifiers import check_identifier


def test_unsupported_url_scheme_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="expected http://, https:// or chdb://"):
        connect("mysql://user:secret@host/db")


def test_passwords_are_redacted_from_urls() -> None:
    assert redact_url("https://u:secret@host:8443/db") == "https://u:***@host:8443/db"
    assert redact_url("chdb:///data") == "chdb:///data"


def test_database_names_must_be_identifiers() -> None:
    assert check_identifier("meterline_1") == "meterline_1"
    with pytest.raises(ValueError, match="invalid ClickHouse identifier"):
        statements("x; DROP TABLE events")


def test_ddl_is_idempotent() -> None:
    assert all(
        "IF NOT EXISTS" in s or s.startswith("CREATE OR REPLACE VIEW db.") for s in statements("db")
    )
