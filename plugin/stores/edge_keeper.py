"""What the embedded store keeps of its shard: the shard itself, in this process
(`LocalShard`) or held by a child process (`HostedShard`), opened when first needed, asked
through one typed call (`_use`) that starts a dead child again and asks once more, swapped
for an indexed copy, and the engine's errors mapped to docsync's.
`docsync.plugin.stores.edge.EdgeStore` is this with the `Store` calls on top.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from docsync.plugin.errors import (
    IndexBuildError,
    ShardProcessError,
    StoreError,
    StoreFullError,
    StoreRequestError,
)
from docsync.plugin.store import collection_missing
from docsync.plugin.stores import edge_folder
from docsync.plugin.stores.edge_folder import NOT_WRITABLE, SHARD_DIR, mib
from docsync.plugin.stores.edge_host import HostedShard
from docsync.plugin.stores.edge_shard import LocalShard
from docsync.plugin.stores.shard import Shard
from docsync.plugin.stores.turns import Turns

T = TypeVar("T")
# What a request meets when the channel to the shard's process was closed under it.
GONE = (errno.EBADF, errno.EPIPE, errno.ECONNRESET)
log = logging.getLogger("docsync.store")


class ShardKeeper:
    """The shard of the collection `collection` in the store folder `root`. `reading`: no
    writes; `serving`: the shard is held by a child process (`HostedShard`)."""

    collection: str
    description: str

    def __init__(self, root: Path, collection: str, *, reading: bool, serving: bool) -> None:
        self.collection = collection
        self.description = f"embedded {root}"
        self._root = root
        self._dir = root / collection
        self._reading = reading
        self._serving = serving and not reading
        # A reader of a collection that is not there creates nothing: no folder, no lock.
        self._absent = reading and not (self._dir / SHARD_DIR).is_dir()
        self._shard: Shard | None = None
        # The folder `_shard` was opened from (the link can move: generations); and whether
        # the shard is another store's, lent (`EdgeStore.on`): then never closed here.
        self._loaded_from: Path | None = None
        self._borrowed = False
        # A serving store's requests share it (several in flight: the child answers each on
        # a channel of its own); a swap, a start, an in-process shard's calls hold it alone.
        self._turns = Turns()

    def _exists(self) -> bool:
        return not self._absent and (self._dir / SHARD_DIR).is_dir()

    def _live(self) -> Path:
        """The folder of the shard in use."""
        return edge_folder.live(self._dir)

    def _pin(self) -> None:
        """A store opened by the collection's name (a link to its live generation) stays on
        the generation the link names when its shard is first opened: a switch, which moves
        the link, never carries this store's requests (or a reopening after a child's death)
        into another generation, which another model may have written."""
        if self._dir.is_symlink():
            self._dir = self._dir.parent / os.readlink(self._dir)

    def _load(self) -> Shard:
        shard = self._shard
        if isinstance(shard, HostedShard) and not shard.alive:
            log.warning("the process holding the shard ended; starting another")
            shard.close()
            shard = self._shard = None
        if shard is None:
            if not self._exists():
                raise collection_missing(self.collection, self.description, hint=False)
            if not self._reading or not edge_folder.read_only(self._root):
                # Opening a shard writes, even to read it (the engine replays its WAL into
                # memory-mapped files): on a full disk that is a bus error in the opening
                # process (`docsync export` died of one). A read-only mount is left to the
                # engine's own error, which says what it is.
                self._ensure_space(0)
            self._pin()
            live = self._loaded_from = self._live()
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
        edge_folder.ensure_space(self._root, expected)

    def _use(self, request: Callable[[Shard], T]) -> T:
        """Ask the shard `request` (`lambda shard: shard.count()`) in a turn (`Turns`), so
        that a shard swapped in by an index built elsewhere (`_swap_in`) never meets a call
        in flight on the one it ends. A serving store's requests share their turn with each
        other (a daemon's clients' searches, and its sync's writes, in flight together).

        A child holding the shard that dies meanwhile (killed, out of memory, a bus error)
        is started again and asked again, once: every request is safe to repeat (writes are
        by point ID, the rest only read). A second death raises `ShardProcessError`, which
        a daemon retries later like any outage; a nearly full disk (what a bus error in the
        engine usually means) is `StoreFullError` before the child is started again."""
        failed: Shard | None = None
        if self._serving:
            with self._turns.shared():
                hosted = self._shard
                if isinstance(hosted, HostedShard) and hosted.alive:
                    try:
                        return self._call(lambda: request(hosted))
                    except ShardProcessError as exc:
                        log.warning("%s; starting another and asking again", exc)
                        failed = hosted
        with self._turns.alone():
            if failed is not None:
                if self._shard is failed:  # not started again by another request meanwhile
                    self._shard = None
                self._ensure_space(0)
                return self._call(lambda: request(self._load()))
            # A child found dead here is started again by `_load` (`_host` tries twice): a
            # ShardProcessError of that start is its second death, not asked again.
            shard = self._load()
            try:
                return self._call(lambda: request(shard))
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
        for code in (errno.ENOSPC, *NOT_WRITABLE):
            if f"(os error {code})" in message:
                return self._os_error(OSError(code, os.strerror(code)))
        return StoreRequestError(f"Qdrant Edge refused the request: {message}")

    def _os_error(self, exc: OSError) -> StoreError:
        if exc.errno == errno.ENOSPC:
            return StoreFullError(
                f"the embedded store {self._root} is out of space "
                f"({mib(edge_folder.free_bytes(self._root))} free); free some space or move "
                "DOCSYNC_QDRANT_PATH to a larger disk"
            )
        if exc.errno in GONE:
            # A descriptor closed under this request: the channel to a shard process that
            # died, closed by the thread that found it dead. An outage the daemon waits out
            # and asks again, as any death of that process (bench/chaos.py: this error, taken
            # for a fault of the store, ended a daemon).
            return ShardProcessError(
                f"the embedded store {self._root}: {exc.strerror or exc} (its shard's "
                "process was being replaced)"
            )
        if exc.errno in NOT_WRITABLE:
            return StoreError(
                f"the embedded store {self._root} cannot be opened: {exc.strerror}. Qdrant Edge "
                "opens its files for writing even to read them, so it needs a folder it may "
                "write (copy the store to one and point DOCSYNC_QDRANT_PATH there)"
            )
        return StoreError(f"the embedded store {self._root}: {exc.strerror or exc}")

    def _swap_in(self, copy: Path) -> None:
        """Open the indexed `copy` and link it as the shard in use. A serving store opens
        it in a second child while the first answers; the swap is then an assignment."""
        fresh: Shard | None = None
        if self._serving:
            try:
                fresh = self._call(lambda: HostedShard(copy))
            except StoreError as exc:
                raise IndexBuildError(f"the indexed copy did not open ({exc})") from exc
        with self._turns.alone():
            if isinstance(self._shard, LocalShard):
                shard, self._shard = self._shard, None
                self._call(shard.close)
            try:
                edge_folder.link(self._dir, copy.name)
            except OSError as exc:
                if fresh is not None:
                    fresh.close()
                raise self._os_error(exc) from exc
            old, self._shard = self._shard, fresh
            self._loaded_from = copy.resolve()
            self._load()
        if old is not None:
            old.close()
