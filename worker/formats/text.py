"""Text formats: Markdown, reStructuredText and plain text, decoded in-process.

UTF-8 (with or without a byte-order mark) and UTF-16 (with a BOM, or mostly Latin text
without one) are read as they are; other encodings only when charset-normalizer is
confident, since a wrong guess would index garbage. Offsets everywhere else index the
decoded text (Python `str` positions).

A Markdown file may open with front matter (YAML between `---` lines): its `title`, `tags`
and other scalar fields become the document's metadata. The front matter stays in the text,
so offsets still index the file's own text, but it is not chunked (`body_start`).
"""

from __future__ import annotations

import codecs
import datetime
import re
import unicodedata

import yaml

from docsync.worker.formats import MARKDOWN, Extracted, Unreadable

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


def read_text(raw: bytes, format: str) -> Extracted:
    """Decode `raw`; `Unreadable` with reason "binary", "undecodable" or "empty"."""
    decoded = _decode(raw)
    if isinstance(decoded, str):
        raise Unreadable(decoded, _DETAILS[decoded])
    text, encoding = decoded
    if not has_text(text):
        raise Unreadable("empty", "only whitespace or invisible characters")
    if format != MARKDOWN:
        return Extracted(text, format, encoding)
    body_start, (title, tags, meta) = front_matter(text)
    return Extracted(
        text, format, encoding, body_start=body_start, title=title, tags=tags, meta=meta
    )


_DETAILS = {
    "binary": "contains NUL or control bytes",
    "undecodable": "not UTF-8, and no other encoding could be detected with confidence",
}

# Front matter: YAML between a first line of `---` and a line of `---` or `...`, read only
# from the start of the file and only this long (a missing end must not parse a whole file).
FRONT_MATTER_BYTES = 16_384
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*$", re.S | re.M)
# What a metadata field may be called and hold: keys become filter names (`--where key=...`).
META_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
MAX_META_VALUE = 256
MAX_META_FIELDS = 32
MAX_TAGS = 64


Metadata = tuple[str, tuple[str, ...], dict[str, str]]


def front_matter(text: str) -> tuple[int, Metadata]:
    """Where a Markdown file's content starts, and (title, tags, other scalar fields) of its
    front matter; 0 and nothing when it has none or it is not a mapping of YAML (then it is
    just text)."""
    nothing: Metadata = ("", (), {})
    match = _FRONT_MATTER.match(text[:FRONT_MATTER_BYTES])
    if match is None:
        return 0, nothing
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return 0, nothing
    if not isinstance(data, dict):
        return 0, nothing
    return match.end(), metadata(data)


def metadata(data: dict[object, object]) -> Metadata:
    """Title, tags and scalar fields of a mapping (front matter or document properties):
    scalars become strings, other values and unusable keys are left out."""
    title = _scalar(data.get("title")) or ""
    tags = _tags(data.get("tags", data.get("keywords")))
    meta: dict[str, str] = {}
    for key, value in data.items():
        if key in ("title", "tags") or not isinstance(key, str) or not META_KEY.match(key):
            continue
        scalar = _scalar(value)
        if scalar is not None and len(meta) < MAX_META_FIELDS:
            meta[key.lower()] = scalar
    return " ".join(title.split()), tags, meta


def _scalar(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    if isinstance(value, int | float | str):
        text = " ".join(str(value).split())
        return text[:MAX_META_VALUE] if text else None
    return None


def _tags(value: object) -> tuple[str, ...]:
    """Tags from a YAML list or a comma- or semicolon-separated string."""
    items: list[object]
    if isinstance(value, str):
        items = list(re.split(r"[,;]", value))
    elif isinstance(value, list):
        items = value
    else:
        return ()
    tags: list[str] = []
    for item in items:
        tag = _scalar(item)
        if tag and tag not in tags and len(tags) < MAX_TAGS:
            tags.append(tag)
    return tuple(tags)


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
