"""Query benchmark: latency of one question through `Searcher.search` on the embedded store
at 100k points, with the embedding and the search also timed apart, and the baseline (stock
sentence-transformers `encode` of one question, fp32) in the same run. Each question is also
asked in every search mode (dense, keyword, hybrid with the default fusion), one after the
other, so the modes' latencies are side by side (`dense_p50_ms`, `hybrid_p50_ms`, ...,
`hybrid_minus_dense_p50_ms`); `p50_ms` is the default mode's (`DOCSYNC_SEARCH_MODE`).

The collection holds 100k points (the corpus's real chunks, embedded once, then copies with
slightly moved vectors to reach the size), each with its keyword vector (BM25 of the chunk's
model input: title and text, as docsync makes them; copies share their original's words),
indexed as the worker leaves it after a sync.

    DOCSYNC_MODEL=/path/to/model python bench/query.py [--points 100000] [--json]
        [--cache DIR] [--clients N] [--during-sync]

`--cache DIR` keeps the built store there for the next run (a million points take many
minutes to build). `--clients N` and `--during-sync` then start a real daemon on a copy of the
store and ask it through its socket and its HTTP endpoint (bench/clients.py): one client and N
at once, and one client while the daemon syncs 1,000 new files.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import built
import clients
from corpus import DEFAULT_CORPUS, real_chunks
from output import emit
from query_profile import profiles

from docsync.plugin import schema
from docsync.plugin.choices import SEARCH_MODES
from docsync.plugin.encoder import Encoder
from docsync.plugin.search import Searcher
from docsync.plugin.settings import Settings
from docsync.plugin.store import Fusion, Point, Store
from docsync.plugin.stores.edge import EdgeStore

QUESTIONS = [
    "How do I create a socket and connect to a web server?",
    "How can I get the annotations dict of an object?",
    "How do I install packages just for the current user?",
    "How can I add optional arguments with argparse?",
    "How do I send data to a URL with urllib?",
    "What are windows and pads in curses?",
    "What macros handle reference counting in C extensions?",
    "How do I make a regular expression more readable?",
    "What is a Unicode code point?",
    "How do I embed Python in a C application?",
    "How do I define an enum with auto values?",
    "What does the -X dev option do?",
    "How do I write a descriptor with __get__?",
    "How do I port code from Python 2 to 3?",
    "How do I configure Python with link time optimization?",
    "What is the Python launcher for Windows?",
    "How do I create an IPv4 network object?",
    "How do I isolate extension module state?",
    "What is a generator expression?",
    "How do DTrace probes work in CPython?",
]


DOC_CHUNKS = 60  # each copy of the corpus's chunks is cut into documents of this many


def build(store: Store, encoder: Encoder, points: int) -> None:
    inputs = [text for f in real_chunks(encoder, DEFAULT_CORPUS) for text in f.inputs]
    base = encoder.embed_passages(inputs)
    keywords = [encoder.keyword.embed_payload({"text": text}) for text in inputs]
    tokens = encoder.count_tokens_many(inputs)
    rng = np.random.default_rng(0)
    store.open(encoder.profile(), create=True)
    for start in range(0, points, 1024):
        batch = []
        for i in range(start, min(points, start + 1024)):
            row = i % len(inputs)
            vector = base[row] + (rng.normal(0, 0.02, base.shape[1]) if i >= len(inputs) else 0)
            path = f"copy{i // len(inputs)}/doc{row // 60}.rst"
            payload = {
                "root": "/bench",
                "path": path,
                "path_prefixes": [path],
                "text": inputs[row],
                "start": 0,
                "end": len(inputs[row]),
                "chunk_index": row % DOC_CHUNKS,
                **named(i, len(inputs), tokens, points),
            }
            batch.append(
                Point(
                    id=str(uuid.UUID(int=i + 1)),
                    payload=payload,
                    vector=np.asarray(vector, dtype=np.float32).tolist(),
                    keyword=keywords[row],
                )
            )
        store.upsert(batch)
    while store.optimize():
        pass


def named(i: int, rows: int, tokens: list[int], points: int) -> dict[str, Any]:
    """Point `i`'s tokens and neighbours, as the worker stores them (`schema.NEXT`): the
    chunks of its document (one section) within `schema.REACH` among the `points` built;
    point i's ID is i + 1."""
    row, start = i % rows, i - i % rows

    def side(step: int) -> list[list[str | int]]:
        ats = (row + step * d for d in range(1, schema.REACH + 1))
        same = [
            a
            for a in ats
            if 0 <= a < rows and a // DOC_CHUNKS == row // DOC_CHUNKS and start + a < points
        ]
        return [[str(uuid.UUID(int=start + a + 1)), tokens[a]] for a in same]

    return {schema.TOKENS: tokens[row], schema.NEXT: side(1), schema.PREVIOUS: side(-1)}


def stock_embed_ms(encoder: Encoder, rounds: int) -> list[float]:
    """The baseline: stock sentence-transformers `encode` (fp32) of the same model on the same
    device, one question (with the same query instruction) per call."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(encoder.name, device=encoder.device)
    inputs = [encoder.query_input(question) for question in QUESTIONS]
    times = []
    for text in inputs[:3]:  # warm up
        model.encode([text], normalize_embeddings=True)
    for _ in range(rounds):
        for text in inputs:
            started = time.perf_counter()
            model.encode([text], normalize_embeddings=True)
            times.append((time.perf_counter() - started) * 1000)
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def rotated(items: tuple[str, ...], turn: int) -> tuple[str, ...]:
    shift = turn % len(items)
    return items[shift:] + items[:shift]


def mode_latencies(modes: dict[str, list[float]]) -> dict[str, float]:
    """p50 and p95 of each search mode, and what hybrid adds to dense at the median."""
    result: dict[str, float] = {}
    for mode, times in modes.items():
        result[f"{mode}_p50_ms"] = round(statistics.median(times), 2)
        result[f"{mode}_p95_ms"] = round(percentile(times, 0.95), 2)
    hybrid_extra = statistics.median(modes["hybrid"]) - statistics.median(modes["dense"])
    result["hybrid_minus_dense_p50_ms"] = round(hybrid_extra, 2)
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=10, help="passes over the questions")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--profile", action="store_true", help="time each step of a search (query_profile.py)"
    )
    parser.add_argument("--cache", type=Path, help="keep the built store here, for the next run")
    parser.add_argument("--clients", type=int, default=0, help="N clients through a daemon")
    parser.add_argument(
        "--during-sync", action="store_true", help="a daemon's search p99 while it syncs"
    )
    args = parser.parse_args(argv)
    settings = Settings()
    encoder = Encoder.from_settings(settings)
    building = built.key(build, encoder.name)
    with built.store_folder(args.cache, args.points, building) as (tmp, fresh):
        store = EdgeStore.connect(path=tmp, collection="bench")
        started = time.perf_counter()
        if fresh:
            build(store, encoder, args.points)
            built.mark_built(tmp)
        build_s = time.perf_counter() - started
        store.warm()  # as a daemon's shard process does when it opens the shard
        searcher = Searcher(store, encoder)
        # Hybrid without the fusion guard (docsync.plugin.guard): what the guard costs.
        unguarded = Searcher(store, encoder, mode="hybrid", fusion=replace(Fusion(), guard=0))
        modes: dict[str, list[float]] = {mode: [] for mode in SEARCH_MODES}
        embed, search, bare, plain = [], [], [], []
        for _ in range(args.rounds):
            for turn, question in enumerate(QUESTIONS):
                for mode in rotated(SEARCH_MODES, turn):  # none always first
                    t0 = time.perf_counter()
                    searcher.search(question, limit=5, mode=mode)
                    modes[mode].append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                searcher.search(question, limit=5, mode="dense", context=0)  # bare chunks
                bare.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                unguarded.search(question, limit=5)
                plain.append((time.perf_counter() - t0) * 1000)
                t1 = time.perf_counter()
                vector = encoder.embed_query(question)
                t2 = time.perf_counter()
                store.search(vector.tolist(), limit=5)
                t3 = time.perf_counter()
                embed.append((t2 - t1) * 1000)
                search.append((t3 - t2) * 1000)
        points = store.count()
        steps = profiles(searcher, QUESTIONS, args.rounds) if args.profile else {}
        store.close()
        daemon: dict[str, Any] = {}
        if args.clients or args.during_sync:
            texts = [text for f in real_chunks(encoder, DEFAULT_CORPUS) for text in f.inputs]
            daemon = clients.through_daemon(
                tmp,
                "bench",
                QUESTIONS,
                clients=args.clients,
                during_sync=args.during_sync,
                texts=texts,
            )
    stock = stock_embed_ms(encoder, args.rounds)
    whole = modes[searcher.mode]
    result: dict[str, Any] = {
        "points": points,
        "queries": len(whole),
        "p50_ms": round(statistics.median(whole), 2),
        "p95_ms": round(percentile(whole, 0.95), 2),
        "p99_ms": round(percentile(whole, 0.99), 2),
        "embed_p50_ms": round(statistics.median(embed), 2),
        "embed_p95_ms": round(percentile(embed, 0.95), 2),
        "search_p50_ms": round(statistics.median(search), 2),
        "search_p95_ms": round(percentile(search, 0.95), 2),
        **mode_latencies(modes),
        "dense_bare_p50_ms": round(statistics.median(bare), 2),
        "hybrid_unguarded_p50_ms": round(statistics.median(plain), 2),
        "p50_over_dense_bare": round(statistics.median(whole) / statistics.median(bare), 2),
        "stock_embed_p50_ms": round(statistics.median(stock), 2),
        "embed_speedup": round(statistics.median(stock) / statistics.median(embed), 2),
        "model": encoder.name,
        "device": encoder.device,
        "precision": encoder.precision,
        "query_forward": encoder.query_forward,
        "build_s": round(build_s, 1),
        **steps,
        **daemon,
    }
    if "socket_1c_p50_ms" in daemon:  # what the daemon's socket adds to an in-process search
        result["socket_adds_p50_ms"] = round(daemon["socket_1c_p50_ms"] - result["p50_ms"], 2)
    emit(result, as_json=args.json, cpu=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
