"""HTML manuals read whole: every heading of a page's main content is a Markdown heading of the
extracted text, every table cell and `pre` is in it (code fenced), menus are not, and only
real headings make sections. On real pages from Debian's sqlite3-doc and python3.11-doc
(tests/documents/SOURCES.md); over the whole manuals too where they are installed."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from docsync.plugin.encoder import Encoder
from docsync.plugin.store import Store
from docsync.worker.chunk import chunk_text
from docsync.worker.formats import Unreadable
from docsync.worker.formats.html import read_html
from tests.conftest import run_sync
from tests.html_coverage import Coverage, coverage

DOCUMENTS = Path(__file__).resolve().parent / "documents"
# page: (headings, cells, pre) of its main content, all of which must be kept
PAGES = {
    "sqlite-wal.html": (16, 0, 2),
    "sqlite-corefunc.html": (2, 0, 2),
    "sqlite-queryplanner.html": (19, 22, 22),  # its code in table cells
    "python-string.html": (8, 62, 17),
    "library.html": (4, 0, 4),
}
# Where whole manuals may be: DOCSYNC_HTML_MANUALS (folders, separated by ":"), else the
# folders Debian's sqlite3-doc and python3.x-doc install.
MANUALS = [
    Path(p)
    for p in os.environ.get(
        "DOCSYNC_HTML_MANUALS", "/usr/share/doc/sqlite3:/usr/share/doc/python3.11/html"
    ).split(":")
    if p
]


class _Words:
    def token_spans(self, text: str) -> list[tuple[int, int]]:
        import re

        return [m.span() for m in re.finditer(r"\S+", text)]


def text_of(name: str) -> str:
    return read_html((DOCUMENTS / name).read_bytes()).text


@pytest.mark.parametrize("name", sorted(PAGES))
def test_every_heading_cell_and_code_block_of_a_real_page_is_kept(name: str) -> None:
    raw = (DOCUMENTS / name).read_bytes()
    found = coverage(raw, read_html(raw).text, name)
    assert (found.headings, found.cells, found.pres) == PAGES[name]
    assert found.missing == []


def test_sqlite_wal_headings_are_sections() -> None:
    text = text_of("sqlite-wal.html")
    chunks = chunk_text(text, tokenizer=_Words(), max_tokens=200)
    sections = {c.section for c in chunks}
    assert "2. How WAL Works > 2.1. Checkpointing" in sections
    assert any(c.text.startswith("## 3.2. Application-Initiated Checkpoints") for c in chunks)
    assert "```\nPRAGMA journal_mode=WAL;\n```" in text


def test_menus_and_contents_are_not_the_page_text() -> None:
    text = text_of("sqlite-wal.html")
    assert "Choose any three" not in text  # the tagline in the page's `nosearch` header
    assert "Table Of Contents" not in text
    assert text.startswith("# 1. Overview\n\nThe default method")
    python = text_of("python-string.html")
    assert "Navigation" not in python and "Previous topic" not in python  # the sidebar
    assert python.startswith("# `string` — Common string operations")


def test_a_table_of_functions_and_definitions_are_rows() -> None:
    corefunc = text_of("sqlite-corefunc.html")
    assert (
        "random(): The random() function returns a pseudo-random integer between "
        "-9223372036854775808 and +9223372036854775807." in corefunc
    )
    string = text_of("python-string.html")
    assert "\nOption | Meaning\n`'<'` | Forces the field to be left-aligned" in string
    assert "\nstring.digits: The string `'0123456789'`.\n" in string


def test_a_saved_web_page_loses_its_furniture_but_keeps_hidden_code_tabs() -> None:
    page = b"""<html><body>
    <div id="header"><a href="/">Home</a> <a href="/blog">Blog</a></div>
    <nav><ul><li>Docs</li><li>Pricing</li></ul></nav>
    <div class="cookie-banner">We use cookies.</div>
    <div class="content"><h1>Install</h1><p>Run the installer.</p>
    <div class="tab" hidden><pre>brew install thing</pre></div>
    <div style="display: none">Loading...</div>
    <aside><h3>Related posts</h3><p>Ten tips</p></aside></div>
    <div class="footer">Copyright 2024</div></body></html>"""
    text = read_html(page).text
    assert text == "# Install\n\nRun the installer.\n\n```\nbrew install thing\n```"


def test_code_in_a_page_never_makes_a_section() -> None:
    page = b"""<html><body><main><h1>IRC bouncer</h1>
    <p>Add this to your crontab:</p>
    <pre># Restart the IRC proxy after each reboot
@reboot /usr/bin/znc
~~~
# not a heading either
</pre>
    <p>Then check it:<br># a line that looks like a heading<br>-----</p>
    <h2>Logs</h2><p>They are in <code>~/.znc</code>.</p>
    <table><tr><td># cell</td><td>value</td></tr></table>
    </main></body></html>"""
    text = read_html(page).text
    sections = {c.section for c in chunk_text(text, tokenizer=_Words(), max_tokens=8)}
    assert sections == {"IRC bouncer", "IRC bouncer > Logs"}
    assert "    # Restart the IRC proxy after each reboot" in text  # indented: it holds ~~~
    assert "\\# a line that looks like a heading\n\\-----" in text


@pytest.mark.parametrize("page", [b"", b"  \n", b"<!-- only a comment -->", b"<html><nav>x</nav>"])
def test_a_page_with_no_content_is_no_text(page: bytes) -> None:
    with pytest.raises(Unreadable) as caught:
        read_html(page)
    assert caught.value.reason == "no_text"


def test_fragments_xhtml_and_declared_encodings_are_read() -> None:
    assert read_html(b"<p>Hello <b>world</b></p>").text == "Hello world"
    xhtml = '<?xml version="1.0" encoding="utf-8"?><html><body><h1>X</h1><p>\u00e9</p></body>'
    assert read_html(xhtml.encode()).text == "# X\n\n\u00e9"
    latin = "<html><head><meta charset='latin-1'></head><body><p>caf\u00e9</p></body></html>"
    assert read_html(latin.encode("latin-1")).text == "caf\u00e9"


def test_a_heading_left_open_ends_where_its_text_does() -> None:
    page = b"<html><body><h2>2.0 Agreement<h2><h3>2.1 Duties</h3><p>Text.</p></body></html>"
    assert read_html(page).text == "## 2.0 Agreement\n\n### 2.1 Duties\n\nText."


def test_html_read_before_gets_the_new_text_reembedding_only_changed_chunks(
    tmp_path: Path, memory_store: Store, tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from docsync.worker import read, sync_options

    root = tmp_path / "docs"
    root.mkdir()
    for name in ("sqlite-wal.html", "python-string.html"):
        shutil.copy(DOCUMENTS / name, root / name)
    real = read.extract_isolated

    def without_headings(kind: str, raw: bytes, **options: Any) -> Any:
        """What the reader gave before: SQLite's headings lost."""
        new = real(kind, raw, **options)
        lines = new.text.split("\n")
        return dataclasses.replace(new, text="\n".join(x for x in lines if x[:1] != "#"))

    monkeypatch.setattr(read, "extract_isolated", without_headings)
    monkeypatch.setattr(sync_options, "PAYLOAD_VERSION", sync_options.PAYLOAD_VERSION - 1)
    run_sync(root, memory_store, tiny_encoder)
    before = {p.payload["text"] for p in memory_store.scroll({})}
    monkeypatch.undo()
    report = run_sync(root, memory_store, tiny_encoder)
    after = {p.payload["text"] for p in memory_store.scroll({})}
    assert report.files_changed == 2
    assert report.chunks_embedded == len(after - before) < len(after)
    assert any(text.startswith("# 2. How WAL Works") for text in after)
    assert run_sync(root, memory_store, tiny_encoder).files_changed == 0


@pytest.mark.parametrize("manual", MANUALS, ids=str)
def test_every_heading_cell_and_code_block_of_a_whole_manual_is_kept(manual: Path) -> None:
    pages = sorted(manual.rglob("*.html")) if manual.is_dir() else []
    if not pages:
        pytest.skip(f"{manual} is not installed (apt-get install sqlite3-doc python3.11-doc)")
    total = Coverage()
    for page in pages:
        raw = page.read_bytes()
        total.add(coverage(raw, read_html(raw).text, str(page.relative_to(manual))))
    assert total.missing == [], str(total)
    assert total.headings > 0  # the page layout was understood at all
