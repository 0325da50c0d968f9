"""Stage 2's variants: one reader per file format, each turning a file's bytes into the text
that is chunked and what the chunker and the payload need besides it.

    text    Markdown, reStructuredText, plain text (worker/formats/text.py), in-process
    pdf     pypdfium2: one page at a time; page starts and labels kept for citations,
            headings from the outline or the fonts, running headers and footers dropped
    html    lxml: the page's main content as Markdown, headings, tables and code kept
    docx    python-docx: paragraphs and tables in order, Heading styles as Markdown headings
    pptx    python-pptx, odp: one section a slide, its title as heading, speaker notes kept,
            each slide's start a page (worker/formats/slides.py)
    xlsx    openpyxl (values, not formulas), ods, csv: one section a sheet, its rows in
            blocks that each repeat the header row, each block a page labelled by its cell
            range (worker/formats/sheets.py)
    odt     lxml on content.xml (worker/formats/odf.py)
    epub    the spine's chapters in order, each read by the HTML reader (worker/formats/epub.py)
    eml     the standard library's email: subject, from, to and date, then the text or HTML
            part; each readable attachment a document of its own under the mail's path
            (worker/formats/mail.py, worker/attachments.py)
    image   Pillow and Tesseract: a photographed or scanned page read by OCR (PDF pages
            without a text layer are read by OCR too: worker/formats/ocr.py)

Headings found in HTML and Word become Markdown headings (`## Install`) in the extracted
text, so the chunker cuts before them as it does in Markdown, and `start`/`end` of every chunk
index this extracted text exactly. A PDF's page starts are cuts of lower rank (see
worker/chunk.py). Every reader is deterministic: the same bytes give the same text, so an
unchanged file embeds nothing, and an edited one only the chunks whose text changed.

The readers of binary formats run in a child process (worker/formats/isolated.py), bounded in
time, so a hostile file that hangs or crashes a parser costs that file only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from docsync.plugin.schema import FORMATS

MARKDOWN, RST, TEXT, PDF, HTML, DOCX, PPTX, ODP, XLSX, ODS, CSV, ODT, EPUB, EML, IMAGE = FORMATS
# Formats read by a parser library in the child process rather than decoded in-process.
BINARY_FORMATS = frozenset({PDF, HTML, DOCX, PPTX, ODP, XLSX, ODS, CSV, ODT, EPUB, EML, IMAGE})
_BY_SUFFIX = {
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".rst": RST,
    ".pdf": PDF,
    ".html": HTML,
    ".htm": HTML,
    ".xhtml": HTML,
    ".docx": DOCX,
    ".pptx": PPTX,
    ".odp": ODP,
    ".xlsx": XLSX,
    ".ods": ODS,
    ".csv": CSV,
    ".odt": ODT,
    ".epub": EPUB,
    ".eml": EML,
    ".png": IMAGE,
    ".jpg": IMAGE,
    ".jpeg": IMAGE,
    ".tif": IMAGE,
    ".tiff": IMAGE,
}


# Suffixes of the files docsync reads (the default include list's): a mail's attachments
# are read only when they have one.
READ_SUFFIXES = frozenset({*_BY_SUFFIX, ".txt"})


def format_of(path: str) -> str:
    """The format a file is read as, by its name's suffix (anything else is plain text)."""
    return _BY_SUFFIX.get(PurePosixPath(path).suffix.lower(), TEXT)


@dataclass(frozen=True)
class Extracted:
    """A document as the chunker sees it."""

    text: str
    format: str
    encoding: str = ""  # the decoding of a text format ("" for the others)
    # where each page starts in `text` (PDF pages, slides, blocks of a sheet's rows):
    # pages[0] == 0, one entry per page
    pages: tuple[int, ...] = ()
    # where each heading line starts in `text` (PDF, slides, sheets, .odt): the only lines the
    # chunker takes as headings; None: the format's own rules (Markdown, reStructuredText)
    # find them
    headings: tuple[int, ...] | None = None
    # each page's printed label (PDF: `ix`, `12`; a sheet's block: its cell range,
    # `Sales!A31:F60`), () where none differs from its number
    labels: tuple[str, ...] = ()
    # each page's OCR confidence (0..1), None for a page read from its text layer; () where
    # no page was read by OCR
    ocr: tuple[float | None, ...] = ()
    body_start: int = 0  # where the content starts: after a Markdown file's front matter
    title: str = ""  # the document's own title (front matter, document properties)
    tags: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)  # author and other scalar fields
    # documents read out of this file (a mail's attachments), each indexed under the file's
    # path (`inbox/a.eml/report.pdf`), or named with why it was not read
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class Attachment:
    """A document inside a file (a mail's attached file): `name` is unique within the file
    and holds no `/`; `content` is what its format's reader gave, None when it was not read
    (`reason`, `detail`: the skip's)."""

    name: str
    content: Extracted | None
    reason: str = ""
    detail: str = ""


class Unreadable(Exception):
    """A file that its format's reader cannot turn into text; `reason` is the skip reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[Unreadable], tuple[str, str]]:
        return (Unreadable, (self.reason, self.detail))  # it travels from the reader process
