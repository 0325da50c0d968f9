"""Prometheus metrics of the daemon, in a registry of its own."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from docsync.worker.report import SyncReport

LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
# Error kinds shown (at 0) from the start, so that an alert on `docsync_errors_total` has a
# series to watch before the first error; other kinds appear when they first happen.
# Lags kept with when they were seen, for the web page's p50/p95 over the last hour (the
# histogram counts since the start): the newest this many.
RECENT_LAGS = 4096
ERROR_KINDS = ("unreadable", "unlistable", "rejected", "store_unavailable", "store_full")


class Metrics:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        # (when, seconds) of the newest lags, oldest first
        self.recent_lags: deque[tuple[float, float]] = deque(maxlen=RECENT_LAGS)
        self.registry = CollectorRegistry()
        r = self.registry
        self.files_synced = Counter(
            "docsync_files_synced", "Files whose points were written or removed", registry=r
        )
        self.chunks_embedded = Counter(
            "docsync_chunks_embedded", "Chunks embedded (not reused)", registry=r
        )
        self.points_upserted = Counter("docsync_points_upserted", "Points written", registry=r)
        self.points_deleted = Counter("docsync_points_deleted", "Points deleted", registry=r)
        self.embedding_seconds = Counter(
            "docsync_embedding_seconds", "Seconds spent embedding passages", registry=r
        )
        self.pending = Gauge(
            "docsync_pending_changes", "Changed paths waiting to be synced", registry=r
        )
        self.errors = Counter(
            "docsync_errors",
            "Errors by kind (a failed file's reason, or the store's)",
            ["kind"],
            registry=r,
        )
        for kind in ERROR_KINDS:
            self.errors.labels(kind=kind)
        self.lag = Histogram(
            "docsync_sync_lag_seconds",
            "Seconds from a file's change to its points being searchable",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.ready = Gauge("docsync_ready", "1 once the initial sync is done", registry=r)

    def record(self, report: SyncReport) -> None:
        self.files_synced.inc(report.files_changed + report.files_deleted)
        self.chunks_embedded.inc(report.chunks_embedded)
        self.points_upserted.inc(report.points_upserted)
        self.points_deleted.inc(report.points_deleted)
        self.embedding_seconds.inc(report.embed_seconds)
        for failure in report.failures:
            self.errors.labels(kind=failure.reason).inc()

    def observe_lag(self, seconds: Iterable[float]) -> None:
        now = self._clock()
        for value in seconds:
            self.lag.observe(max(0.0, value))
            self.recent_lags.append((now, max(0.0, value)))

    def render(self) -> bytes:
        return generate_latest(self.registry)
