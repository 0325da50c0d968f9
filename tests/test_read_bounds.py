"""What one file may cost and reach (issue 25): the reader's memory is capped, so a
decompression bomb is skipped as `too_large`; a file is opened once and checked through its
descriptor, so a symlink flipped or a FIFO swapped in after the scan's check is never read
and never hangs the sync."""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

import pytest

from tests.test_formats import make_docx
from worker.formats import Unreadable
from worker.formats.isolated import ReaderProcess
from worker.read import Document, read_document
from worker.report import Skip
from worker.scan import SourceFile

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
            assert reader.extract(kind, raw, timeout=60, memory_mb=TEST_MEMORY_MB).text
        with pytest.raises(Unreadable) as caught:
            reader.extract("pdf", bomb_pdf(300), timeout=60, memory_mb=TEST_MEMORY_MB)
        assert caught.value.reason == "too_large"
        for kind, raw in normal:
            assert reader.extract(kind, raw, timeout=60, memory_mb=TEST_MEMORY_MB).text
    finally:
        reader.close()
