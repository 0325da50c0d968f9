"""A PDF's pages without a text layer, read by OCR: each is rendered by PDFium at the
resolution Tesseract reads best (smaller where the page is huge, so that no page has more
than `ocr.MAX_PIXELS`), and its lines placed as the text layer's would be (`top` a baseline
in PDF units from the page's bottom), so that running headers of a scanned book are found
as a born-digital one's. OCR lines have no font size: the font headings of a mixed PDF come
from its text pages alone.
"""

from __future__ import annotations

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from docsync.worker.formats.ocr import (
    DPI,
    MAX_PIXELS,
    OcrOptions,
    OcrPage,
    deadline,
    open_cache,
    read_page,
)
from docsync.worker.formats.pdf_lines import Line
from docsync.worker.formats.text import has_text


class PageReader:
    """Reads a document's pages in turn: the text layer's lines where there are any, else
    OCR's (where OCR is on). `scanned`: pages that had no text layer but something drawn;
    `confidences`: per page, OCR's confidence or None."""

    def __init__(self, options: OcrOptions) -> None:
        self.options = options
        self.scanned = 0
        self.confidences: list[float | None] = []
        self._cache = open_cache(options) if options.enabled else None
        self._until = deadline(options)

    def lines(self, page: pdfium.PdfPage, layer: list[Line]) -> list[Line]:
        if any(has_text(line.text) for line in layer) or not _draws(page):
            self.confidences.append(None)
            return layer
        self.scanned += 1
        if not self.options.enabled:
            self.confidences.append(None)
            return layer
        scale = render_scale(page.get_width(), page.get_height())
        image = page.render(scale=scale, grayscale=True).to_pil()
        read = read_page(image, self.options, self._cache, self._until)
        del image
        self.confidences.append(read.confidence)
        return placed(read, scale, float(page.get_height()))

    def read_by_ocr(self) -> tuple[float | None, ...]:
        """Each page's OCR confidence, or () where no page was read by OCR."""
        confidences = tuple(self.confidences)
        return confidences if any(c is not None for c in confidences) else ()

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()


def render_scale(width: float, height: float) -> float:
    """PDF units to pixels: `DPI`, or less where the page would pass `MAX_PIXELS`."""
    scale = DPI / 72
    area = max(width * height, 1.0)
    return min(scale, float((MAX_PIXELS / area) ** 0.5))


def placed(page: OcrPage, scale: float, height: float) -> list[Line]:
    return [Line(x.text, height - x.bottom / scale, x.left / scale) for x in page.lines]


def _draws(page: pdfium.PdfPage) -> bool:
    """Whether anything is drawn on the page (an empty page is not read by OCR)."""
    return int(pdfium_c.FPDFPage_CountObjects(page)) > 0
