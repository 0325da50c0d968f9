"""Million-point benchmark of the embedded store: what a collection of a million chunks costs
on one machine, with full-precision vectors or with int8 copies (`DOCSYNC_QUANTIZATION`).

Points: the corpus's real chunks embedded once by the model (DOCSYNC_MODEL), then copies with
slightly moved vectors up to `--points` (as bench/query.py), each with docsync's payload (the
chunk's text, path, offsets). One run, one quantization:

- `upsert_points_per_s`: writes through `EdgeStore.upsert`, as a sync makes them;
- `serving_upsert_ratio`: the rate of writes through a daemon's store (`serving`: its shard
  held by a child process, every batch sent over a socket) over the rate in one process,
  on a fresh store of `SERVING_POINTS` each, in this run;
- the index, built as a daemon builds it (a store connected `serving`, `optimize(serving=
  True)`: a child process indexes a copy, a second one opens it while the first answers)
  while this process searches every second: `index_s`, `longest_search_wait_s`, the
  longest any of those searches took (the bound: 1 s), and `swap_s`, how long opening the
  rebuilt shard and putting it in place took (in a process of its own: searches do not
  wait for it);
- `search_p50_ms` / `search_p99_ms`: dense searches for 10 hits after the build, and
  `recall_at_5`: the share of the exact (brute-force, full-precision) top 5 they return;
- `reopen_s`: a fresh process (no model in it, as `docsync query` or a daemon's store)
  opens the store and answers its first search; the searches above run there;
- memory: that reader's `reader_rss_mb` after the searches and `reader_peak_mb`,
  `index_child_peak_mb` (the child that built the index), `disk_mb` of the store.

    DOCSYNC_MODEL=/path/to/model python bench/million.py [--points 1000000]
        [--quantization none|int8] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import DEFAULT_CORPUS, real_chunks
from output import emit
from query import QUESTIONS, percentile

from docsync.plugin.encoder import Encoder
from docsync.plugin.settings import Settings
from docsync.plugin.store import Point
from docsync.plugin.stores import edge_index
from docsync.plugin.stores.edge import EdgeStore

BATCH = 1024
SERVING_POINTS = 20_000
SEARCHES = 300
# A search a second while the index builds: as a busy user asks. Until the build is swapped
# in, each one scans every vector; asked much more often, they would take the CPU the build
# needs (the engine runs its build threads at a lower priority).
ASK_EVERY = 1.0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        serve_here(Path(argv[1]), Path(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--quantization", choices=("none", "int8"), default="none")
    parser.add_argument("--json", action="store_true")
    ns = parser.parse_args(argv)
    encoder = Encoder.from_settings(Settings(), lazy=True)
    inputs = [text for f in real_chunks(encoder, DEFAULT_CORPUS) for text in f.inputs]
    base = encoder.embed_passages(inputs)
    questions = np.stack([encoder.embed_query(q) for q in QUESTIONS])
    profile = encoder.profile()
    del encoder
    with tempfile.TemporaryDirectory(prefix="docsync-million-") as tmp:
        store = EdgeStore.connect(
            path=Path(tmp) / "store", collection="docsync", quantization=ns.quantization
        )
        store.open(profile, create=True)
        result: dict[str, Any] = {"points": ns.points, "quantization": ns.quantization}
        result["upsert_points_per_s"] = round(fill(store, base, inputs, ns.points))
        store.close()
        result["serving_upsert_ratio"] = serving_ratio(Path(tmp), profile, base, inputs)
        store = EdgeStore.connect(path=Path(tmp) / "store", collection="docsync", serving=True)
        store.open(profile, create=False)
        result.update(index_while_searching(store, questions))
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        result["index_child_peak_mb"] = round(child / 1024)
        store.close()
        queries = Path(tmp) / "queries.npy"
        np.save(queries, np.stack(search_vectors(base, questions)).astype(np.float32))
        result.update(serve(Path(tmp) / "store", queries))
        result["disk_mb"] = round(folder_bytes(Path(tmp) / "store") / 2**20)
    emit(result, as_json=ns.json)
    return 0


def fill(store: EdgeStore, base: np.ndarray[Any, Any], inputs: list[str], points: int) -> float:
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for start in range(0, points, BATCH):
        rows = np.arange(start, min(points, start + BATCH))
        moved = base[rows % len(inputs)] + rng.normal(0, 0.02, (len(rows), base.shape[1]))
        moved[rows < len(inputs)] = base[rows[rows < len(inputs)]]
        batch = []
        for i, vector in zip(rows.tolist(), moved, strict=True):
            text = inputs[i % len(inputs)]
            path = f"copy{i // len(inputs)}/doc{(i % len(inputs)) // 60}.rst"
            payload = {"root": "/bench", "path": path, "path_prefixes": [path], "text": text}
            payload.update(start=0, end=len(text), chunk_index=i % 60)
            batch.append(Point(str(uuid.UUID(int=i + 1)), payload, vector.tolist(), None))
        store.upsert(batch)
        if (start // BATCH) % 100 == 99:
            print(f"  {start + len(rows):,} points written", file=sys.stderr)
    return points / (time.perf_counter() - started)


def serving_ratio(tmp: Path, profile: Any, base: np.ndarray[Any, Any], inputs: list[str]) -> float:
    rates = {}
    for serving in (False, True):
        path = tmp / f"serving-{serving}"
        store = EdgeStore.connect(path=path, collection="docsync", serving=serving)
        store.open(profile, create=True)
        rates[serving] = fill(store, base, inputs, SERVING_POINTS)
        store.close()
        shutil.rmtree(path)
    return round(rates[True] / rates[False], 3)


def index_while_searching(store: EdgeStore, questions: np.ndarray[Any, Any]) -> dict[str, Any]:
    """Index as a daemon does while one search a second is asked, each one's wait recorded
    with the step of the build it fell in: `scan` (before the build starts), `copy` (the
    shard copied), `build` (the child indexes the copy), `open` (a second child opens it,
    the link is switched, the first child closes), `after`."""
    waits: list[tuple[float, float]] = []  # (when asked, seconds)
    marks: list[tuple[float, str]] = [(0.0, "scan")]
    done = threading.Event()

    def ask() -> None:
        turn = 0
        while not done.is_set():
            started = time.perf_counter()
            store.search(questions[turn % len(questions)].tolist(), limit=10)
            waits.append((started, time.perf_counter() - started))
            turn += 1
            done.wait(ASK_EVERY)

    def mark(step: str) -> None:
        marks.append((time.perf_counter(), step))

    swaps: list[float] = []
    index_elsewhere, swap_in = store._index_elsewhere, store._swap_in
    run_indexer = edge_index.run_indexer

    def marked_index(should_stop: Any) -> bool:
        mark("copy")
        return index_elsewhere(should_stop)

    def marked_indexer(copy: Path, should_stop: Any) -> bool:
        mark("build")
        built = run_indexer(copy, should_stop)
        mark("open")
        return built

    def timed_swap(copy: Path) -> bool:
        began = time.perf_counter()
        swapped = swap_in(copy)
        swaps.append(time.perf_counter() - began)
        mark("after")
        return swapped

    store._index_elsewhere = marked_index  # type: ignore[method-assign]
    store._swap_in = timed_swap  # type: ignore[method-assign]
    edge_index.run_indexer = marked_indexer
    asker = threading.Thread(target=ask)
    asker.start()
    started = time.perf_counter()
    try:
        while store.optimize(serving=True):
            pass
    finally:
        done.set()
        asker.join()
        edge_index.run_indexer = run_indexer
    by_step: dict[str, float] = {}
    for asked, seconds in waits:
        step = [name for at, name in marks if at <= asked][-1]
        by_step[step] = round(max(by_step.get(step, 0.0), seconds), 3)
    return {
        "index_s": round(time.perf_counter() - started, 1),
        "searches_during_index": len(waits),
        "longest_search_wait_s": round(max((w for _, w in waits), default=0.0), 3),
        "longest_wait_by_step_s": by_step,
        "swap_s": round(max(swaps, default=0.0), 3),
        "unindexed_after": store.unindexed(),
    }


def search_vectors(base: np.ndarray[Any, Any], questions: np.ndarray[Any, Any]) -> list[Any]:
    """The questions, then stored chunks' vectors moved a little, as other questions."""
    rng = np.random.default_rng(1)
    rows = rng.choice(len(base), SEARCHES - len(questions), replace=False)
    moved = base[rows] + rng.normal(0, 0.03, (len(rows), base.shape[1]))
    return [*questions, *moved]


def serve(path: Path, queries: Path) -> dict[str, Any]:
    """Open the store in a fresh process, as `docsync query` or a daemon does (no model in
    it), and search: its figures and its memory."""
    done = subprocess.run(
        [sys.executable, __file__, "--serve", str(path), str(queries)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def serve_here(path: Path, queries: Path) -> None:
    started = time.perf_counter()
    store = EdgeStore.connect(path=path, collection="docsync")
    vectors = list(np.load(queries))
    store.search(vectors[0].tolist(), limit=10)
    result: dict[str, Any] = {"reopen_s": round(time.perf_counter() - started, 2)}
    result.update(search_figures(store, vectors))
    result["reader_rss_mb"] = round(status_kb("VmRSS") / 1024)
    result["reader_peak_mb"] = round(status_kb("VmHWM") / 1024)
    store.close()
    print(json.dumps(result))


def search_figures(store: EdgeStore, queries: list[Any]) -> dict[str, Any]:
    times, recalls = [], []
    for vector in queries:
        started = time.perf_counter()
        hits = store.search(vector.tolist(), limit=10)
        times.append((time.perf_counter() - started) * 1000)
        dense = vector.tolist()
        exact = store._use(lambda shard, dense=dense: shard.search(dense, limit=5, exact=True))
        truth = {str(h.id) for h in exact}
        recalls.append(len(truth & {h.id for h in hits[:5]}) / 5)
    return {
        "search_p50_ms": round(statistics.median(times), 2),
        "search_p99_ms": round(percentile(times, 0.99), 2),
        "recall_at_5": round(statistics.mean(recalls), 4),
    }


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())  # on disk


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
