"""The requests a `docsync.plugin.stores.edge_host.HostedShard` sends to the process that
holds its shard: one small value per `docsync.plugin.stores.shard.Shard` call, pickled over
the socket, which the child applies to its own shard (`request(shard)`) and answers with what
that call returned. A value, not a method name: what crosses is checked where it is made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from docsync.plugin.keyword import SparseVector
from docsync.plugin.store import Around, Fusion, Match, Point, ScoredPoint
from docsync.plugin.stores.shard import Offset, Shard

T_co = TypeVar("T_co", covariant=True)


class Request(Protocol[T_co]):
    def __call__(self, shard: Shard) -> T_co: ...


@dataclass(frozen=True)
class Upsert:
    points: list[Point]

    def __call__(self, shard: Shard) -> None:
        shard.upsert(self.points)


@dataclass(frozen=True)
class Delete:
    ids: list[str]

    def __call__(self, shard: Shard) -> None:
        shard.delete(self.ids)


@dataclass(frozen=True)
class SetPayload:
    ids: list[str]
    payload: dict[str, Any]

    def __call__(self, shard: Shard) -> None:
        shard.set_payload(self.ids, self.payload)


@dataclass(frozen=True)
class AddKeywordVector:
    def __call__(self, shard: Shard) -> None:
        shard.add_keyword_vector()


@dataclass(frozen=True)
class SetKeywordVectors:
    vectors: list[tuple[str, SparseVector]]

    def __call__(self, shard: Shard) -> None:
        shard.set_keyword_vectors(self.vectors)


@dataclass(frozen=True)
class Flush:
    def __call__(self, shard: Shard) -> None:
        shard.flush()


@dataclass(frozen=True)
class Optimize:
    def __call__(self, shard: Shard) -> bool:
        return shard.optimize()


@dataclass(frozen=True)
class Close:
    """Flush and close the shard, and end: the child does it itself, not by this call."""

    def __call__(self, shard: Shard) -> None:
        shard.close()


@dataclass(frozen=True)
class Retrieve:
    ids: list[str]
    with_vectors: bool
    fields: list[str] | None = None

    def __call__(self, shard: Shard) -> list[Point]:
        return shard.retrieve(self.ids, with_vectors=self.with_vectors, fields=self.fields)


@dataclass(frozen=True)
class ScrollPage:
    match: Match | None
    offset: Offset
    fields: list[str] | None
    with_vectors: bool
    lacking_keyword: bool
    exclude: Match | None
    limit: int

    def __call__(self, shard: Shard) -> tuple[list[Point], Offset]:
        return shard.scroll_page(
            self.match,
            offset=self.offset,
            fields=self.fields,
            with_vectors=self.with_vectors,
            lacking_keyword=self.lacking_keyword,
            exclude=self.exclude,
            limit=self.limit,
        )


@dataclass(frozen=True)
class Search:
    vector: list[float] | None
    limit: int
    match: Match | None
    keyword: SparseVector | None
    fusion: Fusion | None
    exact: bool
    fields: list[str] | None = None

    def __call__(self, shard: Shard) -> list[ScoredPoint]:
        return shard.search(
            self.vector,
            limit=self.limit,
            match=self.match,
            keyword=self.keyword,
            fusion=self.fusion,
            exact=self.exact,
            fields=self.fields,
        )


@dataclass(frozen=True)
class SearchAround:
    search: Search
    budget: int
    around_fields: list[str]

    def __call__(self, shard: Shard) -> Around:
        s = self.search
        return shard.search_around(
            s.vector,
            limit=s.limit,
            match=s.match,
            keyword=s.keyword,
            fusion=s.fusion,
            fields=s.fields,
            budget=self.budget,
            around_fields=self.around_fields,
        )


@dataclass(frozen=True)
class Count:
    match: Match | None
    lacking_keyword: bool

    def __call__(self, shard: Shard) -> int:
        return shard.count(self.match, lacking_keyword=self.lacking_keyword)


@dataclass(frozen=True)
class Unindexed:
    keyword: bool

    def __call__(self, shard: Shard) -> int:
        return shard.unindexed(keyword=self.keyword)
