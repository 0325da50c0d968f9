"""A reader that crashes on a file once is not the file's fault (issue 25, item 10): the
daemon reads it again with backoff, counts it as pending until it is read, and gives up (the
old points kept) after a few tries, until the file changes. Driven step by step on a fake
clock, with the crash injected at the reader seam."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import docsync.worker.read
from docsync.plugin.encoder import Encoder
from docsync.plugin.store import Store
from docsync.worker.daemon import Daemon
from docsync.worker.formats import Extracted, Unreadable
from docsync.worker.pipeline import SyncOptions
from docsync.worker.retries import FIRST_DELAY, TRIES
from tests.conftest import run_sync
from tests.test_daemon import FAST, Silent

DOCUMENTS = Path(__file__).resolve().parent / "documents"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CrashingReader:
    """The reader seam: its next `crashes` calls die as a killed reader child does."""

    def __init__(self, crashes: int) -> None:
        self.crashes = crashes
        self.calls = 0
        self._real = docsync.worker.read.extract_isolated
        self.watch: Callable[[], object] = lambda: None
        self.seen: list[object] = []  # what `watch` gave at each call

    def __call__(self, format: str, raw: bytes, **limits: float) -> Extracted:
        self.calls += 1
        self.seen.append(self.watch())
        if self.crashes:
            self.crashes -= 1
            raise Unreadable("reader_crashed", f"the {format} reader died on this file")
        return self._real(format, raw, **limits)  # type: ignore[arg-type]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = (tmp_path / "docs").resolve()
    root.mkdir()
    shutil.copy(DOCUMENTS / "manual.pdf", root / "a.pdf")
    return root


def texts(store: Store) -> str:
    return " ".join(str(point.payload["text"]) for point in store.scroll({"path": "a.pdf"}))


def replaced(docs: Path, store: Store, encoder: Encoder, clock: Clock) -> Daemon:
    """a.pdf indexed, then replaced by another PDF; a daemon that saw the change."""
    run_sync(docs, store, encoder)
    assert "dblRelDistortion" in texts(store)
    shutil.copy(DOCUMENTS / "small.pdf", docs / "a.pdf")
    daemon = Daemon(
        [docs],
        store=store,
        encoder=encoder,
        sync_options=SyncOptions(),
        options=FAST,
        watcher_factory=Silent,
        clock=clock,
    )
    daemon.debouncer.touch(docs, "a.pdf")
    return daemon


def turn(daemon: Daemon, clock: Clock, seconds: float) -> None:
    """Let `seconds` pass, then one turn of the loop."""
    clock.now += seconds
    daemon.step()


def test_a_crash_is_read_again_and_pending_until_read(
    docs: Path,
    memory_store: Store,
    tiny_encoder: Encoder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    daemon = replaced(docs, memory_store, tiny_encoder, clock)
    reader = CrashingReader(crashes=1)
    reader.watch = lambda: daemon.state()["pending_changes"]
    monkeypatch.setattr(docsync.worker.read, "extract_isolated", reader)
    turn(daemon, clock, 1)
    assert reader.calls == 1
    assert "dblRelDistortion" in texts(memory_store)  # the old points, kept for now...
    assert daemon.state()["pending_changes"] == 1  # ...and shown as not yet current
    turn(daemon, clock, FIRST_DELAY / 4)
    assert reader.calls == 1  # backoff: not yet
    turn(daemon, clock, FIRST_DELAY)
    assert reader.calls == 2 and reader.seen[1] == 1  # pending while it is read again
    assert "dblRelDistortion" not in texts(memory_store) and texts(memory_store)
    assert daemon.state()["pending_changes"] == 0


def test_a_file_that_always_crashes_is_given_up_until_it_changes(
    docs: Path,
    memory_store: Store,
    tiny_encoder: Encoder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    daemon = replaced(docs, memory_store, tiny_encoder, clock)
    reader = CrashingReader(crashes=1000)
    monkeypatch.setattr(docsync.worker.read, "extract_isolated", reader)
    for _ in range(TRIES + 3):
        turn(daemon, clock, 120)  # longer than any backoff
    assert reader.calls == 1 + TRIES
    assert daemon.state()["pending_changes"] == 0  # given up: not pending for ever
    assert "dblRelDistortion" in texts(memory_store)  # a failure keeps what was indexed
    daemon._full_sync(reason="periodic rescan")  # a rescan reads it, and does not retry it
    for _ in range(3):
        turn(daemon, clock, 120)
    assert reader.calls == 2 + TRIES
    reader.crashes = 0
    (docs / "a.pdf").touch()
    daemon.debouncer.touch(docs, "a.pdf")  # the change event: read again
    turn(daemon, clock, 1)
    assert reader.calls == 3 + TRIES and "dblRelDistortion" not in texts(memory_store)
