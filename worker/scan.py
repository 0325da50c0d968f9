"""Stage 1: find the files under each root that the include/exclude rules select.

Glob rules, like .gitignore: a pattern without "/" matches one name (for `include`, the file
name; for `exclude`, any folder or file name on the path); a pattern with "/" matches the
whole path relative to the root, where `**` spans folders. Folders that are symlinks are not
followed (no loops, no escaping the root); files that are symlinks are indexed when their
target lies inside the root.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from worker.report import Skip

log = logging.getLogger("docsync.scan")


@dataclass(frozen=True)
class SourceFile:
    """A file to index: `path` is relative to `root`, with "/" separators."""

    root: Path
    path: str

    @property
    def absolute(self) -> Path:
        return self.root / self.path


@dataclass
class Scan:
    root: Path
    files: list[SourceFile] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)

    @property
    def candidates(self) -> int:
        return len(self.files) + len(self.skipped)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2 :]:
            close = pattern.index("]", i + 2)
            body = pattern[i + 1 : close]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = close + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


class Rules:
    """Compiled include/exclude globs."""

    def __init__(self, include: Iterable[str], exclude: Iterable[str]) -> None:
        self._include = [self._compile(p) for p in include if p.strip()]
        self._exclude = [self._compile(p) for p in exclude if p.strip()]
        if not self._include:
            raise ValueError("include rules are empty: nothing would ever be indexed")

    @staticmethod
    def _compile(pattern: str) -> tuple[bool, re.Pattern[str]]:
        pattern = pattern.strip().rstrip("/")
        anchored = "/" in pattern
        return anchored, _glob_regex(pattern.lstrip("/"))

    def excluded(self, path: str) -> bool:
        """Whether a file or folder at `path` (relative, "/"-separated) is excluded."""
        names = path.split("/")
        for anchored, regex in self._exclude:
            if anchored:
                if any(regex.match("/".join(names[: i + 1])) for i in range(len(names))):
                    return True
            elif any(regex.match(name) for name in names):
                return True
        return False

    def selects(self, path: str) -> bool:
        """Whether the file at `path` is to be indexed."""
        if self.excluded(path):
            return False
        name = path.rsplit("/", 1)[-1]
        return any(regex.match(path if anchored else name) for anchored, regex in self._include)


def scan_root(root: Path, rules: Rules, scope: str = "") -> Scan:
    """Every selected file under `root` (or only at or under `scope`, a relative path), in
    path order, with the ones that cannot be indexed set aside as skips."""
    scan = Scan(root=root)
    for rel, entry in _scope_entries(root, scope, rules):
        skip = _check_entry(root, rel, entry)
        if skip is None:
            scan.files.append(SourceFile(root=root, path=rel))
        else:
            scan.skipped.append(skip)
    return scan


def _scope_entries(root: Path, scope: str, rules: Rules) -> Iterator[tuple[str, os.DirEntry[str]]]:
    if not scope:
        yield from _walk(root, "", rules)
        return
    if rules.excluded(scope):
        return
    parent = (root / scope).parent
    try:
        entry = next((e for e in os.scandir(parent) if e.name == Path(scope).name), None)
    except OSError:
        return  # the folder above is gone too: nothing on disk in this scope
    if entry is None:
        return
    if entry.is_dir(follow_symlinks=False):
        yield from _walk(root, scope, rules)
    elif not (entry.is_symlink() and entry.is_dir()) and rules.selects(scope):
        yield scope, entry


def _walk(root: Path, prefix: str, rules: Rules) -> Iterator[tuple[str, os.DirEntry[str]]]:
    try:
        entries = sorted(os.scandir(root / prefix if prefix else root), key=lambda e: e.name)
    except OSError as exc:
        log.warning("cannot list %s: %s", root / prefix, exc.strerror or exc)
        return
    for entry in entries:
        rel = f"{prefix}/{entry.name}" if prefix else entry.name
        if entry.is_dir(follow_symlinks=False):
            if not rules.excluded(rel):
                yield from _walk(root, rel, rules)
        elif entry.is_symlink() and entry.is_dir():
            log.debug("not following symlinked folder %s", rel)
        elif rules.selects(rel):
            yield rel, entry


def _check_entry(root: Path, rel: str, entry: os.DirEntry[str]) -> Skip | None:
    if entry.is_symlink():
        target = Path(os.path.realpath(entry.path))
        if not target.exists():
            return Skip(rel, "broken_symlink", f"points to {os.readlink(entry.path)}")
        if not target.is_relative_to(root):
            return Skip(rel, "outside_root", f"symlink to {target}")
    try:
        mode = entry.stat().st_mode
    except FileNotFoundError:
        return Skip(rel, "vanished", "gone before it could be read")
    except OSError as exc:
        return Skip(rel, "unreadable", exc.strerror or str(exc))
    if not stat.S_ISREG(mode):
        return Skip(rel, "not_a_file", "not a regular file")
    return None
