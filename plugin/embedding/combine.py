"""Questions asked at once, embedded together.

A daemon answers several clients at once, each search on a thread of its own. Embedding each
question in a forward pass of its own makes as many passes as questions, each of a dozen
tokens, each paying the per-product overhead that a single question is mostly made of, and
each opening its own team of OpenMP threads on the same few cores. Here the first caller
embeds its question at once, as before; questions that arrive while a pass runs wait for it
and are then embedded together, in one packed pass (no product spends time on padding, see
`docsync.plugin.embedding.lean`). A lone client never waits for anyone; under load, the
cores do one pass for many questions.

Written here rather than taken from a serving library: what it batches is one function
call inside this process, and the libraries that batch requests (Ray Serve, Triton, BentoML)
are servers of their own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Vector = np.ndarray[Any, np.dtype[np.float32]]
Vectors = np.ndarray[Any, np.dtype[np.float32]]
MOST = 16  # questions in one pass: a few hundred tokens, a pass of a few milliseconds


@dataclass(eq=False)
class _Ask:
    text: str
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # woken to embed the next group, not with its answer
    vector: Vector | None = None
    error: BaseException | None = None


class Combiner:
    """Embeds questions with `one` when alone and `many` when several wait together."""

    def __init__(
        self,
        one: Callable[[str], Vector],
        many: Callable[[Sequence[str]], Vectors],
        *,
        most: int = MOST,
    ) -> None:
        self._one, self._many, self._most = one, many, most
        self._lock = threading.Lock()
        self._waiting: list[_Ask] = []
        self._busy = False  # a pass runs (or its caller is about to start the next one)

    def __call__(self, text: str) -> Vector:
        ask = _Ask(text)
        with self._lock:
            if self._busy:
                self._waiting.append(ask)
            else:
                self._busy = True
                ask.lead = True
        if not ask.lead:
            ask.done.wait()
        if ask.lead:
            self._run(self._group(ask))
        if ask.error is not None:
            raise ask.error
        assert ask.vector is not None
        return ask.vector

    def _group(self, ask: _Ask) -> list[_Ask]:
        """The leader's group: itself and the questions waiting before it, oldest first."""
        with self._lock:
            waiting = [other for other in self._waiting if other is not ask]
            others, self._waiting = waiting[: self._most - 1], waiting[self._most - 1 :]
        return [ask, *others]

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
            self._hand_over(group)

    def _hand_over(self, group: list[_Ask]) -> None:
        """Answer the group, and wake the oldest waiting question to lead the next pass."""
        with self._lock:
            following = self._waiting[0] if self._waiting else None
            if following is None:
                self._busy = False
            else:
                following.lead = True
        for a in group[1:]:
            a.done.set()
        if following is not None:
            following.done.set()
