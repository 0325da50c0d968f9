"""Stage 0 of the daemon: file-system events in, debounced per-path changes out.

The watchdog handler only records which path changed (`Debouncer.touch`); the daemon's loop
takes a path once it has been quiet for `quiet` seconds, or once `max_wait` seconds passed
since its first event, so a burst of saves is one change and a file written without pause
still syncs. Paths are relative to their root; "" stands for the whole root.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from watchdog.events import FileSystemEvent, FileSystemEventHandler

log = logging.getLogger("docsync.watch")
Clock = Callable[[], float]
# Events that say nothing about content: a file was opened, or closed without writing.
_IGNORED_EVENTS = frozenset({"opened", "closed_no_write"})


@dataclass(frozen=True)
class Change:
    root: Path
    path: str
    first_seen: float  # clock time of the burst's first event: where sync lag starts


class Debouncer:
    """Thread-safe set of changed paths with the time of their first and last event."""

    def __init__(self, *, quiet: float, max_wait: float, clock: Clock = time.monotonic) -> None:
        self.quiet = quiet
        self.max_wait = max_wait
        self._clock = clock
        self._paths: dict[tuple[Path, str], tuple[float, float]] = {}
        self._cond = threading.Condition()

    def touch(self, root: Path, path: str, *, first_seen: float | None = None) -> None:
        with self._cond:
            now = self._clock()
            first, _ = self._paths.get((root, path), (first_seen or now, now))
            self._paths[(root, path)] = (min(first, first_seen or first), now)
            self._cond.notify_all()

    def ready(self) -> list[Change]:
        """Remove and return the paths that are due."""
        with self._cond:
            now = self._clock()
            due = [key for key, times in self._paths.items() if self._due(times, now)]
            return [Change(root, path, self._paths.pop((root, path))[0]) for root, path in due]

    def wait(self, timeout: float) -> None:
        """Sleep until a path may be due, an event arrives, or `timeout` passes."""
        with self._cond:
            now = self._clock()
            delays = [self._delay(times, now) for times in self._paths.values()]
            self._cond.wait(max(0.0, min([timeout, *delays])))

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._paths)

    def _due(self, times: tuple[float, float], now: float) -> bool:
        return self._delay(times, now) <= 0

    def _delay(self, times: tuple[float, float], now: float) -> float:
        first, last = times
        return min(last + self.quiet, first + self.max_wait) - now


class _Handler(FileSystemEventHandler):
    """Turns watchdog events into `sink(root, relative_path)` calls; nothing else."""

    def __init__(self, roots: Sequence[Path], sink: Callable[[Path, str], None]) -> None:
        self._roots = list(roots)
        self._sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _IGNORED_EVENTS:
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw:
                self._route(os.fsdecode(raw))

    def _route(self, raw: str) -> None:
        """To every root the path lies in: roots may overlap (`run docs docs/api`), and each
        indexes the file under its own scope, so each must hear of the change."""
        path = Path(raw)
        for root in self._roots:
            if path == root:
                self._sink(root, "")
            elif path.is_relative_to(root):
                self._sink(root, path.relative_to(root).as_posix())


class ObserverLike(Protocol):
    def schedule(self, handler: Any, path: str, *, recursive: bool) -> Any: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...

    def is_alive(self) -> bool: ...


def native_observer() -> ObserverLike:
    from watchdog.observers import Observer

    return Observer()  # type: ignore[no-any-return]


def polling_observer() -> ObserverLike:
    from watchdog.observers.polling import PollingObserver

    return PollingObserver()  # type: ignore[no-any-return]


class Watcher:
    """Keeps an observer running over the roots: falls back to polling when the OS runs out
    of inotify watches, and replaces an observer that died."""

    def __init__(
        self,
        roots: Sequence[Path],
        sink: Callable[[Path, str], None],
        *,
        polling: bool = False,
        native: Callable[[], ObserverLike] = native_observer,
        poller: Callable[[], ObserverLike] = polling_observer,
    ) -> None:
        self._roots = list(roots)
        self._handler = _Handler(roots, sink)
        self._native = native
        self._poller = poller
        self.polling = polling
        self._observer: ObserverLike | None = None

    def start(self) -> None:
        factory = self._poller if self.polling else self._native
        try:
            self._observer = self._started(factory())
        except OSError as exc:
            if self.polling or exc.errno not in (errno.ENOSPC, errno.EMFILE):
                raise
            log.warning(
                "inotify limit reached (%s): watching by polling instead. Raise the limit with "
                "`sysctl fs.inotify.max_user_watches=524288` (and fs.inotify.max_user_instances)",
                exc.strerror or exc,
            )
            self.polling = True
            self._observer = self._started(self._poller())

    def _started(self, observer: ObserverLike) -> ObserverLike:
        for root in self._roots:
            if root.is_dir():
                observer.schedule(self._handler, str(root), recursive=True)
        observer.start()
        return observer

    def ensure_alive(self) -> bool:
        """Restart a dead observer; True when it did (events may have been lost)."""
        if self._observer is not None and self._observer.is_alive():
            return False
        log.error("the file watcher stopped; starting a new one")
        self.stop()
        self.start()
        return True

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            if self._observer.is_alive():
                self._observer.join(timeout=5)
            self._observer = None
