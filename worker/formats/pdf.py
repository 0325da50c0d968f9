"""PDF: pypdfium2 (PDFium, Chrome's PDF engine; BSD-3/Apache-2.0), the text layer of one
page at a time, so a document of thousands of pages holds one page's objects at once (and
every page's lines, a few numbers each beside their text, until its structure is found).

Each page's lines come with their position and font (worker/formats/pdf_lines.py); from
them the document's structure is found (worker/formats/pdf_structure.py, pdf_headings.py):
running headers, footers and page numbers dropped, headings from the outline (or, without
one, from font sizes) written as Markdown headings, hyphenated words joined. Pages are
joined by a blank line and each page's start is kept (`Extracted.pages`), so a chunk knows
the pages it spans; the heading lines' offsets are `Extracted.headings`, the only lines the
chunker takes as headings (a `# comment` printed in the PDF stays text). Printed page labels
(`ix`, `12`) are kept where they differ from the physical page numbers (`Extracted.labels`).

A page with no text layer (scanned) is rendered and read by OCR (worker/formats/ocr.py) where
OCR is on: its lines take the text layer's place, so a mixed PDF has text on every page, and
its confidence is kept (`Extracted.ocr`).
"""

from __future__ import annotations

import pypdfium2 as pdfium

from docsync.worker.formats import PDF, Extracted, Unreadable
from docsync.worker.formats.image import ocr_off
from docsync.worker.formats.ocr import OCR_OFF, OcrOptions
from docsync.worker.formats.pdf_headings import mark_by_font, mark_outline
from docsync.worker.formats.pdf_lines import Line, outline, page_label, page_lines
from docsync.worker.formats.pdf_ocr import PageReader
from docsync.worker.formats.pdf_structure import drop_running, join_hyphens, page_text
from docsync.worker.formats.text import has_text, metadata

PAGE_JOIN = "\n\n"
NO_TEXT = "no text layer (a scanned PDF?)"


def read_pdf(raw: bytes, ocr: OcrOptions = OCR_OFF) -> Extracted:
    try:
        document = pdfium.PdfDocument(raw)
    except pdfium.PdfiumError as exc:
        message = str(exc)
        if "password" in message.lower():
            raise Unreadable("encrypted", "the PDF needs a password") from None
        raise Unreadable("corrupt", f"not a readable PDF ({message})") from None
    reader = PageReader(ocr)
    try:
        pages: list[list[Line]] = []
        heights: list[float] = []
        for index in range(len(document)):
            page = document[index]
            try:
                heights.append(float(page.get_height()))
                pages.append(reader.lines(page, page_lines(page)))
            finally:
                page.close()
        bookmarks = list(outline(document))
        labels = _labels(document)
        title, tags, meta = metadata(_properties(document))
    except pdfium.PdfiumError as exc:
        raise Unreadable("corrupt", f"a page could not be read ({exc})") from None
    finally:
        document.close()
        reader.close()
    drop_running(pages, heights)
    if bookmarks:
        mark_outline(pages, bookmarks)
    else:
        mark_by_font(pages)
    join_hyphens(pages)
    text, starts, headings = _join(pages)
    if not has_text(text):
        if reader.scanned and not ocr.enabled:
            raise ocr_off(ocr, NO_TEXT)
        raise Unreadable("no_text", "OCR found no text" if reader.scanned else NO_TEXT)
    return Extracted(
        text,
        PDF,
        pages=starts,
        headings=headings,
        labels=labels,
        ocr=reader.read_by_ocr(),
        title=title,
        tags=tags,
        meta=meta,
    )


def _join(pages: list[list[Line]]) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """The document's text, where each page starts in it, and where each heading line does."""
    parts: list[str] = []
    starts: list[int] = []
    headings: list[int] = []
    offset = 0
    for lines in pages:
        text, marks = page_text(lines)
        if parts:
            offset += len(PAGE_JOIN)
        starts.append(offset)
        headings += [offset + at for at in marks]
        parts.append(text)
        offset += len(text)
    return PAGE_JOIN.join(parts), tuple(starts), tuple(headings)


def _labels(document: pdfium.PdfDocument) -> tuple[str, ...]:
    """Each page's printed label, or () where none differs from its physical number."""
    labels = tuple(page_label(document, index) for index in range(len(document)))
    if all(label in ("", str(number)) for number, label in enumerate(labels, 1)):
        return ()
    return labels


def _properties(document: pdfium.PdfDocument) -> dict[object, object]:
    """Title, author, subject and keywords from the document's information dictionary."""
    info = document.get_metadata_dict(skip_empty=True)
    fields: dict[object, object] = {}
    for source, key in (("Title", "title"), ("Author", "author"), ("Subject", "subject")):
        if info.get(source):
            fields[key] = info[source]
    if info.get("Keywords"):
        fields["tags"] = info["Keywords"]
    return fields
