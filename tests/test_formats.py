"""PDF, HTML and Word documents: the readers on real files no one here wrote
(tests/documents/SOURCES.md), what goes wrong with them, pages, metadata and filters."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from docsync.plugin.encoder import Encoder
from docsync.plugin.search import Searcher
from docsync.plugin.store import Store
from docsync.worker.chunk import TINY_TOKENS, chunk_text
from docsync.worker.formats import Unreadable, format_of
from docsync.worker.formats.isolated import ReaderProcess
from docsync.worker.formats.text import front_matter, read_text
from docsync.worker.read import Document, read_document
from docsync.worker.report import Skip
from docsync.worker.scan import SourceFile
from tests.conftest import HANG, run_sync

DOCUMENTS = Path(__file__).resolve().parent / "documents"
# Sentences that appear on one page of manual.pdf only (as PDFium extracts them).
ON_PAGE = {
    2: "parameter has to be within the range [0; 3].",
    4: "group H seems to be obsolete",
    5: "dblRelDistortion is the amount of distortion.",
}


def read(path: Path, max_bytes: int = 10_000_000) -> Document | Skip:
    result = read_document(SourceFile(path.parent, path.name), max_bytes=max_bytes, timeout=HANG)
    assert isinstance(result, Document | Skip)
    return result


def make_docx(path: Path) -> Path:
    """A Word file as people write them: a title, Heading styles, a list, a table."""
    import docx

    document = docx.Document()
    document.core_properties.title = "Kettle Manual"
    document.core_properties.author = "Ada Lovelace"
    document.core_properties.keywords = "kitchen, appliance"
    document.add_heading("Kettle Manual", 0)
    document.add_paragraph("This manual covers the model K-200 electric kettle.")
    document.add_heading("Descaling", 1)
    document.add_paragraph(
        "Fill the kettle with equal parts white vinegar and water, let it stand for one "
        "hour, then rinse it three times before you boil fresh water."
    )
    document.add_heading("Safety", 1)
    document.add_paragraph("Never immerse the base in water.", style="List Bullet")
    document.add_paragraph("Unplug the kettle before you clean it.", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for row, (name, value) in enumerate((("Power", "2200 W"), ("Capacity", "1.7 l"))):
        table.cell(row, 0).text, table.cell(row, 1).text = name, value
    document.save(str(path))
    return path


# readers ------------------------------------------------------------------------------------


def test_pdf_is_read_page_by_page_with_each_page_start() -> None:
    document = read(DOCUMENTS / "manual.pdf")
    assert isinstance(document, Document) and document.content.format == "pdf"
    assert len(document.content.pages) == 7 and document.content.pages[0] == 0
    pages = [*document.content.pages, len(document.text)]
    for page, sentence in ON_PAGE.items():
        text = document.text[pages[page - 1] : pages[page]]
        assert sentence in " ".join(text.split()), (page, sentence)
    assert "\r" not in document.text and "\ufffe" not in document.text
    again = read(DOCUMENTS / "manual.pdf")
    assert isinstance(again, Document) and again.text == document.text  # deterministic


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("scanned.pdf", "no_text"),
        ("encrypted.pdf", "encrypted"),
        ("truncated.pdf", "corrupt"),
        ("empty.pdf", "empty"),
    ],
)
def test_broken_pdfs_are_skipped_with_their_reason(name: str, reason: str) -> None:
    skip = read(DOCUMENTS / name)
    assert isinstance(skip, Skip) and skip.reason == reason and not skip.is_failure
    if reason == "no_text":
        assert "OCR" in skip.detail


def test_html_keeps_headings_as_markdown_and_identifiers_as_written() -> None:
    document = read(DOCUMENTS / "library.html")
    assert isinstance(document, Document) and document.content.format == "html"
    headings = [line for line in document.text.splitlines() if line.startswith("#")]
    assert headings[:2] == ["# `bisect` — Array bisection algorithm", "## Performance Notes"]
    assert "bisect.bisect_left(" in document.text and "\\_" not in document.text
    assert "¶" not in document.text
    assert "Navigation" not in headings  # the sidebar is not the page's text
    assert document.content.title == "bisect — Array bisection algorithm"


def test_docx_headings_lists_tables_and_properties(tmp_path: Path) -> None:
    document = read(make_docx(tmp_path / "kettle.docx"))
    assert isinstance(document, Document) and document.content.format == "docx"
    assert "# Kettle Manual" in document.text and "\n# Descaling\n" in document.text
    assert "- Never immerse the base in water." in document.text
    assert "Power | 2200 W\nCapacity | 1.7 l" in document.text
    assert document.content.title == "Kettle Manual"
    assert document.content.tags == ("kitchen", "appliance")
    assert document.content.meta["author"] == "Ada Lovelace"
    sections = chunk_text(document.text, tokenizer=_Words(), max_tokens=20)
    assert any(c.text.startswith("# Safety") for c in sections)  # a heading is a cut


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"PK\x03\x04" + b"junk" * 200, "corrupt"),  # a ZIP of junk
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 64, "corrupt"),  # a legacy .doc
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + "EncryptedPackage".encode("utf-16-le"),
            "encrypted",
        ),
    ],
)
def test_broken_word_files_are_skipped_with_their_reason(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    (tmp_path / "x.docx").write_bytes(data)
    skip = read(tmp_path / "x.docx")
    assert isinstance(skip, Skip) and skip.reason == reason and not skip.is_failure


def test_five_megabytes_of_nested_tags_are_skipped(tmp_path: Path) -> None:
    depth = 5_000_000 // 22
    data = b"<html><body>" + b"<div><span>" * depth + b"x" + b"</span></div>" * depth
    (tmp_path / "deep.html").write_bytes(data)
    skip = read(tmp_path / "deep.html")
    assert isinstance(skip, Skip) and skip.reason == "no_text"


def test_a_reader_that_overruns_is_killed_and_the_next_file_is_read() -> None:
    reader = ReaderProcess()
    raw = (DOCUMENTS / "manual.pdf").read_bytes()
    try:
        # A millisecond: the child cannot even start in that time.
        with pytest.raises(Unreadable) as caught:
            reader.extract("pdf", raw, timeout=0.001)  # fixed: it must fire
        assert caught.value.reason == "timeout"
        extracted = reader.extract("pdf", raw, timeout=HANG)
        assert len(extracted.pages) == 7
    finally:
        reader.close()


def test_format_is_chosen_by_suffix() -> None:
    assert [format_of(n) for n in ("a.PDF", "b.htm", "c.docx", "d.md", "e.rst", "f")] == [
        "pdf",
        "html",
        "docx",
        "markdown",
        "rst",
        "text",
    ]


# front matter ---------------------------------------------------------------------------------


def test_front_matter_gives_title_tags_and_fields_and_is_not_chunked() -> None:
    text = (
        "---\ntitle: Garden notes\ntags: [garden, how to]\nauthor: Bo\nyear: 2024\n"
        "draft: false\nnested: {a: 1}\n---\n\n# Tomatoes\n\nWater them deeply.\n"
    )
    extracted = read_text(text.encode(), "markdown")
    assert extracted.title == "Garden notes"
    assert extracted.tags == ("garden", "how to")
    assert dict(extracted.meta) == {"author": "Bo", "year": "2024", "draft": "false"}
    assert text[extracted.body_start :].lstrip().startswith("# Tomatoes")
    chunks = chunk_text(text, tokenizer=_Words(), max_tokens=50, body_start=extracted.body_start)
    assert chunks[0].text.startswith("# Tomatoes")
    assert all(c.text == text[c.start : c.end] for c in chunks)


@pytest.mark.parametrize(
    "text",
    [
        "---\n: : not yaml [\n---\n\ntext\n",  # broken YAML
        "---\n- a list\n---\n\ntext\n",  # not a mapping
        "--- \nno end\n\ntext\n",  # never closed
        "text\n---\ntitle: late\n---\n",  # not at the start
    ],
)
def test_front_matter_that_is_not_metadata_stays_text(text: str) -> None:
    assert front_matter(text) == (0, ("", (), {}))


# pages in chunks and hits ----------------------------------------------------------------------


def test_chunks_do_not_span_pages_and_carry_their_page(
    tmp_path: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    shutil.copy(DOCUMENTS / "manual.pdf", tmp_path / "manual.pdf")
    run_sync(tmp_path, memory_store, tiny_encoder)
    document = read(tmp_path / "manual.pdf")
    assert isinstance(document, Document)
    bounds = [*document.content.pages, len(document.text)]
    points = list(memory_store.scroll({}))
    assert points and all(p.payload["format"] == "pdf" for p in points)
    for point in points:
        payload = point.payload
        first, last = payload["page_start"], payload["page_end"]
        assert bounds[first - 1] <= payload["start"] < bounds[first]
        assert bounds[last - 1] < payload["end"] <= bounds[last]
        assert payload["text"] == document.text[payload["start"] : payload["end"]]
    # Only a page's end under TINY_TOKENS joins the next page: the last line of a listing, or
    # a heading with its first line (a heading sticks to the text after it).
    for point in points:
        first, start = point.payload["page_start"], point.payload["start"]
        if first != point.payload["page_end"]:
            assert len(document.text[start : bounds[first]].split()) < TINY_TOKENS


def _compose(pages: list[tuple[Path, int]], path: Path) -> Path:
    """A PDF made of pages of real PDFs (PDFium copies them as they are)."""
    out = pdfium.PdfDocument.new()
    for source, index in pages:
        out.import_pages(pdfium.PdfDocument(source), [index])
    buffer = io.BytesIO()
    out.save(buffer)
    path.write_bytes(buffer.getvalue())
    return path


def test_an_unchanged_pdf_embeds_nothing_and_a_new_page_only_its_chunks(
    tmp_path: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    manual, small = DOCUMENTS / "manual.pdf", DOCUMENTS / "small.pdf"
    root = tmp_path / "docs"
    root.mkdir()
    shutil.copy(manual, root / "manual.pdf")
    shutil.copy(small, root / "small.pdf")
    first = run_sync(root, memory_store, tiny_encoder)
    assert first.chunks_embedded > 0
    again = run_sync(root, memory_store, tiny_encoder)
    assert again.chunks_embedded == 0 and again.points_upserted == 0
    # Page 3 replaced by another document's page: the rest of the text is unchanged.
    pages = [(manual, i) for i in range(7)]
    pages[2] = (small, 1)
    _compose(pages, root / "manual.pdf")
    edited = run_sync(root, memory_store, tiny_encoder)
    on_page_3 = [
        p for p in memory_store.scroll({"path": "manual.pdf"}) if p.payload["page_start"] == 3
    ]
    assert edited.files_changed == 1
    assert 0 < edited.chunks_embedded <= len(on_page_3)


# filters -------------------------------------------------------------------------------------


@pytest.fixture
def mixed(tmp_path: Path, memory_store: Store, tiny_encoder: Encoder) -> Searcher:
    root = tmp_path / "docs"
    root.mkdir()
    shutil.copy(DOCUMENTS / "manual.pdf", root / "manual.pdf")
    shutil.copy(DOCUMENTS / "library.html", root / "library.html")
    make_docx(root / "kettle.docx")
    (root / "garden.md").write_text(
        "---\ntitle: Garden\ntags: [garden, outdoors]\n---\n\n# Tomatoes\n\n"
        "Water the tomatoes deeply twice a week, early in the morning.\n",
        encoding="utf-8",
    )
    (root / "notes.txt").write_text("Water the kettle plants and the pens.\n", encoding="utf-8")
    run_sync(root, memory_store, tiny_encoder)
    return Searcher(memory_store, tiny_encoder)


def test_filters_keep_only_matching_documents(mixed: Searcher) -> None:
    def paths(**filters: object) -> set[str]:
        hits = mixed.search("water", limit=50, filters=filters)  # type: ignore[arg-type]
        return {h.path for h in hits}

    assert paths(format="pdf") == {"manual.pdf"}
    assert paths(tags="garden") == {"garden.md"}
    assert paths(tags=["outdoors", "kitchen"]) == {"garden.md", "kettle.docx"}
    assert paths(author="Ada Lovelace") == {"kettle.docx"}
    assert paths(path="*.docx") == {"kettle.docx"}
    assert paths(path="*.odt") == set()
    assert paths(format="markdown", tags="kitchen") == set()
    # keyword mode: the tiny model is random, so only BM25 ranks deterministically here
    hit = mixed.search("distortion", limit=1, filters={"format": "pdf"}, context=0, mode="keyword")[
        0
    ]
    assert hit.format == "pdf" and hit.page_start == hit.page_end == 5


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"colour": "red"}, "unknown filter key 'colour'"),
        ({"format": "xls"}, "format must be"),
        ({"path": "/etc/*"}, "absolute"),
        ({"tags": ""}, "non-empty"),
        ({"meta.a b": "x"}, "unknown filter key"),
    ],
)
def test_bad_filters_are_refused(mixed: Searcher, filters: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mixed.search("water", filters=filters)


class _Words:
    """A whitespace tokenizer: chunk tests need token boundaries, not a model."""

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        import re

        return [m.span() for m in re.finditer(r"\S+", text)]


def test_questions_find_their_page_section_and_paragraph(
    tmp_path: Path, memory_store: Store, minilm_encoder: Encoder
) -> None:
    """The real model over the real documents: a passage on page N of the PDF, a section of
    the web page and one of the Word file are each the top hit, with the right page."""
    root = tmp_path / "docs"
    root.mkdir()
    for name in ("manual.pdf", "small.pdf", "library.html"):
        shutil.copy(DOCUMENTS / name, root / name)
    make_docx(root / "kettle.docx")
    run_sync(root, memory_store, minilm_encoder)
    searcher = Searcher(memory_store, minilm_encoder)
    hit = searcher.search("What is dblRelDistortion?", limit=1)[0]
    assert (hit.path, hit.format, hit.page_start) == ("manual.pdf", "pdf", 5)
    assert ON_PAGE[5] in " ".join(hit.text.split())
    hit = searcher.search("Is bisection fast for searching ranges of values?", limit=1)[0]
    assert (hit.path, hit.format, hit.page_start) == ("library.html", "html", None)
    assert "Performance Notes" in hit.section
    hit = searcher.search("How do I remove limescale from the kettle?", limit=1)[0]
    assert (hit.path, hit.format) == ("kettle.docx", "docx")
    assert "vinegar" in hit.text


def test_query_refuses_an_unknown_filter_key_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    docsync = str(Path(sys.executable).with_name("docsync"))
    result = subprocess.run(
        [docsync, "query", "water", "--where", "colour=red", "--qdrant-path", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "docsync: error: unknown filter key 'colour': use format, path, tags, title or "
        "author, or meta.NAME for another field of the documents' front matter or properties"
    ]
