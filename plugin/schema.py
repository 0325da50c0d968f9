"""The payload every point carries, and the point-ID function: the contract between the
worker that writes points and the plugin that reads them.

A point is one chunk of one file. Its ID derives from the root, the file's path and the
exact text that was embedded (plus which repeat of that text it is within the file), never
from its position, so inserting text early in a file leaves later points' IDs alone.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import NotRequired, TypedDict

ROOT = "root"
PATH = "path"
PATH_PREFIXES = "path_prefixes"
TITLE = "title"
TEXT = "text"
SECTION = "section"  # the heading path: "Title > Section > Subsection"
# The whitespace between the previous chunk's end (or the file's start) and this chunk: with
# it, neighbouring chunks join into exactly the file's text (passages, `text == file[start:end]`).
GAP = "gap"
START = "start"
END = "end"
CHUNK_INDEX = "chunk_index"
CHUNK_COUNT = "chunk_count"
CHUNK_HASH = "chunk_hash"
EMBED_HASH = "embed_hash"
FILE_HASH = "file_hash"
FILE_STAT = "file_stat"
CHUNKER = "chunker"
FORMAT = "format"  # what the file was read as: one of FORMATS
# The pages a chunk spans, 1-based: a PDF's pages, a deck's slides, a sheet's blocks of rows.
PAGE_START = "page_start"
PAGE_END = "page_end"
# The printed labels of those pages (`ix`, `12`), where the PDF labels its pages otherwise
# than by their physical numbers (front matter in roman numerals, a book's page 1 on sheet 9);
# a spreadsheet's block of rows is labelled by its cell range (`Sales!A1:D30`).
PAGE_LABEL = "page_label"
PAGE_LABEL_END = "page_label_end"
# The chunk's tokens, as the model's tokenizer counts its text alone (the passage budget's
# unit): stored so that a search never tokenizes stored text.
TOKENS = "tokens"
# The chunks a passage may grow into: those after this one (`NEXT`) and before it
# (`PREVIOUS`) in the same file and section, nearest first, at most `REACH` each way, each as
# [point id, tokens]. With them a hit's growth is decided from its own payload, and one
# `retrieve` by ID fetches every hit's neighbours (plugin/passages.py).
NEXT = "next"
PREVIOUS = "previous"
REACH = 4  # chunks looked at each way; changing it needs a new payload version (worker)
# The lowest OCR confidence (0..1, Tesseract's mean word confidence of a page) of the pages a
# chunk spans that were read by OCR (scanned PDF pages, images); absent where none was.
OCR_CONFIDENCE = "ocr_confidence"
# The path of the file a document was read out of (a mail's, for its attached files): such a
# document's path is that file's path and the document's name (`inbox/a.eml/report.pdf`).
CONTAINER = "container"
TAGS = "tags"  # the document's tags (front matter, keywords): a list of strings
META = "meta"  # its other metadata (author, front matter scalars): field -> string

FORMATS = (
    "markdown", "rst", "text", "pdf", "html", "docx",
    "pptx", "odp", "xlsx", "ods", "csv", "odt", "epub", "eml", "image",
)  # fmt: skip
# Formats whose pages are slides (cited `deck.pptx slide 7`), and those whose pages are
# blocks of rows cited by their cell ranges, the page labels (`book.xlsx Sales!A1:D30`).
SLIDE_FORMATS = frozenset({"pptx", "odp"})
SHEET_FORMATS = frozenset({"xlsx", "ods", "csv"})

# Fields with a keyword index on a Qdrant server: the planner and the filters look them up.
INDEXED_FIELDS = (ROOT, PATH, PATH_PREFIXES, EMBED_HASH, FORMAT, TAGS)
# What the planner needs to tell whether a file's points are complete and current.
LISTING_FIELDS = (PATH, FILE_HASH, FILE_STAT, CHUNKER, CHUNK_COUNT)

_NAMESPACE = uuid.UUID("6f1c2a4e-8d0b-5c37-9e21-d0c5f3a8b7e4")


class Payload(TypedDict):
    """Every point's payload; `page_start`/`page_end` only where the file has pages,
    `page_label`/`page_label_end` only where they are labelled otherwise, `container` only
    for a document read out of another file (a mail's attachment)."""

    root: str
    path: str
    path_prefixes: list[str]
    title: str
    text: str
    section: str
    gap: str
    start: int
    end: int
    chunk_index: int
    chunk_count: int
    chunk_hash: str
    embed_hash: str
    file_hash: str
    # size, times and inode of the file when it was read, once it had settled (see
    # worker/read.py); "" when it had changed too recently to vouch for its content
    file_stat: str
    chunker: str
    format: str
    tags: list[str]
    meta: dict[str, str]
    tokens: int
    next: list[list[str | int]]  # [[point id, tokens], ...]: JSON has no tuples
    previous: list[list[str | int]]
    page_start: NotRequired[int]
    page_end: NotRequired[int]
    page_label: NotRequired[str]
    page_label_end: NotRequired[str]
    ocr_confidence: NotRequired[float]
    container: NotRequired[str]


def content_hash(data: str | bytes) -> str:
    """sha256 hex digest; text is hashed as UTF-8."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def point_id(root: str, path: str, embed_hash: str, occurrence: int) -> str:
    """Deterministic UUID of the `occurrence`-th chunk of `path` whose embedded text hashes
    to `embed_hash`."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join((root, path, embed_hash, str(occurrence)))))


def path_prefixes(path: str) -> list[str]:
    """Every folder above `path` and the path itself: `a/b/c.md` gives `a`, `a/b`, `a/b/c.md`.
    Stored so `path_prefix` filters are exact keyword matches."""
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def normalize_prefix(prefix: str) -> str:
    return prefix.strip().strip("/")
