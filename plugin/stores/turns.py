"""A lock that many may hold at once, or one alone: the embedded store's requests to a shard
held by a child process share it (several clients' searches in flight together), while
swapping the shard for a rebuilt one, or starting its process again, waits for them all and
holds it alone. A thread waiting to hold it alone goes before those that come after it, so a
stream of searches never starves a swap."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class Turns:
    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._sharing = 0  # threads holding it shared
        self._alone = False  # one thread holds it alone
        self._waiting_alone = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._alone and not self._waiting_alone)
            self._sharing += 1
        try:
            yield
        finally:
            with self._changed:
                self._sharing -= 1
                if not self._sharing:
                    self._changed.notify_all()

    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        with self._changed:
            self._waiting_alone += 1
            try:
                self._changed.wait_for(lambda: not self._alone and not self._sharing)
            finally:
                self._waiting_alone -= 1
            self._alone = True
        try:
            yield
        finally:
            with self._changed:
                self._alone = False
                self._changed.notify_all()
