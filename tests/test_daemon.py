"""The daemon's loop in-process: outages, missed events, vanished roots, folder moves."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import ProfileMismatchError, StoreUnavailableError
from docsync.plugin.store import Store
from docsync.plugin.stores.edge import EdgeStore
from docsync.worker.daemon import Daemon, DaemonOptions
from docsync.worker.pipeline import SyncOptions
from tests.conftest import CORPUS, HANG, state
from tests.test_sync import fresh_state

FAST = DaemonOptions(
    rescan_seconds=0,
    debounce_seconds=0.05,
    max_wait_seconds=1,
    backoff_min=0.01,
    backoff_max=0.2,
)


def poll(condition: Callable[[], bool], timeout: float = HANG) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.05)


class Silent:
    """A watcher that never delivers an event: only rescans can see changes."""

    def __init__(self, *_: Any) -> None:
        pass

    def start(self) -> None:
        pass

    def ensure_alive(self) -> bool:
        return False

    def stop(self) -> None:
        pass


class Flaky:
    """Wraps a store; `fail(method, n, applied)` makes its next n calls raise the error a
    Qdrant outage gives, after doing the write when `applied` (a lost acknowledgement)."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self._plan: dict[str, list[bool]] = {}
        self.failures = 0
        self.lock = threading.Lock()

    def fail(self, method: str, n: int, *, applied: bool = False) -> None:
        with self.lock:
            self._plan.setdefault(method, []).extend([applied] * n)

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                queue = self._plan.get(name)
                applied = queue.pop(0) if queue else None
            if applied is None:
                return target(*args, **kwargs)
            self.failures += 1
            if applied:
                target(*args, **kwargs)
            raise StoreUnavailableError(f"injected outage in {name}")

        return call


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    shutil.copytree(CORPUS / "using", root)
    return root.resolve()


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[EdgeStore]:
    store = EdgeStore.connect(path=tmp_path / "store", collection="docsync")
    yield store
    store.close()


def daemon_for(docs: Path, store: Store, encoder: Encoder, **kwargs: Any) -> Daemon:
    kwargs.setdefault("options", FAST)
    return Daemon([docs], store=store, encoder=encoder, sync_options=SyncOptions(), **kwargs)


def start(daemon: Daemon) -> threading.Thread:
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    poll(daemon.ready.is_set)
    return thread


def stop(daemon: Daemon, thread: threading.Thread) -> None:
    daemon.stop()
    thread.join(timeout=HANG)
    assert not thread.is_alive()


def exact(store: Store, docs: Path, encoder: Encoder) -> bool:
    points = list(store.scroll({}))
    unique = len({p.id for p in points}) == len(points) == len(state(store))
    return unique and state(store) == fresh_state(docs, encoder)


def test_outage_and_lost_acknowledgements_lose_nothing(
    docs: Path, edge: EdgeStore, tiny_encoder: Encoder, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = Flaky(edge)
    flaky.fail("upsert", 3)
    flaky.fail("upsert", 2, applied=True)
    flaky.fail("delete", 1, applied=True)
    daemon = daemon_for(
        docs,
        flaky,
        tiny_encoder,  # type: ignore[arg-type]
        options=DaemonOptions(
            rescan_seconds=1, debounce_seconds=0.05, backoff_min=0.01, backoff_max=0.2
        ),
    )
    with caplog.at_level(logging.WARNING, logger="docsync.daemon"):
        thread = start(daemon)
        (docs / "mac.rst").write_text("Macs\n====\n\nRewritten during an outage.\n")
        (docs / "unix.rst").unlink()
        (docs / "windows.rst").rename(docs / "win.rst")
        flaky.fail("upsert", 2)
        flaky.fail("scroll", 2)
        flaky.fail("delete", 1)
        poll(lambda: exact(edge, docs, tiny_encoder))
        stop(daemon, thread)
    retries = [r for r in caplog.records if "store unavailable" in r.getMessage()]
    assert len(retries) >= flaky.failures >= 9
    assert all("stay pending" in r.getMessage() for r in retries)


def test_backoff_is_exponential_and_bounded(
    docs: Path, edge: EdgeStore, tiny_encoder: Encoder
) -> None:
    flaky = Flaky(edge)
    flaky.fail("scroll", 8)
    waits: list[float] = []
    daemon = daemon_for(
        docs,
        flaky,
        tiny_encoder,  # type: ignore[arg-type]
        options=DaemonOptions(rescan_seconds=0, backoff_min=0.01, backoff_max=0.08),
        watcher_factory=Silent,
    )
    real_wait = daemon._stop.wait

    def record(timeout: float | None = None) -> bool:
        waits.append(timeout or 0.0)
        return real_wait(timeout)

    daemon._stop.wait = record  # type: ignore[method-assign]
    thread = start(daemon)
    stop(daemon, thread)
    assert waits[:5] == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.08])
    assert max(waits) <= 0.08


def test_rescan_repairs_missed_events(docs: Path, edge: EdgeStore, tiny_encoder: Encoder) -> None:
    daemon = daemon_for(
        docs, edge, tiny_encoder, options=DaemonOptions(rescan_seconds=0.5), watcher_factory=Silent
    )
    thread = start(daemon)
    (docs / "new.md").write_text("# New\n\nNobody told the daemon about this file.\n")
    (docs / "editors.rst").unlink()
    poll(lambda: exact(edge, docs, tiny_encoder))
    stop(daemon, thread)


def test_folder_moves_and_deletes(docs: Path, edge: EdgeStore, tiny_encoder: Encoder) -> None:
    daemon = daemon_for(docs, edge, tiny_encoder)
    thread = start(daemon)
    (docs / "guide").mkdir()
    for name in ("mac.rst", "unix.rst"):
        shutil.copy(docs / name, docs / "guide" / name)
    poll(lambda: exact(edge, docs, tiny_encoder))
    before = daemon.metrics.chunks_embedded._value.get()
    (docs / "guide").rename(docs / "manual")
    poll(lambda: exact(edge, docs, tiny_encoder))
    assert daemon.metrics.chunks_embedded._value.get() == before  # moved, not re-embedded
    shutil.rmtree(docs / "manual")
    poll(lambda: exact(edge, docs, tiny_encoder))
    stop(daemon, thread)


def test_vanished_root_keeps_its_points_until_it_returns(
    docs: Path, edge: EdgeStore, tiny_encoder: Encoder, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = daemon_for(docs, edge, tiny_encoder)
    thread = start(daemon)
    count = edge.count()
    away = docs.with_name("unmounted")
    with caplog.at_level(logging.WARNING):
        docs.rename(away)
        poll(lambda: "keeping its points" in caplog.text)
        turns = daemon.heartbeat
        poll(lambda: daemon.heartbeat > turns + 0.5)  # loop turns and rescans went by
        assert edge.count() == count
        (away / "added-while-away.md").write_text("# Away\n\nWritten while unmounted.\n")
        away.rename(docs)
    poll(lambda: exact(edge, docs, tiny_encoder))
    stop(daemon, thread)


def test_stop_in_the_middle_of_a_batch(docs: Path, edge: EdgeStore, tiny_encoder: Encoder) -> None:
    for copy in range(3):
        shutil.copytree(CORPUS / "howto", docs / f"howto{copy}")
    daemon = daemon_for(docs, edge, tiny_encoder, watcher_factory=Silent)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    poll(lambda: edge.count() > 0 if edge._shard is not None else False)
    started = time.monotonic()
    daemon.stop()
    thread.join(timeout=HANG)
    assert not thread.is_alive() and time.monotonic() - started < 10
    assert not daemon.ready.is_set() or edge.count() > 0


def test_overlapping_roots_both_follow_a_change(
    docs: Path, edge: EdgeStore, tiny_encoder: Encoder
) -> None:
    """`docsync run outer outer/inner`: a change under the inner root is a change of the
    outer root too, and both must apply it (no rescan here to repair a miss)."""
    inner = docs / "inner"
    inner.mkdir()
    shutil.copy(docs / "mac.rst", inner / "mac.rst")
    roots = [docs, inner]
    daemon = Daemon(
        roots, store=edge, encoder=tiny_encoder, sync_options=SyncOptions(), options=FAST
    )
    thread = start(daemon)

    def exact_both() -> bool:
        points = list(edge.scroll({}))
        unique = len({p.id for p in points}) == len(points) == len(state(edge))
        return unique and state(edge) == fresh_state(roots, tiny_encoder)

    (inner / "new.md").write_text("# New\n\nA file written under both roots.\n")
    (inner / "mac.rst").write_text("# Mac\n\nRewritten under both roots.\n")
    poll(exact_both)
    outer_paths = {p.payload["path"] for p in edge.scroll({"root": str(docs)})}
    assert {"inner/new.md", "inner/mac.rst"} <= outer_paths
    stop(daemon, thread)


def test_the_error_counter_is_there_before_the_first_error() -> None:
    from docsync.worker.metrics import Metrics

    text = Metrics().render().decode()
    assert 'docsync_errors_total{kind="unreadable"} 0.0' in text
    assert 'docsync_errors_total{kind="store_unavailable"} 0.0' in text
    assert 'docsync_errors_total{kind="unlistable"} 0.0' in text
    assert 'docsync_errors_total{kind="store_full"} 0.0' in text


def test_its_state_says_when_it_last_synced_and_what_waits(
    docs: Path, edge: EdgeStore, tiny_encoder: Encoder
) -> None:
    daemon = daemon_for(docs, edge, tiny_encoder, watcher_factory=Silent)
    daemon.debouncer.touch(docs, "waiting.md")  # a change seen, not yet synced
    before = daemon.state()
    assert (before["ready"], before["last_sync"], before["pending_changes"]) == (False, None, 1)
    thread = start(daemon)
    try:
        state = daemon.state()
        assert state["ready"] is True and state["roots"] == [str(docs)]
        assert state["last_sync"] is not None
    finally:
        stop(daemon, thread)


def swap_for_a_copy(root: Path) -> None:
    """What deploy tools and rsync do: a copy of the folder takes its path, the folder
    itself moved away (two renames: the daemon never sees the path missing)."""
    shutil.copytree(root, root.with_name("docs.new"))
    root.rename(root.with_name("docs.old"))
    root.with_name("docs.new").rename(root)


class Recording(Silent):
    """A watcher that delivers no event, and counts how many were made."""

    made = 0

    def __init__(self, *_: Any) -> None:
        type(self).made += 1


def test_a_replaced_root_is_watched_anew_and_resynced(
    docs: Path, edge: EdgeStore, tiny_encoder: Encoder, caplog: pytest.LogCaptureFixture
) -> None:
    """No event arrives (the watcher is silent, rescans are off): only the daemon's own
    check of the root's identity can find the swap, watch the new folder and reconcile it."""
    Recording.made = 0
    daemon = daemon_for(docs, edge, tiny_encoder, watcher_factory=Recording)
    thread = start(daemon)
    assert Recording.made == 1
    with caplog.at_level(logging.WARNING, logger="docsync.daemon"):
        swap_for_a_copy(docs)
        (docs / "new-runbook.md").write_text("# Runbook\n\nWritten into the new folder.\n")
        poll(lambda: exact(edge, docs, tiny_encoder))
    assert Recording.made == 2
    assert caplog.text.count("is another folder now") == 1
    stop(daemon, thread)


def test_a_replaced_root_is_followed_by_the_real_watcher(
    docs: Path, edge: EdgeStore, tiny_encoder: Encoder
) -> None:
    """`mv docs docs.old && cp -a docs.old docs` under a daemon with inotify: files written
    into the new folder sync, and changes to the old one no longer count."""
    daemon = daemon_for(docs, edge, tiny_encoder)
    thread = start(daemon)
    swap_for_a_copy(docs)
    (docs / "notes").mkdir()
    (docs / "notes" / "new-runbook.md").write_text("# Runbook\n\nA word: quokkaphant.\n")
    poll(lambda: exact(edge, docs, tiny_encoder))
    (docs / "notes" / "second.md").write_text("# Second\n\nWritten after the swap was seen.\n")
    (docs.with_name("docs.old") / "mac.rst").unlink()  # the old folder is not the root
    poll(lambda: exact(edge, docs, tiny_encoder))
    stop(daemon, thread)


def test_a_long_sync_is_no_stall_but_a_stuck_one_is(
    docs: Path, edge: EdgeStore, tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/healthz's heartbeat goes on while a sync works (it asks whether to stop before each
    batch), however long it takes, and stops when the loop is stuck."""
    now = [0.0]
    quick = DaemonOptions(backoff_min=0.001, backoff_max=0.001)  # the outages end the syncs
    daemon = daemon_for(
        docs, edge, tiny_encoder, watcher_factory=Silent, clock=lambda: now[0], options=quick
    )
    syncer = daemon.syncer

    def working_for_an_hour(*_: Any, **__: Any) -> Any:
        for _ in range(60):  # a batch a minute
            now[0] += 60
            assert not syncer.should_stop()
            assert daemon.healthy()
        raise StoreUnavailableError("and then the store went away")

    monkeypatch.setattr(syncer, "sync_scopes", working_for_an_hour)
    daemon._full_sync(reason="initial sync")  # waits out the outage it ends with
    assert daemon.healthy() and now[0] >= 3600

    def stuck(*_: Any, **__: Any) -> Any:
        now[0] += 301  # no batch, no question
        assert not daemon.healthy()
        raise StoreUnavailableError("stuck")

    monkeypatch.setattr(syncer, "sync_scopes", stuck)
    daemon._full_sync(reason="rescan")


class Hanging(Flaky):
    """A store whose `ping` hangs (a server that accepts connections and never answers)
    until `release` is set."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.release = threading.Event()
        self.pinging = threading.Event()

    def ping(self) -> None:
        self.pinging.set()
        self.release.wait(HANG)


def test_a_stop_ends_the_wait_for_a_store_that_hangs(
    docs: Path, edge: EdgeStore, tiny_encoder: Encoder
) -> None:
    """SIGTERM while `docsync run` waits for its store: the wait ends at once, not after the
    store client's retries (a `docker stop` kills what is not gone in 10 s)."""
    store = Hanging(edge)
    daemon = daemon_for(docs, store, tiny_encoder)  # type: ignore[arg-type]
    answer: list[bool] = []
    waiting = threading.Thread(target=lambda: answer.append(daemon.wait_for_store()))
    waiting.start()
    try:
        assert store.pinging.wait(HANG)
        daemon.stop()
        waiting.join(HANG)
        assert answer == [False]  # while the ping still hangs
        assert not store.release.is_set()
    finally:
        store.release.set()
        waiting.join(HANG)


def test_the_wait_for_a_store_raises_what_the_store_raised(
    docs: Path, edge: EdgeStore, tiny_encoder: Encoder
) -> None:
    """A store that refuses (not an outage) ends the wait with its error, as before."""
    store = Flaky(edge)
    daemon = daemon_for(docs, store, tiny_encoder)  # type: ignore[arg-type]
    other = replace(tiny_encoder.profile(), distance="Dot")
    edge.open(tiny_encoder.profile(), create=True)
    with pytest.raises(ProfileMismatchError):
        daemon.wait_for_store(other)
    store.fail("ping", 1)  # an outage first: waited out, then the store answers
    assert daemon.wait_for_store(tiny_encoder.profile())
    assert store.failures == 1


class StopsAtFirstWrite(Flaky):
    """A store that asks the daemon to stop as its first points arrive (SIGTERM early in
    the initial sync)."""

    daemon: Daemon | None = None

    def upsert(self, points: Any) -> None:
        if self.daemon is not None:
            self.daemon.stop()
        self._inner.upsert(points)


def test_a_daemon_stopped_in_its_initial_sync_does_not_say_it_is_done(
    docs: Path, edge: EdgeStore, tiny_encoder: Encoder, caplog: pytest.LogCaptureFixture
) -> None:
    store = StopsAtFirstWrite(edge)
    daemon = daemon_for(docs, store, tiny_encoder)  # type: ignore[arg-type]
    store.daemon = daemon
    caplog.set_level(logging.INFO, logger="docsync")
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    thread.join(HANG)
    assert not thread.is_alive()
    assert not daemon.ready.is_set()
    said = [r.getMessage() for r in caplog.records]
    assert "initial sync done; watching for changes" not in said
    assert any(m.startswith("stopped") for m in said), said


def test_a_new_file_is_one_lag_sample_not_two_with_its_folder(
    docs: Path, edge: EdgeStore, tiny_encoder: Encoder
) -> None:
    """A file created in a folder: its event, and the folder's own (modified). The sync's
    lag is the file's, once."""
    daemon = daemon_for(docs, edge, tiny_encoder, watcher_factory=Silent)
    thread = start(daemon)
    try:
        before = len(daemon.metrics.recent_lags)
        (docs / "seal.md").write_text("# Seal\n\nA new file.\n")
        seen = time.monotonic()
        daemon.debouncer.touch(docs, "seal.md", first_seen=seen)
        daemon.debouncer.touch(docs, "", first_seen=seen)  # the root folder's own event
        poll(lambda: len(daemon.metrics.recent_lags) > before)
        assert len(daemon.metrics.recent_lags) == before + 1
    finally:
        stop(daemon, thread)
