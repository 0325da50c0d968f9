"""`docsync run`: the initial sync, then live sync from file events, with a full reconcile
every `rescan_seconds` as the safety net for events that never came.

One thread does all the syncing (this loop); the watcher's thread only records changed paths
and the HTTP threads only read. A store outage never ends the loop: the changes stay pending
and are retried with exponential backoff until the store answers again. A root that vanishes
or comes back empty keeps its points (the pipeline refuses to delete them) until it returns.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from docsync.plugin.embedding.runner import StopRequested
from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import StoreError, StoreFullError, StoreUnavailableError
from docsync.plugin.profile import EmbeddingProfile
from docsync.plugin.retry import backoff
from docsync.plugin.store import Store
from docsync.worker.generation_switch import GenerationSwitch
from docsync.worker.loop_calls import LoopCalls
from docsync.worker.metrics import Metrics
from docsync.worker.next_generation import Side
from docsync.worker.pipeline import Syncer, SyncOptions
from docsync.worker.progress import Progress
from docsync.worker.report import SyncReport
from docsync.worker.retries import ReadRetries
from docsync.worker.scan import has_entries
from docsync.worker.stoppable import unless_stopped
from docsync.worker.watch import Change, Debouncer, Watcher
from docsync.worker.web.folders import FolderLog
from docsync.worker.write_target import Look, SwitchedError, WriteTarget

log = logging.getLogger("docsync.daemon")
Clock = Callable[[], float]
Identity = tuple[int, int]  # (st_dev, st_ino): which folder a root's path names
# A loop that has not come round for this long is reported unhealthy by /healthz.
STALL_SECONDS = 300.0
# An idle daemon asks which generation is live this often (a switch by another process),
# besides before each sync; each turn of the loop while it writes nothing.
LOOK_SECONDS = 5.0


@dataclass(frozen=True)
class DaemonOptions:
    rescan_seconds: float = 3600.0
    debounce_seconds: float = 0.25
    max_wait_seconds: float = 5.0
    polling: bool = False
    backoff_min: float = 1.0
    backoff_max: float = 60.0


class WatcherLike(Protocol):
    def start(self) -> None: ...

    def ensure_alive(self) -> bool: ...

    def stop(self) -> None: ...


WatcherFactory = Callable[[Sequence[Path], Callable[[Path, str], None], bool], WatcherLike]


def _default_watcher(
    roots: Sequence[Path], sink: Callable[[Path, str], None], polling: bool
) -> WatcherLike:
    return Watcher(roots, sink, polling=polling)


class Daemon:
    def __init__(
        self,
        roots: Sequence[Path],
        *,
        store: Store,
        encoder: Encoder,
        sync_options: SyncOptions,
        options: DaemonOptions | None = None,
        metrics: Metrics | None = None,
        watcher_factory: WatcherFactory = _default_watcher,
        clock: Clock = time.monotonic,
    ) -> None:
        self.roots = list(roots)
        self.store = store
        self.anchor = store  # the store opened on the collection's name
        self.options = options or DaemonOptions()
        self.metrics = metrics or Metrics()
        self._clock = clock
        self._stop = threading.Event()
        self.ready = threading.Event()
        self.debouncer = Debouncer(
            quiet=self.options.debounce_seconds,
            max_wait=self.options.max_wait_seconds,
            clock=clock,
        )
        self._sync_options = sync_options
        self.syncer = Syncer(store, encoder, sync_options, should_stop=self.working)
        # Which generation the syncs write (a server's may be switched by another process).
        self.target = self._write_target(store, encoder, sync_options.chunk_tokens)
        # The next generation, built beside the live one (`docsync reindex` through this
        # daemon); None where the wiring gives none (tests of the loop alone).
        self.next: GenerationSwitch | None = None
        self.calls = LoopCalls(wake=self.debouncer.wake)  # a switch, run between syncs
        self._next_look = clock()
        self._unwritten = 0  # changes seen while writing nothing: every root synced after
        self._watcher_factory = watcher_factory
        self._watched: dict[Path, Identity | None] = {}  # each root's folder when watched
        self.watcher = self._new_watcher()
        self._present = {root: has_entries(root) is not False for root in self.roots}
        self._next_rescan = self._rescan_after()
        self._failures = 0
        self._index_failures = 0
        self._index_after = clock()  # no index build before this (backoff after a failed one)
        self.retries = ReadRetries(clock)  # files whose reader crashed, read again
        self.heartbeat = clock()
        self.last_sync: str | None = None  # when a sync last finished, ISO 8601 (UTC)
        self.syncs = 0  # syncs finished (two in one second leave last_sync the same)
        self.folder_log = FolderLog()  # what the syncs set aside, for the web page

    def _write_target(self, store: Store, encoder: Encoder, chunk_tokens: int) -> WriteTarget:
        return WriteTarget(
            store,
            encoder.profile(),
            chunk_tokens,
            on_refusal=lambda: self.metrics.errors.labels(kind="generation_refused").inc(),
            take=lambda name: self.next.took_live(name) if self.next is not None else None,
        )

    def write_into(self, side: Side) -> None:
        """From now on, sync into generation `side` with its model and chunk size (a switch:
        on the loop), every root on the next turn."""
        switchable = self.target.switchable
        self.target.close()
        # A server's writes look up the live generation by the collection's name each time.
        self.store = self.anchor if switchable else side.store
        options = replace(self._sync_options, chunk_tokens=side.chunk_tokens)
        self.syncer = Syncer(
            side.store,
            side.encoder,
            options,
            should_stop=self.working,
            skips=self.syncer.skips,
        )
        self.target = self._write_target(self.store, side.encoder, side.chunk_tokens)
        self._next_rescan = self._clock()

    # lifecycle ---------------------------------------------------------------------------

    def run(self, *, progress: Progress | None = None) -> None:
        """Initial sync, then follow changes until `stop()`."""
        self.watcher.start()  # before the initial sync: changes made during it are not lost
        try:
            self._initial_sync(progress)
            while not self._stop.is_set():
                self.step()
                self.debouncer.wait(timeout=self._idle_wait())
        except StopRequested:
            log.info("stopped in the middle of a batch; nothing partial was written")
        finally:
            self.calls.close()
            self.watcher.stop()
            if self.next is not None:
                self._stop.set()  # a build under way ends at its next batch
                self.next.close()
            self.target.close()

    def stopping(self) -> bool:
        return self._stop.is_set()

    def working(self) -> bool:
        """Whether a stop was asked, asked by the loop's own long work (a sync, before each
        batch; an index build, while it waits): that work is the loop turning, so the
        heartbeat goes on (an initial sync of an hour is no stall for /healthz)."""
        self.heartbeat = self._clock()
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()
        self.debouncer.wake()

    def wait_for_store(self, profile: EmbeddingProfile | None = None) -> bool:
        """Block until the store answers and, given `profile`, its collection is open
        (created if missing, refused if another profile wrote it) (True), or a stop is
        requested (False): a daemon started while Qdrant is down, or while the embedded
        store's shard process keeps dying as it opens, waits instead of exiting."""
        store = self.store

        def reach() -> None:
            store.ping()
            if profile is not None:
                store.open(profile, create=True)

        while not self._stop.is_set():
            try:
                # A stop (SIGTERM) is not kept waiting by the store's own retries.
                if not unless_stopped(reach, self._stop):
                    return False
            except StoreUnavailableError as exc:
                self._retry_later([], exc)
                continue
            self._failures = 0
            return True
        return False

    def state(self) -> dict[str, Any]:
        """What the daemon is doing, for `/status`: the roots it follows, whether its first
        sync is done, when a sync last finished, and the changes waiting to be synced."""
        return {
            "roots": [str(root) for root in self.roots],
            "ready": self.ready.is_set(),
            "last_sync": self.last_sync,
            "syncs": self.syncs,
            "pending_changes": len(self.debouncer) + self.retries.waiting() + self._unwritten,
            "generation": self._generation(),
            "refused": self.target.refused,
        }

    def _generation(self) -> str | None:
        """The generation the daemon writes: looked up on a server before each sync; in the
        embedded store the one it holds (`docsync.worker.next_generation`)."""
        if self.target.generation is not None:
            return self.target.generation
        live = self.next.live if self.next is not None else None
        return live.name if live is not None else None

    def healthy(self) -> bool:
        return self._clock() - self.heartbeat < STALL_SECONDS

    def refused(self) -> str | None:
        """Why the daemon writes nothing (the collection was switched to a generation of
        another model), or None while it writes."""
        return self.target.refused

    # one turn of the loop ----------------------------------------------------------------

    def step(self) -> None:
        """Restart a dead watcher, notice roots that left or came back, rescan when due,
        and sync the changes whose debounce is over."""
        self.heartbeat = self._clock()
        self.calls.run_pending()
        if self.watcher.ensure_alive():
            self._next_rescan = self._clock()
        self._check_roots()
        looking = self.target.refused is not None or self._clock() >= self._next_look
        if looking and not self._writable():
            return
        if self._clock() >= self._next_rescan:
            self._full_sync(reason="periodic rescan")
        changes = self.debouncer.ready()
        self.metrics.pending.set(len(self.debouncer) + len(changes) + self.retries.waiting())
        now = self._clock()  # a retry is due already: not debounced again
        changes += [Change(root, path, now) for root, path in self.retries.due()]
        if changes:
            self._apply(changes)
        elif not len(self.debouncer) and self.ready.is_set() and self._clock() >= self._index_after:
            self._build_index()

    def _writable(self) -> bool:
        """Whether the collection's live generation is one this daemon may write (asked
        now); while not, the changes that came are only counted: once it may write again,
        every root is synced (`_sync`)."""
        self._next_look = self._clock() + LOOK_SECONDS
        try:
            look = self._look()
        except StoreUnavailableError:
            return self.target.refused is None  # the sync, if any, waits the outage out
        if look.store is not None:
            if look.moved or self._unwritten:
                self._next_rescan = self._clock()  # every root, on this turn (`_sync`)
            return True
        changes = self.debouncer.ready()
        self._unwritten += len(changes)
        self.metrics.pending.set(len(self.debouncer) + self._unwritten + self.retries.waiting())
        return False

    def _look(self) -> Look:
        """Where the syncs write now (`WriteTarget.look`); the daemon's own next generation,
        made live by another process, is written from now on with its model."""
        look = self.target.look()
        if look.taken is not None:
            self.write_into(look.taken)  # every root on the next turn
            look = self.target.look()
        return look

    def _build_index(self) -> None:
        """Idle: build the index, never between a sync's writes, and in a way that keeps
        searches answering (the embedded engine's build holds the GIL for minutes). A build
        that fails (a full disk, a store that went away) costs nothing but the index:
        searches stay exact, and it is tried again after a backoff, said once."""
        try:
            self.store.optimize(serving=True, should_stop=self.working)
        except StoreError as exc:
            self._index_failures += 1
            self._index_after = self._clock() + self._backoff(self._index_failures)
            self.metrics.errors.labels(kind="index_build").inc()
            if self._index_failures == 1:
                log.warning("the index build failed (%s); searches stay exact; retrying", exc)
            return
        if self._index_failures:
            log.info("the index build works again")
        self._index_failures = 0

    def _initial_sync(self, progress: Progress | None) -> None:
        while not self._stop.is_set():
            if self._full_sync(reason="initial sync", progress=progress):
                if self._stop.is_set():  # the sync ended at the stop, not at its end
                    log.info("stopped before the initial sync was done; the next start goes on")
                    return
                self.ready.set()
                self.metrics.ready.set(1)
                log.info("initial sync done; watching for changes")
                return
            if self.target.refused is not None:
                self._stop.wait(LOOK_SECONDS)  # until a generation it may write is live

    def _full_sync(self, *, reason: str, progress: Progress | None = None) -> bool:
        self._next_rescan = self._rescan_after()
        scopes = [(root, "") for root in self.roots]
        log.info("%s of %d root(s)", reason, len(scopes))
        return self._sync(scopes, changes=[], progress=progress) is not None

    def _apply(self, changes: list[Change]) -> None:
        scopes = _outermost({(c.root, c.path) for c in changes})
        self.retries.changed(scopes)
        self._sync(scopes, changes=changes)

    def _sync(
        self,
        scopes: list[tuple[Path, str]],
        *,
        changes: list[Change],
        progress: Progress | None = None,
    ) -> SyncReport | None:
        self._next_look = self._clock() + LOOK_SECONDS
        try:
            look = self._look()  # one alias request on a server; nothing embedded
            if look.store is None:
                self._unwritten += len(changes)
                return None
            if look.moved or self._unwritten:
                # Another generation, or changes not written meanwhile: every root.
                scopes, self._unwritten = [(root, "") for root in self.roots], 0
                self._next_rescan = self._rescan_after()
            self.syncer.write_into(look.store)
            report = self.syncer.sync_scopes(scopes, progress=progress)
        except StoreUnavailableError as exc:
            self._retry_later(changes, exc)
            return None
        except SwitchedError as exc:
            # Stopped before a write into a generation that is no longer live; the next
            # look follows the switch or refuses it.
            log.info("%s", exc)
            self._unwritten += max(1, len(changes))
            return None
        self._failures = 0
        self.retries.record(scopes, report)
        self.folder_log.record(scopes, report)
        self.last_sync = datetime.now(UTC).isoformat(timespec="seconds")
        self.syncs += 1
        self.metrics.record(report)
        done = self._clock()
        # A file's lag, once: the event its folder gets when a file in it is created or
        # renamed is not a change of its own (a save counted twice in the page's p50/p95).
        files = [c for c in changes if c.path and not (c.root / c.path).is_dir()]
        self.metrics.observe_lag(done - c.first_seen for c in files)
        if report.files_changed or report.files_deleted:
            log.info(
                "synced %d file(s), removed %d: +%d -%d points, %d chunks embedded",
                report.files_changed,
                report.files_deleted,
                report.points_upserted,
                report.points_deleted,
                report.chunks_embedded,
            )
        return report

    def _retry_later(self, changes: list[Change], exc: StoreUnavailableError) -> None:
        self._failures += 1
        delay = self._backoff(self._failures)
        full = isinstance(exc, StoreFullError)  # an outage too, but the user must act
        self.metrics.errors.labels(kind="store_full" if full else "store_unavailable").inc()
        log.warning(
            "store %s (%s): %d change(s) stay pending; retry %d in %.0fs",
            "out of space" if full else "unavailable",
            exc,
            len(changes),
            self._failures,
            delay,
        )
        for change in changes:
            self.debouncer.touch(change.root, change.path, first_seen=change.first_seen)
        self._stop.wait(delay)

    def _check_roots(self) -> None:
        """Follow each root's path, not the folder first watched there: a root that came
        back, or that another folder replaced (deploy tools and rsync move the old one away
        and put a copy in its place; inotify keeps watching the old one), gets a new watcher
        and is reconciled whole, since its events until now went elsewhere."""
        changed = [root for root in self.roots if self._root_changed(root)]
        if not changed:
            return
        self.watcher.stop()
        self.watcher = self._new_watcher()
        self.watcher.start()
        for root in changed:
            self.debouncer.touch(root, "")

    def _root_changed(self, root: Path) -> bool:
        """Whether `root` needs watching anew: it is back, or is another folder now. One
        stat and one directory read per root each turn of the loop: cheap."""
        came_back = self._came_back(root)
        identity, watched = _identity(root), self._watched.get(root)
        if identity is None or identity == watched:
            return came_back
        if watched is not None and not came_back:
            log.warning(
                "root %s is another folder now (the one watched was moved away or "
                "replaced): watching the new one and resyncing it",
                root,
            )
        return True

    def _came_back(self, root: Path) -> bool:
        present = has_entries(root)
        if present is None or present == self._present[root]:
            return False
        self._present[root] = present
        if present:
            log.info("root %s is back: resyncing it", root)
        else:
            log.warning(
                "root %s is gone or empty: keeping its points, waiting for it to return", root
            )
        return present

    def _new_watcher(self) -> WatcherLike:
        # Identities first: a folder swapped in after this is noticed on the next turn.
        self._watched = {root: _identity(root) for root in self.roots}
        return self._watcher_factory(self.roots, self.debouncer.touch, self.options.polling)

    def _backoff(self, failures: int) -> float:
        return backoff(failures, first=self.options.backoff_min, maximum=self.options.backoff_max)

    def _rescan_after(self) -> float:
        seconds = self.options.rescan_seconds
        return self._clock() + seconds if seconds > 0 else float("inf")

    def _idle_wait(self) -> float:
        return max(0.05, min(1.0, self._next_rescan - self._clock()))


def _identity(root: Path) -> Identity | None:
    """The folder at `root` now (device and inode), or None when nothing can be told."""
    try:
        status = os.stat(root)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _outermost(scopes: set[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """Drop scopes inside another scope of the same root: reconciling the folder covers them."""
    kept: list[tuple[Path, str]] = []
    for root, path in sorted(scopes, key=lambda s: (str(s[0]), s[1].count("/"), s[1])):
        covered = any(
            r == root and (p == "" or path == p or path.startswith(p + "/")) for r, p in kept
        )
        if not covered:
            kept.append((root, path))
    return kept
