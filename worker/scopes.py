"""One run of a `Syncer`: each scope reconciled in parts, then the files gone from it removed.

A scope is listed whole (what is on disk there, what the collection holds there) unless it
holds more than `WHOLE_LISTING_POINTS` points; then a folder at a time. Each part's files are
planned on a thread ahead of this one (`planner`), embedded and written (`windows`). Points
of files that are gone are deleted last, so a renamed file finds its old vectors still there;
none of a root that looks unmounted, and not most of a root's files because the rules changed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from docsync.plugin.background import ahead
from docsync.worker.plan import (
    FilePlan,
    IndexedFile,
    list_files,
    plan_removal,
    point_ids,
    scope_match,
)
from docsync.worker.planner import FileEvent, Planner
from docsync.worker.progress import Progress
from docsync.worker.report import Skip, SyncReport, first_names, named
from docsync.worker.scan import Scan, has_entries, scan_root, storable
from docsync.worker.windows import Windows

if TYPE_CHECKING:
    from docsync.worker.pipeline import Syncer

log = logging.getLogger("docsync.sync")
# A scope whose points number more than this is reconciled a folder at a time (its own files,
# then each folder in it, split again while it is this large), so that no sync holds the
# listing of a whole large tree: 20,000 listed files take about 7 MB.
WHOLE_LISTING_POINTS = 50_000
# A sync that would drop more than this share of a root's indexed files (of a root holding at
# least MASS_DELETE_MIN_FILES) although they are still on disk, because the include/exclude
# rules no longer select them, is held back like an emptied root: a mistyped DOCSYNC_INCLUDE
# would otherwise empty the collection without a word (SyncOptions.allow_mass_delete).
MASS_DELETE_SHARE = 0.5
MASS_DELETE_MIN_FILES = 10


@dataclass
class _Part:
    """Part of a scope: what is on disk there, and what the collection holds there."""

    scan: Scan
    indexed: dict[str, IndexedFile]


@dataclass
class _Gone:
    """The files gone from one scope, removed once the sync is otherwise done."""

    root: Path
    scope: str
    paths: list[str] = field(default_factory=list)
    candidates: int = 0  # files found in the scope
    indexed: int = 0  # files the collection held there


class Run:
    def __init__(self, syncer: Syncer, progress: Progress) -> None:
        self.syncer = syncer
        self.store = syncer.store
        self.options = syncer.options
        self.progress = progress
        progress.set_total(0)  # grows as each part of each scope is found
        self.report = SyncReport()
        self.started = time.monotonic()
        self.gone: list[_Gone] = []
        self.windows = Windows(
            syncer.store,
            syncer.encoder,
            self.report,
            progress,
            window_chunks=self.options.window_chunks,
            keyword=syncer.keyword,
            should_stop=syncer.should_stop,
            donor=syncer.donor,
        )
        self.planner = Planner(
            syncer.store,
            syncer.encoder,
            self.options,
            part_points=self.windows.full,
            should_stop=syncer.should_stop,
        )

    def close(self) -> None:
        self.windows.close()

    def sync_scope(self, root_path: Path, scope: str) -> None:
        """Reconcile one scope, in parts (`_parts`); the files gone from it are removed by
        `finish`, once every scope is done."""
        root = str(root_path)
        gone = _Gone(root_path, scope)
        for part in self._parts(root_path, scope):
            self.progress.more(part.scan.candidates)
            self.report.files_scanned += part.scan.candidates
            self.report.not_included(part.scan.not_included, part.scan.not_included_names)
            self.report.links_folded += len(part.scan.folded)
            self.syncer.tell_folded(root, part.scan.folded)
            gone.candidates += part.scan.candidates
            gone.indexed += len(part.indexed)
            keep = self._sync_part(root, part)
            if self.syncer.should_stop():
                return
            gone.paths.extend(
                p for p in part.indexed if p not in keep and not part.scan.covers_unlisted(p)
            )
        if gone.paths:
            self.gone.append(gone)

    def finish(self) -> None:
        """Embed and write what the windows still hold, then remove the files gone (last: a
        file moved elsewhere found its vectors), and wait for the writer."""
        self.windows.flush()
        if not self.syncer.should_stop():
            self._remove_gone()
        self.windows.writer.drain()

    def _parts(self, root_path: Path, scope: str) -> Iterator[_Part]:
        """The scope whole, when it holds at most `WHOLE_LISTING_POINTS` points; else the
        files directly in its folder (with those of its folders that are gone or excluded
        now), then each of its folders, split again while they are that large."""
        root, rules = str(root_path), self.syncer.rules
        if not storable(scope):  # a name not UTF-8 can hold no indexed file
            yield _Part(scan_root(root_path, rules, scope), {})
            return
        if self.store.count(scope_match(root, scope)) <= WHOLE_LISTING_POINTS:
            yield _Part(scan_root(root_path, rules, scope), list_files(self.store, root, scope))
            return
        own = scan_root(root_path, rules, scope, descend=False)
        yield _Part(own, list_files(self.store, root, scope, outside=own.folders))
        for folder in own.folders:
            yield from self._parts(root_path, folder)

    def _sync_part(self, root: str, part: _Part) -> set[str]:
        """Files are read, chunked and planned on a thread ahead of this one, which embeds;
        the writer thread writes behind it (a window may span parts: `finish` ends the
        last). The paths of the part's files that stay."""
        keep: set[str] = set()
        # Planned about a window ahead of the embedding (in points, not files: a few big files
        # would otherwise keep tens of thousands of points waiting).
        events = self.planner.events(part.scan, part.indexed)
        depth = self.windows.full
        for event in ahead(events, depth=depth, name="docsync-plan", weight=_weight):
            if isinstance(event, Skip):
                self._skip(root, event, keep)
            elif isinstance(event, str):  # read, and already current
                keep.add(event)
                self.progress.advance()
            else:
                keep.add(event.path)
                self.windows.queue(event)
        return keep

    def _skip(self, root: str, skip: Skip, keep: set[str]) -> None:
        # A rule skip is said once until its file changes; a failure on every sync.
        said = not skip.is_failure and not self.syncer.skips.first_time(
            root, skip.path, skip.reason
        )
        self.report.skip(root, skip, said=said)
        if skip.is_failure:
            keep.add(skip.path)  # a failure keeps what was indexed before
        self.progress.advance()

    def _remove_gone(self) -> None:
        """Delete the points of the files gone from each scope; none of a root that looks
        unmounted (no file at all where the collection holds some)."""
        for gone in self.gone:
            root = str(gone.root)
            # A whole root with no file at all; a folder in a root that is empty (or that cannot
            # be read now: no news is no reason to delete).
            if gone.scope:
                looks_unmounted = has_entries(gone.root) is not True
            else:
                looks_unmounted = not gone.candidates
            if looks_unmounted and not self.options.allow_empty_roots:
                self._protect(root, gone.indexed)
                continue
            deletable = self._deletable(gone)
            files = set(deletable)
            for path in deletable:
                plan = plan_removal(root, path, point_ids(self.store, root, path))
                # a document read out of a file gone too (a mail's attachment) is counted
                # with that file, not as a file deleted of its own
                plan.final = path.rpartition("/")[0] not in files
                self.windows.write(plan, deleted_file=True)

    def _deletable(self, gone: _Gone) -> list[str]:
        """The gone paths to delete: all of them, but those the rules no longer select (still
        on disk) when they are most of a whole root's files and that was not allowed."""
        if gone.scope or self.options.allow_mass_delete:
            return gone.paths  # a daemon's scoped sync never changes the rules
        rules = self.syncer.rules
        dropped = [p for p in gone.paths if not rules.selects(p) and os.path.lexists(gone.root / p)]
        if len(dropped) <= MASS_DELETE_SHARE * gone.indexed or gone.indexed < MASS_DELETE_MIN_FILES:
            return gone.paths
        log.warning(
            "root %s: the include/exclude rules no longer select %d of the %d files the "
            "collection holds from it (%s): not deleting them (DOCSYNC_INCLUDE or "
            "DOCSYNC_EXCLUDE changed?); pass --allow-mass-delete if the new rules are meant",
            gone.root,
            len(dropped),
            gone.indexed,
            named(first_names(dropped), len(dropped)),
        )
        self.report.protected_roots.append(str(gone.root))
        kept = set(dropped)  # and the documents read out of them (a mail's attachments)
        return [p for p in gone.paths if p not in kept and p.rpartition("/")[0] not in kept]

    def _protect(self, root: str, indexed_files: int) -> None:
        log.warning(
            "root %s is missing or has no files, but the collection holds %d of its files: "
            "not deleting them (an unmounted volume?); pass --allow-empty if the folder is "
            "empty on purpose",
            root,
            indexed_files,
        )
        self.report.protected_roots.append(root)


def _weight(event: FileEvent) -> int:
    return event.weight if isinstance(event, FilePlan) else 1
