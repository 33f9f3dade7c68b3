"""Insert deduplication tokens: deterministic per batch content; ClickHouse drops repeats."""

from __future__ import annotations

from meterline.schemas import ActionEvent, EnrichedEvent
from meterline.sinks.clickhouse.rows import event_row
from meterline.sinks.clickhouse.writer import ClickHouseWriter, InsertTokens

MESSAGES = [("enriched", 0, 5, b"a"), ("enriched", 1, 9, b"b"), ("enriched", 0, 6, b"c")]


def tokens(messages: list[tuple[str, int, int, bytes]], table: str = "events") -> InsertTokens:
    t = InsertTokens()
    for topic, partition, offset, value in messages:
        t.add(table, topic, partition, offset, value)
    return t


def test_token_is_a_function_of_the_messages_per_partition() -> None:
    token = tokens(MESSAGES).token("events")
    assert token is not None and token.startswith("events-")
    # another interleaving of the same partitions' messages: same token
    assert tokens([MESSAGES[1], MESSAGES[0], MESSAGES[2]]).token("events") == token
    # a different split (the replay after a restart usually is one) or different bytes: new
    assert tokens(MESSAGES[:2]).token("events") != token
    assert tokens([*MESSAGES[:2], ("enriched", 0, 6, b"C")]).token("events") != token
    assert tokens(MESSAGES, table="trajectories").token("trajectories") != token
    assert tokens(MESSAGES).token("dead_letters") is None


def test_an_insert_repeated_with_its_token_is_dropped_before_any_merge(
    writer: ClickHouseWriter,
) -> None:
    batch = [
        event_row(EnrichedEvent(event=ActionEvent(event_id=f"e{i}", name="n"))) for i in range(3)
    ]
    ch, db = writer.client, writer.database
    writer.insert("events", batch, dedup_token="t1")
    writer.insert("events", batch, dedup_token="t1")  # e.g. the retry of a timed-out insert
    assert ch.command(f"SELECT count() FROM {db}.events") == 3
    assert ch.command(f"SELECT count() FROM {db}.event_facts") == 3  # the view skipped it too
    writer.insert("events", batch, dedup_token="t2")  # a different batch: kept, collapses later
    assert ch.command(f"SELECT count() FROM {db}.events") == 6
    assert ch.command(f"SELECT count() FROM {db}.events FINAL") == 3
