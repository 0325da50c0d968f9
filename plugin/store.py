"""The one interface the rest of docsync uses to talk to Qdrant, whichever engine is behind it.

Only the adapters import a Qdrant library. Filters are plain mappings of payload field to a
value (equality) or a list of values (any of them); every condition must hold.

A point has a dense vector (the model's, in the collection's unnamed vector, as in
collections made before keyword vectors) and, in a collection whose profile has a keyword
configuration, a keyword vector (BM25, the sparse vector `docsync.plugin.keyword.KEYWORD_VECTOR`,
which the engine weighs by IDF).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from docsync.plugin.choices import DEFAULT_FUSION, DEFAULT_RRF_K
from docsync.plugin.errors import CollectionMissingError, ProfileMismatchError, StoreRequestError
from docsync.plugin.keyword import KEYWORD_VECTOR, SparseVector
from docsync.plugin.profile import EmbeddingProfile

log = logging.getLogger("docsync.store")
# With quantized vectors, a search takes this many times the hits it needs from the compact
# copies and rescores them with the originals: what keeps int8's ranking close to fp32's.
OVERSAMPLING = 2.0

if TYPE_CHECKING:
    from docsync.plugin.settings import Settings

Match = Mapping[str, str | Sequence[str] | Sequence[int]]
# Candidates each side of a hybrid search brings to the fusion: enough that a passage
# ranked low by one side and high by the other is among them.
PREFETCH_MIN = 50
PREFETCH_FACTOR = 4


@dataclass(frozen=True)
class Point:
    id: str
    payload: dict[str, Any]
    vector: list[float] | None = None
    keyword: SparseVector | None = None


@dataclass(frozen=True)
class Fusion:
    """How a hybrid search merges its dense and keyword rankings: reciprocal rank fusion
    (`k` damps the weight of the first ranks) or distribution-based score fusion."""

    method: str = DEFAULT_FUSION  # docsync.plugin.choices.FUSIONS
    k: int = DEFAULT_RRF_K

    def prefetch(self, limit: int) -> int:
        return max(PREFETCH_MIN, PREFETCH_FACTOR * limit)


@dataclass(frozen=True)
class ScoredPoint:
    id: str
    score: float
    payload: dict[str, Any]


class Store(Protocol):
    """A collection of 384-dim (or whatever the profile says) cosine vectors with payloads."""

    collection: str
    description: str

    def open(self, profile: EmbeddingProfile, *, create: bool) -> None:
        """Check the collection's profile against `profile`; create the collection with it
        when it does not exist and `create` is true."""

    def ping(self) -> None:
        """Raise `StoreUnavailableError` unless the store answers."""

    def read_profile(self) -> EmbeddingProfile | None:
        """The profile stored with the collection (None: not a docsync collection)."""

    def upsert(self, points: Sequence[Point]) -> None: ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def set_payload(self, ids: Sequence[str], payload: dict[str, Any]) -> None:
        """Set the fields of `payload` on the points `ids`; their other fields and their
        vectors stay as they are."""

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Point]: ...

    def scroll(
        self,
        match: Match,
        *,
        fields: Sequence[str] | None = None,
        with_vectors: bool = False,
        lacking_keyword: bool = False,
        exclude: Match | None = None,
    ) -> Iterator[Point]:
        """Every point matching `match` and none of the conditions of `exclude` (and, with
        `lacking_keyword`, without a keyword vector); `fields` limits the payload returned."""

    def search(
        self,
        vector: Sequence[float] | None,
        *,
        limit: int,
        match: Match | None = None,
        keyword: SparseVector | None = None,
        fusion: Fusion | None = None,
    ) -> list[ScoredPoint]:
        """By the dense `vector`, by the `keyword` vector, or by both, their rankings merged
        by `fusion` (default `Fusion()`)."""

    def has_keyword_vectors(self) -> bool:
        """Whether the collection has the keyword (sparse) vector at all."""

    def add_keyword_vectors(self) -> None:
        """Give the collection its keyword vector (IDF), in place, unless it has it; every
        point and dense vector stays as it is."""

    def set_keyword_vectors(self, vectors: Mapping[str, SparseVector]) -> None:
        """Set the keyword vector of each point id; its dense vector and payload stay."""

    def write_profile(self, profile: EmbeddingProfile) -> None:
        """Replace the profile stored with the collection (after an upgrade)."""

    def count(self, match: Match | None = None) -> int: ...

    def optimize(
        self, *, serving: bool = False, should_stop: Callable[[], bool] | None = None
    ) -> bool:
        """Build the indexes an engine defers, when enough points wait for them; never while
        a search runs. True when it did work. Servers index on their own: a no-op there.
        `serving`: the process serves searches meanwhile (a daemon), which must not wait for
        the build; `should_stop` is asked during a long build, which True abandons."""

    def close(self) -> None: ...


def collection_missing(collection: str, where: str, *, hint: bool = True) -> CollectionMissingError:
    """The error both adapters raise for a collection that is not there."""
    advice = "; run `docsync sync DIR` first" if hint else ""
    return CollectionMissingError(
        f"collection {collection!r} does not exist in the {where} store{advice}"
    )


def check_profile(
    profile: EmbeddingProfile, stored: EmbeddingProfile | None, *, collection: str
) -> None:
    """Refuse a collection without a docsync profile, or with one unlike `profile`."""
    if stored is None:
        raise ProfileMismatchError(
            f"collection {collection!r} exists but was not made by docsync (it has no "
            "embedding profile); choose another DOCSYNC_COLLECTION"
        )
    profile.ensure_matches(stored, collection=collection)


def open_store(settings: Settings, *, reading: bool = False, serving: bool = False) -> Store:
    """The store the settings name: a Qdrant server by URL, else the embedded engine
    (Qdrant Edge) in the folder `qdrant_path`. `reading`: for a command that only reads
    (an embedded store is then opened without creating anything, and refuses writes).
    `serving`: for a process that answers searches while it syncs (a daemon): an embedded
    store's shard is then held by a child process, so that opening a rebuilt index never
    stops the searches."""
    if settings.qdrant_url:
        from docsync.plugin.stores.qdrant import QdrantClientStore

        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return QdrantClientStore.connect(
            url=settings.qdrant_url,
            api_key=key,
            collection=settings.collection,
            attempts=settings.qdrant_retries,
            cluster=settings.cluster_settings(),
            ordering=settings.write_ordering,
            quantization=settings.quantization,
        )
    if settings.cluster_settings():
        log.warning(
            "DOCSYNC_SHARD_NUMBER, DOCSYNC_REPLICATION_FACTOR and "
            "DOCSYNC_WRITE_CONSISTENCY_FACTOR apply to a Qdrant server (DOCSYNC_QDRANT_URL); "
            "the embedded store has one shard and ignores them"
        )
    from docsync.plugin.stores.edge import EdgeStore

    return EdgeStore.connect(
        path=settings.qdrant_path,
        collection=settings.collection,
        reading=reading,
        quantization=settings.quantization,
        serving=serving,
    )


def point_from_record(record: Any) -> Point:
    """A `Point` from either engine's record (`id`, `payload`, and `vector`: a list, or a
    mapping of names to vectors where the dense one is "" and sparse ones have `indices`
    and `values`), as both Qdrant libraries return them."""
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
