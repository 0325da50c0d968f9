"""Run an iterator on a thread of its own, a few items ahead of its consumer."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def ahead(items: Iterator[T], *, depth: int, name: str = "docsync-ahead") -> Iterator[T]:
    """Yield what `items` yields, computed on a background thread at most `depth` items ahead.
    An exception in `items` is raised here; leaving the loop early stops the thread."""
    box: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)
        else:
            put(_DONE)

    threading.Thread(target=produce, daemon=True, name=name).start()
    try:
        while (item := box.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
