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


def passing(
    work: Callable[[], T],
    *,
    name: str = "docsync-model",
    interrupted: Callable[[], None] | None = None,
) -> T:
    """`work()` on a thread of its own that ends with it; its answer, or its exception, here.
    A thread that is already such a thread runs it itself (nothing is gained by another).

    Interrupted while it waits (Ctrl-C), the caller first tells the work (`interrupted`, so
    that it can end at its next step) and waits for the thread to end: an interpreter that
    exits while torch's threads still run aborts ("terminate called without an active
    exception", exit 134: `docsync sync` stopped while it embedded)."""
    if threading.current_thread().name == name:
        return work()
    answer: list[T] = []
    failure: list[BaseException] = []
    # Its own flag, not `Thread.join`: a join that Ctrl-C interrupts leaves Python 3.11's
    # thread marked as ended while it still runs, and every later join returns at once.
    ended = threading.Event()
    # Whether the work began, or never will: an interrupt may come before the thread runs
    # (even inside `Thread.start`, which waits for it), and then nothing is waited for.
    turn = threading.Lock()
    began, cancelled = [False], [False]

    def run() -> None:
        try:
            with turn:
                if cancelled[0]:
                    return
                began[0] = True
            answer.append(work())
        except BaseException as exc:  # raised again in the caller's thread
            failure.append(exc)
        finally:
            ended.set()

    try:
        threading.Thread(target=run, name=name, daemon=True).start()
        ended.wait()
    except BaseException:
        with turn:
            cancelled[0] = True
            running = began[0]
        if running:
            if interrupted is not None:
                interrupted()
            ended.wait()
        raise
    if failure:
        raise failure[0]
    return answer[0]
