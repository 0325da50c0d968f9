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

The engine maps its files into memory, so a write into a full disk is a SIGBUS that kills
the process without a word. Every write first checks the free space of the store's file
system (`StoreFullError` below a margin), and an ENOSPC the engine does report maps to the
same error. The engine also opens its files for writing even to read them, so a store on a
read-only mount cannot be opened at all: one `StoreError` says so.

A new collection maps its vectors, keyword vectors and payloads "cold" (`Memory.Cold`: read
from disk on first use, not loaded into the process when a segment opens). The engine's
default preloads each segment it opens, and building the index opens a second copy of the
points beside the first: with cold files that copy no longer counts against the worker's
memory (a store-only test of 21,000 points: 181 to 150 MB of mapped files at the peak).
The kernel's page cache still holds what searches read.

The folders docsync creates are owner-only (0700), which also covers every file the engine
writes inside; the files docsync writes itself (the lock, profile.json) are 0600.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import qdrant_edge as edge

from plugin.errors import StoreError, StoreFullError, StoreLockedError, StoreRequestError
from plugin.folders import private_dirs
from plugin.keyword import KEYWORD_VECTOR, SparseVector
from plugin.profile import EmbeddingProfile
from plugin.schema import INDEXED_FIELDS
from plugin.store import (
    OVERSAMPLING,
    Fusion,
    Match,
    Point,
    ScoredPoint,
    check_profile,
    collection_missing,
)

T = TypeVar("T")
log = logging.getLogger("docsync.store")

WRITE_BATCH = 64  # points per engine call: keeps each GIL hold to a few milliseconds
SCROLL_PAGE = 1024
# Unindexed points searched by brute force cost ~0.1 ms per 1,000; index past this many.
OPTIMIZE_MIN_UNINDEXED = 10_000
PROFILE_FILE = "profile.json"
SHARD_DIR = "shard"
# An index built in a child process (`optimize(serving=True)`): the copy it indexes, the
# mark that it is whole, and the shard it replaces until the swap is done.
INDEXING_DIR = "shard.indexing"
READY_MARK = ".indexed"
REPLACED_DIR = "shard.replaced"
EDGE_CONFIG = "edge_config.json"  # the engine's, in the shard folder
LOCK_FILE = ".lock"
# Free space kept before any write: the engine's WAL and metadata grow a page at a time, and
# a page it cannot get is a SIGBUS, not an error.
FREE_FLOOR = 32 << 20
# A point's bytes land in the WAL, its segment and the payload indexes: room for that, twice.
SPACE_FACTOR = 4
POINT_OVERHEAD = 256  # id, versions, index entries of one point, beyond its vector and payload
# Building the index copies the unindexed points into a new segment and adds its graph.
OPTIMIZE_BYTES_PER_POINT = 8 << 10
# Errors that mean "you may not write here": a read-only mount, or a folder not ours.
_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


class EdgeStore:
    """`plugin.store.Store` over an in-process Qdrant Edge shard."""

    def __init__(
        self, root: Path, collection: str, *, reading: bool = False, quantization: str = "none"
    ) -> None:
        self.collection = collection
        self._quantization = quantization  # for a collection this store creates
        self.description = f"embedded {root}"
        self._root = root
        self._dir = root / collection
        self._reading = reading
        # A reader of a collection that is not there creates nothing: no folder, no lock.
        self._absent = reading and not (self._dir / SHARD_DIR).is_dir()
        self._lock_fd = None if self._absent else _lock(root, reading=reading)
        if not reading and self._dir.is_dir():
            self._recover()
        self._shard: Any = None
        self._search_lock = threading.Lock()
        self._engine_lock = threading.RLock()

    @classmethod
    def connect(
        cls, *, path: Path, collection: str, reading: bool = False, quantization: str = "none"
    ) -> EdgeStore:
        """`reading`: for commands that only read (status, query, export): nothing is
        created, a lock file that cannot be opened for writing is opened read-only, and
        writes are refused. `quantization`: "int8" gives a collection it creates int8
        copies of the vectors, kept in memory, that searches scan before they rescore."""
        return cls(path, collection, reading=reading, quantization=quantization)

    def ping(self) -> None:
        """In-process, so always there; but a collection's files are opened now, so that
        one the engine cannot open (a read-only mount) fails before a model is loaded or
        anything is printed."""
        if self._exists():
            self._load()

    def open(self, profile: EmbeddingProfile, *, create: bool) -> None:
        if not self._exists():
            if not create or self._reading:
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
        self._writable()
        for i in range(0, len(points), WRITE_BATCH):
            chunk = points[i : i + WRITE_BATCH]
            self._ensure_space(sum(_point_bytes(p) for p in chunk))
            batch = [_edge_point(p) for p in chunk]
            self._use("update", edge.UpdateOperation.upsert_points(batch))

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self._writable()
            self._ensure_space(len(ids) * POINT_OVERHEAD)
            self._use("update", edge.UpdateOperation.delete_points(list(ids)))

    def set_payload(self, ids: Sequence[str], payload: dict[str, Any]) -> None:
        if ids:
            self._writable()
            self._ensure_space(len(ids) * (POINT_OVERHEAD + _json_bytes(payload)))
            operation = edge.UpdateOperation.set_payload(list(ids), payload)
            self._use("update", operation)

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Point]:
        if not ids:
            return []
        records = self._use("retrieve", list(ids), with_payload=True, with_vector=with_vectors)
        return [_point(r) for r in records]

    def scroll(
        self,
        match: Match,
        *,
        fields: Sequence[str] | None = None,
        with_vectors: bool = False,
        lacking_keyword: bool = False,
    ) -> Iterator[Point]:
        offset: Any = None
        payload: bool | list[str] = list(fields) if fields is not None else True
        while True:
            request = edge.ScrollRequest(
                offset=offset,
                limit=SCROLL_PAGE,
                filter=_filter(match, lacking_keyword=lacking_keyword),
                with_payload=payload,
                with_vector=with_vectors,
            )
            records, offset = self._use("scroll", request)
            yield from (_point(r) for r in records)
            if offset is None:
                return

    def search(
        self,
        vector: Sequence[float] | None,
        *,
        limit: int,
        match: Match | None = None,
        keyword: SparseVector | None = None,
        fusion: Fusion | None = None,
    ) -> list[ScoredPoint]:
        queries = _queries(vector, keyword)
        flt = _filter(match)
        if len(queries) == 1:
            request = edge.QueryRequest(
                limit=limit, query=queries[0], filter=flt, with_payload=True, params=_RESCORED
            )
        else:
            fusion = fusion or Fusion()
            depth = fusion.prefetch(limit)
            request = edge.QueryRequest(
                limit=limit,
                prefetches=[
                    edge.Prefetch(limit=depth, query=q, filter=flt, params=_RESCORED)
                    for q in queries
                ],
                query=_fusion(fusion),
                filter=flt,
                with_payload=True,
            )
        with self._search_lock:
            hits = self._use("query", request)
        return [
            ScoredPoint(id=str(h.id), score=float(h.score), payload=dict(h.payload or {}))
            for h in hits
        ]

    def has_keyword_vectors(self) -> bool:
        # The shard's own record of its configuration: the engine has no call that says.
        try:
            config = json.loads((self._dir / SHARD_DIR / EDGE_CONFIG).read_text("utf-8"))
        except FileNotFoundError:
            self._load()  # a shard that is not there says so; one that is has this file
            raise StoreError(f"the embedded store {self._dir} lacks {EDGE_CONFIG}") from None
        except (OSError, ValueError) as exc:
            raise StoreError(f"the embedded store {self._dir}: {EDGE_CONFIG}: {exc}") from exc
        return KEYWORD_VECTOR in (config.get("sparse_vectors") or {})

    def add_keyword_vectors(self) -> None:
        """In place: the engine adds a sparse vector to a shard (an empty one per point)."""
        self._writable()
        if not self.has_keyword_vectors():
            self._ensure_space(0)
            operation = edge.UpdateOperation.create_sparse_vector(
                KEYWORD_VECTOR, modifier=edge.Modifier.Idf
            )
            self._use("update", operation)
            self._use("flush")

    def set_keyword_vectors(self, vectors: Mapping[str, SparseVector]) -> None:
        self._writable()
        items = list(vectors.items())
        for i in range(0, len(items), WRITE_BATCH):
            chunk = items[i : i + WRITE_BATCH]
            self._ensure_space(sum(POINT_OVERHEAD + 8 * len(v.indices) for _, v in chunk))
            batch = [
                edge.PointVectors(id=pid, vector={KEYWORD_VECTOR: _sparse(v)}) for pid, v in chunk
            ]
            self._use("update", edge.UpdateOperation.update_vectors(batch))

    def write_profile(self, profile: EmbeddingProfile) -> None:
        """After the shard's own changes are flushed: a profile never claims more than the
        shard holds."""
        self._writable()
        self._use("flush")
        self._ensure_space(0)
        try:
            _write_atomically(self._dir / PROFILE_FILE, json.dumps(profile.to_dict(), indent=2))
        except OSError as exc:
            raise self._os_error(exc) from exc

    def count(self, match: Match | None = None) -> int:
        request = edge.CountRequest(exact=True, filter=_filter(match))
        return int(self._use("count", request))

    def optimize(
        self, *, serving: bool = False, should_stop: Callable[[], bool] | None = None
    ) -> bool:
        """Build the HNSW index once `OPTIMIZE_MIN_UNINDEXED` points lack it (the engine
        may still decide that nothing is worth indexing: False then).

        The engine holds the GIL while it builds (a minute per 100k points on 2 cores), so a
        process that serves searches meanwhile (`serving`, a daemon) builds it in a child
        process, on a copy of the shard, and swaps the copy in when it is done: searches
        wait only for the swap. Call it from the thread that writes: no write may land
        between the copy and the swap. `should_stop` is asked while the child works; when
        it answers True, the child is stopped and nothing changes."""
        if self._reading:
            return False
        pending = self.unindexed()
        if pending < OPTIMIZE_MIN_UNINDEXED:
            return False
        self._ensure_space(pending * OPTIMIZE_BYTES_PER_POINT // SPACE_FACTOR)
        started = time.monotonic()
        if serving:
            log.info("indexing %d new points in a separate process", pending)
            worked = self._index_elsewhere(pending, should_stop or (lambda: False))
        else:
            log.info("indexing %d new points (searches wait until it is done)", pending)
            with self._search_lock:
                worked = bool(self._use("optimize"))
        log.info("indexed in %.1fs", time.monotonic() - started)
        return worked

    def _index_elsewhere(self, pending: int, should_stop: Callable[[], bool]) -> bool:
        shard_dir, copy = self._dir / SHARD_DIR, self._dir / INDEXING_DIR
        shutil.rmtree(copy, ignore_errors=True)
        self._ensure_space(_folder_bytes(shard_dir) // SPACE_FACTOR)
        self._use("flush")
        try:
            # Searches go on meanwhile: file copies run without the GIL.
            shutil.copytree(shard_dir, copy)
            built = _run_indexer(copy, should_stop)
        except OSError as exc:
            shutil.rmtree(copy, ignore_errors=True)
            raise self._os_error(exc) from exc
        if not built:
            shutil.rmtree(copy, ignore_errors=True)
            return False
        (copy / READY_MARK).touch()
        self._swap_in(copy)
        return True

    def _swap_in(self, copy: Path) -> None:
        """Put the indexed copy where the shard is, and load it; a crash halfway is undone
        or finished by the next open (`_recover`)."""
        shard_dir, old = self._dir / SHARD_DIR, self._dir / REPLACED_DIR
        with self._engine_lock:
            shard, self._shard = self._shard, None
            if shard is not None:
                shard.close()
            os.rename(shard_dir, old)
            os.rename(copy, shard_dir)
            (shard_dir / READY_MARK).unlink()
            self._load()
        shutil.rmtree(old, ignore_errors=True)

    def unindexed(self) -> int:
        """Points whose dense vector the HNSW index lacks. The engine's count of indexed
        vectors includes every (non-empty) keyword vector, always indexed as it is written:
        those are taken out, or a collection with keyword vectors would never be indexed."""
        info = self._use("info")
        indexed = int(info.indexed_vectors_count)
        if self.has_keyword_vectors():
            with_keyword = edge.Filter(must=[edge.HasVectorCondition(KEYWORD_VECTOR)])
            request = edge.CountRequest(exact=True, filter=with_keyword)
            indexed -= int(self._use("count", request))
        return max(0, int(info.points_count) - indexed)

    def close(self) -> None:
        try:
            if self._shard is not None:
                shard, self._shard = self._shard, None
                if not self._reading:
                    self._call(shard.flush)
                shard.close()
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # closing the file releases the lock
                self._lock_fd = None
                _OPEN_HERE.discard(_lock_key(self._root))

    def _exists(self) -> bool:
        return not self._absent and (self._dir / SHARD_DIR).is_dir()

    def _recover(self) -> None:
        """Finish or undo what an index built elsewhere left (a crash between its renames),
        and drop its scratch copies."""
        shard_dir, copy, old = (self._dir / n for n in (SHARD_DIR, INDEXING_DIR, REPLACED_DIR))
        if not shard_dir.exists():
            if (copy / READY_MARK).exists():
                os.rename(copy, shard_dir)
                (shard_dir / READY_MARK).unlink()
            elif old.is_dir():
                os.rename(old, shard_dir)
        for leftover in (copy, old):
            shutil.rmtree(leftover, ignore_errors=True)

    def _create(self, profile: EmbeddingProfile) -> None:
        self._ensure_space(0)
        # The profile goes down first: a shard without one would be refused as foreign.
        try:
            private_dirs(self._dir)
            _write_atomically(self._dir / PROFILE_FILE, json.dumps(profile.to_dict(), indent=2))
        except OSError as exc:
            raise self._os_error(exc) from exc
        cold = edge.Memory.Cold
        params = edge.EdgeVectorParams(
            size=profile.dimension,
            distance=edge.Distance.Cosine,
            memory=cold,
            quantization_config=_quantization(self._quantization),
        )
        sparse = (
            {KEYWORD_VECTOR: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf, memory=cold)}
            if profile.keyword
            else None
        )
        config = edge.EdgeConfig(vectors=params, sparse_vectors=sparse, payload_memory=cold)
        self._shard = self._call(edge.EdgeShard.create, str(self._dir / SHARD_DIR), config)
        for name in INDEXED_FIELDS:
            operation = edge.UpdateOperation.create_field_index(
                name, edge.PayloadSchemaType.Keyword
            )
            self._use("update", operation)

    def _load(self) -> Any:
        if self._shard is None:
            if not self._exists():
                raise collection_missing(self.collection, self.description, hint=False)
            self._shard = self._call(edge.EdgeShard.load, str(self._dir / SHARD_DIR))
        return self._shard

    def _writable(self) -> Any:
        if self._reading:
            raise StoreError(f"the {self.description} store was opened for reading only")
        return self._load()

    def _ensure_space(self, expected: int) -> None:
        """Refuse a write that could fill the disk: the engine would die of it (SIGBUS)."""
        stats = os.statvfs(self._root)
        free = stats.f_bavail * stats.f_frsize
        needed = FREE_FLOOR + SPACE_FACTOR * expected
        if free < needed:
            raise StoreFullError(
                f"the embedded store {self._root} is out of space: {_mib(free)} free, and "
                f"docsync keeps {_mib(needed)} free before it writes (the engine cannot survive "
                "a full disk); free some space or move DOCSYNC_QDRANT_PATH to a larger disk"
            )

    def _use(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call the shard's `method` under the engine lock, so that a shard swapped in by an
        index built elsewhere (`_swap_in`) never meets a call in flight on the one it ends."""
        with self._engine_lock:
            return self._call(getattr(self._load(), method), *args, **kwargs)

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The engine raises plain `Exception` (or `ValueError`) for requests it refuses,
        and for the I/O errors it meets, whose `os error N` says which."""
        try:
            return fn(*args, **kwargs)
        except OSError as exc:
            raise self._os_error(exc) from exc
        except Exception as exc:
            if type(exc) is not Exception and not isinstance(exc, ValueError):
                raise
            raise self._engine_error(str(exc)) from exc

    def _engine_error(self, message: str) -> StoreError:
        for code in (errno.ENOSPC, *_NOT_WRITABLE):
            if f"(os error {code})" in message:
                return self._os_error(OSError(code, os.strerror(code)))
        return StoreRequestError(f"Qdrant Edge refused the request: {message}")

    def _os_error(self, exc: OSError) -> StoreError:
        if exc.errno == errno.ENOSPC:
            stats = os.statvfs(self._root)
            return StoreFullError(
                f"the embedded store {self._root} is out of space "
                f"({_mib(stats.f_bavail * stats.f_frsize)} free); free some space or move "
                "DOCSYNC_QDRANT_PATH to a larger disk"
            )
        if exc.errno in _NOT_WRITABLE:
            return StoreError(
                f"the embedded store {self._root} cannot be opened: {exc.strerror}. Qdrant Edge "
                "opens its files for writing even to read them, so it needs a folder it may "
                "write (copy the store to one and point DOCSYNC_QDRANT_PATH there)"
            )
        return StoreError(f"the embedded store {self._root}: {exc.strerror or exc}")


def _lock(root: Path, *, reading: bool) -> int | None:
    """Hold the store's lock file, exclusively: even a reader needs it alone, as the engine
    may write while it loads. A reader whose lock file cannot be opened for writing opens
    it read-only (flock works on any descriptor); None when a read-only store has none."""
    try:
        if not reading:
            private_dirs(root)
        fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        if exc.errno not in _NOT_WRITABLE:
            raise StoreError(f"the embedded store {root}: {exc.strerror or exc}") from exc
        if not reading:
            raise StoreError(
                f"the embedded store {root} is not writable ({exc.strerror}); "
                "`docsync sync`, `run` and `import` write to it: give this user write access, "
                "or choose another DOCSYNC_QDRANT_PATH"
            ) from exc
        try:
            fd = os.open(root / LOCK_FILE, os.O_RDONLY)
        except FileNotFoundError:
            return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        if _lock_key(root) in _OPEN_HERE:
            raise StoreLockedError(
                f"the embedded store {root} is already open in this process: share one "
                "Searcher (or store) for it, or close the first before opening it again"
            ) from exc
        raise StoreLockedError(
            f"the embedded store {root} is in use by another process (an embedded store "
            "serves one process at a time); stop that process, or run a Qdrant server and "
            "set DOCSYNC_QDRANT_URL"
        ) from exc
    _OPEN_HERE.add(_lock_key(root))
    return fd


# The stores this process holds (a second flock from the same process is refused too, and
# its message should not blame another process).
_OPEN_HERE: set[str] = set()


def _lock_key(root: Path) -> str:
    return os.path.realpath(root)


def _point_bytes(point: Point) -> int:
    sparse = 8 * len(point.keyword.indices) if point.keyword else 0
    return POINT_OVERHEAD + 4 * len(point.vector or ()) + sparse + _json_bytes(point.payload)


def _json_bytes(payload: dict[str, Any]) -> int:
    return len(json.dumps(payload, ensure_ascii=False))


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _run_indexer(copy: Path, should_stop: Callable[[], bool]) -> bool:
    """Build the index of the shard in `copy` in a child process (`python -m
    plugin.edge_store`); True once it is done. A child that fails is logged, one stopped
    by `should_stop` is not."""
    child = subprocess.Popen(
        [sys.executable, "-m", "plugin.edge_store", str(copy)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    while True:
        try:
            _, errors = child.communicate(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            if should_stop():
                child.kill()
                child.communicate()
                return False
    if child.returncode != 0:
        last = (errors or "").strip().splitlines()[-1:] or [f"exit status {child.returncode}"]
        log.warning("indexing in a separate process failed (%s); searches stay exact", last[0])
        return False
    return True


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _filter(match: Match | None, *, lacking_keyword: bool = False) -> Any:
    if not match and not lacking_keyword:
        return None
    conditions: list[Any] = []
    for key, value in (match or {}).items():
        values: Any = list(value)  # all strings or all integers
        condition = edge.MatchValue(value) if isinstance(value, str) else edge.MatchAny(values)
        conditions.append(edge.FieldCondition(key=key, match=condition))
    missing: list[Any] | None = (
        [edge.HasVectorCondition(KEYWORD_VECTOR)] if lacking_keyword else None
    )
    return edge.Filter(must=conditions or None, must_not=missing)


def _quantization(name: str) -> Any:
    """The engine's quantization for `name` (`plugin.choices.QUANTIZATIONS`): int8 copies in
    memory that searches walk (the originals are read only to rescore the best candidates)."""
    if name == "none":
        return None
    # Cached: loaded into memory when the shard opens. Measured at a million points
    # (bench/million.py): search p50 2.5 ms cached against 19.5 ms cold (read from disk on
    # use), for a shard that opens in 10.5 s against 1.6 s. Searches run all the time, a
    # shard opens at a start and when a daemon swaps in a rebuilt index: cached wins.
    return edge.ScalarQuantizationConfig(
        type=edge.ScalarType.Int8, quantile=0.99, memory=edge.Memory.Cached
    )


# Ignored by a collection without quantized vectors (and by keyword vectors).
_RESCORED = edge.SearchParams(
    quantization=edge.QuantizationSearchParams(rescore=True, oversampling=OVERSAMPLING)
)


def _queries(vector: Sequence[float] | None, keyword: SparseVector | None) -> list[Any]:
    queries = []
    if vector is not None:
        queries.append(edge.Query.Nearest([float(x) for x in vector]))
    if keyword is not None:
        queries.append(edge.Query.Nearest(_sparse(keyword), using=KEYWORD_VECTOR))
    if not queries:
        raise ValueError("a search needs a dense vector, a keyword vector or both")
    return queries


def _fusion(fusion: Fusion) -> Any:
    return edge.Fusion.Dbsf() if fusion.method == "dbsf" else edge.Fusion.Rrf(k=fusion.k)


def _sparse(vector: SparseVector) -> Any:
    return edge.SparseVector(indices=vector.indices, values=vector.values)


def _edge_point(point: Point) -> Any:
    if point.vector is None:
        raise StoreRequestError(f"point {point.id} has no vector")
    if point.keyword is None:
        return edge.Point(id=point.id, vector=point.vector, payload=point.payload)
    vectors = {"": point.vector, KEYWORD_VECTOR: _sparse(point.keyword)}
    return edge.Point(id=point.id, vector=vectors, payload=point.payload)


def _point(record: Any) -> Point:
    vector, keyword = record.vector, None
    if isinstance(vector, dict):
        sparse = vector.get(KEYWORD_VECTOR)
        if sparse is not None:
            keyword = SparseVector(list(sparse.indices), [float(v) for v in sparse.values])
        vector = vector.get("")
    if vector is not None and not isinstance(vector, list):
        raise StoreRequestError(f"point {record.id} has a vector docsync does not know")
    payload = dict(record.payload or {})
    return Point(id=str(record.id), payload=payload, vector=vector, keyword=keyword)


def _index(path: str) -> None:
    """The child of `optimize(serving=True)`: load the copy at `path`, build its index."""
    shard = edge.EdgeShard.load(path)
    try:
        shard.optimize()
        shard.flush()
    finally:
        shard.close()


if __name__ == "__main__":  # python -m plugin.edge_store SHARD_COPY
    _index(sys.argv[1])
