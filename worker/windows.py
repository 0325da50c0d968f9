"""Stages 5 and 6 of a run: plans collected into windows, embedded a window at a time, and
written behind.

A window's stored vectors are looked up, and its texts handed to the encoder, on a thread of
its own while the window before it embeds (on a GPU their tokenizing runs meanwhile); the
writer writes each file's points behind, in order, upserts before deletes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import StoreRequestError
from docsync.plugin.keyword import KeywordEncoder
from docsync.plugin.store import Store
from docsync.worker.embed import VectorJob, finish_vectors, start_vectors
from docsync.worker.plan import FilePlan
from docsync.worker.progress import Progress
from docsync.worker.report import Skip, SyncReport
from docsync.worker.write import Writer, WriteResult

log = logging.getLogger("docsync.sync")


class Windows:
    """Plans in, points written; counts what was embedded and written into `report`."""

    def __init__(
        self,
        store: Store,
        encoder: Encoder,
        report: SyncReport,
        progress: Progress,
        *,
        window_chunks: int | None,
        keyword: KeywordEncoder | None,
        should_stop: Callable[[], bool],
        donor: Store | None = None,
    ) -> None:
        self.store = store
        self.donor = donor  # vectors to reuse from another collection (`start_vectors`)
        self.encoder = encoder
        self.report = report
        self.progress = progress
        self.should_stop = should_stop
        self.window_chunks = window_chunks  # None: the encoder's choice
        self.full = window_chunks or encoder.window
        self.window: list[FilePlan] = []  # plans collecting for the next window
        self.window_texts = 0  # of their points, those that need a vector
        self.windows = 0  # windows started in this run
        self.job: Future[VectorJob] | None = None  # the started window, embedded next flush
        self.writer = Writer(store, self._written, max_points=4 * self.full, keyword=keyword)
        self.starter = ThreadPoolExecutor(1, thread_name_prefix="docsync-lookup")

    def close(self) -> None:
        try:
            self.writer.close()
        finally:
            self.starter.shutdown(wait=True, cancel_futures=True)

    def queue(self, plan: FilePlan) -> None:
        self.window.append(plan)
        self.window_texts += len(plan.needs_vectors())
        window = self.window_chunks or self.encoder.window_at(self.windows)
        if self.window_texts >= window:
            self._flush()

    def flush(self) -> None:
        """Embed and write what the windows still hold."""
        self._flush()
        self._flush()  # the window the first flush started

    def write(self, plan: FilePlan, *, deleted_file: bool) -> None:
        if not plan.empty:
            self.writer.submit(plan, deleted_file=deleted_file)

    def _flush(self) -> None:
        """Start the collected window, then embed and write the one started before it."""
        job = None
        if self.window:
            window, self.window, self.window_texts = self.window, [], 0
            job = self.starter.submit(
                start_vectors, window, encoder=self.encoder, store=self.store, donor=self.donor
            )
            self.windows += 1
        started, self.job = self.job, job
        if started is None:
            return
        previous = started.result()
        embedded = finish_vectors(previous, encoder=self.encoder, should_stop=self.should_stop)
        self.report.chunks_embedded += embedded.embedded
        self.progress.embedded(embedded.embedded)
        self.report.vectors_reused += embedded.reused
        self.report.embed_seconds += embedded.seconds
        for plan in previous.plans:
            self.write(plan, deleted_file=False)
            if plan.final:
                self.progress.advance()

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
