"""The Folders view's data: each root with its files and points, what its syncs set aside
(skipped by a rule, or failed) with the reasons, the files no include rule selected, and the
progress of a sync under way.

A daemon keeps a `FolderLog` fed by every sync it runs (`record`); `docsync serve`, which
runs none, shows the skips the last `docsync sync` remembered (`docsync.worker.skips`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docsync.plugin import schema
from docsync.plugin.store import Store
from docsync.worker.progress import Progress
from docsync.worker.report import SyncReport

LISTED = 500  # set-aside files one answer lists per root (all are counted)


@dataclass(frozen=True)
class SetAside:
    """A file a sync did not index: `failed` when it could not be read (its points kept),
    else skipped by a rule (binary, empty, too large, no text...)."""

    path: str
    reason: str
    detail: str = ""
    failed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "reason": self.reason,
            "detail": self.detail,
            "failed": self.failed,
        }


class FolderLog:
    """What a daemon's syncs set aside, by root; the files the last whole sync found that no
    include rule selects. Written by the sync loop, read by the HTTP threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._aside: dict[str, dict[str, SetAside]] = {}
        self.not_included: dict[str, int] = {}
        self.not_included_names: list[str] = []

    def record(self, scopes: Sequence[tuple[Path, str]], report: SyncReport) -> None:
        """A sync of `scopes` (root, scope; "" the whole root) done: what it set aside
        replaces what earlier syncs said about those scopes."""
        with self._lock:
            for root, scope in scopes:
                known = self._aside.setdefault(str(root), {})
                for path in [p for p in known if _within(p, scope)]:
                    del known[path]
            for root_name, skip in report.set_aside:
                entry = SetAside(skip.path, skip.reason, skip.detail, skip.is_failure)
                self._aside.setdefault(root_name, {})[skip.path] = entry
            if all(not scope for _, scope in scopes):
                self.not_included = dict(report.files_not_included.most_common())
                self.not_included_names = list(report.not_included_names)

    def set_aside(self, root: str) -> list[SetAside]:
        with self._lock:
            return sorted(self._aside.get(root, {}).values(), key=lambda s: s.path)


def _within(path: str, scope: str) -> bool:
    return not scope or path == scope or path.startswith(scope + "/")


class SyncProgress:
    """A progress that also remembers how far the sync under way is, for the page; each
    call passed on to `inner` (the log lines or the bar)."""

    def __init__(self, inner: Progress) -> None:
        self.inner = inner
        self.done = self.total = self.chunks = 0

    def set_total(self, total: int) -> None:
        self.done, self.total = 0, total
        self.inner.set_total(total)

    def more(self, files: int) -> None:
        self.total += files
        self.inner.more(files)

    def advance(self, files: int = 1) -> None:
        self.done += files
        self.inner.advance(files)

    def embedded(self, chunks: int) -> None:
        self.chunks += chunks
        self.inner.embedded(chunks)

    def to_dict(self) -> dict[str, int]:
        return {"done": self.done, "total": self.total, "chunks": self.chunks}


def root_counts(store: Store, root: str) -> dict[str, int]:
    """A root's points and files (each file has one first chunk). Files are counted by
    listing their first chunks, no payload: the embedded store's count with a condition on
    an unindexed field took 1.4 s at 100k points, the listing 0.9 s."""
    first_chunks = store.scroll({schema.ROOT: root, schema.CHUNK_INDEX: [0]}, fields=[])
    return {
        "points": store.count({schema.ROOT: root}),
        "files": sum(1 for _ in first_chunks),
    }


def stored_roots(store: Store) -> list[str]:
    """The roots the collection holds files of (one pass over the files' first chunks)."""
    found = {
        str(point.payload.get(schema.ROOT, ""))
        for point in store.scroll({schema.CHUNK_INDEX: [0]}, fields=[schema.ROOT])
    }
    return sorted(found)


def listing(aside: Sequence[SetAside]) -> dict[str, Any]:
    """One root's set-aside files as the page shows them: counts, then the first `LISTED`."""
    failed = sum(1 for entry in aside if entry.failed)
    return {
        "skipped": len(aside) - failed,
        "failed": failed,
        "set_aside": [entry.to_dict() for entry in aside[:LISTED]],
        "set_aside_listed": min(len(aside), LISTED),
    }


def remembered(reasons: Mapping[str, Mapping[str, str]], root: str) -> list[SetAside]:
    """The skips a one-shot sync remembered for `root` (reasons only: no detail is kept)."""
    return [SetAside(path, reason) for path, reason in sorted(reasons.get(root, {}).items())]
