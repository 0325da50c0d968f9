"""A PDF's structure on real PDFs no one here wrote (tests/documents/SOURCES.md): headings
from the outline or the fonts, running headers, footers and page numbers gone, hyphenated
words joined, printed page labels on hits, and citations that stay exact."""

from __future__ import annotations

import re
import shutil
from bisect import bisect_right
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from docsync.plugin.encoder import Encoder
from docsync.plugin.search import Searcher
from docsync.plugin.store import Store
from docsync.worker import sync_options
from docsync.worker.chunk import chunk_text, find_title
from docsync.worker.formats import Extracted
from docsync.worker.formats.isolated import ReaderProcess
from docsync.worker.formats.pdf import read_pdf
from docsync.worker.formats.pdf_lines import Line, outline
from docsync.worker.formats.pdf_structure import join_hyphens
from tests.conftest import HANG, run_sync

DOCUMENTS = Path(__file__).resolve().parent / "documents"


class _Words:
    """A whitespace tokenizer: chunk tests need token boundaries, not a model."""

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in re.finditer(r"\S+", text)]


def extracted(name: str) -> Extracted:
    return read_pdf((DOCUMENTS / name).read_bytes())


def heading_lines(document: Extracted) -> list[str]:
    return [document.text[at:].split("\n", 1)[0] for at in document.headings or ()]


def pdfium_text(name: str) -> str:
    """What PDFium alone gives: the text before any structure is found."""
    pdf = pdfium.PdfDocument(DOCUMENTS / name)
    return "\n".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))


def test_outline_entries_become_headings_where_the_page_prints_them() -> None:
    document = extracted("release-notes.pdf")
    titles = [mark.title for mark in outline(pdfium.PdfDocument(DOCUMENTS / "release-notes.pdf"))]
    lines = heading_lines(document)
    assert len(titles) == 38 and len(lines) == len(titles)
    # each bookmark's printed line, its section number kept: `# 14 Release 0.3.1`
    for title, line in zip(titles, lines, strict=True):
        assert line.startswith("# ") and line.endswith(title), (title, line)
    assert lines[0] == "# 1 Introduction" and "# 14 Release 0.3.1" in lines
    # the heading stands on the page its bookmark points at (0.3.1: physical page 9)
    at = document.headings[lines.index("# 14 Release 0.3.1")]  # type: ignore[index]
    assert bisect_right(document.pages, at) == 9


def test_headings_from_font_sizes_where_there_is_no_outline() -> None:
    document = extracted("dblatex-pages.pdf")
    assert heading_lines(document) == [
        "# 5.5 Customized LaTeX style",
        "## 5.5.1 Reusing an existing LaTeX style",
        "## 5.5.2 Package options",
        "## 5.5.3 Needed packages",
        "## 5.5.4 DocBook interface",
        "## 5.5.5 Debugging your Style",
        "# 5.6 Latex post process script",
        "## 5.6.1 Post latex compilations",
        "## 5.6.2 Post processing with a Python Plugin",
    ]
    # a TeX article: the title, then the numbered sections (the author and date lines,
    # set large one after the other on the title page, stay text)
    assert heading_lines(extracted("manual.pdf")) == [
        "# Asymptote package CAD.asy*",
        "## Contents",
        "## 1 Introduction",
        "## 2 Important rules for using this package",
        "## 3 Usage",
        "## 4 Example",
    ]


def test_sections_follow_the_headings_and_a_comment_line_never_makes_one() -> None:
    document = extracted("dblatex-pages.pdf")
    comment = "# Give a package name and assume its path is already in TEXINPUTS"
    assert comment in document.text.splitlines()  # printed in the PDF's listing
    chunks = chunk_text(
        document.text,
        tokenizer=_Words(),
        max_tokens=120,
        breaks=document.pages,
        headings=document.headings,
    )
    sections = {chunk.section for chunk in chunks}
    assert "5.5 Customized LaTeX style > 5.5.1 Reusing an existing LaTeX style" in sections
    assert "5.6 Latex post process script > 5.6.2 Post processing with a Python Plugin" in sections
    assert not [s for s in sections if "Give a package" in s or "texpost" in s or "Let’s" in s]
    with_comment = next(c for c in chunks if comment in c.text)
    assert with_comment.section == "5.5 Customized LaTeX style"
    # the same text read with Markdown's rules would have made sections of the comments
    markdown = {c.section for c in chunk_text(document.text, tokenizer=_Words(), max_tokens=120)}
    assert any("Give a package" in s for s in markdown)
    assert find_title(document.text, "stem", document.headings) == "5.5 Customized LaTeX style"
    assert find_title("# comment\ntext", "stem", ()) == "stem"


def test_running_headers_footers_and_page_numbers_are_removed() -> None:
    # `Release Notes for dblatex 5 / 32` heads 35 of the 36 pages; what stays is the title
    # page's title and the line of the revision table that names the document.
    raw = pdfium_text("release-notes.pdf")
    document = extracted("release-notes.pdf")
    assert raw.count("Release Notes for dblatex") == 37
    assert document.text.count("Release Notes for dblatex") == 2
    assert not re.search(r"Release Notes for dblatex \d+ / 32", document.text)
    assert "DocBook to LaTeX Publishing" in pdfium_text("dblatex-pages.pdf")
    assert "DocBook to LaTeX Publishing" not in extracted("dblatex-pages.pdf").text
    # manual.pdf: each page ends with its number; a number in a figure (page 6) stays
    manual = extracted("manual.pdf")
    bounds = [*manual.pages, len(manual.text)]
    for page in range(1, 8):
        lines = manual.text[bounds[page - 1] : bounds[page]].split()
        assert lines[-1] != str(page), page
    assert manual.text[bounds[5] : bounds[6]].splitlines()[1] == "2"


def test_words_hyphenated_at_line_ends_are_joined() -> None:
    manual = extracted("manual.pdf")  # PDFium marks `ver-sion:`, `be-tween`, `free-hand`
    assert all(word in manual.text for word in ("version:", "between", "freehand"))
    notes = extracted("release-notes.pdf")
    assert "\ufffe" not in notes.text and "segmentedlist" in notes.text
    # PDFium marks `cross-` at a line end too: the document spells it with its hyphen
    assert "crossreferences" not in notes.text and notes.text.count("cross-references") == 3
    # a plain hyphen between lower-case letters, decided by the document's own words
    pages = [
        [Line("the exam-"), Line("ple shows a command-"), Line("line option")],
        [Line("every command-line tool"), Line("Keep -"), Line("verbose as it is")],
    ]
    join_hyphens(pages)
    assert [line.text for line in pages[0]] == ["the example shows a command-line option"]
    assert [line.text for line in pages[1]] == [
        "every command-line tool",
        "Keep -",
        "verbose as it is",
    ]


def test_text_is_the_same_for_the_same_bytes() -> None:
    for name in ("release-notes.pdf", "dblatex-pages.pdf", "manual.pdf", "small.pdf"):
        first, second = extracted(name), extracted(name)
        assert (first.text, first.headings, first.pages) == (
            second.text,
            second.headings,
            second.pages,
        )


def test_page_labels_are_kept_where_they_differ() -> None:
    notes = extracted("release-notes.pdf")
    assert notes.labels[:6] == ("i", "ii", "iii", "iv", "1", "2") and notes.labels[8] == "5"
    assert extracted("manual.pdf").labels == ()  # no labels: the numbers are the pages


def test_the_reader_process_gives_the_same_structure() -> None:
    reader = ReaderProcess()
    try:
        raw = (DOCUMENTS / "release-notes.pdf").read_bytes()
        assert reader.extract("pdf", raw, timeout=HANG) == read_pdf(raw)
    finally:
        reader.close()


def test_hits_cite_the_printed_label_and_chunks_stay_exact(
    tmp_path: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    shutil.copy(DOCUMENTS / "release-notes.pdf", tmp_path / "notes.pdf")
    run_sync(tmp_path, memory_store, tiny_encoder)
    document = extracted("release-notes.pdf")
    bounds = [*document.pages, len(document.text)]
    points = list(memory_store.scroll({}))
    for point in points:
        payload = point.payload
        assert payload["text"] == document.text[payload["start"] : payload["end"]]
        first, last = payload["page_start"], payload["page_end"]
        assert bounds[first - 1] <= payload["start"] < bounds[first]
        assert bounds[last - 1] < payload["end"] <= bounds[last]
        assert payload["page_label"] == document.labels[first - 1]
        assert payload["page_label_end"] == document.labels[last - 1]
    first_heading = document.headings[0]  # type: ignore[index]
    assert all(p.payload["section"] for p in points if p.payload["start"] >= first_heading)
    assert "14 Release 0.3.1" in {p.payload["section"] for p in points}
    searcher = Searcher(memory_store, tiny_encoder)
    hit = searcher.search("paranoid mode TexLive 2010", limit=1, context=0, mode="keyword")[0]
    assert (hit.page_start, hit.page_label) == (9, "5")
    assert hit.where() == "notes.pdf p. 5 (9)"
    assert "paranoid mode" in hit.text and hit.section.startswith("13 Release 0.3.2")


def test_a_new_payload_version_reads_pdfs_again_and_embeds_only_changed_text(
    tmp_path: Path, memory_store: Store, tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Points synced under the previous payload version are rewritten on the next sync;
    chunks whose embedded text is the same keep their vectors."""
    shutil.copy(DOCUMENTS / "dblatex-pages.pdf", tmp_path / "pages.pdf")
    (tmp_path / "notes.md").write_text("# Notes\n\nNothing changes here.\n", encoding="utf-8")
    with monkeypatch.context() as old:
        old.setattr(sync_options, "PAYLOAD_VERSION", sync_options.PAYLOAD_VERSION - 1)
        first = run_sync(tmp_path, memory_store, tiny_encoder)
    assert first.chunks_embedded > 0
    again = run_sync(tmp_path, memory_store, tiny_encoder)
    assert again.chunks_embedded == 0 and again.points_upserted == first.points_upserted
    chunker = {p.payload["chunker"] for p in memory_store.scroll({})}
    assert chunker == {sync_options.SyncOptions().chunker}


def test_a_pdfs_heading_levels_are_their_depth_not_their_order() -> None:
    words = " ".join(["word"] * 20)  # each section over TINY_TOKENS
    text = f"## 1.1 First\n{words}\n# 2 Chapter\n{words}\n## 2.1 Part\n{words}"
    starts = [m.start() for m in re.finditer("^#", text, re.M)]
    chunks = chunk_text(text, tokenizer=_Words(), max_tokens=40, headings=starts)
    sections = list(dict.fromkeys(c.section for c in chunks))
    assert sections == ["1.1 First", "2 Chapter", "2 Chapter > 2.1 Part"]


def test_show_pages_lists_each_page_with_its_printed_label() -> None:
    import subprocess
    import sys

    command = [sys.executable, "-m", "docsync", "show", "--pages"]
    notes = subprocess.run(
        [*command, str(DOCUMENTS / "release-notes.pdf")], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    starts = extracted("release-notes.pdf").pages
    assert notes[0] == "p. i (1)\t0" and notes[8] == f"p. 5 (9)\t{starts[8]}"
    manual = subprocess.run(
        [*command, str(DOCUMENTS / "manual.pdf")], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert manual[:2] == ["p. 1\t0", f"p. 2\t{extracted('manual.pdf').pages[1]}"]
