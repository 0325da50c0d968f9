"""The store adapter for qdrant-client: a Qdrant server or cluster by URL (and `:memory:`, the
server's stand-in in tests). qdrant-client's own embedded mode by folder is kept for
comparison (bench/store.py); the embedded default is `docsync.plugin.stores.edge`. With
`docsync.plugin.stores.qdrant_models`, the only modules that import qdrant-client.

Foreign exceptions are mapped here, at the boundary: unreachable, timeouts, 5xx and 429
become `StoreUnavailableError` (retried by `docsync.plugin.retry`), other 4xx `StoreRequestError`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from qdrant_client import QdrantClient, models

from docsync.plugin.errors import (
    StoreError,
    StoreLockedError,
    StoreRequestError,
)
from docsync.plugin.guard import guarded
from docsync.plugin.keyword import KEYWORD_VECTOR, SparseVector
from docsync.plugin.passages import with_named
from docsync.plugin.profile import METADATA_KEY, EmbeddingProfile
from docsync.plugin.retry import call_with_retry
from docsync.plugin.schema import INDEXED_FIELDS
from docsync.plugin.settings import redact
from docsync.plugin.store import (
    Around,
    Fusion,
    Match,
    Point,
    ScoredPoint,
    check_profile,
    collection_missing,
)
from docsync.plugin.stores import point_from_record
from docsync.plugin.stores.qdrant_models import (
    RESCORED,
    dense_and_keyword,
    fusion_query,
    map_error,
    point_struct,
    query_filter,
    scalar_quantization,
    sparse,
)

T = TypeVar("T")
SCROLL_PAGE = 512
SERVER_ATTEMPTS = 4


class QdrantClientStore:
    """`docsync.plugin.store.Store` over a `QdrantClient`."""

    def __init__(
        self,
        client: QdrantClient,
        collection: str,
        *,
        description: str = "qdrant-client",
        server: bool = False,
        attempts: int | None = None,
        cluster: Mapping[str, int] | None = None,
        ordering: str = "weak",
        quantization: str = "none",
        owns_client: bool = True,
    ) -> None:
        self._client = client
        # False for a store on one generation, sharing the client of the collection's
        # (`docsync.plugin.stores.qdrant_generations`): closing it leaves the client open.
        self._owns_client = owns_client
        self._quantization = quantization  # for a collection this store creates
        # Applied when this store creates the collection: shard_number, replication_factor,
        # write_consistency_factor (`Settings.cluster_settings`).
        self._cluster = dict(cluster or {})
        self._ordering = models.WriteOrdering(ordering)
        self.collection = collection
        self.description = description
        # Only a server benefits from payload indexes and from retrying; the embedded
        # mode answers in-process and fails the same way twice.
        self._server = server
        self._attempts = attempts or (SERVER_ATTEMPTS if server else 1)
        # The in-process modes are not thread-safe (a scroll while another thread upserts
        # can fail): one call at a time there. A server serialises on its own.
        self._lock: AbstractContextManager[Any] = nullcontext() if server else threading.RLock()
        # Called before each write: a daemon's writer checks there that the generation it
        # writes is still the live one (`docsync.worker.write_target`), and raises if not.
        self.before_write: Callable[[], None] | None = None

    @classmethod
    def connect(
        cls,
        *,
        collection: str,
        url: str | None = None,
        api_key: str | None = None,
        path: Path | None = None,
        attempts: int | None = None,
        cluster: Mapping[str, int] | None = None,
        ordering: str = "weak",
        quantization: str = "none",
    ) -> QdrantClientStore:
        """A store on a server (`url`, retried `attempts` tries per call, default
        `SERVER_ATTEMPTS`), in memory (`url=":memory:"`) or embedded in `path`."""
        if url == ":memory:":
            return cls(QdrantClient(location=":memory:"), collection, description="in-memory")
        if url:
            client = QdrantClient(url=url, api_key=api_key, check_compatibility=False)
            description = f"server {redact(url)}"
            return cls(
                client,
                collection,
                description=description,
                server=True,
                attempts=attempts,
                cluster=cluster,
                ordering=ordering,
                quantization=quantization,
            )
        if path is None:
            raise ValueError("connect() needs a url or a path")
        return cls(_embedded_client(path), collection, description=f"embedded {path}")

    def ping(self) -> None:
        self._call(self._client.get_collections)

    def open(self, profile: EmbeddingProfile, *, create: bool) -> None:
        if not self._call(self._client.collection_exists, self.collection):
            if not create:
                raise collection_missing(self.collection, self.description)
            self._create(profile)
            return
        check_profile(profile, self.read_profile(), collection=self.collection)
        if create and self._server:
            self._add_indexes()

    def _add_indexes(self) -> None:
        """The keyword indexes a collection made by an earlier version lacks (`format` and
        `tags` came with document formats): a writer adds them, once."""
        info = self._call(self._client.get_collection, self.collection)
        have = set(info.payload_schema or {})
        for name in INDEXED_FIELDS:
            if name not in have:
                self._call(
                    self._client.create_payload_index,
                    self.collection,
                    field_name=name,
                    field_schema=models.PayloadSchemaType.KEYWORD,
                )

    def read_profile(self) -> EmbeddingProfile | None:
        if not self._call(self._client.collection_exists, self.collection):
            raise collection_missing(self.collection, self.description, hint=False)
        info = self._call(self._client.get_collection, self.collection)
        data = (info.config.metadata or {}).get(METADATA_KEY)
        return EmbeddingProfile.from_dict(data) if isinstance(data, dict) else None

    def upsert(self, points: Sequence[Point]) -> None:
        if not points:
            return
        structs = [point_struct(p) for p in points]
        self._writing()
        self._call(
            self._client.upsert, self.collection, points=structs, wait=True, ordering=self._ordering
        )

    def delete(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        selector = models.PointIdsList(points=list(ids))
        self._writing()
        self._call(
            self._client.delete,
            self.collection,
            points_selector=selector,
            wait=True,
            ordering=self._ordering,
        )

    def set_payload(self, ids: Sequence[str], payload: dict[str, Any]) -> None:
        if not ids:
            return
        self._writing()
        self._call(
            self._client.set_payload,
            self.collection,
            payload=payload,
            points=list(ids),
            wait=True,
            ordering=self._ordering,
        )

    def retrieve(
        self,
        ids: Sequence[str],
        *,
        with_vectors: bool = False,
        fields: Sequence[str] | None = None,
    ) -> list[Point]:
        if not ids:
            return []
        records = self._call(
            self._client.retrieve,
            self.collection,
            ids=list(ids),
            with_payload=list(fields) if fields is not None else True,
            with_vectors=with_vectors,
        )
        return [point_from_record(r) for r in records]

    def scroll(
        self,
        match: Match,
        *,
        fields: Sequence[str] | None = None,
        with_vectors: bool = False,
        lacking_keyword: bool = False,
        exclude: Match | None = None,
    ) -> Iterator[Point]:
        offset: Any = None
        payload: bool | list[str] = list(fields) if fields is not None else True
        while True:
            records, offset = self._call(
                self._client.scroll,
                self.collection,
                scroll_filter=query_filter(match, lacking_keyword=lacking_keyword, exclude=exclude),
                limit=SCROLL_PAGE,
                offset=offset,
                with_payload=payload,
                with_vectors=with_vectors,
            )
            yield from (point_from_record(r) for r in records)
            if offset is None:
                return

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
        """Two requests to a server: Qdrant has no call that answers both."""
        hits = self.search(
            vector, limit=limit, match=match, keyword=keyword, fusion=fusion, fields=fields
        )
        return with_named(hits, budget, lambda ids: self.retrieve(ids, fields=around_fields))

    def search(
        self,
        vector: Sequence[float] | None,
        *,
        limit: int,
        match: Match | None = None,
        keyword: SparseVector | None = None,
        fusion: Fusion | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[ScoredPoint]:
        flt = query_filter(match)
        queries = dense_and_keyword(vector, keyword)
        # The in-process modes search exactly, and warn about any search parameter.
        rescored = RESCORED if self._server else None
        payload = list(fields) if fields is not None else True
        if len(queries) == 1:
            query, using = queries[0]
            request: dict[str, Any] = {"query": query, "using": using, "search_params": rescored}
        else:
            fusion = fusion or Fusion()
            depth = fusion.prefetch(limit)
            prefetch = [
                models.Prefetch(query=q, using=u, filter=flt, limit=depth, params=rescored)
                for q, u in queries
            ]
            request = {"prefetch": prefetch, "query": fusion_query(fusion)}
            if fusion.guard > 0:
                return self._guarded(queries, fusion, flt, limit, payload, rescored, request)
        response = self._call(
            self._client.query_points,
            self.collection,
            query_filter=flt,
            limit=limit,
            with_payload=payload,
            **request,
        )
        return _scored(response.points)

    def _guarded(
        self,
        queries: list[tuple[Any, str | None]],
        fusion: Fusion,
        flt: models.Filter | None,
        limit: int,
        payload: list[str] | bool,
        rescored: models.SearchParams | None,
        request: dict[str, Any],
    ) -> list[ScoredPoint]:
        """The fused search and each ranking (IDs alone) in one batch, then the guard; the
        payloads of the hits it brings in, in another request when it does."""
        fused = models.QueryRequest(filter=flt, limit=limit, with_payload=payload, **request)
        tops = [
            models.QueryRequest(
                query=q,
                using=u,
                filter=flt,
                limit=limit,
                with_payload=False,
                params=rescored,
            )
            for q, u in queries
        ]
        responses = self._call(self._client.query_batch_points, self.collection, [fused, *tops])
        first, *rankings = (_scored(r.points) for r in responses)
        fields = payload if isinstance(payload, list) else None

        def fetch(ids: list[str]) -> dict[str, dict[str, Any]]:
            return {p.id: p.payload for p in self.retrieve(ids, fields=fields)}

        return guarded(first, rankings, keep=fusion.guard, within=fusion.within, fetch=fetch)

    def has_keyword_vectors(self) -> bool:
        if not self._call(self._client.collection_exists, self.collection):
            raise collection_missing(self.collection, self.description, hint=False)
        info = self._call(self._client.get_collection, self.collection)
        return KEYWORD_VECTOR in (info.config.params.sparse_vectors or {})

    def add_keyword_vectors(self) -> None:
        """In place. A server without that API refuses: `StoreRequestError` then says how
        to get there without it (an import computes keyword vectors, re-embedding nothing)."""
        if self.has_keyword_vectors():
            return
        self._writing()
        config = models.SparseVectorNameConfig(
            sparse=models.SparseVectorConfig(modifier=models.Modifier.IDF)
        )
        try:
            self._call(
                self._client.create_vector_name, self.collection, KEYWORD_VECTOR, config, wait=True
            )
        except StoreRequestError as exc:
            raise StoreRequestError(
                f"{exc}. This Qdrant cannot add the keyword vector to collection "
                f"{self.collection!r} in place: upgrade Qdrant, or move the collection through "
                "`docsync export --vectors` and `docsync import` into a new collection "
                "(nothing is re-embedded)"
            ) from exc

    def set_keyword_vectors(self, vectors: Mapping[str, SparseVector]) -> None:
        if not vectors:
            return
        points = [
            models.PointVectors(id=pid, vector={KEYWORD_VECTOR: sparse(v)})
            for pid, v in vectors.items()
        ]
        self._writing()
        self._call(
            self._client.update_vectors,
            self.collection,
            points=points,
            wait=True,
            ordering=self._ordering,
        )

    def write_profile(self, profile: EmbeddingProfile) -> None:
        self._writing()
        self._call(
            self._client.update_collection,
            self.collection,
            metadata={METADATA_KEY: profile.to_dict()},
            quantization_config=scalar_quantization(self._quantization),
            **self._cluster,
        )

    def count(self, match: Match | None = None) -> int:
        flt = query_filter(match) if match else None
        result = self._call(self._client.count, self.collection, count_filter=flt, exact=True)
        return int(result.count)

    def optimize(
        self, *, serving: bool = False, should_stop: Callable[[], bool] | None = None
    ) -> bool:
        return False  # a server indexes on its own; the embedded mode has no index

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def on(self, collection: str) -> QdrantClientStore:
        """A store on `collection` through this store's client (and its settings, and its
        lock: the in-process modes take one call at a time)."""
        store = QdrantClientStore(
            self._client,
            collection,
            description=self.description,
            server=self._server,
            attempts=self._attempts,
            cluster=self._cluster,
            ordering=self._ordering.value,
            quantization=self._quantization,
            owns_client=False,
        )
        store._lock = self._lock
        return store

    @property
    def client(self) -> QdrantClient:
        return self._client

    def _create(self, profile: EmbeddingProfile) -> None:
        self._call(
            self._client.create_collection,
            self.collection,
            vectors_config=models.VectorParams(
                size=profile.dimension, distance=models.Distance.COSINE
            ),
            sparse_vectors_config=(
                {KEYWORD_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)}
                if profile.keyword
                else None
            ),
            metadata={METADATA_KEY: profile.to_dict()},
            quantization_config=scalar_quantization(self._quantization),
            **self._cluster,
        )
        if self._server:
            for name in INDEXED_FIELDS:
                self._call(
                    self._client.create_payload_index,
                    self.collection,
                    field_name=name,
                    field_schema=models.PayloadSchemaType.KEYWORD,
                )

    def _writing(self) -> None:
        if self.before_write is not None:
            self.before_write()

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def attempt() -> T:
            try:
                return fn(*args, **kwargs)
            except StoreError:
                raise
            except Exception as exc:
                mapped = map_error(exc, self.description)
                if mapped is not None:
                    # A transport error may quote the URL, credentials and all.
                    mapped = type(mapped)(redact(str(mapped)))
                if mapped is None:
                    raise
                raise mapped from exc

        with self._lock:
            return call_with_retry(attempt, attempts=self._attempts)


def _embedded_client(path: Path) -> QdrantClient:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        return QdrantClient(path=str(path))
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise StoreLockedError(
                f"the embedded store {path} is in use by another process (an embedded store "
                "serves one process at a time); stop that process, or run a Qdrant server and "
                "set DOCSYNC_QDRANT_URL"
            ) from exc
        raise


def _scored(points: Sequence[models.ScoredPoint]) -> list[ScoredPoint]:
    return [
        ScoredPoint(id=str(p.id), score=float(p.score), payload=dict(p.payload or {}))
        for p in points
    ]
