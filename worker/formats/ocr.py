"""OCR: the text of a page that is only pixels (a scanned PDF page, a photographed page), by
Tesseract, run in the reader child (worker/formats/isolated.py).

Tesseract runs as the distribution's own `tesseract` program, called by pytesseract
(Apache-2.0) once a page: the program inherits the reader's address-space cap, the reader
itself stops OCR at the file's time limit (no page begun past it, none running beyond it,
even where no parent is left to kill the reader), and the reader runs in
a process group of its own, so a reader killed for overrunning takes its Tesseract with it.
Tesseract runs on one thread (`OMP_THREAD_LIMIT=1`): its OpenMP threads slow a page down on a
machine whose cores are busy embedding (bench/formats.py: 5 times the CPU a page with
pytesseract's defaults).

Each page's result is cached by its pixels (worker/formats/ocr_cache.py): a re-sync, a file
that gained a page, or the same scan in another folder never runs Tesseract on a page it
has read before.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from docsync.worker.formats import Unreadable

if TYPE_CHECKING:
    from PIL.Image import Image

    from docsync.worker.formats.ocr_cache import OcrCache

# The resolution pages are rendered at for Tesseract (it reads 300 dpi best), and the most
# pixels one page may have at it (a page larger than A3 at 300 dpi is rendered smaller).
DPI = 300
MAX_PIXELS = 20_000_000
# What Tesseract is asked for: automatic page segmentation, the LSTM engine; part of the
# cache key, so that a change of either reads every page again.
CONFIG = "--oem 1 --psm 3"
_ENGINE = f"tesseract {CONFIG} dpi={DPI}"


@dataclass(frozen=True)
class OcrOptions:
    """How the reader child runs OCR. `command` is the Tesseract program ("" where OCR is
    off or missing, and then `missing` says why when the user should be told)."""

    command: str = ""
    languages: str = "eng"
    cache: str = ""  # the cache's folder ("" for none)
    cache_bytes: int = 64 * 1024 * 1024
    # The file's time limit (DOCSYNC_READ_TIMEOUT): no page is begun past it and none runs
    # beyond it, so OCR stops there even where no parent is left to kill the reader.
    seconds: float = 60.0
    missing: str = ""  # why OCR is unavailable, where it was wanted (DOCSYNC_OCR=auto)

    @property
    def enabled(self) -> bool:
        return bool(self.command)


OCR_OFF = OcrOptions()


@dataclass(frozen=True)
class OcrLine:
    """One line Tesseract read, and where it stands in the image's pixels (`bottom`: the
    lowest edge of its words)."""

    text: str
    left: int
    bottom: int
    paragraph_start: bool  # the first line of a block or paragraph


@dataclass(frozen=True)
class OcrPage:
    lines: tuple[OcrLine, ...]
    confidence: float  # the mean of its words' confidences, 0..1 (0 where it read none)

    @property
    def text(self) -> str:
        """The lines, a blank line between paragraphs."""
        parts: list[str] = []
        for line in self.lines:
            if line.paragraph_start and parts:
                parts.append("")
            parts.append(line.text)
        return "\n".join(parts)


def deadline(options: OcrOptions) -> float:
    """When a file's OCR, begun now, must end (a `time.monotonic` time)."""
    return time.monotonic() + options.seconds


def read_page(image: Image, options: OcrOptions, cache: OcrCache | None, until: float) -> OcrPage:
    """The text Tesseract reads in `image` (from the cache when this page was read before),
    by `until` (`deadline`) or `timeout`."""
    key = page_key(image, options.languages)
    cached = cache.get(key) if cache is not None else None
    if cached is not None:
        return cached
    left = until - time.monotonic()
    if left <= 0:
        raise _overrun(options)
    page = _tesseract(image, options, left)
    if cache is not None:
        cache.put(key, page)
    return page


def page_key(image: Image, languages: str) -> str:
    """The page's content hash: its pixels, their layout, the languages and the engine."""
    digest = hashlib.sha256(f"{_ENGINE}\0{languages}\0{image.mode}\0{image.size}\0".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def _overrun(options: OcrOptions) -> Unreadable:
    return Unreadable("timeout", f"OCR took over {options.seconds:g}s (DOCSYNC_READ_TIMEOUT)")


def _tesseract(image: Image, options: OcrOptions, seconds: float) -> OcrPage:
    import pytesseract

    pytesseract.pytesseract.tesseract_cmd = options.command
    os.environ["OMP_THREAD_LIMIT"] = "1"
    # handed over as an uncompressed PGM: pytesseract's default PNG took 0.25 s to write a
    # 300 dpi page, a fifth of Tesseract's own time on it, for a file deleted at once
    image.format = "PPM"
    try:
        data = pytesseract.image_to_data(
            image,
            lang=options.languages,
            config=CONFIG,
            output_type=pytesseract.Output.DICT,
            timeout=seconds,
        )
    except RuntimeError as exc:  # pytesseract's timeout, and TesseractError (a subclass)
        if "timeout" in str(exc):
            raise _overrun(options) from None
        raise Unreadable("corrupt", f"Tesseract could not read a page ({exc})") from None
    except OSError as exc:  # TesseractNotFoundError, or a program that fails to start
        raise Unreadable("corrupt", f"Tesseract could not be run ({exc})") from None
    return parse(data)


def parse(data: dict[str, list[object]]) -> OcrPage:
    """`image_to_data`'s words as lines, and their mean confidence."""
    lines: list[OcrLine] = []
    words: list[str] = []
    confidences: list[float] = []
    place: tuple[object, ...] = ()
    paragraph: tuple[object, ...] = ()
    left = bottom = 0
    for i, raw in enumerate(data["text"]):
        text = " ".join(str(raw).split())
        confidence = float(str(data["conf"][i]))
        if not text or confidence < 0:
            continue
        here = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
        if here != place and words:
            lines.append(OcrLine(" ".join(words), left, bottom, place[:2] != paragraph))
            paragraph, words = place[:2], []
        if not words:
            place, left, bottom = here, _int(data["left"][i]), 0
        words.append(text)
        bottom = max(bottom, _int(data["top"][i]) + _int(data["height"][i]))
        confidences.append(confidence)
    if words:
        lines.append(OcrLine(" ".join(words), left, bottom, place[:2] != paragraph))
    mean = sum(confidences) / len(confidences) / 100 if confidences else 0.0
    return OcrPage(tuple(lines), round(mean, 3))


def _int(value: object) -> int:
    return int(str(value))


def open_cache(options: OcrOptions) -> OcrCache | None:
    """The page cache the options name (None where they name none)."""
    if not options.cache:
        return None
    from docsync.worker.formats.ocr_cache import OcrCache

    return OcrCache(Path(options.cache), options.cache_bytes)
