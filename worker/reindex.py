"""`docsync reindex`: the next generation of the collection (`docsync.plugin.generations`),
built with the settings' model and chunker beside the live one, which searches keep reading.

It is a sync into the next generation: the sync's own crash safety makes it resumable (a
killed run is started again and goes on: files whose points are all there are current,
vectors already written are reused by embedded text, nothing is embedded twice), and it
reuses the live generation's vectors by embedded text wherever they are this model's (a
change of chunker alone embeds only the chunks whose text changed). Marked built only when
the sync was complete: `docsync switch` takes nothing less.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from docsync.plugin.encoder import Encoder
from docsync.plugin.generations import BUILDING, BUILT, resumable
from docsync.plugin.store import Store
from docsync.plugin.stores import generations_of
from docsync.worker.pipeline import SyncOptions, sync
from docsync.worker.progress import NoProgress, Progress
from docsync.worker.report import SyncReport

log = logging.getLogger("docsync.reindex")


@dataclass(frozen=True)
class Reindexed:
    generation: str  # the one built
    live: str  # the one searches still read
    reused_live: bool  # whether the live one's vectors were this model's (and reused)
    report: SyncReport

    @property
    def built(self) -> bool:
        return self.report.ok

    def to_dict(self) -> dict[str, object]:
        return {
            "generation": self.generation,
            "live": self.live,
            "built": self.built,
            "reused_live_vectors": self.reused_live,
            **self.report.to_dict(),
        }


def reindex(
    roots: Sequence[Path],
    *,
    live: Store,
    encoder: Encoder,
    options: SyncOptions,
    progress: Progress | None = None,
) -> Reindexed:
    """Build (or go on building) the next generation of `live`'s collection from `roots`."""
    gens = generations_of(live)
    profile = encoder.profile()
    target = resumable(gens, profile)
    current = gens.live_name() or live.collection
    stored = live.read_profile()
    donor = live if stored is not None and profile.same_passage_vectors(stored) else None
    log.info(
        "building generation %r of collection %r (live: %r)%s",
        target,
        gens.collection,
        current,
        "; reusing the live generation's vectors" if donor is not None else "",
    )
    store = gens.store(target)
    try:
        store.open(profile, create=True)
        gens.mark(target, BUILDING)
        report = sync(
            roots,
            store=store,
            encoder=encoder,
            options=options,
            progress=progress or NoProgress(),
            donor=donor,
        )
        if report.ok:
            gens.mark(target, BUILT)
        store.optimize()
    finally:
        store.close()
    return Reindexed(target, current, donor is not None, report)
