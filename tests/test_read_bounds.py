"""What one file may cost and reach (issue 25): the reader's memory is capped, so a
decompression bomb is skipped as `too_large`; a file is opened once and checked through its
descriptor, so a symlink flipped or a FIFO swapped in after the scan's check is never read
and never hangs the sync."""

from __future__ import annotations

import io
import os
import threading
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import docsync.worker.read
from docsync.plugin.encoder import Encoder
from docsync.plugin.search import Searcher
from docsync.plugin.store import Store
from docsync.worker.formats import Unreadable
from docsync.worker.formats.isolated import ReaderProcess
from docsync.worker.read import Document, read_document
from docsync.worker.report import Skip, SyncReport
from docsync.worker.scan import SourceFile
from tests.conftest import HANG, run_sync
from tests.test_formats import make_docx

DOCUMENTS = Path(__file__).resolve().parent / "documents"
# Low enough that the bombs below pass it quickly; the interpreter and parsers take ~250 MiB.
TEST_MEMORY_MB = 400


def bomb_pdf(inflated_mb: int) -> bytes:
    """A one-page PDF whose content stream is about 1 MB deflated and `inflated_mb` MiB
    inflated (text-showing operators, as PDFium must parse them to extract text)."""
    line = b"BT /F1 12 Tf 72 712 Td (bomb) Tj ET\n"
    block = line * 100_000
    deflate = zlib.compressobj(9)
    stream = b"".join(
        deflate.compress(block) for _ in range(inflated_mb * 1024 * 1024 // len(block))
    )
    stream += deflate.flush()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.writelines(b"%010d 00000 n \n" % offset for offset in offsets)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def bomb_docx(path: Path, xml_mb: int) -> Path:
    """A real .docx whose word/document.xml is `xml_mb` MiB of paragraphs, about 1 MB zipped."""
    import docx

    empty = io.BytesIO()
    docx.Document().save(empty)
    source = zipfile.ZipFile(empty)
    head, tail = source.read("word/document.xml").split(b"<w:body>")
    block = b"<w:p><w:r><w:t>bomb</w:t></w:r></w:p>" * 10_000
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            if item.filename != "word/document.xml":
                out.writestr(item, source.read(item))
        with out.open("word/document.xml", "w") as xml:
            xml.write(head + b"<w:body>")
            for _ in range(xml_mb * 1024 * 1024 // len(block)):
                xml.write(block)
            xml.write(tail)
    return path


def read(path: Path, memory_mb: int = TEST_MEMORY_MB) -> Document | Skip:
    result = read_document(
        SourceFile(path.parent, path.name), max_bytes=10_000_000, memory_mb=memory_mb
    )
    assert isinstance(result, Document | Skip)
    return result


# memory ---------------------------------------------------------------------------------------


def test_a_pdf_whose_stream_inflates_past_the_cap_is_too_large(tmp_path: Path) -> None:
    """PDFium aborts the child when an allocation fails: that death is the cap, not a crash."""
    (tmp_path / "bomb.pdf").write_bytes(bomb_pdf(300))
    skip = read(tmp_path / "bomb.pdf")
    assert isinstance(skip, Skip)
    assert (skip.reason, skip.detail) == (
        "too_large",
        f"reading it needed more than {TEST_MEMORY_MB} MB (DOCSYNC_READER_MEMORY_MB)",
    )
    assert not skip.is_failure


def test_a_docx_with_hundreds_of_mb_of_xml_is_too_large(tmp_path: Path) -> None:
    """python-docx inflates the part in Python: a MemoryError, answered by the child."""
    skip = read(bomb_docx(tmp_path / "bomb.docx", 300))
    assert isinstance(skip, Skip)
    assert skip.reason == "too_large" and str(TEST_MEMORY_MB) in skip.detail


def test_a_docx_whose_xml_parser_runs_out_of_memory_is_too_large(tmp_path: Path) -> None:
    """200 MiB of XML under a 512 MB cap: libxml2 runs out first and calls it a syntax error
    (`XMLSyntaxError: unknown error`); the read took the address space to its cap, so the
    file is too large, not corrupt."""
    skip = read(bomb_docx(tmp_path / "bomb.docx", 200), memory_mb=512)
    assert isinstance(skip, Skip)
    assert (skip.reason, skip.detail) == (
        "too_large",
        "reading it needed more than 512 MB (DOCSYNC_READER_MEMORY_MB)",
    )


def test_normal_documents_read_under_the_cap_and_after_a_bomb(tmp_path: Path) -> None:
    """The cap leaves room for real files, and the child that hit it is replaced."""
    normal = [
        ("pdf", (DOCUMENTS / "manual.pdf").read_bytes()),
        ("pdf", (DOCUMENTS / "small.pdf").read_bytes()),
        ("html", (DOCUMENTS / "library.html").read_bytes()),
        ("docx", make_docx(tmp_path / "kettle.docx").read_bytes()),
    ]
    reader = ReaderProcess()
    try:
        for kind, raw in normal:
            assert reader.extract(kind, raw, timeout=HANG, memory_mb=TEST_MEMORY_MB).text
        with pytest.raises(Unreadable) as caught:
            reader.extract("pdf", bomb_pdf(300), timeout=HANG, memory_mb=TEST_MEMORY_MB)
        assert caught.value.reason == "too_large"
        for kind, raw in normal:
            assert reader.extract(kind, raw, timeout=HANG, memory_mb=TEST_MEMORY_MB).text
    finally:
        reader.close()


# what is opened -------------------------------------------------------------------------------

SECRET = "The vault combination is 31-41-59, never to be indexed."


class _SwapOnOpen:
    """`os` as docsync.worker.read sees it, with `swap` run once at the path's first stat or open:
    the moment between the scan's check of a file and its read, where a race would strike
    (the unfixed read stat-ed the path, then opened it again)."""

    def __init__(self, path: Path, swap: Callable[[], None]) -> None:
        self._path, self._swap, self.swapped = str(path), swap, False

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def _strike(self, path: object) -> None:
        if not self.swapped and os.fspath(path) == self._path:  # type: ignore[call-overload]
            self.swapped = True
            self._swap()

    def stat(self, path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        info = os.stat(path, *args, **kwargs)
        self._strike(path)
        return info

    def open(self, path: Any, *args: Any, **kwargs: Any) -> int:
        self._strike(path)
        return os.open(path, *args, **kwargs)


@pytest.fixture
def linked_root(tmp_path: Path) -> tuple[Path, Path]:
    """A root with a public note and a link to it; a private note beside the root. The note
    has a name no rule selects, so the link is indexed under its own name (a link to a file
    that is indexed itself is folded into it, and never read)."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "public.note").write_text("# Public\n\nA note anyone may read about the garden.\n")
    (outside / "private.md").write_text(f"# Private\n\n{SECRET}\n")
    (outside / "private.md").chmod(0o600)
    (root / "link.md").symlink_to(root / "public.note")
    return root.resolve(), outside.resolve()


def test_a_link_flipped_out_of_the_root_after_the_scan_is_never_read(
    linked_root: tuple[Path, Path],
    memory_store: Store,
    tiny_encoder: Encoder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, outside = linked_root

    def flip() -> None:
        (root / "link.md").unlink()
        (root / "link.md").symlink_to(outside / "private.md")

    seam = _SwapOnOpen(root / "link.md", flip)
    monkeypatch.setattr(docsync.worker.read, "os", seam)
    report = run_sync(root, memory_store, tiny_encoder)
    assert seam.swapped
    assert all(SECRET not in point.payload["text"] for point in memory_store.scroll({}))
    hits = Searcher(memory_store, tiny_encoder).search("vault combination", limit=10)
    assert all("31-41-59" not in hit.text for hit in hits)
    assert report.files_skipped["outside_root"] == 1


def test_a_folder_on_the_path_swapped_for_a_link_out_is_caught(
    linked_root: tuple[Path, Path],
) -> None:
    root, outside = linked_root
    (root / "sub").symlink_to(outside)  # as if `sub` had been a folder when it was scanned
    skip = read_document(SourceFile(root, "sub/private.md"), max_bytes=1000)
    assert isinstance(skip, Skip) and skip.reason == "outside_root"


def test_a_fifo_swapped_in_after_the_scan_does_not_hang_the_sync(
    tmp_path: Path,
    memory_store: Store,
    tiny_encoder: Encoder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = (tmp_path / "root").resolve()
    root.mkdir()
    (root / "a.md").write_text("# A\n\nA note that is swapped for a named pipe.\n")
    (root / "b.md").write_text("# B\n\nA note that stays what it is, and is synced.\n")

    def to_fifo() -> None:
        (root / "a.md").unlink()
        os.mkfifo(root / "a.md")

    monkeypatch.setattr(docsync.worker.read, "os", _SwapOnOpen(root / "a.md", to_fifo))
    reports: list[SyncReport] = []
    sync = threading.Thread(
        target=lambda: reports.append(run_sync(root, memory_store, tiny_encoder)), daemon=True
    )
    sync.start()
    try:
        sync.join(timeout=HANG)
        assert not sync.is_alive(), "the sync hangs on a FIFO"
    finally:
        if sync.is_alive():  # release the blocked open, so that the thread ends
            os.close(os.open(root / "a.md", os.O_WRONLY | os.O_NONBLOCK))
    assert reports[0].files_skipped["not_a_file"] == 1
    assert {p.payload["path"] for p in memory_store.scroll({})} == {"b.md"}
