"""The seam between `EdgeStore` and the shard it writes and reads: `Shard`, the calls an
Edge shard answers, with docsync's values in and out.

Two classes implement it: `docsync.plugin.stores.edge_shard.LocalShard`, the engine in this
process, and `docsync.plugin.stores.edge_host.HostedShard`, the same calls answered by a child
process that holds the shard (a daemon's). Every argument and answer is plain Python
(points, ids, filters as mappings), so that a hosted shard's cross a socket.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol
from uuid import UUID

from docsync.plugin.keyword import SparseVector
from docsync.plugin.passages import with_named
from docsync.plugin.store import Around, Fusion, Match, Point, ScoredPoint

# Where a scroll goes on: the id of the next point (the engine's `PointId`), None at the end.
Offset = int | str | UUID | None
SCROLL_PAGE = 1024


class Shard(Protocol):
    """One Edge shard. The engine's own errors pass through unchanged (`EdgeStore` turns
    them into docsync's); a hosted shard whose process died raises `ShardProcessError`."""

    # writes: each is safe to repeat (by point id), which is what lets a dead shard
    # process's request be asked again of the next one.

    def upsert(self, points: Sequence[Point]) -> None: ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def set_payload(self, ids: Sequence[str], payload: dict[str, Any]) -> None: ...

    def add_keyword_vector(self) -> None: ...

    def set_keyword_vectors(self, vectors: Sequence[tuple[str, SparseVector]]) -> None: ...

    def flush(self) -> None: ...

    def optimize(self) -> bool:
        """Build the HNSW index here (the engine holds the GIL throughout); True when it
        did work."""
        ...

    def close(self) -> None: ...

    # reads

    def retrieve(
        self,
        ids: Sequence[str],
        *,
        with_vectors: bool = False,
        fields: Sequence[str] | None = None,
    ) -> list[Point]: ...

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
        ...

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
        """`exact`: every point compared with the full vectors (a benchmark's truth);
        `fields`: the payload returned (None: all of it)."""
        ...

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
        """`search`, and the chunks its hits name (see `Store.search_around`): one request
        to a hosted shard where `search` and `retrieve` would be two."""
        ...

    def count(self, match: Match | None = None, *, lacking_keyword: bool = False) -> int: ...

    def unindexed(self, *, keyword: bool) -> int:
        """Points whose dense vector the HNSW index lacks, by the engine's counts."""
        ...


def search_around(
    shard: Shard,
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
    """`Shard.search_around` by the shard's own `search` and `retrieve`."""
    hits = shard.search(
        vector, limit=limit, match=match, keyword=keyword, fusion=fusion, fields=fields
    )
    return with_named(hits, budget, lambda ids: shard.retrieve(ids, fields=around_fields))
