"""The store adapter for Qdrant Edge (`qdrant-edge-py`): Qdrant's own engine in-process, the
zero-setup default. This module keeps the profile, the batches and when to build the index;
`docsync.plugin.stores.edge_folder` keeps the folder (its locks, the shard's generations and
the link to the one in use, recovery, durable writes, free space), and
`docsync.plugin.stores.edge_shard` speaks to the engine, in this process or (for a daemon)
in a child process of its own (`docsync.plugin.stores.edge_host`), both behind one typed seam
(`docsync.plugin.stores.shard.Shard`).

The engine builds its HNSW index only in `optimize()`, which blocks the whole process (it
holds the GIL: 60 s for 100k points on 2 cores). `optimize()` here runs it only once enough
points are unindexed, and never while a search is in flight; writes go in small batches so a
search between them waits milliseconds, not seconds. A daemon builds it elsewhere: on a copy
of the shard (`shard.<n+1>`), in a child process (`docsync.plugin.stores.edge_index`); the
copy is opened by a second child while the first keeps answering, and the link is switched
to it (one rename: a crash before it keeps the old shard, after it the new one).

The engine maps its files into memory, so a write into a full disk is a SIGBUS that kills
the process without a word. Every write first checks the free space of the store's file
system (`StoreFullError` below a margin), and an ENOSPC the engine does report maps to the
same error. The engine also opens its files for writing even to read them, so a store on a
read-only mount cannot be opened at all: one `StoreError` says so.

The folders docsync creates are owner-only (0700), which also covers every file the engine
writes inside; the files docsync writes itself (the lock, profile.json) are 0600.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from docsync.plugin.errors import (
    StoreError,
    StoreRequestError,
)
from docsync.plugin.folders import private_dirs
from docsync.plugin.generations import generation_name
from docsync.plugin.keyword import KEYWORD_VECTOR, SparseVector
from docsync.plugin.profile import EmbeddingProfile
from docsync.plugin.store import (
    Around,
    Fusion,
    Match,
    Point,
    ScoredPoint,
    check_profile,
    collection_missing,
)
from docsync.plugin.stores import edge_folder, edge_index
from docsync.plugin.stores.edge_count import IndexLedger
from docsync.plugin.stores.edge_folder import (
    GENERATION,
    PROFILE_FILE,
    SHARD_DIR,
    SPACE_FACTOR,
)
from docsync.plugin.stores.edge_keeper import ShardKeeper
from docsync.plugin.stores.edge_shard import LocalShard
from docsync.plugin.stores.preread import preread
from docsync.plugin.stores.shard import Offset

T = TypeVar("T")
log = logging.getLogger("docsync.store")

WRITE_BATCH = 64  # points per engine call: keeps each GIL hold to a few milliseconds
# Unindexed points searched by brute force cost ~0.1 ms per 1,000; index past this many.
OPTIMIZE_MIN_UNINDEXED = 10_000
EDGE_CONFIG = "edge_config.json"  # the engine's, in the shard folder
POINT_OVERHEAD = 256  # id, versions, index entries of one point, beyond its vector and payload
# Building the index copies the unindexed points into a new segment and adds its graph.
OPTIMIZE_BYTES_PER_POINT = 8 << 10
# A new shard's files once it is first opened (its segment, WAL and payload index pages):
# 43 MiB measured with keyword vectors. A store made on a 40 MiB disk passed the floor alone,
# and the shard's first open died of a bus error with the disk full.
NEW_SHARD_BYTES = 48 << 20


class EdgeStore(ShardKeeper):
    """`docsync.plugin.store.Store` over a Qdrant Edge shard (`ShardKeeper`)."""

    def __init__(
        self,
        root: Path,
        collection: str,
        *,
        reading: bool = False,
        quantization: str = "none",
        serving: bool = False,
        locked: bool = False,
    ) -> None:
        super().__init__(root, collection, reading=reading, serving=serving)
        self._quantization = quantization  # for a collection this store creates
        self._ledger: IndexLedger | None = None  # read when first needed
        self._search_lock = threading.Lock()
        # `locked`: a store on one generation, opened by the process that holds the store's
        # lock already (`docsync.plugin.stores.edge_generations`).
        self._lock_fd = (
            None if self._absent or locked else edge_folder.lock_store(root, reading=reading)
        )
        self._generation = not locked  # the collection's name, not one generation's
        if not reading and self._generation:
            try:
                edge_folder.recover_generation(root, collection)
                edge_folder.first_generation(root, collection)
            except OSError as exc:
                self.close()
                raise self._os_error(exc) from exc
        if not reading and self._dir.is_dir():
            try:
                self._recover()
            except OSError as exc:
                self.close()
                raise self._os_error(exc) from exc

    @classmethod
    def connect(
        cls,
        *,
        path: Path,
        collection: str,
        reading: bool = False,
        quantization: str = "none",
        serving: bool = False,
    ) -> EdgeStore:
        """`reading`: for commands that only read (status, query, export): nothing is
        created, a lock file that cannot be opened for writing is opened read-only, and
        writes are refused. `quantization`: "int8" gives a collection it creates int8
        copies of the vectors, kept in memory, that searches scan before they rescore.
        `serving`: for a process that answers searches while it writes (a daemon): the
        shard is held by a child process (`docsync.plugin.stores.edge_host`), so opening a
        rebuilt one never stops this process."""
        return cls(path, collection, reading=reading, quantization=quantization, serving=serving)

    def on(self, collection: str, *, reading: bool | None = None) -> EdgeStore:
        """A store on `collection` of this store's folder, under this store's lock. Where
        that is the shard this store has open, it is lent (the engine must not open one
        shard twice): the store answered uses it, and leaves it open when closed."""
        store = EdgeStore(
            self._root,
            collection,
            reading=self._reading if reading is None else reading,
            quantization=self._quantization,
            serving=self._serving,
            locked=True,
        )
        if self._shard is not None and store._exists() and store._live() == self._loaded_from:
            store._shard, store._loaded_from, store._borrowed = self._shard, self._loaded_from, True
        return store

    def let_go_of(self, folder: Path) -> None:
        """Close the shard if it was opened from under `folder` (a generation about to be
        deleted); the next request opens the one the link names then."""
        loaded = self._loaded_from
        if loaded is not None and loaded.is_relative_to(folder.resolve()) and not self._borrowed:
            shard, self._shard, self._loaded_from = self._shard, None, None
            if shard is not None:
                shard.close()

    def retire(self) -> None:
        """This store's generation is about to be deleted (a switch replaced it): its shard
        is closed once the requests in flight are answered, and each later request finds
        the collection missing (a reader then looks for the live generation), never opening
        the shard again under the deletion. The store's lock, if it holds it, stays held."""
        with self._turns.alone():
            self._absent = True
            shard, self._shard = self._shard, None
        if shard is not None and not self._borrowed:
            shard.close()

    @property
    def root(self) -> Path:
        return self._root

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
            self._use(lambda shard: shard.upsert(chunk))  # noqa: B023 (called here)
            self._written().wrote(len(chunk))

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self._writable()
            self._ensure_space(len(ids) * POINT_OVERHEAD)
            self._use(lambda shard: shard.delete(ids))

    def set_payload(self, ids: Sequence[str], payload: dict[str, Any]) -> None:
        if ids:
            self._writable()
            self._ensure_space(len(ids) * (POINT_OVERHEAD + _json_bytes(payload)))
            self._use(lambda shard: shard.set_payload(ids, payload))
            self._written().wrote(len(ids))  # the engine moves them out of the index

    def retrieve(
        self,
        ids: Sequence[str],
        *,
        with_vectors: bool = False,
        fields: Sequence[str] | None = None,
    ) -> list[Point]:
        if not ids:
            return []
        return self._use(
            lambda shard: shard.retrieve(ids, with_vectors=with_vectors, fields=fields)
        )

    def scroll(
        self,
        match: Match,
        *,
        fields: Sequence[str] | None = None,
        with_vectors: bool = False,
        lacking_keyword: bool = False,
        exclude: Match | None = None,
    ) -> Iterator[Point]:
        offset: Offset = None
        while True:
            after = offset
            points, offset = self._use(
                lambda shard: shard.scroll_page(
                    match,
                    offset=after,  # noqa: B023 (called here, before the loop goes on)
                    fields=fields,
                    with_vectors=with_vectors,
                    lacking_keyword=lacking_keyword,
                    exclude=exclude,
                )
            )
            yield from points
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
        fields: Sequence[str] | None = None,
    ) -> list[ScoredPoint]:
        # A serving store builds its index elsewhere: its searches never wait for a build.
        with contextlib.nullcontext() if self._serving else self._search_lock:
            return self._use(
                lambda shard: shard.search(
                    vector, limit=limit, match=match, keyword=keyword, fusion=fusion, fields=fields
                )
            )

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
        with contextlib.nullcontext() if self._serving else self._search_lock:
            return self._use(
                lambda shard: shard.search_around(
                    vector,
                    limit=limit,
                    match=match,
                    keyword=keyword,
                    fusion=fusion,
                    fields=fields,
                    budget=budget,
                    around_fields=around_fields,
                )
            )

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
        """In place: the engine adds a sparse vector to a shard (an empty one per point).

        Asked again after a shard process that died (`_use`), it may already be there: that
        process added it before it died. qdrant-edge 0.9 takes the repeat as done; an engine
        that refuses it is taken at its word only when the shard lacks the vector."""
        self._writable()
        if not self.has_keyword_vectors():
            self._ensure_space(0)
            try:
                self._use(lambda shard: shard.add_keyword_vector())
            except StoreRequestError:
                if not self.has_keyword_vectors():
                    raise
            self._use(lambda shard: shard.flush())

    def set_keyword_vectors(self, vectors: Mapping[str, SparseVector]) -> None:
        self._writable()
        items = list(vectors.items())
        for i in range(0, len(items), WRITE_BATCH):
            chunk = items[i : i + WRITE_BATCH]
            self._ensure_space(sum(POINT_OVERHEAD + 8 * len(v.indices) for _, v in chunk))
            self._use(lambda shard: shard.set_keyword_vectors(chunk))  # noqa: B023 (called here)
            self._written().wrote(len(chunk))

    def write_profile(self, profile: EmbeddingProfile) -> None:
        """After the shard's own changes are flushed: a profile never claims more than the
        shard holds."""
        self._writable()
        self._ensure_space(0)  # a flush writes too
        self._use(lambda shard: shard.flush())
        try:
            edge_folder.write_atomically(self._dir / PROFILE_FILE, _profile_text(profile))
        except OSError as exc:
            raise self._os_error(exc) from exc

    def count(self, match: Match | None = None) -> int:
        return self._use(lambda shard: shard.count(match))

    def warm(self) -> None:
        """Read the shard's files into the page cache (`docsync.plugin.stores.preread`) and
        ask one search, so that later searches do not read the disk (at a million points,
        the first hybrid search after an open took 917 ms, and each question's first 18-20
        ms with the cache dropped). A serving store's shard process does both whenever it
        opens a shard; this is for an in-process store that will answer many searches (an
        application's, a benchmark's)."""
        if not self._serving:
            preread(self._dir)
            self._use(lambda shard: shard.warm() if isinstance(shard, LocalShard) else None)

    def optimize(
        self, *, serving: bool = False, should_stop: Callable[[], bool] | None = None
    ) -> bool:
        """Build the HNSW index once `OPTIMIZE_MIN_UNINDEXED` points lack it, beyond those
        the last build left (the engine may decide that nothing is worth indexing: False
        then, and no build until that many more lack it; `docsync.plugin.stores.edge_count`).

        The engine holds the GIL while it builds (a minute per 100k points on 2 cores), so a
        process that serves searches meanwhile (`serving`, a daemon) builds it in a child
        process, on a copy of the shard, and swaps the copy in when it is done: searches
        wait only for the swap (not at all when this store was connected `serving`: the
        copy opens in a process of its own). Call it from the thread that writes: no write
        may land between the copy and the swap. `should_stop` is asked while the child
        works; when it answers True, the child is stopped and nothing changes."""
        if self._reading:
            return False
        pending = self.unindexed()
        if self._written().beyond_last_build(pending) < OPTIMIZE_MIN_UNINDEXED:
            self._written().save()  # idle: a good time to write the count down
            return False
        self._ensure_space(pending * OPTIMIZE_BYTES_PER_POINT // SPACE_FACTOR)
        started = time.monotonic()
        if serving:
            log.info("indexing %d new points in a separate process", pending)
            worked = self._index_elsewhere(should_stop or (lambda: False))
        else:
            log.info("indexing %d new points (searches wait until it is done)", pending)
            with self._search_lock:
                worked = self._use(lambda shard: shard.optimize())
        if worked or not serving:
            keyword = self.has_keyword_vectors()
            left = self._use(lambda shard: shard.unindexed(keyword=keyword))
            self._written().built(self._live().stat().st_ino, left)
        log.info("indexed in %.1fs", time.monotonic() - started)
        return worked

    def _index_elsewhere(self, should_stop: Callable[[], bool]) -> bool:
        live = self._live()
        edge_folder.drop_unused(self._dir)
        # A number no folder and no lock has: a copy a live builder holds is never reused.
        taken = (GENERATION.match(p.name) for p in self._dir.iterdir())
        copy = self._dir / f"shard.{max((int(m[1]) for m in taken if m), default=0) + 1}"
        self._ensure_space(edge_folder.folder_bytes(live) // SPACE_FACTOR)
        self._use(lambda shard: shard.flush())
        try:
            # Searches go on meanwhile: file copies run without the GIL.
            edge_index.copy_shard(live, copy)
            built = edge_index.run_indexer(copy, should_stop)
            if built:
                self._swap_in(copy)
        except BaseException as exc:
            if self._live().name != copy.name:  # not linked in before it failed
                shutil.rmtree(copy, ignore_errors=True)
            if isinstance(exc, OSError):
                raise self._os_error(exc) from exc
            raise
        if not built:  # stopped: nothing to say, nothing to back off from
            shutil.rmtree(copy, ignore_errors=True)
            return False
        shutil.rmtree(live, ignore_errors=True)
        return True

    def unindexed(self) -> int:
        """Points whose dense vector the HNSW index lacks (`docsync.plugin.stores.edge_count`)."""
        keyword = self.has_keyword_vectors()
        engine = self._use(lambda shard: shard.unindexed(keyword=keyword))
        return self._written().unindexed(engine)

    def close(self) -> None:
        try:
            if self._ledger is not None and not self._reading:
                self._ledger.save()
            if self._shard is not None and not self._borrowed:
                shard, self._shard = self._shard, None
                if isinstance(shard, LocalShard) and not self._reading:
                    self._call(shard.flush)
                shard.close()
        finally:
            if self._lock_fd is not None:
                edge_folder.unlock_store(self._root, self._lock_fd)
                self._lock_fd = None

    def _written(self) -> IndexLedger:
        if self._ledger is None:
            self._ledger = IndexLedger(self._dir, self._live().stat().st_ino)
        return self._ledger

    def _recover(self) -> None:
        edge_folder.recover(self._dir)

    def _create(self, profile: EmbeddingProfile) -> None:
        self._ensure_space(NEW_SHARD_BYTES // SPACE_FACTOR)
        # The profile goes down first: a shard without one would be refused as foreign.
        try:
            if self._generation:  # made as the first generation, the name a link to it
                named = generation_name(self.collection, 1)
                private_dirs(self._root / named)
                edge_folder.link_generation(self._root, self.collection, named)
            self._pin()
            private_dirs(self._dir)
            edge_folder.write_atomically(self._dir / PROFILE_FILE, _profile_text(profile))
        except OSError as exc:
            raise self._os_error(exc) from exc
        # By its real path: the engine keeps the path it was given, and the collection's
        # name is a link that a switch moves to another generation.
        first = self._dir.resolve() / "shard.0"
        created = self._call(
            lambda: LocalShard.create(
                str(first),
                dimension=profile.dimension,
                keyword=bool(profile.keyword),
                quantization=self._quantization,
                hold=True,
            )
        )
        try:
            edge_folder.link(self._dir, first.name)
        except OSError as exc:
            created.close()
            raise self._os_error(exc) from exc
        self._loaded_from = first
        if self._serving:  # the child opens it again: one process holds it at a time
            created.close()
            self._shard = self._host(first)
        else:
            self._shard = created


def _point_bytes(point: Point) -> int:
    sparse = 8 * len(point.keyword.indices) if point.keyword else 0
    return POINT_OVERHEAD + 4 * len(point.vector or ()) + sparse + _json_bytes(point.payload)


def _json_bytes(payload: dict[str, Any]) -> int:
    return len(json.dumps(payload, ensure_ascii=False))


def _profile_text(profile: EmbeddingProfile) -> str:
    return json.dumps(profile.to_dict(), indent=2)
