"""OCR (issue 31): scanned PDF pages and images read by Tesseract in the reader child, each
page once (the page cache), hostile images and long scans skipped with a reason, and one
clear line where Tesseract is missing.

The tests that run Tesseract skip where it is not installed (`.ci/run` installs it); a
wrapper around the real program counts its runs, whichever process starts it."""

from __future__ import annotations

import io
import logging
import os
import shutil
import stat
import threading
import zlib
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw, ImageFont
from qdrant_client import QdrantClient

from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import ConfigError
from docsync.plugin.search import Searcher
from docsync.plugin.settings import Settings
from docsync.plugin.store import Store
from docsync.plugin.stores.qdrant import QdrantClientStore
from docsync.worker.formats import Unreadable, format_of
from docsync.worker.formats.image import read_image
from docsync.worker.formats.ocr import OcrOptions
from docsync.worker.ocr_setup import ocr_options
from docsync.worker.read import Document, read_document
from docsync.worker.report import Skip
from docsync.worker.scan import SourceFile
from tests.conftest import HANG, run_sync

DOCUMENTS = Path(__file__).resolve().parent / "documents"
TESSERACT = shutil.which("tesseract")
needs_tesseract = pytest.mark.skipif(
    TESSERACT is None, reason="tesseract is not installed (apt-get install tesseract-ocr)"
)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One page cache for the tests that do not count Tesseract's runs."""
    return tmp_path_factory.mktemp("ocr-cache")


def options(cache: Path, command: str | None = TESSERACT, **more: object) -> OcrOptions:
    return OcrOptions(command=command or "", cache=str(cache), **more)  # type: ignore[arg-type]


def counted(folder: Path) -> tuple[str, Path]:
    """A Tesseract that notes each run of OCR (its process ID) in a file, then runs the real
    one. (pytesseract asks `--version` once in each reader process: not counted.)"""
    runs = folder / "runs"
    script = folder / "tesseract"
    script.write_text(
        f'#!/bin/sh\ncase "$1" in -*) ;; *) echo $$ >> "{runs}" ;; esac\nexec "{TESSERACT}" "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script), runs


def run_count(runs: Path) -> int:
    return len(runs.read_text().split()) if runs.exists() else 0


def text_image(lines: list[str], size: int = 28) -> Image.Image:
    """A page of printed text, as a scanner gives it: grey pixels, no text layer."""
    font = ImageFont.load_default(size=size)
    image = Image.new(
        "L", (60 + 18 * size * max(map(len, lines)) // 30, 40 + 2 * size * len(lines)), 255
    )
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        draw.text((30, 20 + 2 * size * row), line, font=font, fill=0)
    return image


def scanned_pdf(pages: list[Image.Image]) -> bytes:
    out = io.BytesIO()
    pages[0].save(out, format="PDF", save_all=True, append_images=pages[1:], resolution=150)
    return out.getvalue()


def read(path: Path, ocr: OcrOptions, timeout: float = HANG) -> Document | Skip:
    result = read_document(
        SourceFile(path.parent, path.name), max_bytes=10_000_000, timeout=timeout, ocr=ocr
    )
    assert isinstance(result, Document | Skip)
    return result


# twenty pages of a scanned ledger, each with words of its own (no running header)
_BIRDS = "wren robin finch crow raven swift lark dove gull tern kite hawk owl jay rook stork crane"
_COLOURS = "red blue green white black grey brown pink gold silver violet orange yellow purple"
LEDGER = list(
    zip(
        [*_BIRDS.split(), "ibis", "egret", "heron"],
        [*_COLOURS.split(), "cyan", "olive", "navy", "teal", "ivory", "amber"],
        strict=True,
    )
)


# reading --------------------------------------------------------------------------------------


def test_images_are_read_as_the_image_format() -> None:
    names = ("a.png", "b.JPG", "c.jpeg", "d.tif", "e.TIFF")
    assert {format_of(name) for name in names} == {"image"}
    assert {"*.png", "*.jpg", "*.jpeg", "*.tif", "*.tiff"} <= set(Settings().include)


@needs_tesseract
def test_scanned_pdf_is_indexed_and_a_question_finds_its_page(
    tmp_path: Path, shared_cache: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    shutil.copy(DOCUMENTS / "scanned.pdf", tmp_path / "scanned.pdf")
    report = run_sync(tmp_path, memory_store, tiny_encoder, ocr=options(shared_cache))
    assert report.ok and not report.files_skipped
    points = list(memory_store.scroll({}))
    assert {p.payload["page_start"] for p in points} == {1, 2}
    assert all(0 < p.payload["ocr_confidence"] <= 1 for p in points)
    searcher = Searcher(memory_store, tiny_encoder)
    # keyword mode: the tiny model is random; the words are those of the 50 dpi scan's
    # headings that Tesseract reads right
    hit = searcher.search("Contents Introduction", limit=1, mode="keyword", context=0)[0]
    assert (hit.path, hit.format, hit.page_start) == ("scanned.pdf", "pdf", 1)
    hit = searcher.search("dlineGroup", limit=1, mode="keyword", context=0)[0]
    assert hit.page_end == 2  # the chunk may start with page 1's last line


@needs_tesseract
def test_a_mixed_pdf_has_text_on_every_page(tmp_path: Path, shared_cache: Path) -> None:
    """manual.pdf with page 5 replaced by a 150 dpi scan of itself."""
    manual = pdfium.PdfDocument(DOCUMENTS / "manual.pdf")
    scan = manual[4].render(scale=150 / 72, grayscale=True).to_pil()
    scanned = pdfium.PdfDocument(scanned_pdf([scan]))
    mixed = pdfium.PdfDocument.new()
    mixed.import_pages(manual, [0, 1, 2, 3])
    mixed.import_pages(scanned, [0])
    mixed.import_pages(manual, [5, 6])
    buffer = io.BytesIO()
    mixed.save(buffer)
    (tmp_path / "mixed.pdf").write_bytes(buffer.getvalue())
    document = read(tmp_path / "mixed.pdf", options(shared_cache))
    assert isinstance(document, Document) and len(document.content.pages) == 7
    confidences = document.content.ocr
    assert [c is None for c in confidences] == [True] * 4 + [False] + [True] * 2
    bounds = [*document.content.pages, len(document.text)]
    page_5 = " ".join(document.text[bounds[4] : bounds[5]].split())
    assert "is the amount of distortion" in page_5 and "dblRelDivisionLength" in page_5
    assert all(document.text[bounds[i] : bounds[i + 1]].strip() for i in range(7))


@needs_tesseract
def test_a_screenshot_is_read_and_found_with_its_confidence(
    tmp_path: Path, shared_cache: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    shutil.copy(DOCUMENTS / "macos-workflow.png", tmp_path / "workflow.png")
    (tmp_path / "notes.md").write_text("# Notes\n\nThe kettle descales with vinegar.\n")
    report = run_sync(tmp_path, memory_store, tiny_encoder, ocr=options(shared_cache))
    assert report.ok
    hit = Searcher(memory_store, tiny_encoder).search(
        "Run Shell Script workflow", limit=1, mode="keyword", context=0
    )[0]
    assert (hit.path, hit.format, hit.page_start) == ("workflow.png", "image", 1)
    (point,) = [p for p in memory_store.scroll({"path": "workflow.png"})]
    assert 0.5 < point.payload["ocr_confidence"] <= 1


@needs_tesseract
def test_questions_in_words_find_the_scan_and_the_screenshot(
    tmp_path: Path, shared_cache: Path, memory_store: Store, minilm_encoder: Encoder
) -> None:
    """The real model and the default search, among born-digital files: each question's
    file in the top 3, with its page."""
    for name in ("scanned.pdf", "macos-workflow.png", "small.pdf", "library.html"):
        shutil.copy(DOCUMENTS / name, tmp_path / name)
    assert run_sync(tmp_path, memory_store, minilm_encoder, ocr=options(shared_cache)).ok
    searcher = Searcher(memory_store, minilm_encoder)
    for question, path, page in (
        ("How do I run ocrmypdf on PDF files from a macOS workflow?", "macos-workflow.png", 1),
        ("What are the important rules for using the CAD package?", "scanned.pdf", 1),
    ):
        found = [(h.path, h.page_start) for h in searcher.search(question, limit=3)]
        assert (path, page) in found, (question, found)


@needs_tesseract
def test_each_frame_of_a_tiff_is_a_page(tmp_path: Path, shared_cache: Path) -> None:
    frames = [text_image(["The heron keeps"]), text_image(["# the amber lanterns."])]
    frames[0].save(tmp_path / "scan.tiff", save_all=True, append_images=frames[1:])
    document = read(tmp_path / "scan.tiff", options(shared_cache))
    assert isinstance(document, Document) and document.content.format == "image"
    assert len(document.content.pages) == len(document.content.ocr) == 2
    second = document.text[document.content.pages[1] :]
    assert "amber lanterns" in second and "heron" not in second
    assert document.content.headings == ()  # an OCR'd `#` is no heading


def test_a_second_sync_runs_ocr_on_no_page_it_read(
    tmp_path: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    if TESSERACT is None:
        pytest.skip("tesseract is not installed (apt-get install tesseract-ocr)")
    command, runs = counted(tmp_path)
    ocr = options(tmp_path / "cache", command)
    root = tmp_path / "docs"
    root.mkdir()
    pages = [
        text_image([f"The {bird} keeps", f"the {colour} lanterns."]) for bird, colour in LEDGER
    ]
    (root / "ledger.pdf").write_bytes(scanned_pdf(pages))
    first = run_sync(root, memory_store, tiny_encoder, ocr=ocr)
    assert first.ok and run_count(runs) == 20
    searcher = Searcher(memory_store, tiny_encoder)
    hit = searcher.search("heron amber", limit=1, mode="keyword", context=0)[0]
    assert hit.page_start == hit.page_end == 20
    # A page added to the scan: the file is read again, and only its new page is OCR'd.
    (root / "ledger.pdf").write_bytes(scanned_pdf([*pages, text_image(["The owl sleeps."])]))
    again = run_sync(root, memory_store, tiny_encoder, ocr=ocr)
    assert again.files_changed == 1 and run_count(runs) == 21
    # The same folder into another collection: every page from the cache.
    other = QdrantClientStore(QdrantClient(location=":memory:"), "other")
    try:
        third = run_sync(root, other, tiny_encoder, ocr=ocr)
    finally:
        other.close()
    assert third.files_changed == 1 and run_count(runs) == 21


@needs_tesseract
def test_a_pdf_synced_without_ocr_gains_its_scanned_page_once_tesseract_is_there(
    tmp_path: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    """Its text pages did not change, so the file would count as unchanged; its scanned
    page would stay without text until the file changed."""
    root = tmp_path / "docs"
    root.mkdir()
    pages = [text_image(["The heron keeps", "the amber lanterns."])]
    manual = pdfium.PdfDocument(DOCUMENTS / "small.pdf")
    mixed = pdfium.PdfDocument.new()
    mixed.import_pages(manual, [0])
    mixed.import_pages(pdfium.PdfDocument(scanned_pdf(pages)), [0])
    buffer = io.BytesIO()
    mixed.save(buffer)
    (root / "mixed.pdf").write_bytes(buffer.getvalue())
    (root / "notes.md").write_text("# Notes\n\nThe kettle descales with vinegar.\n")

    def herons() -> list[int | None]:
        searcher = Searcher(memory_store, tiny_encoder)
        return [h.page_start for h in searcher.search("heron", mode="keyword", context=0)]

    assert run_sync(root, memory_store, tiny_encoder).ok  # OCR off, as without Tesseract
    assert herons() == []
    again = run_sync(root, memory_store, tiny_encoder, ocr=options(tmp_path / "cache"))
    assert again.files_changed == 2 and again.chunks_embedded >= 1
    assert herons() == [2]
    assert (
        run_sync(root, memory_store, tiny_encoder, ocr=options(tmp_path / "cache")).files_changed
        == 0
    )


# what may go wrong --------------------------------------------------------------------------


def png_bomb(width: int, height: int) -> bytes:
    """A PNG of `width`x`height` black-and-white pixels, all white: a few KB on disk."""
    row = b"\0" + b"\xff" * ((width + 7) // 8)
    deflate = zlib.compressobj(9)
    data = b"".join(deflate.compress(row * 1000) for _ in range(height // 1000))
    data += deflate.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return len(body).to_bytes(4, "big") + kind + body + crc.to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def white_jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, height), 255).save(out, format="JPEG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: png_bomb(20_000, 20_000), "too_large"),  # past Pillow's own bomb limit
        pytest.param(  # 48 M pixels: read at 20 M (white: no text)
            lambda: png_bomb(8_000, 6_000), "no_text", marks=needs_tesseract
        ),
        pytest.param(  # a JPEG of 49 M: decoded at a quarter of its pixels
            lambda: white_jpeg(7_000, 7_000), "no_text", marks=needs_tesseract
        ),
        (lambda: (DOCUMENTS / "macos-workflow.png").read_bytes()[:9000], "corrupt"),
        (lambda: b"\x89PNG\r\n\x1a\n" + b"junk" * 100, "corrupt"),
    ],
    ids=["bomb", "huge", "huge-jpeg", "truncated", "junk"],
)
def test_hostile_images_are_skipped_with_their_reason(
    tmp_path: Path, make: object, reason: str
) -> None:
    assert callable(make)
    (tmp_path / "x.png").write_bytes(make())
    skip = read(tmp_path / "x.png", options(tmp_path, TESSERACT or "/bin/false"))
    assert isinstance(skip, Skip) and skip.reason == reason, skip


@needs_tesseract
def test_a_scan_past_the_time_limit_is_skipped_and_the_folder_syncs(
    tmp_path: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    command, runs = counted(tmp_path)
    root = tmp_path / "docs"
    root.mkdir()
    # forty pages, each its own (the cache would read a page it has seen once)
    lines = [f"Line {row} of a long scan, " + "words " * 12 for row in range(25)]
    pages = [text_image([f"Page {n}", *lines], size=20) for n in range(40)]
    (root / "long.pdf").write_bytes(scanned_pdf(pages))
    (root / "notes.md").write_text("# Notes\n\nThe kettle descales with vinegar.\n")
    # (No other file for the reader here: under a 3 s limit a loaded machine could time it
    # out too. That a replaced reader reads the next file: test_office's timeout test.)
    ocr = options(tmp_path / "cache", command, seconds=3.0)
    # fixed: the limit is meant to fire on long.pdf, 40 pages of OCR
    report = run_sync(root, memory_store, tiny_encoder, ocr=ocr, read_timeout=3.0)
    assert [(Path(s.path).name, s.reason) for s in report.failures] == [("long.pdf", "timeout")]
    assert {p.payload["path"] for p in memory_store.scroll({})} == {"notes.md"}
    # The Tesseract that was running when the reader was killed went with it.
    last = int(runs.read_text().split()[-1])
    assert not _alive(last)


@needs_tesseract
def test_the_reader_itself_stops_ocr_at_the_time_limit() -> None:
    """In-process, as in a reader whose parent is gone: no one kills it but its deadline."""
    from docsync.worker.formats.pdf import read_pdf

    pages = [text_image([f"The {bird} keeps the {colour} lanterns."]) for bird, colour in LEDGER]
    with pytest.raises(Unreadable) as caught:
        read_pdf(scanned_pdf(pages[:3]), OcrOptions(command=TESSERACT or "", seconds=0.01))
    assert caught.value.reason == "timeout" and "DOCSYNC_READ_TIMEOUT" in caught.value.detail


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


# OCR off or missing ---------------------------------------------------------------------------


def test_tesseract_missing_is_said_once_and_scans_are_skipped(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    memory_store: Store,
    tiny_encoder: Encoder,
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no tesseract on it
    monkeypatch.setattr("docsync.worker.ocr_setup._told", threading.Event())
    ocr = ocr_options(Settings(cache=tmp_path / "cache", ocr="auto"))
    assert not ocr.enabled and "Tesseract is not installed" in ocr.missing
    with pytest.raises(ConfigError, match="DOCSYNC_OCR=on, but Tesseract is not installed"):
        ocr_options(Settings(cache=tmp_path / "cache", ocr="on"))
    root = tmp_path / "docs"
    root.mkdir()
    shutil.copy(DOCUMENTS / "scanned.pdf", root / "scanned.pdf")
    shutil.copy(DOCUMENTS / "macos-workflow.png", root / "workflow.png")
    (root / "notes.md").write_text("# Notes\n\nThe kettle descales with vinegar.\n")
    caplog.set_level(logging.WARNING, logger="docsync.sync")
    report = run_sync(root, memory_store, tiny_encoder, ocr=ocr)
    assert report.files_skipped == {"no_text": 2} and report.ok
    told = [r.getMessage() for r in caplog.records if "apt-get install" in r.getMessage()]
    assert len(told) == 1 and "Tesseract is not installed" in told[0]
    assert "apt-get install tesseract-ocr tesseract-ocr-eng" in told[0]


def test_ocr_off_skips_scans_saying_so(tmp_path: Path) -> None:
    ocr = ocr_options(Settings(cache=tmp_path, ocr="off"))
    assert not ocr.enabled and not ocr.missing
    skip = read(DOCUMENTS / "scanned.pdf", ocr)
    assert isinstance(skip, Skip) and skip.reason == "no_text" and "DOCSYNC_OCR=off" in skip.detail
    with pytest.raises(Unreadable, match="DOCSYNC_OCR=off"):
        read_image(b"", ocr)


def test_languages_are_checked() -> None:
    with pytest.raises(ValueError, match="Tesseract language names"):
        Settings(ocr_languages="eng; rm -rf")
    assert Settings(ocr_languages=" deu+eng ").ocr_languages == "deu+eng"


def test_ocr_on_without_tesseract_is_one_error_line(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from docsync.worker.cli import cli

    monkeypatch.setenv("PATH", str(env / "no-bin"))
    monkeypatch.setenv("DOCSYNC_OCR", "on")
    code = cli("sync", str(env))
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("docsync: error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err
    assert "DOCSYNC_OCR=on, but Tesseract is not installed" in errors[0]
