from __future__ import annotations

from typing import Any

from stream_processors.table_buffer import WriteBack


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


class _Store(dict[str, Any]):
    """A Faust table as WriteBack uses it with a changelog: ``data`` is the store."""

    @property
    def data(self) -> dict[str, Any]:
        return self


class _Changelog:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str, Any]] = []

    def send(self, partition: int, key: str, value: Any) -> None:
        self.sent.append((partition, key, value))


def test_flush_produces_each_key_once_in_the_order_of_its_last_write() -> None:
    store, changelog = _Store(), _Changelog()
    wb = WriteBack(store, changelog)  # type: ignore[arg-type]
    wb.put("index", 1, 3)
    wb.put("a", "x", 3)
    wb.put("index", 2, 3)  # rewritten after "a": produced after it
    wb.remove("a", 3)
    wb.put("b", "y", 4)
    wb.flush()
    assert changelog.sent == [(3, "index", 2), (3, "a", None), (4, "b", "y")]
    assert store == {"index": 2, "b": "y"}
