"""The JSON the page reads besides `/search`: `/api/folders`, `/api/health` and
`/api/document`, for a daemon (`Live`: what its sync loop knows) or for `docsync serve`
(the store alone, and the skips the last sync remembered)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docsync.plugin.store import Store
from docsync.worker.metrics import Metrics
from docsync.worker.web.document import document_window
from docsync.worker.web.folders import (
    FolderLog,
    SyncProgress,
    listing,
    remembered,
    root_counts,
    stored_roots,
)
from docsync.worker.web.health import health

API_ROUTES = ("/api/about", "/api/folders", "/api/health", "/api/document")
# A root's counts are asked of the store again after a sync, but no sooner than this many
# times what the last count took: counting a root's files reads every first chunk (1 s at
# 100k points on 2 busy cores), so a page left open takes at most a tenth of a core.
COUNT_SPACING = 10.0
Answer = tuple[int, object]


@dataclass(frozen=True)
class _Counted:
    generation: object  # what the daemon had done when they were counted
    at: float
    seconds: float  # what counting took
    counts: dict[str, int]


@dataclass
class Live:
    """What a running daemon knows that the store does not."""

    state: Callable[[], Mapping[str, Any]]  # `Daemon.state()`: roots, ready, last_sync, pending
    log: FolderLog
    progress: SyncProgress | None
    metrics: Metrics


@dataclass
class WebViews:
    """The page's JSON, on `store`. `folder`: the embedded store's folder (its size is
    shown); `live`: the daemon's state (None: `docsync serve`); `reasons`: the skips the
    last one-shot sync remembered, by root and path (`docsync serve` only)."""

    store: Store
    folder: Path | None = None
    live: Live | None = None
    reasons: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # The name readers search by (a daemon's `store` moves to each generation made live).
    collection: str | None = None
    clock: Callable[[], float] = time.time
    timer: Callable[[], float] = time.monotonic
    _counts: dict[str, _Counted] = field(default_factory=dict)
    _roots: list[str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, params: Mapping[str, str]) -> Answer:
        if path == "/api/about":
            return 200, {
                "collection": self.collection or self.store.collection,
                "store": self.store.description,
                "live": self.live is not None,
            }
        if path == "/api/folders":
            return 200, self.folders()
        if path == "/api/health":
            return 200, health(
                self.store, self.folder, self.live.metrics if self.live else None, self.clock
            )
        return self.document(params)

    def document(self, params: Mapping[str, str]) -> Answer:
        path = params.get("path", "").strip()
        if not path:
            return 400, {"error": "missing path (a file as hits name it)"}
        try:
            start = _number(params, "start", 0)
            window = document_window(
                self.store,
                path,
                root=params.get("root") or None,
                start=start,
                end=_number(params, "end", start),
            )
        except LookupError as exc:
            return 404, {"error": str(exc)}
        except ValueError as exc:
            return 400, {"error": str(exc)}
        return 200, window

    def folders(self) -> dict[str, Any]:
        state = dict(self.live.state()) if self.live else {}
        roots = [str(r) for r in state.get("roots", [])] if self.live else self._stored_roots()
        progress = self._progress(state)
        # What says a sync finished since the last count: the number of syncs, not
        # last_sync (to the second: an edit synced in the same second as the sync before it
        # left the counts as they were).
        generation = (state.get("syncs"), state.get("pending_changes"), progress)
        return {
            "live": self.live is not None,
            "ready": state.get("ready", True),
            "last_sync": state.get("last_sync"),
            "pending_changes": state.get("pending_changes", 0),
            # Why the daemon writes nothing (a switch to another model's generation), or None.
            "refused": state.get("refused"),
            "progress": progress,
            "roots": [self._root(root, generation) for root in roots],
            "not_included": self.live.log.not_included if self.live else {},
            "not_included_names": self.live.log.not_included_names if self.live else [],
        }

    def _root(self, root: str, generation: object) -> dict[str, Any]:
        aside = self.live.log.set_aside(root) if self.live else remembered(self.reasons, root)
        return {"root": root, **self._counted(root, generation), **listing(aside)}

    def _counted(self, root: str, generation: object) -> dict[str, int]:
        """The root's counts: asked of the store again once a sync changed `generation`,
        and `COUNT_SPACING` times the last count's duration after it."""
        with self._lock:
            known = self._counts.get(root)
            now = self.timer()
            if known is not None and (
                known.generation == generation or now - known.at < COUNT_SPACING * known.seconds
            ):
                return known.counts
            counts = root_counts(self.store, root)
            self._counts[root] = _Counted(generation, now, self.timer() - now, counts)
            return counts

    def _stored_roots(self) -> list[str]:
        with self._lock:
            if self._roots is None:
                self._roots = stored_roots(self.store)
            return self._roots

    def _progress(self, state: Mapping[str, Any]) -> dict[str, int] | None:
        """The initial sync's progress while it runs (None once the daemon is ready)."""
        if self.live is None or self.live.progress is None or state.get("ready"):
            return None
        return self.live.progress.to_dict()


def _number(params: Mapping[str, str], name: str, default: int) -> int:
    value = params.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number") from None
