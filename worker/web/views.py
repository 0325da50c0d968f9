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
COUNTS_SECONDS = 5.0  # a root's counts are reused this long while nothing synced
Answer = tuple[int, object]


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
    clock: Callable[[], float] = time.time
    _counts: dict[tuple[str, object], dict[str, int]] = field(default_factory=dict)
    _roots: list[str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, params: Mapping[str, str]) -> Answer:
        if path == "/api/about":
            return 200, {
                "collection": self.store.collection,
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
        generation = (state.get("last_sync"), state.get("pending_changes"))
        return {
            "live": self.live is not None,
            "ready": state.get("ready", True),
            "last_sync": state.get("last_sync"),
            "pending_changes": state.get("pending_changes", 0),
            "progress": self._progress(state),
            "roots": [self._root(root, generation) for root in roots],
            "not_included": self.live.log.not_included if self.live else {},
            "not_included_names": self.live.log.not_included_names if self.live else [],
        }

    def _root(self, root: str, generation: object) -> dict[str, Any]:
        aside = self.live.log.set_aside(root) if self.live else remembered(self.reasons, root)
        return {"root": root, **self._counted(root, generation), **listing(aside)}

    def _counted(self, root: str, generation: object) -> dict[str, int]:
        """The root's counts, asked of the store again only when a sync ran since, or after
        `COUNTS_SECONDS` (a page polling every second costs the store nothing more)."""
        key = (root, (generation, int(self.clock() // COUNTS_SECONDS)))
        with self._lock:
            if key not in self._counts:
                self._counts = {k: v for k, v in self._counts.items() if k[0] != root}
                self._counts[key] = root_counts(self.store, root)
            return self._counts[key]

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
