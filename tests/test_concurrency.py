"""A search in the same process as a long sync still answers quickly: writes go to the
embedded engine in small batches, tokenizing releases the GIL, index building waits until
the sync is over, the CLI's heap settling and the bounded number of points in flight keep
garbage-collection pauses short.

On 2 cores shared by the sync's threads, the operating system now and then deschedules the
thread holding the GIL for tens of milliseconds (a collection of nothing was seen taking
40 ms), which no code here can prevent; so 99% of searches must answer within the deadline
and every one within a stall bound that GIL holds of the kind fixed here (tokenizing a long
file, full collections, index building) would break.

The latencies are only evidence while the machine is ours: on this (virtual) machine the host
sometimes takes a quarter or more of the CPU for seconds ("steal" in /proc/stat), and every
latency stretches with it. A measurement during which the host took more than
`MAX_STEAL` of the CPU is repeated once; if the host takes it again, the test is skipped with
the figure, rather than passed or failed on the host's load.

Other processes on the machine stretch the latencies too, and no reading of /proc tells their
share apart from ours, so the deadlines are a timed test: they are checked only when
`DOCSYNC_TIMED_TESTS=1` is set, on a machine left to the test. Without it, the test still
checks that the searches ran throughout the sync and all answered."""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from docsync.plugin.encoder import Encoder
from docsync.plugin.stores.edge import EdgeStore
from docsync.worker.pipeline import SyncOptions, sync
from docsync.worker.report import SyncReport
from docsync.worker.wiring import settle_heap
from tests.conftest import CORPUS, minilm_dir
from tests.fakes import HashModel
from tests.host import CpuSteal

DEADLINE_MS = 50.0  # 99% of searches
STALL_MS = 250.0  # every search
MAX_STEAL = 0.15  # share of the CPU the host may take during a measurement
TIMED = os.environ.get("DOCSYNC_TIMED_TESTS", "") not in ("", "0")


@dataclass
class Measurement:
    latencies: list[float]
    counts_seen: int
    report: SyncReport | None
    steal: float


def measure(base: Path, encoder: Encoder) -> Measurement:
    """Search in a loop while a sync of 4 copies of the corpus (about 20k chunks) runs."""
    for copy in range(4):
        shutil.copytree(CORPUS, base / "docs" / f"copy{copy}")
    store = EdgeStore.connect(path=base / "store", collection="docsync")
    try:
        store.open(encoder.profile(), create=True)
        query = encoder.embed_query("How do I create a socket?").tolist()
        settle_heap()  # what `docsync` does once the model is loaded
        result: list[SyncReport] = []

        def run() -> None:
            options = SyncOptions(chunk_tokens=64)
            result.append(sync([base / "docs"], store=store, encoder=encoder, options=options))

        steal = CpuSteal()
        writer = threading.Thread(target=run)
        writer.start()
        latencies, seen = [], set()
        while writer.is_alive():
            started = time.perf_counter()
            store.search(query, limit=5)
            latencies.append((time.perf_counter() - started) * 1000)
            seen.add(store.count())
            time.sleep(0.005)
        writer.join()
        return Measurement(latencies, len(seen), result[0] if result else None, steal.share())
    finally:
        store.close()


def test_search_answers_during_a_sync_of_20k_chunks(tmp_path: Path) -> None:
    # Real tokenizer and chunker, vectors from a hash: the sync is all I/O and bookkeeping,
    # as fast as it can write, which is the hardest case for a concurrent search.
    encoder = Encoder(
        HashModel(AutoTokenizer.from_pretrained(str(minilm_dir()))), name="hash", query_prefix=""
    )
    steals = []
    for attempt in range(2):
        got = measure(tmp_path / f"attempt{attempt}", encoder)
        assert got.report is not None and got.report.points_upserted >= 20_000
        assert got.counts_seen > 10, "the searches did not overlap the writes"
        assert len(got.latencies) > 100
        steals.append(got.steal)
        if not TIMED:
            return
        if got.steal <= MAX_STEAL:
            ordered = sorted(got.latencies)
            assert ordered[int(len(ordered) * 0.99)] < DEADLINE_MS, ordered[-10:]
            assert ordered[-1] < STALL_MS, ordered[-10:]
            return
    pytest.skip(f"the host took {', then '.join(f'{s:.0%}' for s in steals)} of the CPU")


def test_steal_is_read_as_a_share_of_all_cpu_time(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 10 0 0 40 0 0\ncpu0 1 2 3\n")
    steal = CpuSteal(stat)
    stat.write_text("cpu  160 0 70 900 10 0 0 90 0 0\ncpu0 1 2 3\n")
    assert steal.share() == pytest.approx(50 / 230)
    assert CpuSteal(tmp_path / "absent").share() == 0.0
