"""The model's CPU work leaves one OpenMP team in a process, whichever threads ask for it
(plugin/embedding/teams.py): GNU OpenMP slows every spin-wait once it manages more threads
than there are CPUs, and keeps a team for each thread that ever ran an operator."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from docsync.plugin.embedding.teams import passing
from docsync.plugin.encoder import Encoder
from tests.conftest import HANG

TASKS = Path("/proc/self/task")


def native_threads() -> int:
    return len(os.listdir(TASKS))


def test_passing_answers_and_raises_in_the_caller() -> None:
    assert passing(lambda: threading.current_thread().name) == "docsync-model"
    with pytest.raises(KeyError):
        passing(lambda: {}["missing"])
    nested = passing(lambda: passing(lambda: threading.current_thread().name))
    assert nested == "docsync-model"


# Run in a process of its own: a signal to pytest's own main thread (a worker's, under xdist)
# is at the mercy of what earlier tests left in that process.
INTERRUPTED = """
import signal, threading
from docsync.plugin.embedding.teams import passing
started, told, ended = threading.Event(), threading.Event(), threading.Event()
def work():
    started.set()
    told.wait(60)  # a step under way ends only once told
    ended.set()
def interrupt():
    started.wait(60)
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
threading.Thread(target=interrupt, daemon=True).start()
try:
    passing(work, interrupted=told.set)
except KeyboardInterrupt:
    print("interrupted; the work had ended:", ended.is_set())
"""


def test_an_interrupted_caller_stops_the_work_and_waits_for_it() -> None:
    """Ctrl-C while `passing` waits: the work is told (`interrupted`) and has ended before the
    caller raises, so no torch thread outlives an interpreter that exits (it aborted, 134)."""
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED], capture_output=True, text=True, timeout=HANG
    )
    assert done.stdout.strip() == "interrupted; the work had ended: True", done.stderr[-2000:]


@pytest.mark.skipif(not TASKS.is_dir() or (os.cpu_count() or 1) < 2, reason="needs Linux, 2 CPUs")
def test_questions_and_passages_from_many_threads_leave_one_team(tiny_model_dir: Path) -> None:
    import torch

    if torch.get_num_threads() < 2:
        pytest.skip("torch runs one thread here: no team")
    encoder = Encoder.load(str(tiny_model_dir), device="cpu")  # loaded and warmed
    texts = [f"passage {i} " + "words " * (i % 40) for i in range(64)]
    encoder.embed_passages(texts)  # the tokenizer's own pool starts here, once
    encoder.embed_query("a first question")
    settled = native_threads()

    def work(i: int) -> None:
        encoder.embed_query(f"question {i} from a thread that lives on")
        encoder.embed_passages(texts[i % 8 : i % 8 + 8])

    with ThreadPoolExecutor(4) as pool:  # as a server's threads: alive between requests
        list(pool.map(work, range(16)))
        poll(lambda: native_threads() == settled + len(pool._threads))
    encoder.embed_passages(texts)
    poll(lambda: native_threads() == settled)  # a thread's team ends a moment after it


def poll(condition: Callable[[], bool], deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"{native_threads()} native threads"
        time.sleep(0.01)
