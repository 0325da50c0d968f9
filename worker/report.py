"""What a sync did, counted: the value the pipeline returns and `docsync sync --json` prints."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("docsync.sync")
NAMED = 5  # files a warning names before "and N more"
# Failures of the reader child, which a second read may not repeat (the daemon retries them).
RETRIED = frozenset({"reader_crashed", "timeout"})

# Skips by rule: the file is not (or no longer) indexable, and its points are removed.
# Everything else that goes wrong with a file is a failure: its points are kept as they were,
# and the sync exits non-zero.
SKIP_REASONS = frozenset(
    {
        "binary",
        "broken_symlink",
        "corrupt",
        "empty",
        "encrypted",
        "no_text",
        "not_a_file",
        "outside_root",
        "too_large",
        "undecodable",
        "undecodable_name",
        "vanished",
    }
)


def first_names(names: Iterable[str]) -> list[str]:
    """The first `NAMED` of `names` in name order: the same ones whatever order a folder
    lists its files in, so that a warning reads the same on every sync."""
    return sorted(names)[:NAMED]


def named(names: Sequence[str], total: int) -> str:
    """`a.md, b.md and 3 more`: the names given (the first few), then how many are not."""
    shown = ", ".join(names[:NAMED])
    rest = total - len(names[:NAMED])
    return f"{shown} and {rest} more" if rest > 0 else shown


@dataclass(frozen=True)
class Skip:
    """A file set aside, with a short machine-readable reason and a human detail."""

    path: str
    reason: str
    detail: str = ""

    @property
    def is_failure(self) -> bool:
        return self.reason not in SKIP_REASONS


@dataclass
class SyncReport:
    files_scanned: int = 0
    files_changed: int = 0
    files_deleted: int = 0
    files_skipped: Counter[str] = field(default_factory=Counter)
    chunks_embedded: int = 0
    vectors_reused: int = 0
    points_upserted: int = 0
    points_deleted: int = 0
    # keyword vectors given to points already stored (a collection made before them)
    keyword_vectors_added: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    failures: list[Skip] = field(default_factory=list)
    protected_roots: list[str] = field(default_factory=list)
    # files no include rule selects, by extension: not skipped, but worth a word
    files_not_included: Counter[str] = field(default_factory=Counter)
    not_included_names: list[str] = field(default_factory=list)  # the first few of them
    # symlinks indexed as the file they name in the same root, not under their own name
    links_folded: int = 0
    synced_paths: list[str] = field(default_factory=list)  # written or removed, in order
    # (root, path) of the failures a second read may not repeat (worker/retries.py)
    retryable: list[tuple[str, str]] = field(default_factory=list)
    # (root, skip) of every file skipped or failed, its path relative to the root: what the
    # web page's Folders view lists (docsync.worker.web.folders)
    set_aside: list[tuple[str, Skip]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every file synced or was skipped by a rule, and no root was held back."""
        return not self.failures and not self.protected_roots

    def skip(self, root: str, skip: Skip, *, said: bool = False) -> None:
        """Count a skip or a failure, with its one log line (`said`: the skip was warned
        about before, its file unchanged since: a debug line)."""
        where = f"{root}/{skip.path}" if skip.path else root
        if skip.path:
            self.set_aside.append((root, skip))
        if skip.is_failure:
            self.failures.append(Skip(where, skip.reason, skip.detail))
            if skip.reason in RETRIED:
                self.retryable.append((root, skip.path))
            log.error("failed %s: %s (%s)", where, skip.reason, skip.detail)
        else:
            self.files_skipped[skip.reason] += 1
            level = logging.DEBUG if said else logging.WARNING
            log.log(level, "skipped %s: %s (%s)", where, skip.reason, skip.detail)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files_scanned": self.files_scanned,
            "files_changed": self.files_changed,
            "files_deleted": self.files_deleted,
            "files_skipped": dict(sorted(self.files_skipped.items())),
            "files_failed": len(self.failures),
            "chunks_embedded": self.chunks_embedded,
            "vectors_reused": self.vectors_reused,
            "points_upserted": self.points_upserted,
            "points_deleted": self.points_deleted,
            "keyword_vectors_added": self.keyword_vectors_added,
            "seconds": round(self.seconds, 3),
            "failures": [
                {"path": f.path, "reason": f.reason, "detail": f.detail} for f in self.failures
            ],
            "protected_roots": self.protected_roots,
            "files_not_included": dict(self._not_included()),
            "links_folded": self.links_folded,
        }

    def _not_included(self) -> list[tuple[str, int]]:
        """Most frequent extension first, ties in name order (the same line every time)."""
        return sorted(self.files_not_included.items(), key=lambda item: (-item[1], item[0]))

    def not_included_line(self) -> str:
        """One line on the files no include rule selected ("" when there are none)."""
        counts = self._not_included()
        if not counts:
            return ""
        kinds = ", ".join(f"{n} {ext}" for ext, n in counts[:5])
        more = f", {len(counts) - 5} more kinds" if len(counts) > 5 else ""
        total = self.files_not_included.total()
        return (
            f"{total} file(s) matched no include rule and were not indexed ({kinds}{more}: "
            f"{named(self.not_included_names, total)}); DOCSYNC_INCLUDE chooses what is read"
        )

    def not_included(self, counts: Counter[str], names: Iterable[str]) -> None:
        """Count files a scan found that no include rule selects."""
        self.files_not_included.update(counts)
        self.not_included_names = first_names([*self.not_included_names, *names])
