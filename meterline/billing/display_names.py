"""Copy the control plane's display names into ClickHouse (views join them; no SQL text)."""

from __future__ import annotations

from meterline.schemas import ControlPlane
from meterline.sinks.clickhouse.writer import ClickHouseWriter


def sync_display_names(writer: ClickHouseWriter, config: ControlPlane) -> int:
    """Write names that changed; names gone from the file get ``""`` (views show the action).

    Returns the number of rows written (0 when ClickHouse already agrees).
    """
    existing = dict(
        writer.client.query(
            f"SELECT action, display_name FROM {writer.database}.action_names"
        ).result_rows
    )
    rows = [
        (action, label, config.version)
        for action, label in sorted(config.display_names.items())
        if existing.get(action) != label
    ]
    rows += [
        (action, "", config.version)
        for action, label in sorted(existing.items())
        if label and action not in config.display_names
    ]
    writer.insert("display_names", rows)
    return len(rows)
