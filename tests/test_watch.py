"""Watching: debounced per-path changes, the polling fallback, a dead observer replaced."""

from __future__ import annotations

import errno
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from docsync.worker.watch import Debouncer, Watcher
from tests.conftest import HANG


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_is_one_change_after_quiet() -> None:
    clock = FakeClock()
    d = Debouncer(quiet=0.5, max_wait=5.0, clock=clock)
    root = Path("/r")
    for _ in range(50):
        d.touch(root, "a.md")
        clock.now += 0.1
        assert d.ready() == []
    clock.now += 0.5
    (change,) = d.ready()
    assert (change.root, change.path) == (root, "a.md")
    assert change.first_seen == pytest.approx(100.0)
    assert d.ready() == [] and len(d) == 0


def test_continuous_writes_still_sync_after_max_wait() -> None:
    clock = FakeClock()
    d = Debouncer(quiet=0.5, max_wait=2.0, clock=clock)
    ready = []
    for _ in range(100):  # a write every 0.1 s for 10 s: never quiet
        d.touch(Path("/r"), "log.md")
        clock.now += 0.1
        ready += d.ready()
    assert 4 <= len(ready) <= 5  # one sync per max_wait, not one per write


def test_retouch_keeps_the_first_seen_time() -> None:
    clock = FakeClock()
    d = Debouncer(quiet=0.0, max_wait=1.0, clock=clock)
    d.touch(Path("/r"), "a.md", first_seen=90.0)
    (change,) = d.ready()
    assert change.first_seen == 90.0


class FakeObserver:
    def __init__(self, fail: OSError | None = None) -> None:
        self.fail, self.alive, self.scheduled = fail, False, []

    def schedule(self, handler: Any, path: str, *, recursive: bool) -> None:
        self.scheduled.append(path)

    def start(self) -> None:
        if self.fail:
            raise self.fail
        self.alive = True

    def stop(self) -> None:
        self.alive = False

    def join(self, timeout: float | None = None) -> None:
        pass

    def is_alive(self) -> bool:
        return self.alive


def test_inotify_limit_falls_back_to_polling(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    polls: list[FakeObserver] = []

    def poller() -> FakeObserver:
        polls.append(FakeObserver())
        return polls[-1]

    limit = OSError(errno.ENOSPC, "inotify watch limit reached")
    watcher = Watcher(
        [tmp_path], lambda *_: None, native=lambda: FakeObserver(limit), poller=poller
    )
    with caplog.at_level(logging.WARNING):
        watcher.start()
    assert watcher.polling and polls[0].alive and polls[0].scheduled == [str(tmp_path)]
    assert "fs.inotify.max_user_watches" in caplog.text


def test_dead_observer_is_replaced(tmp_path: Path) -> None:
    made: list[FakeObserver] = []

    def native() -> FakeObserver:
        made.append(FakeObserver())
        return made[-1]

    watcher = Watcher([tmp_path], lambda *_: None, native=native)
    watcher.start()
    assert watcher.ensure_alive() is False
    made[0].alive = False  # the observer thread died
    assert watcher.ensure_alive() is True
    assert len(made) == 2 and made[1].alive


def test_real_observer_reports_relative_paths(tmp_path: Path) -> None:
    seen: list[tuple[Path, str]] = []
    watcher = Watcher([tmp_path], lambda root, path: seen.append((root, path)))
    watcher.start()
    try:
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "a.md").write_text("hello")
        (tmp_path / "sub" / "a.md").rename(tmp_path / "b.md")
        (tmp_path / "c.md").write_text("written")
        deadline = time.monotonic() + HANG
        # Events inside a folder created a moment ago can be missed (the watch on it comes
        # later): the folder's own event is there, and the daemon reconciles the folder.
        wanted = {"sub", "b.md", "c.md"}
        while not wanted <= {p for _, p in seen} and time.monotonic() < deadline:
            time.sleep(0.02)
        assert wanted <= {p for _, p in seen}
        assert {root for root, _ in seen} == {tmp_path}
    finally:
        watcher.stop()


def test_an_event_goes_to_every_root_it_lies_in(tmp_path: Path) -> None:
    from watchdog.events import FileModifiedEvent

    from docsync.worker.watch import _Handler

    outer, inner = tmp_path / "docs", tmp_path / "docs" / "api"
    seen: list[tuple[Path, str]] = []
    handler = _Handler([outer, inner], lambda root, path: seen.append((root, path)))
    handler.on_any_event(FileModifiedEvent(str(inner / "a.md")))
    handler.on_any_event(FileModifiedEvent(str(outer / "b.md")))
    handler.on_any_event(FileModifiedEvent(str(inner)))
    assert seen == [
        (outer, "api/a.md"),
        (inner, "a.md"),
        (outer, "b.md"),
        (outer, "api"),
        (inner, ""),
    ]
