"""Run an iterator on a thread of its own, a little ahead of its consumer; and the weighted
bound that keeps such a thread (or a writer's queue) from running too far ahead."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class Budget:
    """At most `limit` units held at once, but one holder is always let in, whatever its
    weight (so nothing heavier than the limit waits forever)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._changed = threading.Condition()

    def acquire(self, weight: int, give_up: Callable[[], bool] = lambda: False) -> bool:
        """Take `weight` units once they fit; False (nothing taken) if `give_up` says so
        while waiting (asked at least every 0.1 s)."""
        with self._changed:
            while self.held and self.held + weight > self.limit:
                if give_up():
                    return False
                self._changed.wait(timeout=0.1)
            self.held += weight
        return True

    def release(self, weight: int) -> None:
        with self._changed:
            self.held -= weight
            self._changed.notify_all()


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
    budget = Budget(depth)
    ready: deque[tuple[Any, int]] = deque()
    arrived = threading.Condition()
    stop = threading.Event()

    def put(item: object, size: int) -> bool:
        if not budget.acquire(size, give_up=stop.is_set):
            return False
        with arrived:
            ready.append((item, size))
            arrived.notify()
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
            with arrived:
                while not ready:
                    arrived.wait()
                item, size = ready.popleft()
            budget.release(size)
            if isinstance(item, _Done):
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
