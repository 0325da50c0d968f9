"""Stage 5: vectors for the planned points that lack one.

A vector is computed only when no point in the collection already holds one for the same
embedded text (same title, same passage, same profile): renamed, moved and copied files,
and text repeated across files, reuse what is there. Each distinct text is embedded once,
with a chance to stop between batches.

A window is started (lookups done, texts handed to the encoder) before the previous one is
finished, so that on a GPU the next window's tokenizing overlaps this one's embedding.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from docsync.plugin import schema
from docsync.plugin.embedding.runner import Prepared
from docsync.plugin.encoder import Encoder
from docsync.plugin.store import Store
from docsync.worker.plan import FilePlan, PlannedPoint, PlannedVector, compact

LOOKUP_BATCH = 256


@dataclass
class EmbedResult:
    embedded: int = 0
    reused: int = 0
    seconds: float = 0.0


@dataclass
class VectorJob:
    """A window's vectors, started: stored ones looked up, the missing texts handed to the
    encoder (on a GPU, already being tokenized). `finish_vectors` completes it."""

    pending: list[tuple[FilePlan, list[PlannedPoint]]]  # each plan, with its points lacking one
    found: dict[str, PlannedVector]
    inputs: dict[str, str]  # embed hash -> text, for the texts to compute
    prepared: Prepared | None

    @property
    def plans(self) -> list[FilePlan]:
        return [plan for plan, _ in self.pending]


def start_vectors(
    plans: Sequence[FilePlan], *, encoder: Encoder, store: Store, donor: Store | None = None
) -> VectorJob:
    """Look up the stored vectors of a window and hand the encoder what is left to compute,
    so that it can prepare those texts while an earlier window is embedded. `donor`: another
    collection whose vectors are this encoder's too (the live generation, for a reindex
    that changes the chunker only): looked up for what `store` lacks."""
    pending = [(plan, plan.needs_vectors()) for plan in plans]
    missing = [p for _, points in pending for p in points]
    found = stored_vectors(store, {p.embed_hash for p in missing}) if missing else {}
    lacking = {p.embed_hash for p in missing} - found.keys()
    if donor is not None and lacking:
        found.update(stored_vectors(donor, lacking))
    inputs = {p.embed_hash: p.embed_input for p in missing if p.embed_hash not in found}
    prepared = encoder.prepare_passages(list(inputs.values())) if inputs else None
    return VectorJob(pending, found, inputs, prepared)


def finish_vectors(
    job: VectorJob, *, encoder: Encoder, should_stop: Callable[[], bool] = lambda: False
) -> EmbedResult:
    """Embed what `start_vectors` left to compute and give every planned upsert its vector;
    raises `StopRequested` when `should_stop` says so between batches (nothing is assigned)."""
    result = EmbedResult()
    missing = [p for _, points in job.pending for p in points]
    if not missing:
        return result
    found: dict[str, PlannedVector] = dict(job.found)
    if job.prepared is not None:  # the encoder asks `should_stop` before every batch
        started = time.monotonic()
        vectors = encoder.embed_passages(job.prepared, should_stop=should_stop)
        found.update(zip(job.inputs, vectors, strict=True))  # rows: lists only when written
        result.seconds = time.monotonic() - started
    for point in missing:
        point.vector = found[point.embed_hash]
    for plan, points in job.pending:
        plan.embedded = sum(1 for p in points if p.embed_hash in job.inputs)
    result.embedded = len(job.inputs)
    result.reused = sum(1 for p in missing if p.embed_hash not in job.inputs)
    return result


def stored_vectors(store: Store, hashes: set[str]) -> dict[str, PlannedVector]:
    """embed hash -> a stored vector, for the hashes some point in the collection has."""
    wanted = sorted(hashes)
    found: dict[str, PlannedVector] = {}
    for i in range(0, len(wanted), LOOKUP_BATCH):
        match = {schema.EMBED_HASH: wanted[i : i + LOOKUP_BATCH]}
        for point in store.scroll(match, fields=[schema.EMBED_HASH], with_vectors=True):
            vector = compact(point.vector)
            if vector is not None:
                found.setdefault(str(point.payload.get(schema.EMBED_HASH)), vector)
    return found
