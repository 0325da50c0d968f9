"""A call that a stop need not wait for: a daemon that waits for its store at start (a
server that accepts connections and never answers, an embedded shard whose process dies as
it opens) asks on a thread of its own, so that SIGTERM ends it at once instead of after the
store client's retries (11 s against a server that hangs, measured; longer than the 10 s
`docker stop` gives before it kills)."""

from __future__ import annotations

import threading
from collections.abc import Callable

LOOK_SECONDS = 0.1  # how often the stop is looked at while the call runs


def unless_stopped(work: Callable[[], None], stop: threading.Event) -> bool:
    """`work()` on a thread of its own: True once it returned (its exception raised here),
    False as soon as `stop` is set first. Then the call is left to end on its own (its
    thread does not keep the process alive): nothing waits for its answer any more."""
    done = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # raised again in the caller's thread
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name="docsync-store-wait", daemon=True).start()
    while not done.wait(LOOK_SECONDS):
        if stop.is_set():
            return False
    if failure:
        raise failure[0]
    return True
