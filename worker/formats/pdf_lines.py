"""What PDFium tells of a PDF beyond its text: each line of a page with where it stands and
in what font (size, weight), the outline (bookmarks) and the printed page labels.

A line's font is sampled at a letter or digit in its middle, never read char by char, so a page
costs a few calls a line into PDFium, whatever its length. Where PDFium's text and its
characters disagree (a length that differs), the page's lines carry no geometry (all 0) and
only their text is used.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

# PDFium ends lines with `\r\n`; some producers' text has bare `\n` or `\r`.
_BREAK = re.compile(r"\r\n?|\n")
# Control characters PDFium puts in text (\x02 for a hyphen at a line end, \x00 padding, C1
# codes for glyphs it could not map, such as some bullets).
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
# Font names of bold faces that declare no weight (TeX's CMBX, SFBX, LM Roman Bold...).
_BOLD_NAME = re.compile(r"bold|black|heavy|semibold|demi|cmbx|sfbx|ecbx", re.I)
# Typewriter faces: code, whose size says nothing of the body's.
_MONO_NAME = re.compile(r"mono|courier|typewriter|consol|cmtt|sftt|ectt|lmmono", re.I)
BOLD_WEIGHT = 600
_FONT_NAME_BYTES = 128
MAX_OUTLINE = 20_000  # bookmarks read at most: a hostile outline cannot take the reader
_MAX_OUTLINE_DEPTH = 6


@dataclass
class Line:
    """One line of a page's text, and where it stands: `top`, its baseline in PDF units from
    the page's bottom (the same for every glyph of the line, unlike their boxes); `size`
    the font size in points (0 where unknown)."""

    text: str
    top: float = 0.0
    left: float = 0.0
    size: float = 0.0
    bold: bool = False
    mono: bool = False  # set in a typewriter face (code)
    heading: int = 0  # its heading level (1-6) once found, 0 for text


@dataclass(frozen=True)
class Bookmark:
    level: int  # 1 for a top-level entry
    title: str
    page: int  # 0-based
    top: float | None  # where on the page it points, when the outline says


def page_lines(page: pdfium.PdfPage) -> list[Line]:
    """The page's lines in PDFium's text order, with their geometry and font."""
    textpage = page.get_textpage()
    try:
        raw = textpage.get_text_range()
        located = len(raw) == textpage.count_chars()
        lines: list[Line] = []
        start = 0
        for brk in [*_BREAK.finditer(raw), None]:
            end = len(raw) if brk is None else brk.start()
            line = _line(textpage, raw, start, end, located)
            if lines and lines[-1].text.endswith("\ufffe"):
                lines[-1].text += line.text  # a word split at the line end: joined later
            else:
                lines.append(line)
            if brk is None:
                break
            start = brk.end()
    finally:
        textpage.close()
    for line in lines:
        line.text = _CONTROLS.sub("", line.text).rstrip()
    return [line for line in lines if line.text.strip()]


def _line(textpage: pdfium.PdfTextPage, raw: str, start: int, end: int, located: bool) -> Line:
    text = raw[start:end]
    if not located or not text.strip():
        return Line(text)
    first = next(i for i in range(start, end) if not raw[i].isspace())
    # the font at the line's middle: a listing's line number or a bullet is not its font
    middle = (first + end) // 2
    at = next((i for i in range(middle, end) if raw[i].isalnum()), first)
    left, _, _, _ = textpage.get_charbox(first)
    x, y = ctypes.c_double(), ctypes.c_double()
    pdfium_c.FPDFText_GetCharOrigin(textpage, at, x, y)
    top = y.value
    size = float(pdfium_c.FPDFText_GetFontSize(textpage, at))
    weight = int(pdfium_c.FPDFText_GetFontWeight(textpage, at))
    name = _font_name(textpage, at)
    bold = weight >= BOLD_WEIGHT or bool(_BOLD_NAME.search(name))
    mono = bool(_MONO_NAME.search(name))
    return Line(text, float(top), float(left), round(size, 1), bold, mono)


def _font_name(textpage: pdfium.PdfTextPage, index: int) -> str:
    buffer = ctypes.create_string_buffer(_FONT_NAME_BYTES)
    flags = ctypes.c_int()
    length = pdfium_c.FPDFText_GetFontInfo(textpage, index, buffer, _FONT_NAME_BYTES, flags)
    return buffer.value.decode("latin-1") if 0 < length <= _FONT_NAME_BYTES else ""


def outline(document: pdfium.PdfDocument) -> Iterator[Bookmark]:
    """The document's bookmarks in outline order, those that point at a page of it."""
    pages = len(document)
    for count, mark in enumerate(document.get_toc(max_depth=_MAX_OUTLINE_DEPTH)):
        if count >= MAX_OUTLINE:
            return
        dest = mark.get_dest()
        index = dest.get_index() if dest is not None else None
        if index is None or not 0 <= index < pages:
            continue
        title = " ".join(_CONTROLS.sub("", mark.get_title()).split())
        if not title:
            continue
        mode, view = dest.get_view()
        # /XYZ left top zoom: `top` is where the heading stands; other modes say nothing of it
        top = float(view[1]) if mode == pdfium_c.PDFDEST_VIEW_XYZ and len(view) >= 2 else None
        yield Bookmark(mark.level + 1, title, index, top or None)


def page_label(document: pdfium.PdfDocument, index: int) -> str:
    """The page's printed label (`ix`, `A-3`), or "" where the PDF gives it none."""
    size = pdfium_c.FPDF_GetPageLabel(document, index, None, 0)
    if size <= 2:
        return ""
    buffer = ctypes.create_string_buffer(size)
    pdfium_c.FPDF_GetPageLabel(document, index, buffer, size)
    return _CONTROLS.sub("", buffer.raw[: size - 2].decode("utf-16-le", "replace")).strip()
