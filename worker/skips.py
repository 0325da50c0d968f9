"""Which skipped files have been warned about: each skip is said once, then only again when
the file changes (its size or modification time) or is skipped for another reason.

A daemon keeps its `SkipMemory` for its life, so its rescans repeat no warning. A one-shot
`docsync sync` keeps it in a small JSON file in docsync's cache folder, one per collection
and store, so that a sync run again and again (by cron, by hand) warns about a skipped file
once. Only rule skips (binary, empty, too large, ...) are remembered; a failure (a file that
cannot be read) is said on every sync, as it fails the sync. The file is a cache: lost or
unreadable, every skip is said once more.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger("docsync.sync")

# (reason, size, modification time in ns) of a skipped file when it was said
Said = tuple[str, int, int]


class SkipMemory:
    """Skips already said, by root and path; saved to `file` when there is one."""

    def __init__(self, file: Path | None = None) -> None:
        self.file = file
        self._said: dict[str, dict[str, Said]] = _load(file) if file else {}
        self._seen: dict[str, set[str]] = {}  # paths skipped in this sync, by root

    @classmethod
    def for_collection(cls, cache: Path, store: str, collection: str) -> SkipMemory:
        """The memory of one collection in one store, in `cache`/skips/."""
        key = hashlib.sha256(f"{store}\0{collection}".encode()).hexdigest()[:24]
        return cls(cache / "skips" / f"{key}.json")

    def first_time(self, root: str, path: str, reason: str) -> bool:
        """Whether the skip of `root`/`path` for `reason` is news (and remember it said)."""
        self._seen.setdefault(root, set()).add(path)
        said = _said(Path(root) / path, reason)
        if said is None:
            return True  # a file that cannot be looked at: say it every time
        known = self._said.setdefault(root, {})
        news = known.get(path) != said
        known[path] = said
        return news

    def reasons(self) -> dict[str, dict[str, str]]:
        """The reason of each file remembered skipped, by root and path (what `docsync serve`
        shows of the last sync's skips)."""
        return {root: {p: s[0] for p, s in paths.items()} for root, paths in self._said.items()}

    def forget_unseen(self, roots: list[str]) -> None:
        """After whole-root syncs of `roots`: forget their files that were not skipped this
        time (indexed now, or gone), so that the memory holds no more than the skipped."""
        for root in roots:
            seen = self._seen.get(root, set())
            known = self._said.get(root, {})
            self._said[root] = {p: s for p, s in known.items() if p in seen}
        self._seen.clear()

    def save(self) -> None:
        """Write the memory to its file (atomically), when it has one; a cache folder that
        cannot be written costs only repeated warnings."""
        if self.file is None:
            return
        data = {root: {p: list(s) for p, s in paths.items()} for root, paths in self._said.items()}
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self.file.parent, suffix=".tmp")
        except OSError as exc:
            log.debug("could not save which skips were said to %s: %s", self.file, exc)
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({root: paths for root, paths in data.items() if paths}, out)
            os.replace(temporary, self.file)
        except OSError as exc:
            Path(temporary).unlink(missing_ok=True)
            log.debug("could not save which skips were said to %s: %s", self.file, exc)


def _said(path: Path, reason: str) -> Said | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return reason, info.st_size, info.st_mtime_ns


def _load(file: Path) -> dict[str, dict[str, Said]]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: a cache, so every skip is said once more
    try:
        return {
            str(root): {
                str(path): (str(s[0]), int(s[1]), int(s[2]))
                for path, s in paths.items()
                if isinstance(s, list) and len(s) == 3
            }
            for root, paths in data.items()
            if isinstance(paths, dict)
        }
    except (AttributeError, TypeError, ValueError):
        return {}  # not what this module writes: start again
