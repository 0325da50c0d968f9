"""The store adapter for Qdrant Edge (`qdrant-edge-py`): Qdrant's own engine in-process, the
zero-setup default. This module keeps the folder, the lock, the profile and the free space;
`docsync.plugin.stores.edge_shard` speaks to the engine, in this process or (for a daemon) in a
child
process of its own (`docsync.plugin.stores.edge_host`).

On disk, one folder per collection under the store folder:

    <DOCSYNC_QDRANT_PATH>/.lock               held while a process uses the store
    <DOCSYNC_QDRANT_PATH>/<collection>/profile.json   the embedding profile (the engine
                                                      has no collection metadata)
    <DOCSYNC_QDRANT_PATH>/<collection>/shard.<n>/     the Edge shard: segments, WAL, indexes
    <DOCSYNC_QDRANT_PATH>/<collection>/shard -> shard.<n>   the one in use (a relative link)

The engine builds its HNSW index only in `optimize()`, which blocks the whole process (it
holds the GIL: 60 s for 100k points on 2 cores). `optimize()` here runs it only once enough
points are unindexed, and never while a search is in flight; writes go in small batches so a
search between them waits milliseconds, not seconds. A daemon builds it elsewhere: on a copy
of the shard (`shard.<n+1>`), in a child process; the copy is opened by a second child while
the first keeps answering, and the link is switched to it (one rename: a crash before it
keeps the old shard, after it the new one). Stores made before the link had a plain `shard`
folder: a writer renames it to `shard.0` and links it the first time it opens the store.

The engine maps its files into memory, so a write into a full disk is a SIGBUS that kills
the process without a word. Every write first checks the free space of the store's file
system (`StoreFullError` below a margin), and an ENOSPC the engine does report maps to the
same error. The engine also opens its files for writing even to read them, so a store on a
read-only mount cannot be opened at all: one `StoreError` says so.

The folders docsync creates are owner-only (0700), which also covers every file the engine
writes inside; the files docsync writes itself (the lock, profile.json) are 0600.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from docsync.plugin.errors import (
    IndexBuildError,
    ShardProcessError,
    StoreError,
    StoreFullError,
    StoreLockedError,
    StoreRequestError,
)
from docsync.plugin.folders import private_dirs
from docsync.plugin.keyword import KEYWORD_VECTOR, SparseVector
from docsync.plugin.profile import EmbeddingProfile
from docsync.plugin.store import (
    Fusion,
    Match,
    Point,
    ScoredPoint,
    check_profile,
    collection_missing,
)
from docsync.plugin.stores.edge_count import IndexLedger
from docsync.plugin.stores.edge_host import HostedShard
from docsync.plugin.stores.edge_shard import LOCK_SUFFIX, LocalShard
from docsync.plugin.stores.shard import Offset, Shard

T = TypeVar("T")
log = logging.getLogger("docsync.store")

WRITE_BATCH = 64  # points per engine call: keeps each GIL hold to a few milliseconds
# Unindexed points searched by brute force cost ~0.1 ms per 1,000; index past this many.
OPTIMIZE_MIN_UNINDEXED = 10_000
PROFILE_FILE = "profile.json"
SHARD_DIR = "shard"  # the link to the shard in use (a folder, in stores made before it)
GENERATION = re.compile(r"shard\.(\d+)")
LINK_TMP = "shard.link"  # the next link, before it is renamed over the first
# Left by a swap of an earlier docsync (renames, no link): finished or undone on open.
INDEXING_DIR = "shard.indexing"
READY_MARK = ".indexed"
# shard.<n>.lock: held by the child building the index of shard.<n>, or by the process that
# has it open (`edge_shard.hold_shard`)
BUILDING_SUFFIX = LOCK_SUFFIX
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
# A new shard's files once it is first opened (its segment, WAL and payload index pages):
# 43 MiB measured with keyword vectors. A store made on a 40 MiB disk passed the floor alone,
# and the shard's first open died of a bus error with the disk full.
NEW_SHARD_BYTES = 48 << 20
# Errors that mean "you may not write here": a read-only mount, or a folder not ours.
_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


class EdgeStore:
    """`docsync.plugin.store.Store` over a Qdrant Edge shard."""

    def __init__(
        self,
        root: Path,
        collection: str,
        *,
        reading: bool = False,
        quantization: str = "none",
        serving: bool = False,
    ) -> None:
        self.collection = collection
        self._quantization = quantization  # for a collection this store creates
        self.description = f"embedded {root}"
        self._root = root
        self._dir = root / collection
        self._reading = reading
        self._serving = serving and not reading
        # A reader of a collection that is not there creates nothing: no folder, no lock.
        self._absent = reading and not (self._dir / SHARD_DIR).is_dir()
        self._shard: Shard | None = None
        self._ledger: IndexLedger | None = None  # read when first needed
        self._search_lock = threading.Lock()
        self._engine_lock = threading.RLock()
        self._lock_fd = None if self._absent else _lock(root, reading=reading)
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
        shard is held by a child process (`docsync.plugin.stores.edge_host`), so opening a rebuilt
        one
        never stops this process."""
        return cls(path, collection, reading=reading, quantization=quantization, serving=serving)

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

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Point]:
        if not ids:
            return []
        return self._use(lambda shard: shard.retrieve(ids, with_vectors=with_vectors))

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
    ) -> list[ScoredPoint]:
        with self._search_lock:
            return self._use(
                lambda shard: shard.search(
                    vector, limit=limit, match=match, keyword=keyword, fusion=fusion
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
            _write_atomically(self._dir / PROFILE_FILE, json.dumps(profile.to_dict(), indent=2))
        except OSError as exc:
            raise self._os_error(exc) from exc

    def count(self, match: Match | None = None) -> int:
        return self._use(lambda shard: shard.count(match))

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
        self._drop_unused()
        # A number no folder and no lock has: a copy a live builder holds is never reused.
        taken = (GENERATION.match(p.name) for p in self._dir.iterdir())
        copy = self._dir / f"shard.{max((int(m[1]) for m in taken if m), default=0) + 1}"
        self._ensure_space(_folder_bytes(live) // SPACE_FACTOR)
        self._use(lambda shard: shard.flush())
        try:
            # Searches go on meanwhile: file copies run without the GIL.
            shutil.copytree(live, copy, copy_function=_copy_sparse)
            built = _run_indexer(copy, should_stop)
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

    def _swap_in(self, copy: Path) -> None:
        """Open the indexed `copy` and link it as the shard in use. A serving store opens
        it in a second child while the first answers; the swap is then an assignment."""
        fresh: Shard | None = None
        if self._serving:
            try:
                fresh = self._call(lambda: HostedShard(copy))
            except StoreError as exc:
                raise IndexBuildError(f"the indexed copy did not open ({exc})") from exc
        with self._engine_lock:
            if isinstance(self._shard, LocalShard):
                shard, self._shard = self._shard, None
                self._call(shard.close)
            try:
                _link(self._dir, copy.name)
            except OSError as exc:
                if fresh is not None:
                    fresh.close()
                raise self._os_error(exc) from exc
            old, self._shard = self._shard, fresh
            self._load()
        if old is not None:
            old.close()

    def unindexed(self) -> int:
        """Points whose dense vector the HNSW index lacks (`docsync.plugin.stores.edge_count`)."""
        keyword = self.has_keyword_vectors()
        engine = self._use(lambda shard: shard.unindexed(keyword=keyword))
        return self._written().unindexed(engine)

    def close(self) -> None:
        try:
            if self._ledger is not None and not self._reading:
                self._ledger.save()
            if self._shard is not None:
                shard, self._shard = self._shard, None
                if isinstance(shard, LocalShard) and not self._reading:
                    self._call(shard.flush)
                shard.close()
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # closing the file releases the lock
                self._lock_fd = None
                _OPEN_HERE.discard(_lock_key(self._root))

    def _written(self) -> IndexLedger:
        if self._ledger is None:
            self._ledger = IndexLedger(self._dir, self._live().stat().st_ino)
        return self._ledger

    def _exists(self) -> bool:
        return not self._absent and (self._dir / SHARD_DIR).is_dir()

    def _live(self) -> Path:
        """The folder of the shard in use."""
        return (self._dir / SHARD_DIR).resolve()

    def _generations(self) -> dict[int, Path]:
        found = (GENERATION.fullmatch(p.name) for p in self._dir.iterdir())
        return {int(m[1]): self._dir / m[0] for m in found if m}

    def _recover(self) -> None:
        """Before anything opens the shard: finish or undo what a swap left (a crash between
        its steps), drop scratch copies, and give a store made before the link its link."""
        folder = self._dir
        shard, copy, old = (folder / n for n in (SHARD_DIR, INDEXING_DIR, REPLACED_DIR))
        if not os.path.lexists(shard):  # an earlier docsync's swap, cut between its renames
            if (copy / READY_MARK).exists():
                os.rename(copy, shard)
                (shard / READY_MARK).unlink()
            elif old.is_dir():
                os.rename(old, shard)
        for leftover in (copy, old):
            shutil.rmtree(leftover, ignore_errors=True)
        if os.path.lexists(folder / LINK_TMP):
            os.unlink(folder / LINK_TMP)
        if shard.is_symlink() and not shard.exists():
            shard.unlink()
        generations = self._generations()
        if not os.path.lexists(shard):
            if not generations:
                return  # no shard at all: `open` creates one
            # Cut between the two steps below, or in `_create`: the oldest is the whole one
            # (a newer one can be a copy whose index was never finished).
            _link(folder, generations[min(generations)].name)
        elif not shard.is_symlink():
            first = folder / f"shard.{max(generations, default=-1) + 1}"
            os.rename(shard, first)
            _link(folder, first.name)
        self._drop_unused()

    def _drop_unused(self) -> None:
        """Delete the shard folders not in use (copies a crash or a failed build left) and
        their locks; never one a live process holds (a daemon killed while it built: the
        builder is ending, and may still write there; or a shard process still closing)."""
        # By name: the store's folder may be given relative (the default `.docsync/qdrant`),
        # the link's target is resolved.
        live = self._live().name
        for path in self._generations().values():
            if path.name != live and not _held(path):
                shutil.rmtree(path, ignore_errors=True)
        for lock in self._dir.glob(f"shard.*{BUILDING_SUFFIX}"):
            shard = lock.with_name(lock.name.removesuffix(BUILDING_SUFFIX))
            if not shard.exists() and not _held(shard):
                lock.unlink(missing_ok=True)

    def _create(self, profile: EmbeddingProfile) -> None:
        self._ensure_space(NEW_SHARD_BYTES // SPACE_FACTOR)
        # The profile goes down first: a shard without one would be refused as foreign.
        try:
            private_dirs(self._dir)
            _write_atomically(self._dir / PROFILE_FILE, json.dumps(profile.to_dict(), indent=2))
        except OSError as exc:
            raise self._os_error(exc) from exc
        first = self._dir / "shard.0"
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
            _link(self._dir, first.name)
        except OSError as exc:
            created.close()
            raise self._os_error(exc) from exc
        if self._serving:  # the child opens it again: one process holds it at a time
            created.close()
            self._shard = self._host(first)
        else:
            self._shard = created

    def _load(self) -> Shard:
        shard = self._shard
        if isinstance(shard, HostedShard) and not shard.alive:
            log.warning("the process holding the shard ended; starting another")
            shard.close()
            shard = self._shard = None
        if shard is None:
            if not self._exists():
                raise collection_missing(self.collection, self.description, hint=False)
            if not self._reading or not _read_only(self._root):
                # Opening a shard writes, even to read it (the engine replays its WAL into
                # memory-mapped files): on a full disk that is a bus error in the opening
                # process (`docsync export` died of one). A read-only mount is left to the
                # engine's own error, which says what it is.
                self._ensure_space(0)
            live = self._live()
            shard = (
                self._host(live)
                if self._serving
                else self._call(lambda: LocalShard.load(str(live), hold=True))
            )
            self._shard = shard
        return shard

    def _host(self, shard: Path) -> HostedShard:
        """A child process holding `shard`. One that dies while it opens it (killed, out of
        memory, a bus error) is started again, once, as `_use` asks a request again: a
        second death is `ShardProcessError`, an outage a daemon waits out (at its start
        too: `Daemon.wait_for_store`), never an error that ends it."""
        try:
            return self._call(lambda: HostedShard(shard))
        except ShardProcessError as exc:
            log.warning("%s while it opened the shard; starting another", exc)
            self._ensure_space(0)
            return self._call(lambda: HostedShard(shard))

    def _writable(self) -> Shard:
        if self._reading:
            raise StoreError(f"the {self.description} store was opened for reading only")
        return self._load()

    def _ensure_space(self, expected: int) -> None:
        """Refuse a write that could fill the disk: the engine would die of it (SIGBUS)."""
        free = _free_bytes(self._root)
        needed = FREE_FLOOR + SPACE_FACTOR * expected
        if free < needed:
            raise StoreFullError(
                f"the embedded store {self._root} is out of space: {_mib(free)} free, and "
                f"docsync keeps {_mib(needed)} free before it writes (the engine cannot survive "
                "a full disk); free some space or move DOCSYNC_QDRANT_PATH to a larger disk"
            )

    def _use(self, request: Callable[[Shard], T]) -> T:
        """Ask the shard `request` (`lambda shard: shard.count()`) under the engine lock, so
        that a shard swapped in by an index built elsewhere (`_swap_in`) never meets a call
        in flight on the one it ends.

        A child holding the shard that dies meanwhile (killed, out of memory, a bus error)
        is started again and asked again, once: every request is safe to repeat (writes are
        by point ID, the rest only read). A second death raises `ShardProcessError`, which
        a daemon retries later like any outage; a nearly full disk (what a bus error in the
        engine usually means) is `StoreFullError` before the child is started again."""
        with self._engine_lock:
            try:
                return self._call(lambda: request(self._load()))
            except ShardProcessError as exc:
                log.warning("%s; starting another and asking again", exc)
                self._shard = None
                self._ensure_space(0)
                return self._call(lambda: request(self._load()))

    def _call(self, fn: Callable[[], T]) -> T:
        """The engine raises plain `Exception` (or `ValueError`) for requests it refuses,
        and for the I/O errors it meets, whose `os error N` says which."""
        try:
            return fn()
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
            return StoreFullError(
                f"the embedded store {self._root} is out of space "
                f"({_mib(_free_bytes(self._root))} free); free some space or move "
                "DOCSYNC_QDRANT_PATH to a larger disk"
            )
        if exc.errno in _NOT_WRITABLE:
            return StoreError(
                f"the embedded store {self._root} cannot be opened: {exc.strerror}. Qdrant Edge "
                "opens its files for writing even to read them, so it needs a folder it may "
                "write (copy the store to one and point DOCSYNC_QDRANT_PATH there)"
            )
        return StoreError(f"the embedded store {self._root}: {exc.strerror or exc}")


def _link(folder: Path, target: str) -> None:
    """Point `folder/shard` at `folder/target`, in one rename (and durably)."""
    tmp = folder / LINK_TMP
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, folder / SHARD_DIR)
    _sync_folder(folder)


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
    """The disk space the files under `folder` take: their allocated blocks (`st_blocks` is
    in 512-byte units whatever the file system's block size), not their apparent size. The
    engine's files are sparse (a segment file of 32 MiB may hold a few pages): by apparent
    size a 160-point store asked for 238 MiB free before a build."""
    return sum(p.lstat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def _copy_sparse(source: str, target: str) -> str:
    """Copy the file `source` to `target` leaving its holes holes (for `shutil.copytree`).

    The engine's files are sparse: it sizes a segment's memory-mapped files ahead and
    fills them a page at a time. `shutil.copy2` writes every byte it reads, zeros of the
    holes included, so one swap made a 916 KB store take 207 MB. No installed library
    copies holes, and `cp --sparse=always` would tie the store to GNU coreutils: this walks
    the data extents with SEEK_DATA / SEEK_HOLE (a file system without them reports one
    extent, the whole file) and copies each in the kernel (`os.copy_file_range`, which may
    even share the blocks), then sets the size, so a hole at the end stays one too."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        size = os.fstat(src.fileno()).st_size
        offset = 0
        while offset < size:
            try:
                start = os.lseek(src.fileno(), offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: only a hole is left
                    raise
                break
            offset = os.lseek(src.fileno(), start, os.SEEK_HOLE)
            _copy_range(src.fileno(), dst.fileno(), start, offset)
        os.ftruncate(dst.fileno(), size)
    shutil.copymode(source, target)
    return target


def _copy_range(src: int, dst: int, start: int, end: int) -> None:
    """Bytes `start` to `end` of `src` into the same place in `dst`."""
    while start < end:
        try:
            done = os.copy_file_range(src, dst, end - start, start, start)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            data = os.pread(src, min(end - start, 1 << 20), start)  # a kernel without it
            done = os.pwrite(dst, data, start) if data else 0
        if done == 0:
            return  # the file got shorter meanwhile: nothing more to copy
        start += done


def _run_indexer(copy: Path, should_stop: Callable[[], bool]) -> bool:
    """Build the index of the shard in `copy` in a child process (`python -m
    docsync.plugin.stores.edge_shard`); True once it is done, False when `should_stop` stopped it. A
    child that fails (an error, or killed by a signal) is `IndexBuildError`: not a quiet
    False, or an idle daemon would copy the whole shard again at each turn of its loop,
    where it backs off from an error."""
    # The child holds the copy's lock as long as it lives (it inherits the descriptor), so
    # a daemon restarted meanwhile leaves that folder alone; and it dies with this thread,
    # which waits for it throughout (`edge_shard.die_with_parent`).
    held = _hold(copy)
    try:
        child = subprocess.Popen(
            # -P: the current directory is never on the child's path, so a user's own
            # `docsync/`, `plugin/` or `worker/` folder where docsync runs is not imported there.
            [
                sys.executable,
                "-P",
                "-m",
                "docsync.plugin.stores.edge_shard",
                str(copy),
                str(os.getpid()),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            pass_fds=(held,),
        )
        errors = _wait(child, should_stop)
    finally:
        _release(copy, held)
    if errors is None:
        return False
    if child.returncode != 0:
        status = child.returncode
        how = f"signal {-status}" if status < 0 else f"exit status {status}"
        last = errors.strip().splitlines()[-1:]
        raise IndexBuildError(
            f"the process building the index of {copy.name} ended ({how}"
            + (f": {last[0]})" if last else ")")
        )
    return True


def _wait(child: subprocess.Popen[str], should_stop: Callable[[], bool]) -> str | None:
    """Wait for `child` to end, its stderr; None when `should_stop` stopped it first."""
    while True:
        try:
            return child.communicate(timeout=0.5)[1] or ""
        except subprocess.TimeoutExpired:
            if should_stop():
                child.kill()
                child.communicate()
                return None


def _lock_path(shard: Path) -> Path:
    return shard.with_name(shard.name + BUILDING_SUFFIX)


def _hold(shard: Path) -> int:
    """Take the lock of the copy `shard` (an flock on `shard.<n>.lock` beside it)."""
    fd = os.open(_lock_path(shard), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def _release(shard: Path, fd: int) -> None:
    _lock_path(shard).unlink(missing_ok=True)
    os.close(fd)


def _held(shard: Path) -> bool:
    """Whether a live process (of this one or another) holds `shard`: an index builder, or
    a process that has it open (a shard process that outlived its daemon, say)."""
    try:
        fd = os.open(_lock_path(shard), os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _free_bytes(folder: Path) -> int:
    """The space free for this user on the file system of `folder` (the tests' seam)."""
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def _read_only(folder: Path) -> bool:
    return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)


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
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable."""
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
