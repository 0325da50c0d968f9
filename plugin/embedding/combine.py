"""Questions asked at once, embedded together, on one thread.

A daemon answers several clients at once, each search on a thread of its own. Embedding each
question in a forward pass of its own makes as many passes as questions, each of a dozen
tokens, each paying the per-product overhead that a single question is mostly made of; and
each search thread that calls the model keeps a team of OpenMP threads of its own, which
slows every question (`docsync.plugin.embedding.teams`). Here every question is embedded
on one long-lived thread: a lone question at once, and questions that arrive while a pass
runs wait for it and are then embedded together, in one packed pass (no product spends time
on padding, see `docsync.plugin.embedding.lean`). Under load, the cores do one pass for
many questions.

Written here rather than taken from a serving library: what it batches is one function
call inside this process, and the libraries that batch requests (Ray Serve, Triton, BentoML)
are servers of their own.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Vector = np.ndarray[Any, np.dtype[np.float32]]
Vectors = np.ndarray[Any, np.dtype[np.float32]]
MOST = 16  # questions in one pass: a few hundred tokens, a pass of a few milliseconds
THREAD = "docsync-questions"


@dataclass(eq=False)
class _Ask:
    text: str
    done: threading.Event = field(default_factory=threading.Event)
    vector: Vector | None = None
    error: BaseException | None = None


class Combiner:
    """Embeds questions with `one` when alone and `many` when several wait together, all on
    one thread of its own (started with the first question, and again in a forked child)."""

    def __init__(
        self,
        one: Callable[[str], Vector],
        many: Callable[[Sequence[str]], Vectors],
        *,
        most: int = MOST,
    ) -> None:
        self._one, self._many, self._most = one, many, most
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._waiting: deque[_Ask] = deque()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def __call__(self, text: str) -> Vector:
        ask = _Ask(text)
        with self._lock:
            self._started()
            self._waiting.append(ask)
            self._arrived.notify()
        ask.done.wait()
        if ask.error is not None:
            raise ask.error
        assert ask.vector is not None
        return ask.vector

    def _started(self) -> None:
        """Under the lock: the thread, started if this process has none alive."""
        thread = self._thread
        if thread is None or self._pid != os.getpid() or not thread.is_alive():
            self._thread = threading.Thread(target=self._serve, name=THREAD, daemon=True)
            self._pid = os.getpid()
            self._thread.start()

    def _serve(self) -> None:
        while True:
            with self._lock:
                while not self._waiting:
                    self._arrived.wait()
                count = min(self._most, len(self._waiting))
                group = [self._waiting.popleft() for _ in range(count)]
            self._run(group)

    def _run(self, group: list[_Ask]) -> None:
        try:
            if len(group) == 1:
                group[0].vector = self._one(group[0].text)
            else:
                vectors = self._many([a.text for a in group])
                for a, vector in zip(group, vectors, strict=True):
                    a.vector = vector
        except BaseException as exc:  # each caller raises it: none is left waiting
            for a in group:
                a.error = exc
        finally:
            for a in group:
                a.done.set()
