"""Slides, spreadsheets, OpenDocument text, e-books and mail: the readers on real files no
one here wrote (tests/documents/SOURCES.md) and generated ones (tests/office_files.py),
their pages and cell ranges in the payload, a question per file, and hostile files."""

from __future__ import annotations

import itertools
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from docsync.plugin.encoder import Encoder
from docsync.plugin.hit import Hit, cell_range
from docsync.plugin.search import Searcher
from docsync.plugin.store import Store
from docsync.plugin.stores.qdrant import QdrantClientStore
from docsync.worker.formats import Unreadable, format_of
from docsync.worker.formats.isolated import extract
from docsync.worker.formats.sheets import read_xlsx
from docsync.worker.formats.sheets_odf import read_ods
from docsync.worker.read import Document, read_document
from docsync.worker.report import Skip
from docsync.worker.scan import SourceFile
from tests import office_files as make
from tests.conftest import HANG, run_sync

DOCUMENTS = Path(__file__).resolve().parent / "documents"
REAL = (
    "example.pptx",
    "yellow-idea.odp",
    "deaths.xlsx",
    "countrystatistics.ods",
    "api-for-odfpy.odt",
)
REAL_EPUB = "live-manual.en.epub"
# A hostile file's bounds decide well within this; the read timeout would say `timeout`.
READ_SECONDS = 30.0


def read(path: Path) -> Document | Skip:
    result = read_document(
        SourceFile(path.parent, path.name), max_bytes=20_000_000, timeout=READ_SECONDS
    )
    assert isinstance(result, Document | Skip)
    return result


def document(path: Path) -> Document:
    result = read(path)
    assert isinstance(result, Document), result
    return result


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("office") / "docs"
    root.mkdir()
    for name in (*REAL, REAL_EPUB):
        shutil.copy(DOCUMENTS / name, root / name)
    make.make_odp(root / "harbour.odp")
    make.make_pptx(root / "plans.pptx")
    make.make_csv(root / "animals.csv")
    make.make_eml(root / "boiler.eml")
    return root


@pytest.fixture(scope="module")
def searcher(folder: Path, tiny_encoder: Encoder) -> Iterator[Searcher]:
    store = QdrantClientStore(QdrantClient(location=":memory:"), "office")
    report = run_sync(folder, store, tiny_encoder)
    assert report.ok and not report.files_skipped, report.to_dict()
    yield Searcher(store, tiny_encoder)
    store.close()


# readers -------------------------------------------------------------------------------------


def test_each_slide_is_a_page_headed_by_its_title_with_its_notes(folder: Path) -> None:
    deck = document(folder / "example.pptx")
    assert deck.content.format == "pptx" and deck.content.title == "document title"
    pages = [*deck.content.pages, len(deck.text)]
    slides = [deck.text[a:b].strip() for a, b in itertools.pairwise(pages)]
    assert [s.splitlines()[0] for s in slides] == ["# Title", "# Hi", "# Slide 3"]
    assert "B | 9.0 | Salut" in slides[0] and "unordered" in slides[1]
    assert deck.content.headings == deck.content.pages  # a title line starts each slide
    plans = document(folder / "plans.pptx")
    second = plans.text[plans.content.pages[1] :]
    assert (
        second.startswith("# Budget") and "Notes: Say that the aurora budget is frozen." in second
    )
    odp = document(folder / "harbour.odp")
    assert len(odp.content.pages) == 3 and odp.content.format == "odp"
    assert "Notes: Mention that the fishermen reported halibut" in odp.text
    assert odp.text[odp.content.pages[2] :].startswith("# Slide 3")  # no title of its own
    real = document(folder / "yellow-idea.odp")  # as LibreOffice writes it
    assert real.content.title == "Yellow Idea" and len(real.content.pages) == 9
    assert real.text.startswith("# YELLOW IDEA TEMPLATE\n\nLorem ipsum dolor sit amet")


def test_sheets_keep_the_header_over_every_block_with_its_cell_range(folder: Path) -> None:
    book = document(folder / "deaths.xlsx")
    labels, pages = book.content.labels, [*book.content.pages, len(book.text)]
    assert labels[0].startswith("arts!A1:F") and labels[-1].endswith(":F19")
    assert {label.partition("!")[0] for label in labels} == {"arts", "other"}
    header = "Name | Profession | Age | Has kids | Date of birth | Date of death"
    for number, label in enumerate(labels):
        block = book.text[pages[number] : pages[number + 1]]
        assert header in block, label  # every block reads on its own
    assert "Zsa Zsa Gábor | actor | 99 | TRUE | 1917-02-06 | 2016-12-18" in book.text
    ods = document(folder / "countrystatistics.ods")
    assert {label.partition("!")[0] for label in ods.content.labels} == {"Population", "HDI"}
    assert "Malta | 0.4 | 316 | 1,261" in ods.text
    animals = document(folder / "animals.csv")
    quokka = next(
        label
        for start, label in zip(animals.content.pages, animals.content.labels, strict=True)
        if "Quokka" in animals.text[start:].split("\n\n")[0]
    )
    first, last = quokka.split(":")
    assert int(first[1:]) <= 43 <= int(last[1:]) and first[0] == "A" and last[0] == "C"
    assert animals.text.count("animal | habitat | count") == len(animals.content.pages)


def test_odt_epub_and_mail_keep_their_headings_and_metadata(folder: Path) -> None:
    odt = document(folder / "api-for-odfpy.odt")
    assert odt.content.title == "Application Programmer's Interface for ODFPY"
    assert odt.content.meta["author"] == "Søren Roug" and len(odt.content.headings or ()) > 500
    assert odt.text[odt.content.headings[0] :].startswith("# Introduction")  # type: ignore[index]
    book = document(folder / REAL_EPUB)
    assert book.content.title == "Live Systems Manual" and book.content.meta["language"] == "en"
    # spine order: the installation chapter before the customization ones, headings kept
    assert 0 < book.text.index("#### 3. Installation") < book.text.index("#### 7. Customization")
    mail = document(folder / "boiler.eml")
    assert mail.content.title == "Boiler inspection moved"
    assert mail.content.meta["from"] == "Grace Hopper <grace@example.org>"
    assert mail.content.meta["date"] == "2026-03-03T10:15:00+01:00"
    assert "moves to Thursday" in mail.text and "Attachments: parts.csv, texshop.pdf" in mail.text
    assert "TeXShop" not in mail.text  # the attachments are documents of their own
    attached = {a.name: a.content for a in mail.content.attachments}
    pdf = attached["texshop.pdf"]  # read by the PDF reader, with its pages
    assert pdf is not None and pdf.format == "pdf" and len(pdf.pages) == 2
    assert "Integrating Asymptote and TeXShop" in pdf.text and pdf.title == "texshop.pdf"


def test_points_hold_exactly_the_extracted_text(folder: Path, searcher: Searcher) -> None:
    store = searcher.store
    for name in sorted(p.name for p in folder.iterdir()):
        read = document(folder / name).content
        inside = [(f"{name}/{a.name}", a.content) for a in read.attachments if a.content]
        for path, extracted in [(name, read), *inside]:
            points = list(store.scroll({"path": path}))
            assert points, path
            for point in points:
                payload = point.payload
                assert payload["text"] == extracted.text[payload["start"] : payload["end"]], path
                assert payload["format"] == format_of(path)


# questions (keyword mode: the tiny model is random, so only BM25 ranks deterministically) ----

QUESTIONS = [
    ("Salut", "example.pptx", "example.pptx slide 1"),
    ("aurora budget frozen", "plans.pptx", "plans.pptx slide 2"),
    ("halibut nesting", "harbour.odp", "harbour.odp slide 2"),
    ("who is credited for the Impress template", "yellow-idea.odp", "yellow-idea.odp slide 9"),
    ("Zsa Zsa Gábor", "deaths.xlsx", "deaths.xlsx arts!A"),
    ("Seychelles", "countrystatistics.ods", "countrystatistics.ods HDI!A"),
    ("Quokka Rottnest", "animals.csv", "animals.csv A"),
    ("OpenDocumentDrawing instantiating", "api-for-odfpy.odt", "api-for-odfpy.odt"),
    ("live-build snapshots source", REAL_EPUB, REAL_EPUB),
    ("gasket order late", "boiler.eml", "boiler.eml"),
    # in its attached PDF, a document of its own under the mail's path
    ("asyTest filenames without spaces", "boiler.eml/texshop.pdf", "boiler.eml/texshop.pdf p"),
]


@pytest.mark.parametrize(("question", "path", "where"), QUESTIONS)
def test_a_question_only_one_file_answers_finds_it_in_the_top_3(
    searcher: Searcher, question: str, path: str, where: str
) -> None:
    hits = searcher.search(question, limit=3, mode="keyword", context=0)
    found = [h for h in hits if h.path == path]
    assert found, [(h.path, h.where()) for h in hits]
    assert found[0].where().startswith(where), found[0].where()


def test_the_cell_range_and_the_sheet_come_with_the_hit(searcher: Searcher) -> None:
    hit = searcher.search("Zsa Zsa Gábor", limit=1, mode="keyword", context=0)[0]
    assert hit.section.endswith("arts") and "Name | Profession" in hit.text
    assert hit.page_label is not None and hit.page_label.startswith("arts!A")
    mail = searcher.search(
        "gasket", limit=1, filters={"meta.from": "Grace Hopper <grace@example.org>"}
    )
    assert [h.path for h in mail] == ["boiler.eml"]
    attached = searcher.search("asyTest filenames", limit=1, mode="keyword", context=0)[0]
    assert attached.path == "boiler.eml/texshop.pdf" and attached.format == "pdf"


def test_slides_and_cell_ranges_are_cited_as_such() -> None:
    hit = Hit(0.0, "", "deck.pptx", 0, 1, format="pptx", page_start=7, page_end=7)
    assert hit.where() == "deck.pptx slide 7"
    two = Hit(0.0, "", "deck.odp", 0, 1, format="odp", page_start=7, page_end=8)
    assert two.where() == "deck.odp slides 7-8"
    sheet = Hit(
        0.0, "", "b.xlsx", 0, 1, format="xlsx", page_start=1, page_end=2,
        page_label="Sales!A1:D30", page_label_end="Sales!A31:D60",
    )  # fmt: skip
    assert sheet.where() == "b.xlsx Sales!A1:D60"
    assert cell_range("A!A1:B2", "B!A1:C9") == "A!A1:B2 to B!A1:C9"


# hostile files -------------------------------------------------------------------------------

HOSTILE = {
    "bomb.pptx": (make.zip_bomb, "too_large"),
    "bomb.xlsx": (make.zip_bomb, "too_large"),
    "bomb.odt": (make.zip_bomb, "too_large"),
    "bomb.epub": (make.zip_bomb, "too_large"),
    "slides.pptx": (make.many_slides, "too_large"),
    "slides.odp": (make.many_odp_slides, "too_large"),
    "cells.xlsx": (lambda: make.big_xlsx(10_000, 100, declared=True), "too_large"),
    "cells.ods": (make.million_cells_ods, "too_large"),
    "locked.pptx": (make.ooxml_encrypted, "encrypted"),
    "locked.xlsx": (make.ooxml_encrypted, "encrypted"),
    "locked.odt": (lambda: make.odf(make.ODT_MIME, "", encrypted=True), "encrypted"),
    "locked.epub": (make.encrypted_epub, "encrypted"),
    "locked.eml": (make.encrypted_eml, "encrypted"),
    "empty.csv": (lambda: b";;;\n;;;\n", "no_text"),
    "blank.odp": (lambda: make.odf(make.ODP_MIME, "<office:presentation/>"), "no_text"),
}
TRUNCATED = (*REAL, REAL_EPUB)


def test_hostile_files_are_skipped_with_their_reason_and_the_rest_syncs(
    tmp_path: Path, memory_store: Store, tiny_encoder: Encoder, caplog: pytest.LogCaptureFixture
) -> None:
    """Each is decided by a bound or a check, within the read timeout (never `timeout`)."""
    root = tmp_path / "docs"
    root.mkdir()
    for name, (build, _) in HOSTILE.items():
        (root / name).write_bytes(build())
    for name in TRUNCATED:
        raw = (DOCUMENTS / name).read_bytes()
        (root / f"cut-{name}").write_bytes(raw[: len(raw) * 2 // 5])
    make.make_csv(root / "animals.csv")
    with caplog.at_level(logging.WARNING, logger="docsync.sync"):
        report = run_sync(root, memory_store, tiny_encoder, read_timeout=READ_SECONDS)
    reasons = {
        Path(str(r.args[0])).name: r.args[1]  # type: ignore[index]
        for r in caplog.records
        if r.msg == "skipped %s: %s (%s)"
    }
    reasons["animals.csv"] = "read"
    assert reasons == {
        **{name: reason for name, (_, reason) in HOSTILE.items()},
        **{f"cut-{name}": "corrupt" for name in TRUNCATED},
        "animals.csv": "read",
    }
    assert report.ok and sum(report.files_skipped.values()) == len(reasons) - 1
    assert {p.payload["path"] for p in memory_store.scroll({})} == {"animals.csv"}


def test_a_sheet_without_a_declared_size_stops_at_the_cell_bound() -> None:
    raw = make.big_xlsx(300, 10, declared=False)
    with pytest.raises(Unreadable, match="more than 2,000 cells") as caught:
        read_xlsx(raw, max_cells=2_000)
    assert caught.value.reason == "too_large"
    assert read_xlsx(raw, max_cells=3_000).labels[-1].endswith(":J300")
    with pytest.raises(Unreadable, match="more than 2,000 cells"):
        read_ods(make.million_cells_ods(), max_cells=2_000)


def test_every_new_format_runs_in_the_reader_child() -> None:
    with pytest.raises(Unreadable) as caught:
        extract("odt", b"not a zip")
    assert caught.value.reason == "corrupt"


def test_show_pages_lists_slides_and_cell_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from docsync.worker.cli import app

    monkeypatch.delenv("DOCSYNC_INCLUDE", raising=False)
    runner = CliRunner()
    deck = runner.invoke(app, ["show", "--pages", str(DOCUMENTS / "example.pptx")])
    assert deck.output.splitlines() == ["slide 1\t0", "slide 2\t186", "slide 3\t271"]
    book = runner.invoke(app, ["show", "--pages", str(DOCUMENTS / "deaths.xlsx")])
    assert book.output.splitlines()[0] == "arts!A1:F9 (1)\t0"


def test_a_reader_past_its_time_limit_is_a_timeout_and_the_next_file_reads() -> None:
    from docsync.worker.formats.isolated import ReaderProcess

    reader = ReaderProcess()
    try:
        with pytest.raises(Unreadable) as caught:
            reader.extract("ods", make.million_cells_ods(), timeout=0.001)  # fixed: it fires
        assert caught.value.reason == "timeout"
        deck = reader.extract("pptx", (DOCUMENTS / "example.pptx").read_bytes(), timeout=HANG)
        assert len(deck.pages) == 3
    finally:
        reader.close()


def test_questions_in_words_find_their_slide_sheet_and_mail_with_the_real_model(
    tmp_path: Path, memory_store: Store, minilm_encoder: Encoder
) -> None:
    """The default (hybrid) search with MiniLM over the small files (the big manuals are left to the
    keyword test above): each question's file in the top 3, at its slide or cell range."""
    root = tmp_path / "docs"
    root.mkdir()
    for name in ("example.pptx", "deaths.xlsx", "countrystatistics.ods"):
        shutil.copy(DOCUMENTS / name, root / name)
    make.make_odp(root / "harbour.odp")
    make.make_pptx(root / "plans.pptx")
    make.make_csv(root / "animals.csv")
    make.make_eml(root / "boiler.eml")
    run_sync(root, memory_store, minilm_encoder)
    searcher = Searcher(memory_store, minilm_encoder)
    for question, where in (
        ("Which budget is frozen?", "plans.pptx slide 2"),
        ("What did the fishermen report near the cracks?", "harbour.odp slide 2"),
        ("When did Zsa Zsa Gábor die?", "deaths.xlsx arts!A"),
        ("What is the human development index of Seychelles?", "countrystatistics.ods HDI!A"),
        ("How many quokkas live on Rottnest Island?", "animals.csv A"),
        ("When is the boiler inspection?", "boiler.eml"),
    ):
        # context 0: the matched chunks alone (grown, neighbours that both match merge into
        # one passage across slides: `plans.pptx slides 1-2`)
        hits = searcher.search(question, limit=3, context=0)
        assert any(h.where().startswith(where) for h in hits), (question, [h.where() for h in hits])


def test_odt_leaves_out_comments_deleted_text_and_the_table_of_contents() -> None:
    from docsync.worker.formats.odf import read_odt

    body = (
        "<office:text><text:tracked-changes><text:changed-region><text:deletion>"
        "<text:p>struck sentence</text:p></text:deletion></text:changed-region>"
        "</text:tracked-changes><text:table-of-content><text:index-body><text:p>Pumps 1"
        "</text:p></text:index-body></text:table-of-content>"
        '<text:h text:outline-level="2">Pumps</text:h><text:p>Prime the pump<office:annotation>'
        '<text:p>reviewer note</text:p></office:annotation> before use.<text:s text:c="2"/>'
        "Twice.</text:p><text:list><text:list-item><text:p>valve</text:p></text:list-item>"
        "<text:list-item><text:p># seal</text:p></text:list-item></text:list></office:text>"
    )
    extracted = read_odt(make.odf(make.ODT_MIME, body))
    assert extracted.text == "## Pumps\n\nPrime the pump before use.  Twice.\n\n- valve\n- # seal"
    assert extracted.headings == (0,)  # `# seal` is a list item's text, not a heading
