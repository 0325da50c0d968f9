"""The Health view's data: save-to-searchable lag over the last hour (p50, p95 and the
samples for a small chart, from the daemon's `Metrics`), errors by kind, the embedding
profile, and the store with its size on disk."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from docsync.plugin.store import Store
from docsync.worker.metrics import Metrics

WINDOW_SECONDS = 3600.0
CHART_POINTS = 120  # the newest lags the chart draws


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of `values` (None when there are none)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def lag_summary(
    recent: Iterable[tuple[float, float]], *, now: float | None = None
) -> dict[str, Any]:
    """p50/p95 of the lags seen in the last hour, and the newest of them as (age, seconds)."""
    now = time.time() if now is None else now
    within = [(when, lag) for when, lag in recent if now - when <= WINDOW_SECONDS]
    lags = [lag for _, lag in within]
    return {
        "window_seconds": WINDOW_SECONDS,
        "samples": len(lags),
        "p50": percentile(lags, 0.5),
        "p95": percentile(lags, 0.95),
        "series": [[round(now - when, 1), round(lag, 3)] for when, lag in within[-CHART_POINTS:]],
    }


def errors_by_kind(metrics: Metrics) -> dict[str, int]:
    """`docsync_errors_total` by kind, as /metrics gives it."""
    counts: dict[str, int] = {}
    for family in metrics.errors.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                counts[sample.labels["kind"]] = int(sample.value)
    return dict(sorted(counts.items()))


def folder_bytes(folder: Path) -> int:
    """The bytes the files under `folder` take on disk (an embedded store's size): blocks,
    not lengths, as the engine's files are sparse (a tiny store's read 206 MB long)."""
    total = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            try:
                info = os.lstat(os.path.join(parent, name))
            except OSError:
                continue  # a segment replaced while we walked
            blocks = getattr(info, "st_blocks", None)
            total += info.st_size if blocks is None else blocks * 512
    return total


def store_info(store: Store, folder: Path | None) -> dict[str, Any]:
    """The store: embedded (with its folder's size) or a server, and its points."""
    return {
        "kind": "embedded" if folder is not None else "server",
        "description": store.description,
        "collection": store.collection,
        "points": store.count(),
        "bytes": folder_bytes(folder) if folder is not None else None,
    }


def health(
    store: Store, folder: Path | None, metrics: Metrics | None, clock: Callable[[], float]
) -> dict[str, Any]:
    """The whole view; without `metrics` (`docsync serve`: nothing syncs) no lag or errors."""
    profile = store.read_profile()
    return {
        "live": metrics is not None,
        "lag": lag_summary(metrics.recent_lags, now=clock()) if metrics else None,
        "errors": errors_by_kind(metrics) if metrics else None,
        "profile": profile.to_dict() if profile else None,
        "store": store_info(store, folder),
    }
