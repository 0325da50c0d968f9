"""Where the model's CPU work runs, so that OpenMP keeps one team of threads, not one a thread.

torch's CPU builds run their operators on GNU OpenMP, which keeps a team of worker threads
for every thread that has called it, for as long as that thread lives. Once it manages more
threads than there are CPUs, it cuts every spin-wait to a few turns, whatever
`GOMP_SPINCOUNT` says, and each of a question's hundred small operators pays for waking a
sleeping thread: on 2 cores a question took 5.5-6.2 ms instead of 3.2 (bench/NOTES.md, issue
27). A daemon calls the model from many threads: the sync's, each HTTP request's, the one
that loaded it. So:

- questions run on one long-lived thread (`docsync.plugin.embedding.combine.Combiner`);
- everything else (loading, the precision timing, the card's export, passages) runs on a
  thread that ends when its work does (`passing`), and its team ends with it.

An idle daemon then holds exactly one team, the questions'; while a sync embeds, two.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def passing(work: Callable[[], T], *, name: str = "docsync-model") -> T:
    """`work()` on a thread of its own that ends with it; its answer, or its exception, here.
    A thread that is already such a thread runs it itself (nothing is gained by another)."""
    if threading.current_thread().name == name:
        return work()
    answer: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            answer.append(work())
        except BaseException as exc:  # raised again in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return answer[0]
