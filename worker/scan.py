"""Stage 1: find the files under each root that the include/exclude rules select.

Glob rules, like .gitignore: a pattern without "/" matches one name (for `include`, the file
name; for `exclude`, any folder or file name on the path); a pattern with "/" matches the
whole path relative to the root, where `**` spans folders. Folders that are symlinks are not
followed (no loops, no escaping the root). A file that is a symlink to a file inside the root
that the rules select is *folded* into it: that file is indexed once, by its real path, and
not again under each link's name (identical hits otherwise); a link to a file the rules do not
select is indexed under its own name. Links out of the root are skipped.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from docsync.worker.report import Skip, first_names

log = logging.getLogger("docsync.scan")


@dataclass(frozen=True)
class SourceFile:
    """A file to index: `path` is relative to `root`, with "/" separators."""

    root: Path
    path: str

    @property
    def absolute(self) -> Path:
        return self.root / self.path


@dataclass(frozen=True)
class Fold:
    """A symlink folded into the selected file it names inside the same root."""

    link: str
    target: str


# What the walk finds: a selected file (relative path and entry), or why one is set aside.
Found = tuple[str, os.DirEntry[str]] | Skip


@dataclass
class Scan:
    root: Path
    files: list[SourceFile] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    # folders that could not be listed ("" for the root): their indexed files are kept
    unlisted: list[str] = field(default_factory=list)
    # files that no include rule selects (and no exclude rule names), by extension
    not_included: Counter[str] = field(default_factory=Counter)
    # and the first of them by name (`report.NAMED` at most), for a warning to show
    not_included_names: list[str] = field(default_factory=list)
    # the folders a scan that does not descend found (selected ones: not excluded, not links)
    folders: list[str] = field(default_factory=list)
    # links to files indexed by their own path (not under the link's)
    folded: list[Fold] = field(default_factory=list)

    @property
    def candidates(self) -> int:
        return len(self.files) + len(self.skipped)

    def covers_unlisted(self, path: str) -> bool:
        """Whether `path` lies in a folder that could not be listed."""
        return any(not f or path == f or path.startswith(f + "/") for f in self.unlisted)


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


def scan_root(root: Path, rules: Rules, scope: str = "", *, descend: bool = True) -> Scan:
    """Every selected file under `root` (or only at or under `scope`, a relative path), in
    path order, with the ones that cannot be indexed set aside as skips. A folder that
    cannot be listed is a failure (`unlistable`) whose files keep their points: not seeing
    them is no evidence that they are gone. Without `descend`, only the files directly in
    the scope's folder, and its folders in `Scan.folders`."""
    scan = Scan(root=root)
    for found in _scope_entries(root, scope, rules, scan, descend):
        if isinstance(found, Skip):
            scan.skipped.append(found)
            continue
        rel, entry = found
        checked = _check_entry(root, rel, entry, rules)
        if checked is None:
            scan.files.append(SourceFile(root=root, path=rel))
        elif isinstance(checked, Fold):
            scan.folded.append(checked)
        else:
            scan.skipped.append(checked)
    return scan


def storable(path: str) -> bool:
    """Whether `path` can be stored: a name that is not valid UTF-8 reaches Python with
    surrogate escapes, which neither a payload nor a point ID can carry."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def has_entries(folder: Path) -> bool | None:
    """Whether `folder` is there with something in it; None when this process cannot tell
    (out of file descriptors, say): no news about the folder, and no reason to delete."""
    try:
        with os.scandir(folder) as entries:
            return any(True for _ in entries)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return False
    except OSError:
        return None


def printable(path: str) -> str:
    """`path` as it can be shown: its undecodable bytes as `\\xNN`."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _scope_entries(
    root: Path, scope: str, rules: Rules, scan: Scan, descend: bool
) -> Iterator[Found]:
    if not scope:
        yield from _walk(root, "", rules, scan, descend)
        return
    if rules.excluded(scope):
        return
    name = Path(scope).name
    parent = (root / scope).parent
    try:
        with os.scandir(parent) as entries:
            entry = next((e for e in entries if e.name == name), None)
    except (FileNotFoundError, NotADirectoryError):
        return  # the folder above is gone too: nothing on disk in this scope
    except OSError as exc:
        yield _unlistable(scope.rpartition("/")[0], exc, scan)
        return
    if entry is None:
        return
    kind = _kind(entry)
    if kind == "folder":
        yield from _walk(root, scope, rules, scan, descend)
    elif kind == "file":
        yield from _file(rel=scope, entry=entry, rules=rules, scan=scan)


def _walk(root: Path, prefix: str, rules: Rules, scan: Scan, descend: bool) -> Iterator[Found]:
    try:
        with os.scandir(root / prefix if prefix else root) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except FileNotFoundError:
        return  # removed while the scan ran: its files are gone
    except OSError as exc:
        yield _unlistable(prefix, exc, scan)
        return
    for entry in entries:
        rel = f"{prefix}/{entry.name}" if prefix else entry.name
        kind = _kind(entry)
        if kind == "folder":
            if rules.excluded(rel):
                continue
            if descend:
                yield from _walk(root, rel, rules, scan, descend)
            else:
                scan.folders.append(rel)
        elif kind == "linked_folder":
            log.debug("not following symlinked folder %s", printable(rel))
        else:
            yield from _file(rel=rel, entry=entry, rules=rules, scan=scan)


def _kind(entry: os.DirEntry[str]) -> str:
    """What the walk does with `entry`: descend into a "folder", pass a "linked_folder" (not
    followed), or check a "file" (anything else; its check says why it cannot be indexed)."""
    try:
        if entry.is_dir(follow_symlinks=False):
            return "folder"
        if entry.is_symlink() and entry.is_dir():
            return "linked_folder"
    except OSError:
        pass  # a symlink loop (ELOOP) or a vanished entry: `_check_entry` names it
    return "file"


def _file(*, rel: str, entry: os.DirEntry[str], rules: Rules, scan: Scan) -> Iterator[Found]:
    if rules.selects(rel):
        if storable(rel):
            yield rel, entry
        else:
            yield Skip(printable(rel), "undecodable_name", "the name is not UTF-8: rename it")
    elif not rules.excluded(rel):
        scan.not_included[_extension(entry.name)] += 1
        scan.not_included_names[:] = first_names([*scan.not_included_names, printable(rel)])


def _extension(name: str) -> str:
    suffix = PurePosixPath(name).suffix  # as written: "*.md" does not include "README.MD"
    return suffix if suffix and suffix != name else "no extension"


def _unlistable(folder: str, exc: OSError, scan: Scan) -> Skip:
    scan.unlisted.append(folder)
    return Skip(printable(folder), "unlistable", f"cannot list folder: {exc.strerror or exc}")


def _check_entry(root: Path, rel: str, entry: os.DirEntry[str], rules: Rules) -> Skip | Fold | None:
    try:
        return _entry_skip(root, rel, entry, rules)
    except FileNotFoundError:
        return Skip(rel, "vanished", "gone before it could be read")
    except OSError as exc:
        return Skip(rel, "unreadable", exc.strerror or str(exc))


def _entry_skip(root: Path, rel: str, entry: os.DirEntry[str], rules: Rules) -> Skip | Fold | None:
    if entry.is_symlink():
        target = Path(os.path.realpath(entry.path))
        if _loops(entry.path):
            return Skip(rel, "broken_symlink", "symlink loop")
        if not target.exists():
            return Skip(rel, "broken_symlink", f"points to {os.readlink(entry.path)}")
        if not target.is_relative_to(root):
            return Skip(rel, "outside_root", f"symlink to {target}")
        inside = target.relative_to(root).as_posix()
        if inside != rel and target.is_file() and rules.selects(inside) and storable(inside):
            return Fold(rel, inside)  # the walk finds `inside` itself: its real path
    mode = entry.stat().st_mode
    if not stat.S_ISREG(mode):
        return Skip(rel, "not_a_file", "not a regular file")
    return None


def _loops(path: str) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False
