"""What a sync may do: the include/exclude rules, the size and time bounds of a file, the
chunk size, and the two guards against deleting by accident (see `scopes`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from docsync.plugin.profile import CHUNKER_VERSION
from docsync.plugin.settings import DEFAULT_EXCLUDE, DEFAULT_INCLUDE
from docsync.worker.formats.ocr import OCR_OFF, OcrOptions
from docsync.worker.read import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT

PAYLOAD_VERSION = 8


@dataclass(frozen=True)
class SyncOptions:
    include: Sequence[str] = DEFAULT_INCLUDE
    exclude: Sequence[str] = DEFAULT_EXCLUDE
    max_file_bytes: int = 10_000_000
    chunk_tokens: int = 256
    # Sync a root that has no files at all although the collection holds some of its files.
    # Off by default: an unmounted volume looks exactly like that.
    allow_empty_roots: bool = False
    # Let new include/exclude rules drop most of a root's files (see scopes.MASS_DELETE_SHARE).
    allow_mass_delete: bool = False
    window_chunks: int | None = None  # chunks embedded together; None: the encoder's choice
    read_timeout: float = DEFAULT_TIMEOUT  # seconds a PDF, HTML or Word reader may take
    reader_memory_mb: int = DEFAULT_MEMORY_MB  # and the MiB of address space it may take
    ocr: OcrOptions = OCR_OFF  # how scanned pages and images are read (worker/ocr_setup.py)

    @property
    def chunker(self) -> str:
        # What a point's payload was made by, stored in each point: a file whose points have
        # another is planned again. `payload=2` added the heading path (`section`), `payload=3`
        # the whitespace before each chunk (`gap`), `payload=4` the file's format, tags and
        # metadata (and pages), `payload=5` each chunk's tokens and the neighbours a passage
        # grows into (`next`, `previous`): points written before gain them without
        # re-embedding (their embedded text is the same, unless front matter gives the file a
        # new title). `payload=6`: a PDF's structure (headings, no running headers and
        # footers, joined hyphens) and page labels, and HTML read whole (every heading, table
        # row and code block of the main content): PDF and HTML files are read again, and only
        # their chunks whose text changed are embedded; other formats' points are rewritten as
        # they were. `payload=7`: a PDF's scanned pages read by OCR, with their confidence
        # (`ocr_confidence`): PDFs are read again, so that a mixed PDF indexed before gains
        # its scanned pages. `payload=8`: a mail's attachments are documents of their own
        # under its path (`inbox/a.eml/report.pdf`, `container` naming the mail), no longer
        # sections of the mail's text: without it an unchanged mail would keep them as
        # sections, and the collection would differ from a fresh sync.
        # With OCR on, its languages too: a PDF synced while Tesseract was missing (its
        # scanned pages without text) is read again once it is installed, and every file
        # when the languages change (only chunks whose text changed are embedded).
        ocr = f";ocr={self.ocr.languages}" if self.ocr.enabled else ""
        return f"{CHUNKER_VERSION};max_tokens={self.chunk_tokens};payload={PAYLOAD_VERSION}{ocr}"
