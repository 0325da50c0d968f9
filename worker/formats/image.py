"""Images (`.png`, `.jpg`, `.jpeg`, `.tif`, `.tiff`): a photographed or scanned page, read by
OCR (worker/formats/ocr.py). Each frame of a multi-page TIFF is a page.

Pillow (HPND) decodes the image; its size is checked from the header before any pixel is
decoded, so a decompression bomb (a small file of a huge image: over Pillow's
`MAX_IMAGE_PIXELS`, about 89 million pixels) is `too_large` at once, and a file cut short
is `corrupt`. A large photograph (a 48-megapixel phone's page) is read smaller, at most
`MAX_PIXELS` (a JPEG decoded at a fraction of its size straight away). Frames past
`MAX_FRAMES` are not read.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

from docsync.worker.formats import IMAGE, Extracted, Unreadable
from docsync.worker.formats.ocr import MAX_PIXELS, OcrOptions, deadline, open_cache, read_page
from docsync.worker.formats.text import has_text

if TYPE_CHECKING:
    from PIL.Image import Image

MAX_FRAMES = 500
PAGE_JOIN = "\n\n"


def ocr_off(options: OcrOptions, what: str) -> Unreadable:
    """The skip of a file that only OCR could read, with OCR off or missing."""
    why = f"{options.missing} (DOCSYNC_OCR)" if options.missing else "OCR is off (DOCSYNC_OCR=off)"
    return Unreadable("no_text", f"{what}: {why}")


def read_image(raw: bytes, options: OcrOptions) -> Extracted:
    if not options.enabled:
        raise ocr_off(options, "an image, readable only by OCR")
    cache, until = open_cache(options), deadline(options)
    try:  # a frame at a time: a TIFF's frames are never all decoded at once
        pages = [read_page(frame, options, cache, until) for frame in _frames(raw)]
    finally:
        if cache is not None:
            cache.close()
    texts = [page.text for page in pages]
    text = PAGE_JOIN.join(texts)
    if not has_text(text):
        raise Unreadable("no_text", "OCR found no text in the image")
    confidences = tuple(page.confidence for page in pages)
    # headings=(): no OCR'd line is a heading, whatever it starts with (`# Action`)
    return Extracted(text, IMAGE, pages=_starts(texts), headings=(), ocr=confidences)


def _frames(raw: bytes) -> Iterator[Image]:
    """The image's frames, each decoded in grey as it is asked for; bombs and broken files
    refused."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
            for index in range(min(getattr(image, "n_frames", 1), MAX_FRAMES)):
                image.seek(index)
                yield _decoded(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Unreadable("too_large", f"an image bomb ({exc})") from None
    except UnidentifiedImageError:
        raise Unreadable("corrupt", "not an image Pillow can read") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise Unreadable("corrupt", f"a broken image ({exc})") from None


def _decoded(frame: Image) -> Image:
    """The frame in grey, at most `MAX_PIXELS`."""
    width, height = frame.size
    factor = math.ceil(math.sqrt(width * height / MAX_PIXELS))
    if factor > 1 and frame.format == "JPEG":
        frame.draft("L", (width // factor, height // factor))  # decoded at 1/2, 1/4 or 1/8
    grey = frame.convert("L")
    factor = math.ceil(math.sqrt(grey.width * grey.height / MAX_PIXELS))
    return grey.reduce(factor) if factor > 1 else grey


def _starts(texts: list[str]) -> tuple[int, ...]:
    starts, offset = [], 0
    for text in texts:
        starts.append(offset)
        offset += len(text) + len(PAGE_JOIN)
    return tuple(starts)
