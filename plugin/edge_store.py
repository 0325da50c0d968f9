"""The store adapter for Qdrant Edge (`qdrant-edge-py`): Qdrant's own engine in-process, the
zero-setup default. The only module that imports qdrant_edge.

On disk, one folder per collection under the store folder:

    <DOCSYNC_QDRANT_PATH>/.lock               held while a process uses the store
    <DOCSYNC_QDRANT_PATH>/<collection>/profile.json   the embedding profile (the engine
                                                      has no collection metadata)
    <DOCSYNC_QDRANT_PATH>/<collection>/shard/         the Edge shard: segments, WAL, indexes

The engine builds its HNSW index only in `optimize()`, which blocks the whole process (it
holds the GIL: 60 s for 100k points on 2 cores). `optimize()` here runs it only once enough
points are unindexed, and never while a search is in flight; writes go in small batches so a
search between them waits milliseconds, not seconds.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import qdrant_edge as edge

from plugin.errors import StoreLockedError, StoreRequestError
from plugin.profile import EmbeddingProfile
from plugin.schema import INDEXED_FIELDS
from plugin.store import Match, Point, ScoredPoint, check_profile, collection_missing

T = TypeVar("T")
log = logging.getLogger("docsync.store")

WRITE_BATCH = 64  # points per engine call: keeps each GIL hold to a few milliseconds
SCROLL_PAGE = 1024
# Unindexed points searched by brute force cost ~0.1 ms per 1,000; index past this many.
OPTIMIZE_MIN_UNINDEXED = 10_000
PROFILE_FILE = "profile.json"
SHARD_DIR = "shard"
LOCK_FILE = ".lock"


class EdgeStore:
    """`plugin.store.Store` over an in-process Qdrant Edge shard."""

    def __init__(self, root: Path, collection: str) -> None:
        self.collection = collection
        self.description = f"embedded {root}"
        self._dir = root / collection
        self._lock_handle: IO[bytes] | None = _lock(root)
        self._shard: Any = None
        self._search_lock = threading.Lock()

    @classmethod
    def connect(cls, *, path: Path, collection: str) -> EdgeStore:
        return cls(path, collection)

    def ping(self) -> None:
        """In-process: always there."""

    def open(self, profile: EmbeddingProfile, *, create: bool) -> None:
        if not self._exists():
            if not create:
                raise collection_missing(self.collection, self.description)
            self._create(profile)
            return
        check_profile(profile, self.read_profile(), collection=self.collection)
        self._load()

    def read_profile(self) -> EmbeddingProfile | None:
        if not self._exists():
            raise collection_missing(self.collection, self.description, hint=False)
        try:
            data = json.loads((self._dir / PROFILE_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return EmbeddingProfile.from_dict(data)

    def upsert(self, points: Sequence[Point]) -> None:
        shard = self._load()
        for i in range(0, len(points), WRITE_BATCH):
            batch = [_edge_point(p) for p in points[i : i + WRITE_BATCH]]
            _call(shard.update, edge.UpdateOperation.upsert_points(batch))

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            _call(self._load().update, edge.UpdateOperation.delete_points(list(ids)))

    def set_payload(self, ids: Sequence[str], payload: dict[str, Any]) -> None:
        if ids:
            operation = edge.UpdateOperation.set_payload(list(ids), payload)
            _call(self._load().update, operation)

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Point]:
        if not ids:
            return []
        records = _call(
            self._load().retrieve, list(ids), with_payload=True, with_vector=with_vectors
        )
        return [_point(r) for r in records]

    def scroll(
        self,
        match: Match,
        *,
        fields: Sequence[str] | None = None,
        with_vectors: bool = False,
    ) -> Iterator[Point]:
        shard = self._load()
        offset: Any = None
        payload: bool | list[str] = list(fields) if fields is not None else True
        while True:
            request = edge.ScrollRequest(
                offset=offset,
                limit=SCROLL_PAGE,
                filter=_filter(match),
                with_payload=payload,
                with_vector=with_vectors,
            )
            records, offset = _call(shard.scroll, request)
            yield from (_point(r) for r in records)
            if offset is None:
                return

    def search(
        self, vector: Sequence[float], *, limit: int, match: Match | None = None
    ) -> list[ScoredPoint]:
        request = edge.QueryRequest(
            limit=limit,
            query=edge.Query.Nearest([float(x) for x in vector]),
            filter=_filter(match),
            with_payload=True,
        )
        with self._search_lock:
            hits = _call(self._load().query, request)
        return [
            ScoredPoint(id=str(h.id), score=float(h.score), payload=dict(h.payload or {}))
            for h in hits
        ]

    def count(self, match: Match | None = None) -> int:
        request = edge.CountRequest(exact=True, filter=_filter(match))
        return int(_call(self._load().count, request))

    def optimize(self) -> bool:
        """Build the HNSW index once `OPTIMIZE_MIN_UNINDEXED` points lack it (the engine
        may still decide that nothing is worth indexing: False then)."""
        shard = self._load()
        info = shard.info()
        pending = info.points_count - info.indexed_vectors_count
        if pending < OPTIMIZE_MIN_UNINDEXED:
            return False
        log.info("indexing %d new points (searches wait until it is done)", pending)
        started = time.monotonic()
        with self._search_lock:
            worked = bool(_call(shard.optimize))
        log.info("indexed in %.1fs", time.monotonic() - started)
        return worked

    def close(self) -> None:
        if self._shard is not None:
            self._shard.flush()
            self._shard.close()
            self._shard = None
        if self._lock_handle is not None:
            self._lock_handle.close()  # closing the file releases the lock
            self._lock_handle = None

    def _exists(self) -> bool:
        return (self._dir / SHARD_DIR).is_dir()

    def _create(self, profile: EmbeddingProfile) -> None:
        # The profile goes down first: a shard without one would be refused as foreign.
        self._dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(self._dir / PROFILE_FILE, json.dumps(profile.to_dict(), indent=2))
        params = edge.EdgeVectorParams(size=profile.dimension, distance=edge.Distance.Cosine)
        self._shard = _call(
            edge.EdgeShard.create, str(self._dir / SHARD_DIR), edge.EdgeConfig(vectors=params)
        )
        for name in INDEXED_FIELDS:
            operation = edge.UpdateOperation.create_field_index(
                name, edge.PayloadSchemaType.Keyword
            )
            _call(self._shard.update, operation)

    def _load(self) -> Any:
        if self._shard is None:
            if not self._exists():
                raise collection_missing(self.collection, self.description, hint=False)
            self._shard = _call(edge.EdgeShard.load, str(self._dir / SHARD_DIR))
        return self._shard


def _lock(root: Path) -> IO[bytes]:
    root.mkdir(parents=True, exist_ok=True)
    handle = open(root / LOCK_FILE, "ab")  # noqa: SIM115 (held open for the store's life)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.close()
        raise StoreLockedError(
            f"the embedded store {root} is in use by another process (an embedded store "
            "serves one process at a time); stop that process, or run a Qdrant server and "
            "set DOCSYNC_QDRANT_URL"
        ) from exc
    return handle


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """The engine raises plain `Exception` (or `ValueError`) for requests it refuses."""
    try:
        return fn(*args, **kwargs)
    except ValueError as exc:
        raise StoreRequestError(f"Qdrant Edge refused the request: {exc}") from exc
    except Exception as exc:
        if type(exc) is Exception:
            raise StoreRequestError(f"Qdrant Edge refused the request: {exc}") from exc
        raise


def _filter(match: Match | None) -> Any:
    if not match:
        return None
    conditions: list[Any] = []
    for key, value in match.items():
        condition = edge.MatchValue(value) if isinstance(value, str) else edge.MatchAny(list(value))
        conditions.append(edge.FieldCondition(key=key, match=condition))
    return edge.Filter(must=conditions)


def _edge_point(point: Point) -> Any:
    if point.vector is None:
        raise StoreRequestError(f"point {point.id} has no vector")
    return edge.Point(id=point.id, vector=point.vector, payload=point.payload)


def _point(record: Any) -> Point:
    vector = record.vector
    if vector is not None and not isinstance(vector, list):
        raise StoreRequestError(f"point {record.id} has named vectors; docsync uses one vector")
    return Point(id=str(record.id), payload=dict(record.payload or {}), vector=vector)
