from __future__ import annotations

from typing import Any

from meterline.stream_processors.state.writeback import WriteBack


class _Table(dict[str, Any]):
    """Stands in for a Faust table's mapping interface; records assignments."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[str, Any]] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes.append((key, value))
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.writes.append((key, None))
        super().__delitem__(key)


def test_reads_see_buffered_writes_and_flush_writes_each_key_once() -> None:
    table = _Table()
    table["old"] = 1
    table.writes.clear()
    wb = WriteBack(table)
    wb["a"] = 1
    wb["a"] = 2
    assert wb["a"] == 2 and wb.get("a") == 2 and "a" in wb and table.writes == []
    assert wb.pop("old") == 1 and "old" not in wb and wb.get("old", "gone") == "gone"
    assert wb.pop("missing", None) is None
    assert sorted(wb) == ["a"] and len(wb) == 1
    assert wb.flush() == 2
    assert sorted(table.writes, key=str) == [("a", 2), ("old", None)]
    assert dict(table) == {"a": 2} and wb.pending == 0


def test_partition_pinned_values_keep_their_partition_outside_any_event() -> None:
    from meterline.stream_processors.state.writeback import PartitionPinned

    wb = WriteBack(_Table())
    state = PartitionPinned(wb)
    state["k"] = {"_p": 3, "v": 1}  # first write names it (in a batch: the current event)
    state["k"] = {**state["k"], "v": 2}  # a later write without a current event
    assert wb._dirty["k"] == ({"_p": 3, "v": 2}, 3)
    state["j"] = {"v": 1, "_p": 1}
    state["j"] = {"v": 2}  # the field dropped by the caller: taken from the stored value
    assert wb._dirty["j"] == ({"v": 2, "_p": 1}, 1)
    del state["k"]
    assert wb._dirty["k"][1] == 3 and "k" not in state
    try:
        state["new"] = {"v": 1}
    except KeyError as exc:
        assert "no source partition" in str(exc)
    else:
        raise AssertionError("a key with no partition must not be written")


class Store(dict[str, Any]):
    """A Faust table as WriteBack uses it with a changelog: ``data`` is the store."""

    @property
    def data(self) -> dict[str, Any]:
        return self


class RecordingChangelog:
    """A changelog that records what it is sent: ``(partition, key, value)``."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str, Any]] = []

    def send(self, partition: int, key: str, value: Any) -> None:
        self.sent.append((partition, key, value))


def test_flush_produces_each_key_once_in_the_order_of_its_last_write() -> None:
    store, changelog = Store(), RecordingChangelog()
    wb = WriteBack(store, changelog)  # type: ignore[arg-type]
    wb.put("index", 1, 3)
    wb.put("a", "x", 3)
    wb.put("index", 2, 3)  # rewritten after "a": produced after it
    wb.remove("a", 3)
    wb.put("b", "y", 4)
    wb.flush()
    assert changelog.sent == [(3, "index", 2), (3, "a", None), (4, "b", "y")]
    assert store == {"index": 2, "b": "y"}


def test_partition_pinned_iterates_only_the_owned_partitions_keys() -> None:
    from meterline.stream_processors.state.writeback import PartitionPinned

    owned = {1}
    state = PartitionPinned(WriteBack(_Table()), owned=lambda: owned)
    state["a"] = {"_p": 1}
    state["b"] = {"_p": 2}  # e.g. left in the store after a rebalance
    assert list(state) == ["a"] and len(state) == 1 and "b" in state
    owned.add(2)
    assert sorted(state) == ["a", "b"]
