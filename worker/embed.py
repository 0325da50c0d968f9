"""Stage 5: vectors for the planned points that lack one.

A vector is computed only when no point in the collection already holds one for the same
embedded text (same title, same passage, same profile): renamed, moved and copied files,
and text repeated across files, reuse what is there. Each distinct text is embedded once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from plugin.encoder import Encoder
from plugin.store import Store
from worker.plan import FilePlan


class Donors:
    """Which stored point holds the vector for an embed hash."""

    def __init__(self) -> None:
        self._by_hash: dict[str, str] = {}
        self._by_id: dict[str, str] = {}

    def add(self, point_id: str, embed_hash: str) -> None:
        self._by_hash.setdefault(embed_hash, point_id)
        self._by_id[point_id] = embed_hash

    def discard(self, point_ids: Iterable[str]) -> None:
        for pid in point_ids:
            embed_hash = self._by_id.pop(pid, None)
            if embed_hash is not None and self._by_hash.get(embed_hash) == pid:
                del self._by_hash[embed_hash]

    def lookup(self, hashes: Iterable[str]) -> dict[str, str]:
        """embed hash -> point id, for the hashes some stored point has."""
        return {h: self._by_hash[h] for h in hashes if h in self._by_hash}


@dataclass
class EmbedResult:
    embedded: int = 0
    reused: int = 0


def fill_vectors(
    plans: Sequence[FilePlan],
    *,
    encoder: Encoder,
    store: Store,
    donors: Donors,
    on_embedded: Callable[[int], None] | None = None,
) -> EmbedResult:
    """Give every planned upsert a vector: the stored one when it exists, else a new one."""
    missing = [p for plan in plans for p in plan.needs_vectors()]
    result = EmbedResult()
    if not missing:
        return result
    found = _stored_vectors(store, donors, {p.embed_hash for p in missing})
    inputs = {p.embed_hash: p.embed_input for p in missing if p.embed_hash not in found}
    fresh = encoder.embed_passages(list(inputs.values()))
    found.update(zip(inputs, (v.tolist() for v in fresh), strict=True))
    for point in missing:
        point.vector = found[point.embed_hash]
    result.embedded = len(inputs)
    result.reused = len(missing) - sum(1 for p in missing if p.embed_hash in inputs)
    if on_embedded is not None:
        on_embedded(result.embedded)
    return result


def _stored_vectors(store: Store, donors: Donors, hashes: set[str]) -> dict[str, list[float]]:
    wanted = donors.lookup(hashes)
    if not wanted:
        return {}
    owners = {pid: h for h, pid in wanted.items()}
    return {
        owners[p.id]: p.vector
        for p in store.retrieve(list(owners), with_vectors=True)
        if p.vector is not None and p.payload.get("embed_hash") == owners[p.id]
    }
