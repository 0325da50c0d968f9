"""Run an iterator on a thread of its own, a little ahead of its consumer."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class _Done:
    pass


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def ahead(
    items: Iterator[T],
    *,
    depth: int,
    name: str = "docsync-ahead",
    weight: Callable[[T], int] | None = None,
) -> Iterator[T]:
    """Yield what `items` yields, computed on a background thread ahead of the consumer by
    at most `depth` items, or, with `weight`, by items weighing `depth` in all (one item is
    always let through, whatever its weight). An exception in `items` is raised here;
    leaving the loop early stops the thread."""
    measure = weight or (lambda _: 1)
    ready: deque[tuple[Any, int]] = deque()
    changed = threading.Condition()
    stop = threading.Event()
    held = 0

    def put(item: object, size: int) -> bool:
        nonlocal held
        with changed:
            while ready and held + size > depth and not stop.is_set():
                changed.wait(timeout=0.1)
            if stop.is_set():
                return False
            ready.append((item, size))
            held += size
            changed.notify_all()
        return True

    def produce() -> None:
        try:
            for item in items:
                if not put(item, measure(item)):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            put(_Failed(exc), 0)
        else:
            put(_Done(), 0)

    threading.Thread(target=produce, daemon=True, name=name).start()
    try:
        while True:
            with changed:
                while not ready:
                    changed.wait()
                item, size = ready.popleft()
                held -= size
                changed.notify_all()
            if isinstance(item, _Done):
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        with changed:
            changed.notify_all()
