"""The restart backoff of ``meterline up``'s runtime (the restart itself: an integration test,
``tests/integration/test_quarantine.py``)."""

from __future__ import annotations

import pytest

from meterline.embedded import runtime
from meterline.embedded.runtime import Backoff


def test_restarts_back_off_doubling_to_the_maximum_and_reset_after_a_long_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(runtime.time, "monotonic", lambda: now[0])
    b = Backoff(1.0, 8.0)
    delays = []
    for _ in range(5):  # it keeps dying right after each restart
        delays.append(b.schedule())
        assert not b.take()  # not due yet
        now[0] += delays[-1]
        assert b.take()
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    now[0] += 8.0  # this time it ran for the maximum: not a restart loop
    assert b.schedule() == 1.0
