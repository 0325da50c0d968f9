"""Keyword vectors for a collection that lacks them: made before keyword vectors, or with
another BM25 configuration. Each point's keyword vector is computed from its payload and set
beside its dense vector, which stays as it is: nothing is re-embedded, and no point is
copied or rewritten.

Both engines add a sparse vector to an existing collection in place, so the collection is
never recreated. The order makes it safe to interrupt at any moment: the sparse vector is
added to the collection, then each point gets its keyword vector, and only then does the
profile say the collection has them. Until then searches use the dense vectors alone, and an
interrupted upgrade is resumed by the next sync, from the points that still lack one (after a
configuration change, all of them are recomputed: it cannot tell old ones from new).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from docsync.plugin import schema
from docsync.plugin.keyword import KeywordEncoder, SparseVector
from docsync.plugin.profile import EmbeddingProfile
from docsync.plugin.store import Store

log = logging.getLogger("docsync.sync")
BATCH = 256
_FIELDS = (schema.TITLE, schema.TEXT)


def add_keyword_vectors(store: Store, profile: EmbeddingProfile, keyword: KeywordEncoder) -> int:
    """Make `store`'s keyword vectors those `profile` describes, when they are not; returns
    the number of points given one."""
    stored = store.read_profile()
    if stored is None or profile.keyword_ready(stored):
        return 0
    rebuild = stored.keyword is not None
    log.info(
        "collection %r %s: computing them from the stored text (no dense vector is recomputed)",
        store.collection,
        "has keyword vectors made otherwise" if rebuild else "has no keyword vectors",
    )
    store.add_keyword_vectors()
    points = store.scroll({}, fields=_FIELDS, lacking_keyword=not rebuild)
    count, batch = 0, {}
    for point in points:
        vector = keyword.embed_payload(point.payload)
        if vector is not None:
            batch[point.id] = vector
        if len(batch) >= BATCH:
            count += _flush(store, batch)
    count += _flush(store, batch)
    store.write_profile(replace(stored, keyword=profile.keyword))
    log.info("collection %r: keyword vectors added to %d points", store.collection, count)
    return count


def _flush(store: Store, batch: dict[str, SparseVector]) -> int:
    store.set_keyword_vectors(batch)
    written = len(batch)
    batch.clear()
    return written
