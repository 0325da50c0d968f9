"""Stage 5: vectors for the planned points that lack one.

A vector is computed only when no point in the collection already holds one for the same
embedded text (same title, same passage, same profile): renamed, moved and copied files,
and text repeated across files, reuse what is there. Each distinct text is embedded once,
with a chance to stop between batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from plugin import schema
from plugin.encoder import Encoder
from plugin.inference import StopRequested
from plugin.store import Store
from worker.plan import FilePlan

LOOKUP_BATCH = 256
# A stop was requested between two embedding batches; nothing of the window was written.
Interrupted = StopRequested


@dataclass
class EmbedResult:
    embedded: int = 0
    reused: int = 0
    seconds: float = 0.0


def fill_vectors(
    plans: Sequence[FilePlan],
    *,
    encoder: Encoder,
    store: Store,
    should_stop: Callable[[], bool] = lambda: False,
) -> EmbedResult:
    """Give every planned upsert a vector: a stored one when it exists, else a new one.
    Sets each plan's `embedded` count (its texts that were computed, not reused)."""
    pending = [(plan, plan.needs_vectors()) for plan in plans]
    missing = [p for _, points in pending for p in points]
    result = EmbedResult()
    if not missing:
        return result
    found = stored_vectors(store, {p.embed_hash for p in missing})
    inputs = {p.embed_hash: p.embed_input for p in missing if p.embed_hash not in found}
    started = time.monotonic()
    found.update(_embed(encoder, inputs, should_stop))
    result.seconds = time.monotonic() - started
    for point in missing:
        point.vector = found[point.embed_hash]
    for plan, points in pending:
        plan.embedded = sum(1 for p in points if p.embed_hash in inputs)
    result.embedded = len(inputs)
    result.reused = sum(1 for p in missing if p.embed_hash not in inputs)
    return result


def stored_vectors(store: Store, hashes: set[str]) -> dict[str, list[float]]:
    """embed hash -> a stored vector, for the hashes some point in the collection has."""
    wanted = sorted(hashes)
    found: dict[str, list[float]] = {}
    for i in range(0, len(wanted), LOOKUP_BATCH):
        match = {schema.EMBED_HASH: wanted[i : i + LOOKUP_BATCH]}
        for point in store.scroll(match, fields=[schema.EMBED_HASH], with_vectors=True):
            if point.vector is not None:
                found.setdefault(str(point.payload.get(schema.EMBED_HASH)), point.vector)
    return found


def _embed(
    encoder: Encoder, inputs: dict[str, str], should_stop: Callable[[], bool]
) -> dict[str, list[float]]:
    if should_stop():
        raise Interrupted
    vectors = encoder.embed_passages(list(inputs.values()), should_stop=should_stop)
    return dict(zip(inputs, (v.tolist() for v in vectors), strict=True))
