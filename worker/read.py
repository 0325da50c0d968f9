"""Stage 2: a file's bytes to the text that is chunked, or a reason why not.

The bytes are read here; what they mean is up to the file's format (worker/formats/: text,
PDF, HTML, Word). Offsets everywhere else index the extracted text (Python `str` positions).

Each document also carries its file's *stat key* (size, modification and change times,
inode), taken before the bytes are read, and stored with its points: a later sync that finds
the same key knows the file is unchanged without reading it. A key is only given for a file
that had settled (last changed `SETTLE_NS` before it was read), because a write in the same
clock tick as the read could otherwise leave the key unchanged over new content. Any write
moves the change time, which no tool can set back, so a copy that restores the modification
time is still seen. A file whose bytes hash as its points say is not extracted again (a PDF's
text costs far more than its hash).
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from docsync.plugin.schema import content_hash
from docsync.worker.formats import BINARY_FORMATS, Extracted, Unreadable, format_of
from docsync.worker.formats.isolated import DEFAULT_MEMORY_MB as DEFAULT_MEMORY_MB  # re-exported
from docsync.worker.formats.isolated import extract_isolated
from docsync.worker.formats.ocr import OCR_OFF, OcrOptions
from docsync.worker.formats.text import read_text
from docsync.worker.report import Skip
from docsync.worker.scan import SourceFile

# A file whose last change is older than this when it is read has a stat key.
SETTLE_NS = 2_000_000_000
# The wall clock the settling is measured on (file times are wall-clock times); tests put a
# fake one here, so that "settled" never depends on how fast the machine runs them.
clock: Callable[[], int] = time.time_ns


@dataclass(frozen=True)
class Document:
    source: SourceFile
    content: Extracted  # the text, and what its format tells: pages, title, tags, metadata
    file_hash: str
    stat_key: str = ""  # "" when the file had not settled (see the module docstring)

    @property
    def text(self) -> str:
        return self.content.text


@dataclass(frozen=True)
class Unchanged:
    """A file read whose bytes hash as its points say: current, not extracted again."""

    source: SourceFile
    file_hash: str
    stat_key: str


# Seconds a reader of a binary format may take over one file (DOCSYNC_READ_TIMEOUT).
DEFAULT_TIMEOUT = 60.0


def stat_key(info: os.stat_result, now_ns: int | None = None) -> str:
    """The key that vouches for a file's content, or "" when it changed too recently."""
    changed = max(info.st_mtime_ns, info.st_ctime_ns)
    if changed > (clock() if now_ns is None else now_ns) - SETTLE_NS:
        return ""
    return f"{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}:{info.st_ino}"


def current_stat_key(source: SourceFile, max_bytes: int) -> str:
    """The stat key of `source` now ("" when it cannot vouch: unsettled, too large, gone)."""
    try:
        info = os.stat(source.absolute)
    except OSError:
        return ""
    if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
        return ""
    return stat_key(info)


def read_document(
    source: SourceFile,
    *,
    max_bytes: int,
    timeout: float = DEFAULT_TIMEOUT,
    memory_mb: int = DEFAULT_MEMORY_MB,
    current_hash: str | None = None,
    ocr: OcrOptions = OCR_OFF,
) -> Document | Unchanged | Skip:
    """Read and extract `source`; every way this can fail is a `Skip` with its reason.
    `timeout` and `memory_mb` bound the reader of a binary format. `current_hash`: the hash
    its points were written from; bytes that still hash so are `Unchanged`, and not
    extracted. `ocr`: how pages that are only pixels are read."""
    read = _read_bytes(source, max_bytes)
    if isinstance(read, Skip):
        return read
    raw, key = read
    file_hash = content_hash(raw)
    if current_hash is not None and file_hash == current_hash:
        return Unchanged(source, file_hash, key)
    if not raw.strip():
        return Skip(source.path, "empty", "no text")
    kind = format_of(source.path)
    try:
        if kind in BINARY_FORMATS:
            extracted = extract_isolated(kind, raw, timeout=timeout, memory_mb=memory_mb, ocr=ocr)
        else:
            extracted = read_text(raw, kind)
    except Unreadable as exc:
        if ocr.missing and ocr.missing in exc.detail:
            from docsync.worker.ocr_setup import tell_missing

            tell_missing(ocr, source.path)
        return Skip(source.path, exc.reason, exc.detail)
    return Document(source, extracted, file_hash, key)


def _read_bytes(source: SourceFile, max_bytes: int) -> tuple[bytes, str] | Skip:
    """The file's bytes, and its stat key taken before they were read. The file is opened
    once, and what was opened is checked through its descriptor (DESIGN invariant 13): a
    path checked by the scan can have become a link out of the root or a FIFO since."""
    try:
        fd = os.open(source.absolute, _OPEN_FLAGS)
    except FileNotFoundError:
        return Skip(source.path, "vanished", "gone before it could be read")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Skip(source.path, "broken_symlink", "symlink loop")
        return Skip(source.path, "unreadable", exc.strerror or str(exc))
    with open(fd, "rb") as handle:  # owns the descriptor from here
        try:
            info = _check_opened(source, fd, max_bytes)
            if isinstance(info, Skip):
                return info
            os.set_blocking(fd, True)  # a regular file: reads never wait anyway
            key = stat_key(info)  # of what is read, never of later bytes
            raw = handle.read(max_bytes + 1)
        except OSError as exc:
            return Skip(source.path, "unreadable", exc.strerror or str(exc))
    if len(raw) > max_bytes:
        return Skip(source.path, "too_large", f"grew past {max_bytes} bytes while read")
    return raw, key


# Non-blocking: opening a FIFO waits for a writer, for ever, while the sync holds the store.
# No controlling terminal from a device; not inherited by the reader child.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def _check_opened(source: SourceFile, fd: int, max_bytes: int) -> os.stat_result | Skip:
    """The opened file's stat, or why it is not read: not a regular file, not inside the
    source's root (wherever the links on its path led), deleted meanwhile, or too large."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        return Skip(source.path, "not_a_file", "not a regular file")
    if info.st_nlink == 0:
        return Skip(source.path, "vanished", "gone before it could be read")
    opened = _opened_path(fd, info, source)
    if opened is None:
        return Skip(source.path, "vanished", "replaced while it was opened")
    if not opened.is_relative_to(os.path.realpath(source.root)):
        return Skip(source.path, "outside_root", f"opened {opened}, outside the root")
    if info.st_size > max_bytes:
        return Skip(source.path, "too_large", f"{info.st_size} bytes > {max_bytes}")
    return info


def _opened_path(fd: int, info: os.stat_result, source: SourceFile) -> Path | None:
    """Where the file open on `fd` is, as the kernel tells (/proc on Linux). Elsewhere, the
    path's resolution now, if that is still the opened file (same device and inode); None
    when it is not (replaced meanwhile)."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        pass
    resolved = os.path.realpath(source.absolute)
    try:
        now = os.stat(resolved)
    except OSError:
        return None
    return Path(resolved) if (now.st_dev, now.st_ino) == (info.st_dev, info.st_ino) else None
