"""PDF: pypdfium2 (PDFium, Chrome's PDF engine; BSD-3/Apache-2.0), the text layer of one
page at a time, so a document of thousands of pages holds one page's objects at once.

Pages are joined by a blank line and each page's start is kept (`Extracted.pages`), so a
chunk knows the pages it spans. PDFium gives `\\r\\n` line ends and marks hyphens it found at
line ends; the text is normalised to `\\n` and printable characters, deterministically.
"""

from __future__ import annotations

import re

import pypdfium2 as pdfium

from docsync.worker.formats import PDF, Extracted, Unreadable
from docsync.worker.formats.text import has_text, metadata

PAGE_JOIN = "\n\n"
_LINE_ENDS = re.compile(r"\r\n?")
# PDFium marks a hyphen that splits a word at a line end as U+FFFE: the word is joined again.
_SPLIT_WORD = re.compile("\ufffe\n?")
# Control characters PDFium puts in text (\x02 for a hyphen at a line end, \x00 padding, C1
# codes for glyphs it could not map, such as some bullets) and trailing spaces of lines.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_TRAILING = re.compile(r"[ \t]+$", re.M)
NO_TEXT = (
    "no text layer (a scanned PDF?): run OCR on it first (for example with ocrmypdf) to index it"
)


def read_pdf(raw: bytes) -> Extracted:
    try:
        document = pdfium.PdfDocument(raw)
    except pdfium.PdfiumError as exc:
        message = str(exc)
        if "password" in message.lower():
            raise Unreadable("encrypted", "the PDF needs a password") from None
        raise Unreadable("corrupt", f"not a readable PDF ({message})") from None
    try:
        parts: list[str] = []
        pages: list[int] = []
        offset = 0
        for index in range(len(document)):
            text = _page_text(document, index)
            if parts:
                offset += len(PAGE_JOIN)
            pages.append(offset)
            parts.append(text)
            offset += len(text)
        title, tags, meta = metadata(_properties(document))
    except pdfium.PdfiumError as exc:
        raise Unreadable("corrupt", f"a page could not be read ({exc})") from None
    finally:
        document.close()
    text = PAGE_JOIN.join(parts)
    if not has_text(text):
        raise Unreadable("no_text", NO_TEXT)
    return Extracted(text, PDF, pages=tuple(pages), title=title, tags=tags, meta=meta)


def _page_text(document: pdfium.PdfDocument, index: int) -> str:
    page = document[index]
    try:
        textpage = page.get_textpage()
        try:
            text = textpage.get_text_range()
        finally:
            textpage.close()
    finally:
        page.close()
    text = _SPLIT_WORD.sub("", _LINE_ENDS.sub("\n", text))
    text = _CONTROLS.sub("", text)
    return _TRAILING.sub("", text).strip()


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
