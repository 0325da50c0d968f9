"""The stages joined: scan → read → chunk → plan → embed → write.

A `Syncer` reconciles a *scope* (a whole root, or one file or folder in it) with the
collection: it lists what is indexed there, reads what is on disk there, and writes the
difference. `docsync sync` reconciles whole roots once; the daemon reconciles the scopes its
file events name, and whole roots on every rescan.

Four threads overlap: one reads, chunks and plans files ahead (`planner`: tokenizing documents
in groups, one tokenizer call on every core for many files); this one embeds a window's
missing vectors together (better batches), while a fourth looks up the stored vectors of the
next window and hands its texts to the encoder (on a GPU their tokenizing runs meanwhile);
the writer writes each file's points behind it, in order, upserts before deletes (`windows`).
Points of files that are gone are deleted last, so a renamed file finds its old vectors still
there (`scopes`). The collection stays the only record of what is indexed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import ConfigError, StoreRequestError
from docsync.plugin.keyword import KeywordEncoder
from docsync.plugin.store import Store
from docsync.worker.progress import NoProgress, Progress
from docsync.worker.report import SyncReport
from docsync.worker.scan import Fold, Rules, printable, storable
from docsync.worker.scopes import Run
from docsync.worker.skips import SkipMemory
from docsync.worker.sync_options import SyncOptions
from docsync.worker.upgrade import add_keyword_vectors

__all__ = ["SyncOptions", "Syncer", "check_roots", "sync"]

log = logging.getLogger("docsync.sync")


def check_roots(roots: Sequence[Path]) -> list[Path]:
    """Resolved, de-duplicated roots; a missing one is an error before anything is done.
    A root that is a symlink is resolved here, once: points are stored under the folder it
    names now, and a daemon keeps syncing that folder until it is restarted."""
    resolved: list[Path] = []
    for root in roots:
        if not root.exists():
            raise ConfigError(f"directory not found: {printable(str(root))}")
        if not root.is_dir():
            raise ConfigError(f"not a directory: {printable(str(root))}")
        real = root.resolve()
        if not storable(str(real)):
            raise ConfigError(f"the folder's path is not UTF-8, rename it: {printable(str(real))}")
        if root.is_symlink():
            log.info("%s is a symlink: syncing %s (a re-pointed link needs a restart)", root, real)
        if real not in resolved:
            resolved.append(real)
    if not resolved:
        raise ConfigError("no directory to sync")
    return resolved


def sync(
    roots: Sequence[Path],
    *,
    store: Store,
    encoder: Encoder,
    options: SyncOptions | None = None,
    progress: Progress | None = None,
    skips: SkipMemory | None = None,
    donor: Store | None = None,
) -> SyncReport:
    """Make the collection hold exactly the chunks of the selected files under `roots`.
    `skips`: the skips said by earlier syncs (default: none, every skip is said). `donor`:
    a collection whose vectors this encoder would compute too, reused by embedded text."""
    checked = check_roots(roots)
    syncer = Syncer(store, encoder, options or SyncOptions(), skips=skips, donor=donor)
    return syncer.sync_scopes([(root, "") for root in checked], progress=progress)


class Syncer:
    """Reconciles scopes of roots with the collection; reusable across syncs."""

    def __init__(
        self,
        store: Store,
        encoder: Encoder,
        options: SyncOptions,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        skips: SkipMemory | None = None,
        donor: Store | None = None,
    ) -> None:
        self.store = store
        self.donor = donor
        # Which skips were said: kept for the Syncer's life (a daemon's), or in a file.
        self.skips = skips or SkipMemory()
        self.encoder = encoder
        self.options = options
        self.rules = Rules(options.include, options.exclude)
        self.should_stop = should_stop
        self._opened = False
        # Keyword vectors to write with each point: None while the collection cannot hold
        # them (a server that cannot add them to a collection made before them).
        self.keyword: KeywordEncoder | None = encoder.keyword
        self._not_included_said = ""
        self._folds_said: set[tuple[str, Fold]] = set()
        if options.chunk_tokens > encoder.max_tokens:
            log.warning(
                "DOCSYNC_CHUNK_TOKENS=%d is above the model's limit of %d tokens: chunks are "
                "cut at %d (less the title and passage prefix)",
                options.chunk_tokens,
                encoder.max_tokens,
                encoder.max_tokens,
            )

    def sync_scopes(
        self, scopes: Sequence[tuple[Path, str]], *, progress: Progress | None = None
    ) -> SyncReport:
        """Reconcile each (root, scope); scope "" is the whole root. Scopes that still exist
        on disk go first, so files moved out of a vanished scope find their vectors."""
        started = time.monotonic()
        added = 0 if self._opened else self._open()
        run = Run(self, progress or NoProgress())
        run.started = started  # the report's seconds include an upgrade's
        run.report.keyword_vectors_added = added
        ordered = sorted(scopes, key=lambda s: not (s[0] / s[1]).exists())
        try:
            for root, scope in ordered:
                run.sync_scope(root, scope)
            run.finish()
        finally:
            run.close()
        run.report.seconds = time.monotonic() - run.started
        if all(not scope for _, scope in scopes):
            self._tell_not_included(run.report)
            if not self.should_stop():
                self.skips.forget_unseen([str(root) for root, _ in scopes])
        self.skips.save()
        return run.report

    def write_into(self, store: Store) -> None:
        """Write the next syncs into `store` (a daemon's live generation, after a switch):
        opened as the collection was (its profile checked, keyword vectors added)."""
        if store is not self.store:
            self.store, self._opened = store, False

    def _open(self) -> int:
        """Open (or create) the collection; give it keyword vectors if it lacks them."""
        profile = self.encoder.profile()
        self.store.open(profile, create=True)
        try:
            added = add_keyword_vectors(self.store, profile, self.encoder.keyword)
        except StoreRequestError as exc:
            # The dense vectors still sync; searches of this collection stay dense.
            log.warning("%s; syncing without keyword vectors", exc)
            self.keyword, added = None, 0
        self._opened = True
        return added

    def tell_folded(self, root: str, folded: Sequence[Fold]) -> None:
        """One line for the links folded into their targets, each said once (a daemon's
        rescans find them again)."""
        new = [fold for fold in folded if (root, fold) not in self._folds_said]
        if not new:
            return
        self._folds_said.update((root, fold) for fold in new)
        shown = ", ".join(f"{fold.link} -> {fold.target}" for fold in new[:5])
        more = f" and {len(new) - 5} more" if len(new) > 5 else ""
        log.info(
            "%s: %d symlink(s) indexed once, as the file each names: %s%s",
            root,
            len(new),
            printable(shown),
            more,
        )

    def _tell_not_included(self, report: SyncReport) -> None:
        """Once per whole-root sync, and for a daemon only when it changed since it last
        said it: a folder of PDFs that no rule includes must not sync without a word."""
        line = report.not_included_line()
        if line and line != self._not_included_said:
            log.warning("%s", line)
        self._not_included_said = line
