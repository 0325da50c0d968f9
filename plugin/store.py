"""The one interface the rest of docsync uses to talk to Qdrant, whichever engine is behind it.

Only the adapters import a Qdrant library; they live in `docsync.plugin.stores`, with
`open_store`, which picks one (this module imports none of them). Filters are plain
mappings of payload field to a value (equality) or a list of values (any of them); every
condition must hold.

A point has a dense vector (the model's, in the collection's unnamed vector, as in
collections made before keyword vectors) and, in a collection whose profile has a keyword
configuration, a keyword vector (BM25, the sparse vector `docsync.plugin.keyword.KEYWORD_VECTOR`,
which the engine weighs by IDF).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from docsync.plugin.choices import (
    DEFAULT_FUSION,
    DEFAULT_GUARD,
    DEFAULT_GUARD_WITHIN,
    DEFAULT_RRF_K,
)
from docsync.plugin.errors import CollectionMissingError, ProfileMismatchError
from docsync.plugin.keyword import SparseVector
from docsync.plugin.profile import EmbeddingProfile

# With quantized vectors, a search takes this many times the hits it needs from the compact
# copies and rescores them with the originals: what keeps int8's ranking close to fp32's.
OVERSAMPLING = 2.0

Match = Mapping[str, str | Sequence[str] | Sequence[int]]
# Candidates each side of a hybrid search brings to the fusion: enough that a passage
# ranked low by one side and high by the other is among them.
PREFETCH_MIN = 50
PREFETCH_FACTOR = 4


def floats(vector: Sequence[float]) -> list[float]:
    """`vector` as the engines take it: a list of floats (a question's is one already, from
    `tolist()`: not copied again, at every query)."""
    return vector if isinstance(vector, list) else [float(x) for x in vector]


@dataclass(frozen=True)
class Point:
    id: str
    payload: dict[str, Any]
    vector: list[float] | None = None
    keyword: SparseVector | None = None


@dataclass(frozen=True)
class Fusion:
    """How a hybrid search merges its dense and keyword rankings: reciprocal rank fusion
    (`k` damps the weight of the first ranks; `weights`, dense's and keyword's, where not
    equal) or distribution-based score fusion; then each ranking's first `guard` hits are
    kept within the fused first `within` (`docsync.plugin.guard`; 0: no guard)."""

    method: str = DEFAULT_FUSION  # docsync.plugin.choices.FUSIONS
    k: int = DEFAULT_RRF_K
    weights: tuple[float, float] | None = None  # rrf only
    guard: int = DEFAULT_GUARD
    within: int = DEFAULT_GUARD_WITHIN

    def prefetch(self, limit: int) -> int:
        return max(PREFETCH_MIN, PREFETCH_FACTOR * limit)


@dataclass(frozen=True)
class ScoredPoint:
    id: str
    score: float
    payload: dict[str, Any]


# A search's hits, and the payloads of the chunks they name by ID (`Store.search_around`).
Around = tuple[list[ScoredPoint], dict[str, dict[str, Any]]]


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

    def retrieve(
        self,
        ids: Sequence[str],
        *,
        with_vectors: bool = False,
        fields: Sequence[str] | None = None,
    ) -> list[Point]:
        """The points `ids` that exist; `fields` limits the payload returned."""

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
        fields: Sequence[str] | None = None,
    ) -> list[ScoredPoint]:
        """By the dense `vector`, by the `keyword` vector, or by both, their rankings merged
        by `fusion` (default `Fusion()`); `fields` limits the payload returned."""

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
        """`search`, and the payloads (`around_fields`) of the chunks its hits name within
        `budget` tokens (`docsync.plugin.passages.named_ids`), in as few requests as the store
        allows: what their passages are grown with."""

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
