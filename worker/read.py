"""Stage 2: bytes to text, or a reason why not.

UTF-8 (with or without a byte-order mark) and UTF-16 (with a BOM, or mostly Latin text
without one) are read as they are; other encodings only when charset-normalizer is
confident, since a wrong guess would index garbage. Offsets everywhere else index the
decoded text (Python `str` positions).

Each document also carries its file's *stat key* (size, modification and change times,
inode), taken before the bytes are read, and stored with its points: a later sync that finds
the same key knows the file is unchanged without reading it. A key is only given for a file
that had settled (last changed `SETTLE_NS` before it was read), because a write in the same
clock tick as the read could otherwise leave the key unchanged over new content. Any write
moves the change time, which no tool can set back, so a copy that restores the modification
time is still seen.
"""

from __future__ import annotations

import codecs
import os
import stat
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from plugin.schema import content_hash
from worker.report import Skip
from worker.scan import SourceFile

SNIFF_BYTES = 8192
# Most C0 control characters never appear in text; more than a few percent means binary.
_CONTROL = bytes(b for b in range(32) if b not in b"\t\n\r\f\v\x1b")
MAX_CONTROL_RATIO = 0.02
# Share of the high bytes that must be NUL for text without a BOM to be read as UTF-16.
UTF16_NUL_SHARE = 0.9
# charset-normalizer's "chaos" (mess) ratio above which a detected decoding is not trusted.
MAX_CHAOS = 0.1
NEAR_CHAOS = 0.1
MIN_COHERENCE = 0.2
WESTERN = "cp1252"
# Share of letters that may be non-ASCII in Western European text (Portuguese and French run
# near 5%, German umlaut-dense text under 15%).
MAX_ACCENTED = 0.3
# A file whose last change is older than this when it is read has a stat key.
SETTLE_NS = 2_000_000_000
# The wall clock the settling is measured on (file times are wall-clock times); tests put a
# fake one here, so that "settled" never depends on how fast the machine runs them.
clock: Callable[[], int] = time.time_ns


@dataclass(frozen=True)
class Document:
    source: SourceFile
    text: str
    file_hash: str
    encoding: str
    stat_key: str = ""  # "" when the file had not settled (see the module docstring)


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


def read_document(source: SourceFile, *, max_bytes: int) -> Document | Skip:
    """Read and decode `source`; every way this can fail is a `Skip` with its reason."""
    read = _read_bytes(source, max_bytes)
    if isinstance(read, Skip):
        return read
    raw, key = read
    if not raw.strip():
        return Skip(source.path, "empty", "no text")
    decoded = _decode(raw)
    if isinstance(decoded, str):
        return Skip(source.path, decoded, _DETAILS[decoded])
    text, encoding = decoded
    if not has_text(text):
        return Skip(source.path, "empty", "only whitespace or invisible characters")
    return Document(source, text, content_hash(raw), encoding, key)


_DETAILS = {
    "binary": "contains NUL or control bytes",
    "undecodable": "not UTF-8, and no other encoding could be detected with confidence",
}


def _read_bytes(source: SourceFile, max_bytes: int) -> tuple[bytes, str] | Skip:
    """The file's bytes, and its stat key taken before they were read."""
    path = source.absolute
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            return Skip(source.path, "not_a_file", "not a regular file")
        if info.st_size > max_bytes:
            return Skip(source.path, "too_large", f"{info.st_size} bytes > {max_bytes}")
        with open(path, "rb") as handle:
            key = stat_key(os.fstat(handle.fileno()))  # of what is read, never of later bytes
            raw = handle.read(max_bytes + 1)
    except FileNotFoundError:
        return Skip(source.path, "vanished", "gone before it could be read")
    except OSError as exc:
        return Skip(source.path, "unreadable", exc.strerror or str(exc))
    if len(raw) > max_bytes:
        return Skip(source.path, "too_large", f"grew past {max_bytes} bytes while read")
    return raw, key


def has_text(text: str) -> bool:
    """Whether `text` holds anything visible: a file of spaces, zero-width characters and
    other format or control characters has nothing to embed."""
    return any(not c.isspace() and unicodedata.category(c)[0] not in "CZ" for c in text)


def _decode(raw: bytes) -> tuple[str, str] | str:
    """(text, encoding), or the skip reason."""
    for bom, encoding in ((codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if raw.startswith(bom):
            try:
                return raw.decode(encoding), encoding
            except UnicodeDecodeError:
                return "undecodable"
    utf16 = _utf16_without_bom(raw)
    if utf16 is not None:
        return utf16
    if _looks_binary(raw[:SNIFF_BYTES]):
        return "binary"
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return _detect(raw)


def _utf16_without_bom(raw: bytes) -> tuple[str, str] | None:
    """UTF-16 text that lacks its byte-order mark (Windows tools write it): mostly Latin text
    then has a NUL in every other byte, on the same side, which binary data does not."""
    head = raw[:SNIFF_BYTES]  # even, so the byte pairs stay aligned
    if len(raw) % 2 or len(head) < 4:
        return None
    evens, odds = head[0::2], head[1::2]
    for encoding, nuls, letters in (("utf-16-le", odds, evens), ("utf-16-be", evens, odds)):
        if nuls.count(0) >= UTF16_NUL_SHARE * len(nuls) and letters.count(0) == 0:
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError:
                return None
            binary = _looks_binary(text[:SNIFF_BYTES].encode("utf-8"))
            return None if binary else (text, encoding)
    return None


def _looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    controls = sum(head.count(c) for c in _CONTROL)
    return controls > MAX_CONTROL_RATIO * max(len(head), 1)


def _detect(raw: bytes) -> tuple[str, str] | str:
    """A legacy encoding, only when the guess is safe.

    Western European text in cp1252 (a superset of Latin-1's printable characters) is by far
    the most common non-UTF-8 text, and detectors misjudge it (short French comes out as
    Baltic cp1257), so it is tried first: accepted when accented letters stay a minority, as
    they do in every Western language and never in mis-decoded Cyrillic or Greek. Anything
    else must be the detector's clear choice: every near-best candidate reads the same text."""
    western = _western(raw)
    if western is not None:
        return western, WESTERN
    from charset_normalizer import from_bytes

    matches = list(from_bytes(raw))
    if not matches or matches[0].chaos > MAX_CHAOS or matches[0].coherence < MIN_COHERENCE:
        return "undecodable"
    text = str(matches[0])
    near = [m for m in matches if m.chaos <= matches[0].chaos + NEAR_CHAOS]
    if any(str(m) != text for m in near):
        return "undecodable"
    return text, str(matches[0].encoding)


def _western(raw: bytes) -> str | None:
    try:
        text = raw.decode(WESTERN)
    except UnicodeDecodeError:
        return None
    letters = [c for c in text if c.isalpha()]
    accented = sum(1 for c in letters if not c.isascii())
    if not letters or accented > MAX_ACCENTED * len(letters):
        return None
    return text
