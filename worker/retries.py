"""The daemon's second tries at files whose read failed in a way that may pass.

A reader child that crashed or overran on a file may have died of something else (the OOM
killer, a `kill`, a loaded machine): the file is read again a few times, with a growing pause
between, and counts as a pending change until it is read. After the last try it is left as it
was (its points kept, as for any failure) and not tried again until it changes on disk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from docsync.plugin.retry import backoff
from docsync.worker.report import SyncReport

log = logging.getLogger("docsync.daemon")

TRIES = 3  # reads again after the first failure
FIRST_DELAY = 2.0  # seconds before the first of them, doubled before each next one
MAX_DELAY = 60.0

Key = tuple[Path, str]  # root, path in it


class ReadRetries:
    """Files waiting for another read: when each is due, and how often it failed."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._due: dict[Key, float] = {}  # inf once handed out, until its sync is recorded
        self._failed: dict[Key, int] = {}
        self._given_up: set[Key] = set()

    def waiting(self) -> int:
        """Files not read yet: waiting for their next try, or being read again now."""
        return len(self._due)

    def due(self) -> list[Key]:
        """The files to read again now; each is handed out once per try."""
        now = self._clock()
        ready = [key for key, due in self._due.items() if due <= now]
        for key in ready:
            self._due[key] = float("inf")
        return ready

    def changed(self, scopes: Sequence[Key]) -> None:
        """Files changed on disk in `scopes`: the given-up ones among them are tried again."""
        self._given_up = {key for key in self._given_up if not _covers(scopes, key)}

    def record(self, scopes: Sequence[Key], report: SyncReport) -> None:
        """After a sync of `scopes`: forget the files it read (or that went), and schedule
        the next try of those that failed again, or give up on them."""
        again = {(Path(root), path) for root, path in report.retryable}
        for key in [k for k in self._due if k not in again and _covers(scopes, k)]:
            del self._due[key]
            self._failed.pop(key, None)
        for key in again - self._given_up:
            self._schedule(key)

    def _schedule(self, key: Key) -> None:
        tries = self._failed.get(key, 0) + 1
        root, path = key
        if tries > TRIES:
            self._due.pop(key, None)
            self._failed.pop(key, None)
            self._given_up.add(key)
            log.warning(
                "%s/%s failed %d times: keeping its points as they are until it changes",
                root,
                path,
                tries,
            )
            return
        delay = backoff(tries, first=FIRST_DELAY, maximum=MAX_DELAY)
        self._failed[key] = tries
        self._due[key] = self._clock() + delay
        log.info("%s/%s: reading it again in %.0fs (try %d of %d)", root, path, delay, tries, TRIES)


def _covers(scopes: Sequence[Key], key: Key) -> bool:
    root, path = key
    return any(r == root and (not s or path == s or path.startswith(s + "/")) for r, s in scopes)
