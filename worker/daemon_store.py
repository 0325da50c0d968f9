"""The store `docsync run` opens. The embedded store serves one process at a time, and even a
reader (`docsync status`, `docsync query` with no daemon) holds it alone while it runs: a
daemon started at that moment would exit with "in use". So a daemon waits for a holder that
is not a daemon, a while: readers are gone in seconds; a one-shot sync or a second daemon
is said at once or after the wait, as before."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from docsync.plugin.daemon_client import SOCKET_NAME, daemon_answers
from docsync.plugin.errors import StoreLockedError
from docsync.plugin.settings import Settings
from docsync.plugin.store import Store
from docsync.plugin.stores import open_store

log = logging.getLogger("docsync.daemon")
LOCK_WAIT_SECONDS = 30.0  # longer than a status or a query takes; shorter than a sync
LOCK_POLL_SECONDS = 0.2


def open_serving(
    settings: Settings,
    *,
    wait: float = LOCK_WAIT_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Store:
    """The daemon's store (serving). An embedded store held by another process is asked for
    again until `wait` seconds passed, unless a daemon answers on its socket (then the
    error at once: two daemons never share a store)."""
    deadline = clock() + wait
    said = False
    while True:
        try:
            return open_store(settings, serving=True)
        except StoreLockedError:
            socket_path = settings.qdrant_path / SOCKET_NAME
            if settings.qdrant_url or daemon_answers(socket_path) or clock() >= deadline:
                raise
            if not said:
                log.info(
                    "the embedded store %s is held by another process (a reader, or a "
                    "one-shot command): waiting up to %.0fs for it",
                    settings.qdrant_path,
                    wait,
                )
                said = True
            sleep(LOCK_POLL_SECONDS)
