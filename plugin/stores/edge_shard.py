"""One Qdrant Edge shard, with docsync's data in and out: the only module that speaks the
engine's request types (`qdrant-edge-py`).

`EdgeStore` (`docsync.plugin.stores.edge`) keeps the folder, the lock, the profile and the free
space; it calls a `LocalShard` in its own process, or a shard held by a child process
(`docsync.plugin.stores.edge_host`): both are a `docsync.plugin.stores.shard.Shard`. The
engine's own errors pass through unchanged: `EdgeStore` turns them into docsync's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import qdrant_edge as edge

from docsync.plugin.errors import StoreRequestError
from docsync.plugin.guard import guarded
from docsync.plugin.keyword import KEYWORD_VECTOR, SparseVector
from docsync.plugin.schema import INDEXED_FIELDS
from docsync.plugin.store import OVERSAMPLING, Around, Fusion, Match, Point, ScoredPoint, floats
from docsync.plugin.stores import point_from_record
from docsync.plugin.stores.edge_folder import Held, hold_shard, let_go
from docsync.plugin.stores.shard import SCROLL_PAGE, Offset, search_around

# The size of a segment's vectors (KB) past which the engine builds its index: None keeps
# the engine's own (10,000 KB), as every store is made. A new shard keeps the value in its
# `edge_config.json`. Tests lower it, so that a few thousand vectors are worth an index.
INDEXING_THRESHOLD_KB: int | None = None


class LocalShard:
    """An Edge shard opened in this process (a `docsync.plugin.stores.shard.Shard`). The
    engine holds the GIL for each call: an open (a second per million points, ten with int8
    copies) and an index build (minutes) stop every other thread of the process meanwhile."""

    def __init__(self, shard: edge.EdgeShard, held: Held | None = None) -> None:
        self._shard = shard
        self._held = held  # the shard's lock, let go when it is closed

    @classmethod
    def load(cls, path: str, *, hold: bool = False) -> LocalShard:
        """`hold`: wait for the shard's lock (`hold_shard`) and keep it while it is open. An
        index builder does not: its parent holds it for it."""
        held = hold_shard(path) if hold else None
        try:
            return cls(edge.EdgeShard.load(path), held)
        except BaseException:
            let_go(held)
            raise

    @classmethod
    def create(
        cls, path: str, *, dimension: int, keyword: bool, quantization: str, hold: bool = False
    ) -> LocalShard:
        """A new shard of cosine vectors of `dimension`, with the keyword vector when
        `keyword`, and keyword indexes on `docsync.plugin.schema.INDEXED_FIELDS`.

        Vectors, keyword vectors and payloads are mapped "cold" (`Memory.Cold`: read from
        disk on first use, not loaded when a segment opens). The engine's default preloads
        each segment it opens, and building the index opens a second copy of the points
        beside the first: with cold files that copy no longer counts against the worker's
        memory (a store-only test of 21,000 points: 181 to 150 MB of mapped files at the
        peak). The kernel's page cache still holds what searches read."""
        cold = edge.Memory.Cold
        params = edge.EdgeVectorParams(
            size=dimension,
            distance=edge.Distance.Cosine,
            memory=cold,
            quantization_config=_quantization(quantization),
        )
        sparse = (
            {KEYWORD_VECTOR: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf, memory=cold)}
            if keyword
            else None
        )
        optimizers = (
            None
            if INDEXING_THRESHOLD_KB is None
            else edge.EdgeOptimizersConfig(indexing_threshold=INDEXING_THRESHOLD_KB)
        )
        config = edge.EdgeConfig(
            vectors=params, sparse_vectors=sparse, payload_memory=cold, optimizers=optimizers
        )
        held = hold_shard(path) if hold else None
        try:
            shard = cls(edge.EdgeShard.create(path, config), held)
        except BaseException:
            let_go(held)
            raise
        for name in INDEXED_FIELDS:
            operation = edge.UpdateOperation.create_field_index(
                name, edge.PayloadSchemaType.Keyword
            )
            shard._shard.update(operation)
        return shard

    # writes -------------------------------------------------------------------------------

    def upsert(self, points: Sequence[Point]) -> None:
        batch = [_edge_point(p) for p in points]
        self._shard.update(edge.UpdateOperation.upsert_points(batch))

    def delete(self, ids: Sequence[str]) -> None:
        self._shard.update(edge.UpdateOperation.delete_points(list(ids)))

    def set_payload(self, ids: Sequence[str], payload: dict[str, Any]) -> None:
        self._shard.update(edge.UpdateOperation.set_payload(list(ids), payload))

    def add_keyword_vector(self) -> None:
        operation = edge.UpdateOperation.create_sparse_vector(
            KEYWORD_VECTOR, modifier=edge.Modifier.Idf
        )
        self._shard.update(operation)

    def set_keyword_vectors(self, vectors: Sequence[tuple[str, SparseVector]]) -> None:
        batch = [
            edge.PointVectors(id=pid, vector={KEYWORD_VECTOR: _sparse(v)}) for pid, v in vectors
        ]
        self._shard.update(edge.UpdateOperation.update_vectors(batch))

    def flush(self) -> None:
        self._shard.flush()

    def optimize(self) -> bool:
        return bool(self._shard.optimize())

    def close(self) -> None:
        try:
            self._shard.close()
        finally:
            held, self._held = self._held, None
            let_go(held)

    # reads --------------------------------------------------------------------------------

    def retrieve(
        self,
        ids: Sequence[str],
        *,
        with_vectors: bool = False,
        fields: Sequence[str] | None = None,
    ) -> list[Point]:
        payload = list(fields) if fields is not None else True
        records = self._shard.retrieve(list(ids), with_payload=payload, with_vector=with_vectors)
        return [point_from_record(r) for r in records]

    def _payloads(
        self, ids: Sequence[str], fields: Sequence[str] | None
    ) -> dict[str, dict[str, Any]]:
        return {p.id: p.payload for p in self.retrieve(ids, fields=fields)}

    def scroll_page(
        self,
        match: Match | None,
        *,
        offset: Offset = None,
        fields: Sequence[str] | None = None,
        with_vectors: bool = False,
        lacking_keyword: bool = False,
        exclude: Match | None = None,
        limit: int = SCROLL_PAGE,
    ) -> tuple[list[Point], Offset]:
        """One page of the points matching `match` and none of `exclude`, and the offset of
        the next (None: the last page)."""
        request = edge.ScrollRequest(
            offset=offset,
            limit=limit,
            filter=_filter(match, lacking_keyword=lacking_keyword, exclude=exclude),
            with_payload=list(fields) if fields is not None else True,
            with_vector=with_vectors,
        )
        records, following = self._shard.scroll(request)
        return [point_from_record(r) for r in records], following

    def search(
        self,
        vector: Sequence[float] | None,
        *,
        limit: int,
        match: Match | None = None,
        keyword: SparseVector | None = None,
        fusion: Fusion | None = None,
        exact: bool = False,
        fields: Sequence[str] | None = None,
    ) -> list[ScoredPoint]:
        """`exact`: every point compared with the full vectors (a benchmark's truth)."""
        queries = _queries(vector, keyword)
        flt = _filter(match)
        params = _EXACT if exact else _RESCORED
        payload = list(fields) if fields is not None else True
        if len(queries) == 1:
            request = edge.QueryRequest(
                limit=limit, query=queries[0], filter=flt, with_payload=payload, params=params
            )
        else:
            fusion = fusion or Fusion()
            depth = fusion.prefetch(limit)
            request = edge.QueryRequest(
                limit=limit,
                prefetches=[
                    edge.Prefetch(limit=depth, query=q, filter=flt, params=params) for q in queries
                ],
                query=_fusion(fusion),
                filter=flt,
                with_payload=payload,
            )
            if fusion.guard > 0:
                # Each ranking asked in the same batch, IDs alone (its first hits and their
                # company, see `guarded`): one call to the engine, unless the guard acts.
                tops = [
                    edge.QueryRequest(
                        limit=limit, query=q, filter=flt, with_payload=False, params=params
                    )
                    for q in queries
                ]
                fused, *rankings = (
                    _scored(hits)
                    for hits in self._shard.query_batch(edge.QueryBatchRequest([request, *tops]))
                )
                return guarded(
                    fused,
                    rankings,
                    keep=fusion.guard,
                    within=fusion.within,
                    fetch=lambda ids: self._payloads(ids, fields),
                )
        return _scored(self._shard.query(request))

    def search_around(
        self,
        vector: Sequence[float] | None,
        *,
        limit: int,
        match: Match | None = None,
        keyword: SparseVector | None = None,
        fusion: Fusion | None = None,
        fields: Sequence[str] | None = None,
        budget: int,
        around_fields: Sequence[str],
    ) -> Around:
        return search_around(
            self,
            vector,
            limit=limit,
            match=match,
            keyword=keyword,
            fusion=fusion,
            fields=fields,
            budget=budget,
            around_fields=around_fields,
        )

    def warm(self) -> None:
        """Ask one search (by a stored point's vectors, hybrid where it has a keyword one),
        so that the first search a user asks is not the first the shard answers: measured
        at a million unindexed int8 points (bench/million.py), the first search after the
        open took 1.06 s, the later ones at most 0.2 s (while a build ran beside them); at a
        million indexed points (bench/query.py), the first hybrid search 917 ms."""
        points, _ = self.scroll_page(None, with_vectors=True, limit=1)
        if points and points[0].vector is not None:
            point = points[0]
            fusion = Fusion() if point.keyword is not None else None
            self.search(point.vector, limit=10, keyword=point.keyword, fusion=fusion)

    def count(self, match: Match | None = None, *, lacking_keyword: bool = False) -> int:
        flt = _filter(match, lacking_keyword=lacking_keyword)
        return int(self._shard.count(edge.CountRequest(exact=True, filter=flt)))

    def unindexed(self, *, keyword: bool) -> int:
        """Points whose dense vector the HNSW index lacks, by the engine's counts: at least
        this many (the count of indexed vectors keeps deleted and rewritten points until a
        build drops them; `EdgeStore` adds what it wrote, `docsync.plugin.stores.edge_count`). The
        engine's count of indexed vectors includes every (non-empty) keyword vector, always
        indexed as it is written (`keyword`: the shard has them): those are taken out, or a
        collection with keyword vectors would never be indexed."""
        info = self._shard.info()
        indexed = int(info.indexed_vectors_count)
        if keyword:
            with_keyword = edge.Filter(must=[edge.HasVectorCondition(KEYWORD_VECTOR)])
            indexed -= int(self._shard.count(edge.CountRequest(exact=True, filter=with_keyword)))
        return max(0, int(info.points_count) - indexed)


def _filter(
    match: Match | None, *, lacking_keyword: bool = False, exclude: Match | None = None
) -> Any:
    if not match and not lacking_keyword and not exclude:
        return None
    excluded = _conditions(exclude)
    if lacking_keyword:
        excluded.append(edge.HasVectorCondition(KEYWORD_VECTOR))
    return edge.Filter(must=_conditions(match) or None, must_not=excluded or None)


def _conditions(match: Match | None) -> list[Any]:
    conditions: list[Any] = []
    for key, value in (match or {}).items():
        values: Any = list(value)  # all strings or all integers
        condition = edge.MatchValue(value) if isinstance(value, str) else edge.MatchAny(values)
        conditions.append(edge.FieldCondition(key=key, match=condition))
    return conditions


def _quantization(name: str) -> Any:
    """The engine's quantization for `name` (`docsync.plugin.choices.QUANTIZATIONS`): int8 copies in
    memory that searches walk (the originals are read only to rescore the best candidates)."""
    if name == "none":
        return None
    # Cached: loaded into memory when the shard opens. Measured at a million points
    # (bench/million.py): search p50 2.5 ms cached against 19.5 ms cold (read from disk on
    # use), for a shard that opens in 10.5 s against 1.6 s. Searches run all the time, a
    # shard opens at a start and when a daemon swaps in a rebuilt index (in a process of
    # its own, `docsync.plugin.stores.edge_host`, so no search waits for it): cached wins.
    return edge.ScalarQuantizationConfig(
        type=edge.ScalarType.Int8, quantile=0.99, memory=edge.Memory.Cached
    )


# Ignored by a collection without quantized vectors (and by keyword vectors).
_RESCORED = edge.SearchParams(
    quantization=edge.QuantizationSearchParams(rescore=True, oversampling=OVERSAMPLING)
)
_EXACT = edge.SearchParams(exact=True, quantization=edge.QuantizationSearchParams(ignore=True))


def _queries(vector: Sequence[float] | None, keyword: SparseVector | None) -> list[Any]:
    queries = []
    if vector is not None:
        queries.append(edge.Query.Nearest(floats(vector)))
    if keyword is not None:
        queries.append(edge.Query.Nearest(_sparse(keyword), using=KEYWORD_VECTOR))
    if not queries:
        raise ValueError("a search needs a dense vector, a keyword vector or both")
    return queries


def _fusion(fusion: Fusion) -> Any:
    if fusion.method == "dbsf":
        return edge.Fusion.Dbsf()
    weights = list(fusion.weights) if fusion.weights is not None else None
    return edge.Fusion.Rrf(k=fusion.k, weights=weights)


def _scored(hits: Any) -> list[ScoredPoint]:
    return [
        ScoredPoint(id=str(h.id), score=float(h.score), payload=dict(h.payload or {})) for h in hits
    ]


def _sparse(vector: SparseVector) -> Any:
    return edge.SparseVector(indices=vector.indices, values=vector.values)


def _edge_point(point: Point) -> Any:
    if point.vector is None:
        raise StoreRequestError(f"point {point.id} has no vector")
    if point.keyword is None:
        return edge.Point(id=point.id, vector=point.vector, payload=point.payload)
    vectors = {"": point.vector, KEYWORD_VECTOR: _sparse(point.keyword)}
    return edge.Point(id=point.id, vector=vectors, payload=point.payload)
