"""Work that must run on the daemon's sync loop, between two syncs (a switch of generations:
no sync may write while the collection changes hands), asked for by the endpoint's threads,
which wait for its result."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from docsync.plugin.errors import DaemonUnavailableError

T = TypeVar("T")


class LoopCalls:
    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake  # turns the loop now, rather than after its idle wait
        self._lock = threading.Lock()
        # Each call as (run it, fail it), so that one list holds calls of any result type.
        self._pending: list[tuple[Callable[[], None], Callable[[BaseException], None]]] = []
        self._closed = False

    def call(self, fn: Callable[[], T]) -> T:
        """`fn()` run on the loop; its result or its exception here. Waits as long as the
        loop's current sync takes (a stop of the daemon ends the wait)."""
        future: Future[T] = Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except Exception as exc:  # the caller's to see, never the loop's end
                future.set_exception(exc)

        with self._lock:
            if self._closed:
                raise DaemonUnavailableError("the daemon is stopping")
            self._pending.append((run, future.set_exception))
        self._wake()
        return future.result()

    def run_pending(self) -> None:
        """On the loop: each call asked since the last turn, in order."""
        with self._lock:
            pending, self._pending = self._pending, []
        for run, _ in pending:
            run()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pending, self._pending = self._pending, []
        for _, fail in pending:
            fail(DaemonUnavailableError("the daemon stopped"))
