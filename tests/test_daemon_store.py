"""`docsync run` started while a reader holds the embedded store waits for it (a while)
instead of exiting with "in use"; a daemon holding it is said at once. Clock and sleep are
the test's own: no wait."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from docsync.plugin.errors import StoreLockedError
from docsync.plugin.settings import Settings
from docsync.plugin.stores.edge import EdgeStore
from docsync.worker import daemon_store
from docsync.worker.daemon_store import open_serving
from tests.conftest import HANG

HOLD = (
    "import sys; from pathlib import Path; from docsync.plugin.stores.edge import EdgeStore; "
    "s = EdgeStore.connect(path=Path(sys.argv[1]), collection='docsync'); "
    "print('held', flush=True); sys.stdin.read(); s.close()"
)


class Holder:
    """Another process holding the store (the lock `docsync status` takes while it runs)."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "held"

    def release(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=HANG)
            self.process.stdout.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    EdgeStore.connect(path=tmp_path / "store", collection="docsync").close()
    return Settings(qdrant_path=tmp_path / "store")


def test_a_daemon_waits_for_a_reader_that_holds_the_store(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    holder = Holder(settings.qdrant_path)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # the reader ends while the daemon waits
        sleeps.append(seconds)
        if len(sleeps) == 2:
            holder.release()

    try:
        with caplog.at_level(logging.INFO, logger="docsync.daemon"):
            store = open_serving(settings, sleep=sleep)
        store.close()
    finally:
        holder.release()
    assert len(sleeps) == 2
    said = [r.getMessage() for r in caplog.records if "held by another process" in r.getMessage()]
    assert len(said) == 1 and "waiting up to 30s" in said[0]


def test_after_the_wait_the_store_in_use_is_said(settings: Settings) -> None:
    holder = Holder(settings.qdrant_path)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    try:
        with pytest.raises(StoreLockedError, match="in use by another process"):
            open_serving(settings, wait=1.0, clock=lambda: now[0], sleep=sleep)
    finally:
        holder.release()
    assert now[0] >= 1.0


def test_a_daemon_holding_the_store_is_said_at_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = Holder(settings.qdrant_path)
    monkeypatch.setattr(daemon_store, "daemon_answers", lambda path: True)

    def sleep(seconds: float) -> None:
        raise AssertionError("waited for another daemon")

    try:
        with pytest.raises(StoreLockedError):
            open_serving(settings, sleep=sleep)
    finally:
        holder.release()
