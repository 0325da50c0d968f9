"""Progress where stderr is no terminal (docker, systemd): a log line at an interval, with
the numbers a bar would show, so that a long first sync does not look hung."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from docsync.worker.progress import LogLines, progress_bar
from tests.test_cli import run


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lines_come_at_the_interval_with_the_numbers(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    lines = LogLines(interval=30, clock=clock)
    with caplog.at_level(logging.INFO, logger="docsync.progress"):
        lines.set_total(0)
        lines.more(400)
        clock.now += 10
        lines.advance(40)
        assert caplog.messages == []  # 10 s in: too soon
        clock.now += 15
        lines.embedded(2048)
        clock.now += 5
        lines.advance(80)  # 30 s in
        assert caplog.messages == [
            "sync: 120/400 files (30%), 2,048 chunks embedded, 4.0 files/s, about 1m10s left"
        ]
        clock.now += 29
        lines.advance(10)
        assert len(caplog.messages) == 1  # 29 s after the last line
        clock.now += 1
        lines.more(100)
        assert caplog.messages[1] == (
            "sync: 130/500 files (26%), 2,048 chunks embedded, 2.2 files/s, about 2m51s left"
        )


def test_a_count_without_a_total_and_other_units(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    lines = LogLines(interval=5, desc="import", unit="point", clock=clock)
    with caplog.at_level(logging.INFO, logger="docsync.progress"):
        clock.now += 3600
        lines.advance(7200)
    assert caplog.messages == ["import: 7,200 points, 2.0 points/s"]


def test_no_terminal_gets_lines_and_a_terminal_a_bar() -> None:
    with progress_bar() as progress:  # stderr is not a terminal under pytest
        assert isinstance(progress, LogLines) and progress.interval == 30
    with progress_bar(interval=2.5) as progress:
        assert isinstance(progress, LogLines) and progress.interval == 2.5
    with progress_bar(enabled=True) as progress:
        assert not isinstance(progress, LogLines)


def test_a_sync_without_a_terminal_logs_its_progress(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCSYNC_PROGRESS_SECONDS", "0.001")
    code, _, err = run(capsys, "sync", str(env))
    assert code == 0
    progress = [line for line in err.splitlines() if line.startswith("docsync: INFO sync: ")]
    assert progress, err
    assert re.fullmatch(
        r"docsync: INFO sync: \d+/3 files \(\d+%\)(, [\d,]+ chunks embedded)?, "
        r"[\d.]+ files/s(, about \w+ left)?",
        progress[-1],
    )
