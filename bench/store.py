"""Store benchmark: docsync's two embedded adapters side by side, in one run.

For each size, each adapter gets the same points (384-dim cosine vectors with docsync-like
payloads), written in batches of 256 through the adapter docsync uses, then the same search
vectors. The edge engine is measured after `optimize()` built its index (the worker runs it
after a sync); qdrant-client's embedded mode has no index to build.

    python bench/store.py                  # 10k and 100k points
    python bench/store.py --points 20000   # one size
    python bench/store.py --json           # one JSON object (figures at the largest size)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from docsync.plugin.profile import CHUNKER_VERSION, EmbeddingProfile
from docsync.plugin.store import Point, Store
from docsync.plugin.stores.edge import EdgeStore
from docsync.plugin.stores.qdrant import QdrantClientStore

DIM = 384
BATCH = 256
TEXT = "A passage of documentation text, about as long as a real chunk of a real file. " * 8
PROFILE = EmbeddingProfile(
    model="bench",
    revision=None,
    dimension=DIM,
    distance="cosine",
    query_prefix="",
    passage_prefix="",
    chunker=CHUNKER_VERSION,
)
Open = Callable[[Path], Store]
ADAPTERS: dict[str, Open] = {
    "edge": lambda path: EdgeStore.connect(path=path, collection="bench"),
    "client": lambda path: QdrantClientStore.connect(path=path, collection="bench"),
}


def vectors(n: int, seed: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)  # type: ignore[no-any-return]


def points(data: np.ndarray[Any, Any], start: int) -> list[Point]:
    out = []
    for i, row in enumerate(data, start=start):
        path = f"docs/section-{i % 97}/file-{i // 40}.md"
        payload = {
            "root": "/bench",
            "path": path,
            "path_prefixes": ["docs", f"docs/section-{i % 97}", path],
            "text": TEXT,
            "start": 0,
            "end": len(TEXT),
            "chunk_index": i % 40,
            "embed_hash": f"{i:064x}",
        }
        out.append(Point(id=str(uuid.UUID(int=i + 1)), payload=payload, vector=row.tolist()))
    return out


def measure(name: str, size: int, queries: np.ndarray[Any, Any], work: Path) -> dict[str, float]:
    path = work / f"{name}-{size}"
    store = ADAPTERS[name](path)
    store.open(PROFILE, create=True)
    data = vectors(size, seed=size)
    written = 0.0
    for i in range(0, size, BATCH):
        batch = points(data[i : i + BATCH], i)  # built outside the clock
        started = time.perf_counter()
        store.upsert(batch)
        written += time.perf_counter() - started
    started = time.perf_counter()
    store.optimize()
    indexing = time.perf_counter() - started
    latencies = []
    for query in queries:
        started = time.perf_counter()
        store.search(query.tolist(), limit=5)
        latencies.append((time.perf_counter() - started) * 1000)
    store.close()
    started = time.perf_counter()
    reopened = ADAPTERS[name](path)
    reopened.open(PROFILE, create=False)
    reopened.count()
    reopen = time.perf_counter() - started
    reopened.close()
    latencies.sort()
    return {
        "upserts_per_s": size / written,
        "index_s": indexing,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "reopen_s": reopen,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, help="one size instead of 10k and 100k")
    parser.add_argument("--queries", type=int, default=200, help="searches per store")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    sizes = [args.points] if args.points else [10_000, 100_000]
    queries = vectors(args.queries, seed=7)
    results: dict[int, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="docsync-bench-") as tmp:
        for size in sizes:
            results[size] = {name: measure(name, size, queries, Path(tmp)) for name in ADAPTERS}
            if not args.json:
                report(size, results[size])
    largest = results[max(sizes)]
    summary = {
        "points": max(sizes),
        "edge_upserts_per_s": round(largest["edge"]["upserts_per_s"]),
        "client_upserts_per_s": round(largest["client"]["upserts_per_s"]),
        "upsert_ratio": round(
            largest["edge"]["upserts_per_s"] / largest["client"]["upserts_per_s"], 1
        ),
        "edge_p50_ms": round(largest["edge"]["p50_ms"], 3),
        "client_p50_ms": round(largest["client"]["p50_ms"], 3),
        "edge_p99_ms": round(largest["edge"]["p99_ms"], 3),
        "client_p99_ms": round(largest["client"]["p99_ms"], 3),
        "edge_index_s": round(largest["edge"]["index_s"], 2),
        "edge_reopen_s": round(largest["edge"]["reopen_s"], 3),
        "client_reopen_s": round(largest["client"]["reopen_s"], 3),
    }
    print(json.dumps(summary) if args.json else json.dumps(summary, indent=2))
    return 0


def report(size: int, figures: dict[str, dict[str, float]]) -> None:
    print(f"{size} points")
    for name, f in figures.items():
        print(
            f"  {name:<6} upserts/s {f['upserts_per_s']:>9,.0f}   search p50 {f['p50_ms']:7.2f} ms"
            f"   p99 {f['p99_ms']:7.2f} ms   index {f['index_s']:6.1f} s"
            f"   reopen {f['reopen_s']:6.2f} s"
        )
    ratio = figures["edge"]["upserts_per_s"] / figures["client"]["upserts_per_s"]
    speed = figures["client"]["p50_ms"] / figures["edge"]["p50_ms"]
    print(f"  edge/client: upserts x{ratio:.1f}, search p50 x{speed:.1f} faster", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
