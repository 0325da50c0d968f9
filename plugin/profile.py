"""The embedding profile: everything that must agree between the vectors in a collection and
the vectors a reader or writer computes now.

The worker writes it into the collection when it creates it; the worker and the plugin both
compare it on every open and refuse a collection whose profile differs from theirs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from plugin.errors import ProfileMismatchError

# Bump when worker/chunk.py changes where it cuts text: chunks from different chunker
# versions must not mix in one collection.
CHUNKER_VERSION = "docsync-chunker/1"
DISTANCE = "cosine"
METADATA_KEY = "docsync_profile"


@dataclass(frozen=True)
class EmbeddingProfile:
    model: str
    revision: str | None
    dimension: int
    distance: str
    query_prefix: str
    passage_prefix: str
    chunker: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbeddingProfile:
        names = {f.name for f in fields(cls)}
        missing = names - data.keys()
        if missing:
            raise ValueError(f"profile lacks {', '.join(sorted(missing))}")
        return cls(**{name: data[name] for name in names})

    def differences(self, other: EmbeddingProfile) -> list[str]:
        """Human-readable `field: theirs != ours` lines, empty when the profiles agree."""
        ours, theirs = self.to_dict(), other.to_dict()
        return [
            f"{name}: collection has {theirs[name]!r}, settings give {ours[name]!r}"
            for name in ours
            if ours[name] != theirs[name]
        ]

    def ensure_matches(self, stored: EmbeddingProfile, *, collection: str) -> None:
        """Raise `ProfileMismatchError` unless `stored` (the collection's) equals this one."""
        diffs = self.differences(stored)
        if diffs:
            raise ProfileMismatchError(
                f"collection {collection!r} was written with another embedding profile "
                f"({'; '.join(diffs)}). Use the settings it was written with, or sync into "
                "a new collection (DOCSYNC_COLLECTION)."
            )
