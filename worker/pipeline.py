"""The stages joined: scan → read → chunk → plan → embed → write.

A `Syncer` reconciles a *scope* (a whole root, or one file or folder in it) with the
collection: it lists what is indexed there, reads what is on disk there, and writes the
difference. `docsync sync` reconciles whole roots once; the daemon reconciles the scopes its
file events name, and whole roots on every rescan.

Four threads overlap: one reads, chunks and plans files ahead (tokenizing documents in
groups, one tokenizer call on every core for many files); this one embeds a window's
missing vectors together (better batches), while a fourth looks up the stored vectors of the
next window and hands its texts to the encoder (on a GPU their tokenizing runs meanwhile);
the writer writes each file's points behind it, in order, upserts before deletes. Points of
files that are gone are deleted last, so a renamed file finds its old vectors still there.
The collection stays the only record of what is indexed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol

from docsync.plugin import schema
from docsync.plugin.background import ahead
from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import ConfigError, StoreRequestError
from docsync.plugin.keyword import KeywordEncoder
from docsync.plugin.profile import CHUNKER_VERSION
from docsync.plugin.settings import DEFAULT_EXCLUDE, DEFAULT_INCLUDE
from docsync.plugin.store import Store
from docsync.worker.chunk import chunk_text, clip_title, find_title
from docsync.worker.embed import VectorJob, finish_vectors, start_vectors
from docsync.worker.plan import (
    FilePlan,
    FileVersion,
    IndexedFile,
    list_files,
    plan_parts,
    plan_removal,
    point_ids,
    scope_match,
)
from docsync.worker.read import (
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT,
    Document,
    Unchanged,
    current_stat_key,
    read_document,
)
from docsync.worker.report import Skip, SyncReport, first_names, named
from docsync.worker.scan import Fold, Rules, Scan, SourceFile, printable, scan_root, storable
from docsync.worker.skips import SkipMemory
from docsync.worker.upgrade import add_keyword_vectors
from docsync.worker.write import Writer, WriteResult

log = logging.getLogger("docsync.sync")
MIN_PASSAGE_TOKENS = 16
# Documents tokenized in one call (in parallel) before they are chunked and planned: up to
# this many files, or this many characters (about 0.2M tokens: a second of one core's work).
PLAN_GROUP_FILES = 64
PLAN_GROUP_CHARS = 1_000_000
PAYLOAD_VERSION = 4
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


class Progress(Protocol):
    def set_total(self, total: int) -> None:
        """Start again at 0 of `total`."""

    def more(self, files: int) -> None:
        """`files` more to do (a large tree is found a folder at a time)."""

    def advance(self, files: int = 1) -> None: ...

    def embedded(self, chunks: int) -> None:
        """`chunks` more passages embedded (vectors computed, not reused)."""


class _NoProgress:
    def set_total(self, total: int) -> None:
        pass

    def more(self, files: int) -> None:
        pass

    def advance(self, files: int = 1) -> None:
        pass

    def embedded(self, chunks: int) -> None:
        pass


@dataclass(frozen=True)
class SyncOptions:
    include: Sequence[str] = DEFAULT_INCLUDE
    exclude: Sequence[str] = DEFAULT_EXCLUDE
    max_file_bytes: int = 10_000_000
    chunk_tokens: int = 256
    # Sync a root that has no files at all although the collection holds some of its files.
    # Off by default: an unmounted volume looks exactly like that.
    allow_empty_roots: bool = False
    # Let new include/exclude rules drop most of a root's files (see MASS_DELETE_SHARE).
    allow_mass_delete: bool = False
    window_chunks: int | None = None  # chunks embedded together; None: the encoder's choice
    read_timeout: float = DEFAULT_TIMEOUT  # seconds a PDF, HTML or Word reader may take
    reader_memory_mb: int = DEFAULT_MEMORY_MB  # and the MiB of address space it may take

    @property
    def chunker(self) -> str:
        # What a point's payload was made by, stored in each point: a file whose points have
        # another is planned again. `payload=2` added the heading path (`section`), `payload=3`
        # the whitespace before each chunk (`gap`), `payload=4` the file's format, tags and
        # metadata (and pages): points written before gain them without re-embedding (their
        # embedded text is the same, unless front matter gives the file a new title).
        return f"{CHUNKER_VERSION};max_tokens={self.chunk_tokens};payload={PAYLOAD_VERSION}"


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
) -> SyncReport:
    """Make the collection hold exactly the chunks of the selected files under `roots`.
    `skips`: the skips said by earlier syncs (default: none, every skip is said)."""
    checked = check_roots(roots)
    syncer = Syncer(store, encoder, options or SyncOptions(), skips=skips)
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
    ) -> None:
        self.store = store
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
        run = _Run(self, progress or _NoProgress())
        run.started = started  # the report's seconds include an upgrade's
        run.report.keyword_vectors_added = added
        ordered = sorted(scopes, key=lambda s: not (s[0] / s[1]).exists())
        try:
            for root, scope in ordered:
                run.sync_scope(root, scope)
            run.flush_windows()
            if not self.should_stop():
                run.remove_gone()  # last: a file moved elsewhere found its vectors
            run.writer.drain()
        finally:
            run.close()
        run.report.seconds = time.monotonic() - run.started
        if all(not scope for _, scope in scopes):
            self._tell_not_included(run.report)
            if not self.should_stop():
                self.skips.forget_unseen([str(root) for root, _ in scopes])
        self.skips.save()
        return run.report

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


class _Run:
    def __init__(self, syncer: Syncer, progress: Progress) -> None:
        self.syncer = syncer
        self.store = syncer.store
        self.encoder = syncer.encoder
        self.options = syncer.options
        self.progress = progress
        progress.set_total(0)  # grows as each part of each scope is found
        self.report = SyncReport()
        self.window: list[FilePlan] = []  # plans collecting for the next window
        self.window_texts = 0  # of their points, those that need a vector
        self.windows = 0  # windows started in this run
        self.job: Future[VectorJob] | None = None  # the started window, embedded next flush
        self.started = time.monotonic()
        self.full_window = self.options.window_chunks or self.encoder.window
        self.gone: list[_Gone] = []
        self.writer = Writer(
            self.store,
            self._written,
            max_points=4 * self.full_window,
            keyword=syncer.keyword,
        )
        self.starter = ThreadPoolExecutor(1, thread_name_prefix="docsync-lookup")

    def close(self) -> None:
        try:
            self.writer.close()
        finally:
            self.starter.shutdown(wait=True, cancel_futures=True)

    def sync_scope(self, root_path: Path, scope: str) -> None:
        """Reconcile one scope, in parts (`_parts`); the files gone from it are removed by
        `remove_gone`, once every scope is done."""
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

    def flush_windows(self) -> None:
        """Embed and write what the windows still hold."""
        self._flush()
        self._flush()  # the window the first flush started

    def _sync_part(self, root: str, part: _Part) -> set[str]:
        """Files are read, chunked and planned on a thread ahead of this one, which embeds;
        the writer thread writes behind it (a window may span parts: `flush_windows` ends
        the last). The paths of the part's files that stay."""
        keep: set[str] = set()
        # Planned about a window ahead of the embedding (in points, not files: a few big files
        # would otherwise keep tens of thousands of points waiting).
        plans = self._plans(part.scan, part.indexed)
        planned = ahead(plans, depth=self.full_window, name="docsync-plan", weight=_weight)
        for event in planned:
            if isinstance(event, Skip):
                self._skip(root, event, keep)
            elif isinstance(event, str):  # read, and already current
                keep.add(event)
                self.progress.advance()
            else:
                keep.add(event.path)
                self._queue(event)
        return keep

    def _plans(
        self, scan: Scan, indexed: dict[str, IndexedFile]
    ) -> Iterator[Skip | str | FilePlan]:
        """Each file's event: its skip, its path (current), or its plan. Documents to plan
        are tokenized in groups, one tokenizer call for many files (see `_plan_group`)."""
        yield from scan.skipped
        group: list[tuple[Document, bool]] = []
        group_chars = 0
        for source in scan.files:
            if self.syncer.should_stop():
                return
            event = self._read(source, indexed.get(source.path))
            if not isinstance(event, tuple):
                yield event
                continue
            group.append(event)
            group_chars += len(event[0].text)
            del event  # the group alone holds the document, so planning it can free its text
            if len(group) >= PLAN_GROUP_FILES or group_chars >= PLAN_GROUP_CHARS:
                yield from self._plan_group(group)
                group, group_chars = [], 0
        yield from self._plan_group(group)

    def _read(
        self, source: SourceFile, entry: IndexedFile | None
    ) -> Skip | str | tuple[Document, bool]:
        """The file's skip, its path when its points are current, or its document to plan
        (and whether it has points)."""
        chunker, max_bytes = self.options.chunker, self.options.max_file_bytes
        if entry and entry.is_unchanged(current_stat_key(source, max_bytes), chunker):
            return source.path  # unchanged since its points were written: not read
        document = read_document(
            source,
            max_bytes=max_bytes,
            timeout=self.options.read_timeout,
            memory_mb=self.options.reader_memory_mb,
            current_hash=entry.current_hash(chunker) if entry else None,
        )
        if isinstance(document, Skip):
            return document
        if isinstance(document, Unchanged):
            assert entry is not None
            self._stamp(source, entry, document.stat_key)
            return source.path
        return document, entry is not None

    def _plan_group(self, group: list[tuple[Document, bool]]) -> Iterator[FilePlan]:
        """Plans for documents tokenized together: the tokenizer runs one text per core, so
        one call for many files keeps every core busy where a file at a time used one."""
        if not group:
            return
        spans = self.encoder.token_spans_many([document.text for document, _ in group])
        for _ in range(len(group)):  # no name here holds a planned file's text or spans
            yield from self._plan(*group.pop(0), spans.pop(0))

    def _stamp(self, source: SourceFile, entry: IndexedFile, stat_key: str) -> None:
        """Give the points of a current file the stat key they lack (they were written before
        the file had settled, as a daemon writes a file just saved), so that later syncs
        need not read it. Safe half done: mixed keys only mean the file is read next time."""
        if stat_key and entry.stat_key != stat_key:
            ids = point_ids(self.store, str(source.root), source.path)
            self.store.set_payload(ids, {schema.FILE_STAT: stat_key})

    def remove_gone(self) -> None:
        """Delete the points of the files gone from each scope; none of a root that looks
        unmounted (no file at all where the collection holds some)."""
        for gone in self.gone:
            root = str(gone.root)
            # A whole root with no file at all; a folder in a root that is empty.
            looks_unmounted = not _has_entries(gone.root) if gone.scope else not gone.candidates
            if looks_unmounted and not self.options.allow_empty_roots:
                self._protect(root, gone.indexed)
                continue
            for path in self._deletable(gone):
                plan = plan_removal(root, path, point_ids(self.store, root, path))
                self._write(plan, deleted_file=True)

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
        kept = set(dropped)
        return [p for p in gone.paths if p not in kept]

    def _skip(self, root: str, skip: Skip, keep: set[str]) -> None:
        # A rule skip is said once until its file changes; a failure on every sync.
        said = not skip.is_failure and not self.syncer.skips.first_time(
            root, skip.path, skip.reason
        )
        self.report.skip(root, skip, said=said)
        if skip.is_failure:
            keep.add(skip.path)  # a failure keeps what was indexed before
        self.progress.advance()

    def _protect(self, root: str, indexed_files: int) -> None:
        log.warning(
            "root %s is missing or has no files, but the collection holds %d of its files: "
            "not deleting them (an unmounted volume?); pass --allow-empty if the folder is "
            "empty on purpose",
            root,
            indexed_files,
        )
        self.report.protected_roots.append(root)

    def _plan(
        self, document: Document, has_points: bool, spans: Sequence[tuple[int, int]]
    ) -> Iterator[FilePlan]:
        """The file's plan, in parts of a window each (see `FilePlan`)."""
        source = document.source
        root = str(source.root)
        stem = PurePosixPath(source.path).stem
        title = document.content.title or find_title(document.text, fallback=stem)
        title = clip_title(title, self.encoder)
        budget = min(self.options.chunk_tokens, self.encoder.passage_budget(title))
        if budget < MIN_PASSAGE_TOKENS:
            raise ConfigError(
                f"the passage prefix and title leave {budget} tokens of the model's "
                f"{self.encoder.max_tokens}: shorten DOCSYNC_PASSAGE_PREFIX"
            )
        chunks = chunk_text(
            document.text,
            tokenizer=self.encoder,
            max_tokens=budget,
            spans=spans,
            breaks=document.content.pages,
            body_start=document.content.body_start,
        )
        version = FileVersion(
            root,
            source.path,
            title,
            document.file_hash,
            self.options.chunker,
            chunks,
            document.stat_key,
            format=document.content.format,
            pages=document.content.pages,
            tags=document.content.tags,
            meta=document.content.meta,
        )
        existing = (
            self.store.scroll({schema.ROOT: root, schema.PATH: source.path}, with_vectors=True)
            if has_points
            else ()
        )
        del spans, document  # a long file's text and spans go before its points are planned
        compose = self.encoder.passage_input
        yield from plan_parts(version, existing, compose, part_points=self.full_window)

    def _queue(self, plan: FilePlan) -> None:
        self.window.append(plan)
        self.window_texts += len(plan.needs_vectors())
        window = self.options.window_chunks or self.encoder.window_at(self.windows)
        if self.window_texts >= window:
            self._flush()

    def _flush(self) -> None:
        """Start the collected window, then embed and write the one started before it."""
        job = None
        if self.window:
            window, self.window, self.window_texts = self.window, [], 0
            job = self.starter.submit(start_vectors, window, encoder=self.encoder, store=self.store)
            self.windows += 1
        started, self.job = self.job, job
        if started is None:
            return
        previous = started.result()
        embedded = finish_vectors(
            previous, encoder=self.encoder, should_stop=self.syncer.should_stop
        )
        self.report.chunks_embedded += embedded.embedded
        self.progress.embedded(embedded.embedded)
        self.report.vectors_reused += embedded.reused
        self.report.embed_seconds += embedded.seconds
        for plan in previous.plans:
            self._write(plan, deleted_file=False)
            if plan.final:
                self.progress.advance()

    def _write(self, plan: FilePlan, *, deleted_file: bool) -> None:
        if not plan.empty:
            self.writer.submit(plan, deleted_file=deleted_file)

    def _written(self, plan: FilePlan, deleted_file: bool, result: WriteResult | Exception) -> None:
        """On the writer thread: count what a plan wrote, or report the file Qdrant refused."""
        if isinstance(result, StoreRequestError):
            self.report.skip(plan.root, Skip(plan.path, "rejected", str(result)))
            return
        if isinstance(result, Exception):
            raise result
        written = result
        self.report.points_upserted += written.upserted
        self.report.points_deleted += written.deleted
        if not plan.final or plan.write.failed:  # counted once a file, if written whole
            return
        if deleted_file:
            self.report.files_deleted += 1
        else:
            self.report.files_changed += 1
        self.report.synced_paths.append(plan.path)
        log.debug(
            "synced %s/%s: +%d -%d points, %d embedded",
            plan.root,
            plan.path,
            written.upserted,
            written.deleted,
            plan.embedded,
            extra={"path": plan.path, "embedded": plan.embedded},
        )


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


def _weight(event: Skip | str | FilePlan) -> int:
    return event.weight if isinstance(event, FilePlan) else 1


def _has_entries(root: Path) -> bool:
    try:
        with os.scandir(root) as entries:
            return any(True for _ in entries)
    except OSError:
        return False
