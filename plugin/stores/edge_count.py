"""How many points of an embedded shard lack the HNSW index, as far as docsync can tell.

The engine says how many points a shard holds and how many vectors its indexes hold, and
nothing per segment. Its count of indexed vectors keeps the points deleted or rewritten
since the index was built until a build drops them (a point written again, even only its
payload, moves out of the indexed segment and leaves a dead copy behind), so the
difference undercounts: 26,956 points with 77,404 indexed vectors read as 0 unindexed, and
their index was never built. So the store counts, beside the engine, the points it wrote
since the last build (upserts, payload and vector updates: each leaves its point outside
the index), kept in `indexing.json` in the collection's folder; the points lacking the
index are the larger of the two counts. It is a cache: lost, it counts from 0 again. It
names the shard folder it counts for (by inode: renames keep it, a copy has its own), so a
copy swapped in by a build that a crash cut before the count was reset starts from 0.

It also keeps what the last build left unindexed: the engine indexes a segment only past
its own threshold (`indexing_threshold`, 10,000 KB of vectors by default: 80,000 vectors of
32 dimensions), so with a small model a build may index nothing, and a store that built
whenever 10,000 points lacked the index copied its shard every few seconds for ever. The
next build waits for that many more.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger("docsync.store")

LEDGER_FILE = "indexing.json"


class IndexLedger:
    """The points written since the last index build of the shard `shard` (its folder's
    inode), in `folder/indexing.json`."""

    def __init__(self, folder: Path, shard: int) -> None:
        self._path = folder / LEDGER_FILE
        self._shard = shard
        data = _read(self._path)
        mine = data.get("shard") == shard
        self.written = data.get("written", 0) if mine else 0
        self.left = data.get("left", 0) if mine else 0  # unindexed after the last build
        self._saved: tuple[int, int] | None = (self.written, self.left) if mine else None

    def wrote(self, points: int) -> None:
        self.written += points

    def unindexed(self, engine: int) -> int:
        """The points lacking the index, given the engine's count (`engine`)."""
        return max(engine, self.written)

    def beyond_last_build(self, unindexed: int) -> int:
        """Of `unindexed` points lacking the index, those beyond what the last build left."""
        self.left = min(self.left, unindexed)  # some were deleted since
        return unindexed - self.left

    def built(self, shard: int, left: int) -> None:
        """An index build just ended, `shard` is the shard in use, and the engine counts
        `left` points it did not index (what it counts after a build is right)."""
        self._shard = shard
        self.written = 0
        self.left = left
        self._saved = None
        self.save()

    def save(self) -> None:
        """Write the count down when it changed (a cache: failing to is no error)."""
        if (self.written, self.left) == self._saved:
            return
        tmp = self._path.with_name(LEDGER_FILE + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "w", encoding="utf-8") as handle:
                handle.write(
                    json.dumps({"shard": self._shard, "written": self.written, "left": self.left})
                )
            os.replace(tmp, self._path)
        except OSError as exc:
            log.debug("could not write %s: %s", self._path, exc)
            return
        self._saved = (self.written, self.left)


def _read(path: Path) -> dict[str, int]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, int) and v >= 0}
