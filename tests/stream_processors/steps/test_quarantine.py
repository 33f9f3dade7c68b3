from __future__ import annotations

import logging

import pytest

from meterline.stream_processors.steps.quarantine import UNREADABLE, ProjectGuard, project_of


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def guard(clock: Clock, **kw: object) -> ProjectGuard:
    return ProjectGuard(0.5, 60.0, window=100, min_records=10, clock=clock, **kw)  # type: ignore[arg-type]


def test_a_few_invalid_records_quarantine_nobody() -> None:
    g = guard(Clock())
    for i in range(1_000):
        if i % 10:
            assert g.valid("p") is None
        else:
            g.invalid("p", "bad")
    assert g.quarantined == {} and g.quarantines == 0


def test_a_project_over_the_ratio_is_quarantined_and_the_others_are_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    g = guard(clock)
    for _ in range(50):
        assert g.valid("good") is None
    with caplog.at_level(logging.ERROR):
        for _ in range(10):
            g.invalid("bad", "schema_version: 2 is newer than 1")
    assert set(g.quarantined) == {"bad"} and g.quarantines == 1
    q = g.valid("bad")  # a valid record of a quarantined project: dead-lettered by the caller
    assert q is not None and "10 of its last 10 records were invalid" in q.reason
    assert "schema_version: 2" in q.reason
    assert "project 'bad' quarantined until" in caplog.text
    assert "replay-dead-letters --project bad" in caplog.text
    assert g.valid("good") is None  # every other project flows


def test_a_quarantine_ends_by_itself_after_the_cool_off_and_counts_start_afresh() -> None:
    clock = Clock()
    g = guard(clock)
    for _ in range(10):
        g.invalid("bad", "x")
    clock.now += 59
    assert g.valid("bad") is not None
    clock.now += 2
    assert g.quarantined == {}
    assert g.valid("bad") is None  # resumed
    for _ in range(9):
        g.invalid("bad", "x")  # 9 of 10: over the ratio, but fewer than min_records before
    assert g.quarantines == 2  # ... the 10th record: quarantined again


def test_the_counts_slide_so_an_old_burst_is_forgotten() -> None:
    g = guard(Clock())
    for _ in range(9):
        g.invalid("p", "x")  # under min_records
    for _ in range(300):
        assert g.valid("p") is None
    for _ in range(40):
        g.invalid("p", "x")  # 40 of the last 100-200: under half
    assert g.quarantines == 0


def test_records_with_no_readable_project_share_one_bucket_and_stop_nothing() -> None:
    g = guard(Clock())
    for value in (b"\x00garbage", b"[1, 2]", b'{"project": 7}', b"", None, b'{"project": "a\\nb"}'):
        assert project_of(value) == UNREADABLE
    for _ in range(100):
        g.invalid(project_of(b"\x00garbage"), "invalid JSON")
    assert set(g.quarantined) == {UNREADABLE}
    assert g.valid("good") is None


def test_project_of_reads_the_project_of_a_record_it_cannot_validate() -> None:
    assert project_of(b'{"schema_version": 2, "project": "bad", "new": {}}') == "bad"
    assert project_of(b'{"type": "action"}') == "default"  # the wire default


def test_state_is_bounded_by_max_projects_and_keeps_quarantined_ones() -> None:
    g = guard(Clock(), max_projects=5)
    for _ in range(10):
        g.invalid("bad", "x")
    for i in range(100):
        g.valid(f"p{i}")
    assert len(g._counts) <= 5 and set(g.quarantined) == {"bad"}


def test_no_limit_and_bad_arguments() -> None:
    g = ProjectGuard(None)
    for _ in range(10_000):
        g.invalid("p", "x")
    assert g.valid("p") is None and g.quarantines == 0
    with pytest.raises(ValueError):
        ProjectGuard(1.5)
    with pytest.raises(ValueError):
        ProjectGuard(0.5, cool_off_s=0)
