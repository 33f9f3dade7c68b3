"""Progress bars draw on a terminal only: piped output (tests, CI) stays plain."""

from __future__ import annotations

import pytest

from meterline.ops.progress import ProgressBar


def test_no_bar_when_stdout_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with ProgressBar("sending", 10) as bar:  # capsys: stdout is not a TTY
        bar.update(5)
    print("plain line")
    assert capsys.readouterr().out == "plain line\n"


def test_an_enabled_bar_updates_and_closes() -> None:
    bar = ProgressBar("sending", 10, enabled=True)
    bar.update(3)
    bar.update(10)
    bar.close()
    bar.close()  # idempotent
