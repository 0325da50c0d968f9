"""Where one search's time goes (`bench/query.py --profile`): each step of a default search
(hybrid, passages of 256 tokens), timed apart on the same questions, p50 in ms:

- `embed`: the question's dense vector; `keyword_embed`: its keyword (BM25) vector;
- `dense`, `keyword`: the engine's search by each alone (with the hit's payload fields);
  `hybrid`: both and their fusion in one request; `fusion` is what hybrid adds to the
  slower of the two;
- `payload`: what decoding the hits' payloads costs (the hybrid search with the hit's
  fields, less the same search with none);
- `passages`: growing the hits into passages (`fetch`: its one request for the neighbours),
  and `hits`: making the `Hit` values; `passages_before`: the same hits grown as before
  issue 27 (one scroll per hit, every neighbour's tokens counted), for comparison;
- `search`: the whole `Searcher.search`, and `rest`: what it spends outside those steps
  (the request's checks, the backend's own work).
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from docsync.plugin import schema
from docsync.plugin.backends import HIT_FIELDS, PASSAGE_FIELDS, LocalBackend
from docsync.plugin.choices import DEFAULT_CONTEXT_TOKENS
from docsync.plugin.hit import Hit
from docsync.plugin.passages import Passage, passages
from docsync.plugin.request import MAX_LIMIT
from docsync.plugin.search import Searcher
from docsync.plugin.store import Point, ScoredPoint, Store
from docsync.plugin.stores.qdrant import QdrantClientStore

T = TypeVar("T")
LIMIT = 5
COPY_BATCH = 1024
MEMORY_POINTS = 20_000  # qdrant-client's local mode warns past this many
NAMED = (schema.TOKENS, schema.NEXT, schema.PREVIOUS)


class Timer:
    """Milliseconds per step, each step a list of samples."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}

    def __call__(self, step: str, fn: Callable[[], T]) -> T:
        started = time.perf_counter()
        value = fn()
        self.samples.setdefault(step, []).append((time.perf_counter() - started) * 1000)
        return value

    def medians(self) -> dict[str, float]:
        return {step: statistics.median(times) for step, times in self.samples.items()}


def profile_one(searcher: Searcher, question: str, timer: Timer) -> None:
    """Each step of one default search of `question`, timed into `timer`."""
    backend = searcher.backend
    assert isinstance(backend, LocalBackend)
    store, encoder = backend.store, backend.encoder
    candidates = min(MAX_LIMIT, max(2 * LIMIT, LIMIT + 10))
    vector = timer("embed", lambda: encoder.embed_query(question).tolist())
    keyword = timer("keyword_embed", lambda: encoder.keyword.embed_query(question))
    timer("dense", lambda: store.search(vector, limit=candidates, fields=HIT_FIELDS))
    timer(
        "keyword", lambda: store.search(None, keyword=keyword, limit=candidates, fields=HIT_FIELDS)
    )
    bare = timer(
        "hybrid_no_payload",
        lambda: store.search(
            vector, keyword=keyword, limit=candidates, fusion=backend.fusion, fields=()
        ),
    )
    points = timer(
        "hybrid",
        lambda: store.search(
            vector, keyword=keyword, limit=candidates, fusion=backend.fusion, fields=HIT_FIELDS
        ),
    )
    assert len(bare) == len(points)

    def fetch(ids: Sequence[str]) -> Any:
        return timer("fetch", lambda: backend._fetch(ids, {}))

    found = timer(
        "passages",
        lambda: passages(
            points,
            limit=LIMIT,
            budget=DEFAULT_CONTEXT_TOKENS,
            neighbours=backend._neighbours,
            count_tokens=encoder.count_tokens,
            fetch=fetch,
        ),
    )
    timer("hits", lambda: [Hit.from_passage(p) for p in found])
    timer("passages_before", lambda: grown_as_before(backend, points))
    timer("search", lambda: searcher.search(question, limit=LIMIT))


def grown_as_before(backend: LocalBackend, points: Sequence[ScoredPoint]) -> list[Passage]:
    """The same hits grown as before points named their neighbours and tokens (issue 27):
    one scroll per hit for its neighbours, every text's tokens counted."""
    store, count = backend.store, backend.encoder.count_tokens

    def neighbours(root: str, path: str, indexes: Sequence[int]) -> list[dict[str, Any]]:
        match = {schema.ROOT: root, schema.PATH: path, schema.CHUNK_INDEX: list(indexes)}
        return [unnamed(p.payload) for p in store.scroll(match, fields=PASSAGE_FIELDS)]

    hits = [ScoredPoint(p.id, p.score, unnamed(p.payload)) for p in points]
    return passages(
        hits, limit=LIMIT, budget=DEFAULT_CONTEXT_TOKENS, neighbours=neighbours, count_tokens=count
    )


def unnamed(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in NAMED}


def profiles(searcher: Searcher, questions: Sequence[str], rounds: int) -> dict[str, Any]:
    """The profile on the searcher's store (the embedded one, Qdrant Edge) and on a copy of
    its first `MEMORY_POINTS` points in qdrant-client's in-memory mode (which compares a
    question with every point in Python, and says it is not meant for more), with the same
    encoder."""
    edge = profile(searcher, questions, rounds)
    memory = copy_to_memory(searcher.store)
    try:
        other: dict[str, Any] = {"points": memory.count()}
        other.update(profile(Searcher(memory, searcher.encoder), questions, rounds))
    finally:
        memory.close()
    return {"profile_edge": edge, "profile_qdrant_client_memory": other}


def copy_to_memory(store: Store) -> QdrantClientStore:
    """Every point of `store` (vectors, keyword vectors, payloads) in a new in-memory
    qdrant-client collection of the same profile."""
    profile = store.read_profile()
    assert profile is not None
    memory = QdrantClientStore.connect(collection=store.collection, url=":memory:")
    memory.open(profile, create=True)
    batch: list[Point] = []
    for point in itertools.islice(store.scroll({}, with_vectors=True), MEMORY_POINTS):
        batch.append(point)
        if len(batch) >= COPY_BATCH:
            memory.upsert(batch)
            batch = []
    memory.upsert(batch)
    return memory


def profile(searcher: Searcher, questions: Sequence[str], rounds: int) -> dict[str, float]:
    """The p50 of each step over `rounds` passes of `questions` (one pass first, untimed)."""
    for question in questions:
        profile_one(searcher, question, Timer())
    timer = Timer()
    for _ in range(rounds):
        for question in questions:
            profile_one(searcher, question, timer)
    steps = timer.medians()
    steps.setdefault("fetch", 0.0)
    steps["fusion"] = steps["hybrid"] - max(steps["dense"], steps["keyword"])
    steps["payload"] = steps["hybrid"] - steps.pop("hybrid_no_payload")
    parts = ("embed", "keyword_embed", "hybrid", "passages", "hits")
    steps["rest"] = steps["search"] - sum(steps[p] for p in parts)
    return {f"profile_{step}_ms": round(ms, 3) for step, ms in steps.items()}
