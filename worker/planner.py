"""Each file's work before its vectors: read (stage 2), chunk (3) and plan (4).

A file whose points carry its current stat key is not read; one whose content hash is
unchanged gets the stat key it lacks and is not chunked. The rest are tokenized in groups
(one tokenizer call on every core for many files), chunked, and planned against the points
the collection holds for them, in parts of about a window each. A mail's attachments are
documents of their own, read, kept and written with the mail (worker/attachments.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import PurePosixPath

from docsync.plugin import schema
from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import ConfigError
from docsync.plugin.store import Store
from docsync.worker import attachments
from docsync.worker.attachments import Attached, ToPlan
from docsync.worker.chunk import chunk_text, clip_title, find_title
from docsync.worker.plan import FilePlan, FileVersion, IndexedFile, plan_parts, point_ids
from docsync.worker.read import Document, Unchanged, current_stat_key, read_document
from docsync.worker.report import Skip
from docsync.worker.scan import Scan, SourceFile
from docsync.worker.sync_options import SyncOptions

MIN_PASSAGE_TOKENS = 16
# Documents tokenized in one call (in parallel) before they are chunked and planned: up to
# this many files, or this many characters (about 0.2M tokens: a second of one core's work).
PLAN_GROUP_FILES = 64
PLAN_GROUP_CHARS = 1_000_000
# What planning says of each file: its skip, its path (its points are current), or a plan.
FileEvent = Skip | str | FilePlan


class Planner:
    """Plans the files of a scan against what the collection holds of them."""

    def __init__(
        self,
        store: Store,
        encoder: Encoder,
        options: SyncOptions,
        *,
        part_points: int,
        should_stop: Callable[[], bool],
    ) -> None:
        self.store = store
        self.encoder = encoder
        self.options = options
        self.part_points = part_points  # upserts in one part of a file's plan
        self.should_stop = should_stop

    def events(self, scan: Scan, indexed: dict[str, IndexedFile]) -> Iterator[FileEvent]:
        """Each file's event: its skip, its path (current), or its plan. Documents to plan
        are tokenized in groups, one tokenizer call for many files (see `_plan_group`)."""
        yield from scan.skipped
        attached = attachments.attached_paths(indexed)
        group: list[ToPlan] = []
        group_chars = 0
        for source in scan.files:
            if self.should_stop():
                return
            now, to_plan = self._read(
                source, indexed.get(source.path), attached.get(source.path, {})
            )
            yield from now
            group += to_plan
            group_chars += sum(len(item.document.text) for item in to_plan)
            del to_plan  # the group alone holds the documents, so planning can free their text
            if len(group) >= PLAN_GROUP_FILES or group_chars >= PLAN_GROUP_CHARS:
                yield from self._plan_group(group)
                group, group_chars = [], 0
        yield from self._plan_group(group)

    def _read(
        self, source: SourceFile, entry: IndexedFile | None, attached: Attached
    ) -> tuple[list[FileEvent], list[ToPlan]]:
        """The file's events now (its skip, its path when its points are current), and its
        documents to plan. `attached`: what the collection holds of its attachments (a
        mail's: see worker/attachments.py), current, kept or deleted with it."""
        chunker, max_bytes = self.options.chunker, self.options.max_file_bytes
        root = str(source.root)
        key = current_stat_key(source, max_bytes)
        if attachments.unchanged(entry, attached, key, chunker):
            # unchanged since its points were written: not read
            return [source.path, *attachments.kept(root, attached)], []
        document = read_document(
            source,
            max_bytes=max_bytes,
            timeout=self.options.read_timeout,
            memory_mb=self.options.reader_memory_mb,
            ocr=self.options.ocr,
            current_hash=attachments.current_hash(entry, attached, chunker),
        )
        if isinstance(document, Skip):
            kept = attachments.kept(root, attached) if document.is_failure else []
            return [document, *kept], []  # a failure keeps what was indexed, rules do not
        if isinstance(document, Unchanged):
            assert entry is not None
            for path, held in (*attached.items(), (source.path, entry)):
                self._stamp(root, path, held, document.stat_key)
            return [source.path, *attachments.kept(root, attached)], []
        if not attached and not document.content.attachments:
            return [], [ToPlan(document, entry is not None)]
        now, to_plan = attachments.documents(
            document, entry is not None, attached, lambda path: point_ids(self.store, root, path)
        )
        return [*now], to_plan

    def _plan_group(self, group: list[ToPlan]) -> Iterator[FilePlan]:
        """Plans for documents tokenized together: the tokenizer runs one text per core, so
        one call for many files keeps every core busy where a file at a time used one."""
        if not group:
            return
        spans = self.encoder.token_spans_many([item.document.text for item in group])
        for _ in range(len(group)):  # no name here holds a planned file's text or spans
            yield from self._plan(group.pop(0), spans.pop(0))

    def _stamp(self, root: str, path: str, entry: IndexedFile, stat_key: str) -> None:
        """Give the points of a current file (or attachment) the stat key they lack (they
        were written before the file had settled, as a daemon writes a file just saved), so
        that later syncs need not read it. Safe half done: mixed keys only mean the file is
        read next time."""
        if stat_key and entry.stat_key != stat_key:
            ids = point_ids(self.store, root, path)
            self.store.set_payload(ids, {schema.FILE_STAT: stat_key})

    def _plan(self, item: ToPlan, spans: Sequence[tuple[int, int]]) -> Iterator[FilePlan]:
        """The document's plan, in parts of a window each (see `FilePlan`); an attachment's
        parts are all parts of its mail's write (none final: the mail's is, written last)."""
        document, has_points, write = item.document, item.has_points, item.write
        source = document.source
        root = str(source.root)
        title = self._title(document)
        chunks = chunk_text(
            document.text,
            tokenizer=self.encoder,
            max_tokens=self._budget(title),
            spans=spans,
            breaks=document.content.pages,
            body_start=document.content.body_start,
            headings=document.content.headings,
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
            labels=document.content.labels,
            ocr=document.content.ocr,
            tags=document.content.tags,
            meta=document.content.meta,
            tokens=self.encoder.count_tokens_many([c.text for c in chunks]),
            container=item.container,
        )
        existing = (
            self.store.scroll({schema.ROOT: root, schema.PATH: source.path}, with_vectors=True)
            if has_points
            else ()
        )
        del spans, document, item  # a long file's text and spans go before its points are planned
        compose = self.encoder.passage_input
        parts = plan_parts(version, existing, compose, part_points=self.part_points, write=write)
        for plan in parts:
            plan.final = plan.final and not version.container
            yield plan

    def _title(self, document: Document) -> str:
        stem = PurePosixPath(document.source.path).stem
        headings = document.content.headings
        title = document.content.title or find_title(document.text, stem, headings)
        return clip_title(title, self.encoder)

    def _budget(self, title: str) -> int:
        """Tokens of passage text a chunk of this file may hold."""
        budget = min(self.options.chunk_tokens, self.encoder.passage_budget(title))
        if budget < MIN_PASSAGE_TOKENS:
            raise ConfigError(
                f"the passage prefix and title leave {budget} tokens of the model's "
                f"{self.encoder.max_tokens}: shorten DOCSYNC_PASSAGE_PREFIX"
            )
        return budget
