"""Regenerate the derived (hostile) test PDFs from the real ``manual.pdf``.

Run from anywhere with the project venv active::

    python tests/documents/make_derived.py

It writes, next to this script:

* ``scanned.pdf``   -- pages 1-2 of manual.pdf rendered to grayscale bitmaps
                       (scale 0.7) and placed as full-page images in a new PDF,
                       so the PDF has NO text layer (like a scanned document).
* ``encrypted.pdf`` -- manual.pdf encrypted with pypdf (RC4-128, pypdf's
                       default), user password ``secret``, owner password
                       ``owner``. Cannot be opened without a password.
* ``truncated.pdf`` -- the first 40% of manual.pdf's bytes (cut-off download).
* ``empty.pdf``     -- zero bytes.

Needs only pypdfium2 and pypdf (no Pillow). pypdf is used here as a
generation-time tool only. The output is deterministic: running the script
again reproduces byte-identical files.
"""

import hashlib
import io
import re
from pathlib import Path

import pypdfium2 as pdfium
from pypdf import PdfWriter

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "manual.pdf"

SCANNED_PAGES = 2
SCANNED_SCALE = 0.7
USER_PASSWORD = "secret"
OWNER_PASSWORD = "owner"
TRUNCATE_FRACTION = 0.4


def make_scanned(dest: Path) -> None:
    """Image-only copy of the first pages: each page becomes one bitmap."""
    src = pdfium.PdfDocument(SOURCE)
    out = pdfium.PdfDocument.new()
    try:
        for index in range(min(SCANNED_PAGES, len(src))):
            page = src[index]
            width, height = page.get_size()
            bitmap = page.render(scale=SCANNED_SCALE, grayscale=True)
            new_page = out.new_page(width, height)
            image = pdfium.PdfImage.new(out)
            image.set_bitmap(bitmap)
            # Image objects are drawn into the unit square; stretch to page.
            image.set_matrix(pdfium.PdfMatrix().scale(width, height))
            new_page.insert_obj(image)
            new_page.gen_content()
        buffer = io.BytesIO()
        out.save(buffer)
    finally:
        out.close()
        src.close()
    # PDFium writes a random file /ID and the current time as /CreationDate;
    # replace both (same length, so the xref offsets stay valid) with fixed
    # values so reruns are byte-identical.
    fixed = hashlib.md5(b"docsync tests scanned.pdf").hexdigest().upper().encode()
    data, ids = re.subn(
        rb"/ID\[<[0-9A-Fa-f]{32}><[0-9A-Fa-f]{32}>\]",
        b"/ID[<" + fixed + b"><" + fixed + b">]",
        buffer.getvalue(),
    )
    data, dates = re.subn(rb"/CreationDate\(D:\d{14}", b"/CreationDate(D:20230210092735", data)
    assert ids == 1 and dates == 1, "unexpected PDFium output layout"
    dest.write_bytes(data)


def make_encrypted(dest: Path) -> None:
    writer = PdfWriter(clone_from=SOURCE)
    # pypdf would give the second half of the file /ID random bytes; keep the
    # /ID cloned from manual.pdf instead so reruns are byte-identical (RC4-128
    # key derivation is otherwise deterministic).
    assert writer._ID, "manual.pdf is expected to carry a file /ID"
    writer.generate_file_identifiers = lambda: None  # type: ignore[method-assign]
    writer.encrypt(user_password=USER_PASSWORD, owner_password=OWNER_PASSWORD)
    with open(dest, "wb") as fh:
        writer.write(fh)


def make_truncated(dest: Path) -> None:
    data = SOURCE.read_bytes()
    dest.write_bytes(data[: int(len(data) * TRUNCATE_FRACTION)])


def make_empty(dest: Path) -> None:
    dest.write_bytes(b"")


def main() -> None:
    make_scanned(HERE / "scanned.pdf")
    make_encrypted(HERE / "encrypted.pdf")
    make_truncated(HERE / "truncated.pdf")
    make_empty(HERE / "empty.pdf")
    for name in ("scanned.pdf", "encrypted.pdf", "truncated.pdf", "empty.pdf"):
        print(f"{name}: {(HERE / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
