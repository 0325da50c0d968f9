"""A mail's attachments are documents of their own under its path (`inbox/a.eml/report.pdf`):
their own format, pages and title, `container` naming the mail; edited, deleted, moved, kept
and stamped with the mail, exactly as a fresh sync would have them (worker/attachments.py)."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

import docsync.worker.planner
import docsync.worker.read
import docsync.worker.scopes
from docsync.plugin.encoder import Encoder
from docsync.plugin.search import Searcher
from docsync.plugin.store import Store
from docsync.plugin.stored_text import read_stored
from docsync.worker.formats.mail import read_eml, unique_name
from docsync.worker.pipeline import Syncer, SyncOptions
from docsync.worker.web.document import document_window
from tests import office_files as make
from tests.conftest import run_sync
from tests.test_sync import assert_exact, assert_same, fresh_state

DOCUMENTS = Path(__file__).resolve().parent / "documents"
PDF = (DOCUMENTS / "small.pdf").read_bytes()
OTHER_PDF = (DOCUMENTS / "dblatex-pages.pdf").read_bytes()
XLSX = (DOCUMENTS / "deaths.xlsx").read_bytes()
MAIL, REPORT, SHEET = "inbox/a.eml", "inbox/a.eml/report.pdf", "inbox/a.eml/deaths.xlsx"


def write_mail(path: Path, attached: dict[str, bytes], body: str = "See the report.") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(write_mail_bytes(attached, body))
    return path


def write_mail_bytes(attached: dict[str, bytes], body: str = "See the report.") -> bytes:
    mail = EmailMessage()
    mail["Subject"] = "Quarterly report"
    mail["From"] = "Ada <ada@example.org>"
    mail["To"] = "team@example.org"
    mail.set_content(body + "\n")
    for name, data in attached.items():
        mail.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return bytes(mail)


def paths(store: Store) -> dict[str, set[Any]]:
    """Each indexed path, with the formats and containers of its points."""
    found: dict[str, set[Any]] = {}
    for point in store.scroll({}, fields=["path", "format", "container"]):
        payload = point.payload
        found.setdefault(payload["path"], set()).add((payload["format"], payload.get("container")))
    return found


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docsync.worker.read, "SETTLE_NS", 0)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    seen: list[str] = []
    real = docsync.worker.planner.read_document

    def counting(source: Any, **kwargs: Any) -> Any:
        seen.append(source.path)
        return real(source, **kwargs)

    monkeypatch.setattr(docsync.worker.planner, "read_document", counting)
    yield seen


@pytest.fixture
def root(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    write_mail(docs / MAIL, {"report.pdf": PDF, "deaths.xlsx": XLSX})
    (docs / "notes.md").write_text("# Notes\n\nNothing about reports here.\n", encoding="utf-8")
    return docs


def test_a_mail_with_a_pdf_and_an_xlsx_attached_is_three_documents(
    root: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    report = run_sync(root, memory_store, tiny_encoder)
    assert report.ok and not report.files_skipped and report.files_changed == 2
    assert paths(memory_store) == {
        "notes.md": {("markdown", None)},
        MAIL: {("eml", None)},
        REPORT: {("pdf", MAIL)},
        SHEET: {("xlsx", MAIL)},
    }
    sheet = [p.payload for p in memory_store.scroll({"path": SHEET})]
    assert {p["title"] for p in sheet} == {"deaths.xlsx"}
    assert {p["page_label"].partition("!")[0] for p in sheet} == {"arts", "other"}
    assert sheet[0]["path_prefixes"] == ["inbox", MAIL, SHEET]
    mail = read_eml((root / MAIL).read_bytes())
    pdf = next(a.content for a in mail.attachments if a.name == "report.pdf")
    assert pdf is not None and pdf.pages[1] > 0  # its own pages
    stored = read_stored(memory_store, REPORT)  # what MCP `read` and the Read view answer
    assert stored.title == "report.pdf" and stored.text == pdf.text[: stored.end]
    assert "Attachments: report.pdf, deaths.xlsx" in read_stored(memory_store, MAIL).text
    window = document_window(memory_store, SHEET, root=None, start=0, end=10)  # the Read view
    assert window["format"] == "xlsx" and window["window"]["text"].startswith("# arts")
    searcher = Searcher(memory_store, tiny_encoder)
    hits = searcher.search("TeXShop", limit=3, mode="keyword", filters={"format": "pdf"})
    assert {h.path for h in hits} == {REPORT} and hits[0].where().startswith(f"{REPORT} p")
    assert_exact(memory_store, root, tiny_encoder)


def test_editing_the_mail_removes_and_updates_exactly_its_attachments(
    root: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    run_sync(root, memory_store, tiny_encoder)
    pdf_ids = {p.id for p in memory_store.scroll({"path": REPORT}, fields=())}
    write_mail(root / MAIL, {"report.pdf": PDF})  # the sheet removed, the PDF the same
    report = run_sync(root, memory_store, tiny_encoder)
    assert report.files_changed == 1 and SHEET not in paths(memory_store)
    assert {p.id for p in memory_store.scroll({"path": REPORT}, fields=())} == pdf_ids
    assert report.points_deleted >= memory_store.count({"path": MAIL}) and report.ok
    assert_exact(memory_store, root, tiny_encoder)
    write_mail(root / MAIL, {"report.pdf": PDF + b"\n% an edit\n", "deaths.xlsx": XLSX})
    run_sync(root, memory_store, tiny_encoder)  # the same text: the PDF's points stay
    assert {p.id for p in memory_store.scroll({"path": REPORT}, fields=())} == pdf_ids
    write_mail(root / MAIL, {"report.pdf": OTHER_PDF, "deaths.xlsx": XLSX})
    report = run_sync(root, memory_store, tiny_encoder)
    assert paths(memory_store)[REPORT] == {("pdf", MAIL)}
    assert not pdf_ids & {p.id for p in memory_store.scroll({"path": REPORT}, fields=())}
    assert_exact(memory_store, root, tiny_encoder)


def test_deleting_the_mail_deletes_its_attachments(
    root: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    run_sync(root, memory_store, tiny_encoder)
    (root / MAIL).unlink()
    report = run_sync(root, memory_store, tiny_encoder)
    assert set(paths(memory_store)) == {"notes.md"}
    assert report.files_deleted == 1  # the mail, its attachments with it


def test_the_daemons_scoped_syncs_of_a_mail_take_its_attachments_along(
    root: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    """A daemon syncs the path an event names: the mail's scope holds its attachments."""
    syncer = Syncer(memory_store, tiny_encoder, SyncOptions())
    docs = root.resolve()
    syncer.sync_scopes([(docs, "")])
    write_mail(root / MAIL, {"deaths.xlsx": XLSX})
    syncer.sync_scopes([(docs, MAIL)])
    assert_exact(memory_store, root, tiny_encoder)
    (root / MAIL).rename(root / "b.eml")
    report = syncer.sync_scopes([(docs, MAIL), (docs, "b.eml")])
    assert report.chunks_embedded == 0 and "b.eml/deaths.xlsx" in paths(memory_store)
    assert_exact(memory_store, root, tiny_encoder)
    (root / "b.eml").unlink()
    syncer.sync_scopes([(docs, "b.eml")])
    assert set(paths(memory_store)) == {"notes.md"}


def test_a_mail_that_new_rules_would_drop_keeps_its_attachments_while_held_back(
    root: Path, memory_store: Store, tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rules that drop most of a root are held back (scopes.MASS_DELETE_SHARE): a mail they
    would drop keeps its attachments too, so the rules put back find it whole."""
    monkeypatch.setattr(docsync.worker.scopes, "MASS_DELETE_MIN_FILES", 1)
    monkeypatch.setattr(docsync.worker.scopes, "MASS_DELETE_SHARE", 0.1)
    run_sync(root, memory_store, tiny_encoder)
    held = paths(memory_store)
    report = run_sync(root, memory_store, tiny_encoder, include=["*.md"])
    assert report.protected_roots and paths(memory_store) == held
    run_sync(root, memory_store, tiny_encoder)
    assert_exact(memory_store, root, tiny_encoder)


@pytest.mark.parametrize("moved", ["inbox/b.eml", "archive/2026/a.eml"])
def test_a_moved_mail_moves_its_attachments_without_embedding(
    root: Path, memory_store: Store, tiny_encoder: Encoder, moved: str
) -> None:
    run_sync(root, memory_store, tiny_encoder)
    before = memory_store.count()
    (root / moved).parent.mkdir(parents=True, exist_ok=True)
    (root / MAIL).rename(root / moved)
    report = run_sync(root, memory_store, tiny_encoder)
    assert report.chunks_embedded == 0 and report.vectors_reused == before - 1  # not notes.md
    assert report.files_changed == report.files_deleted == 1
    assert paths(memory_store)[f"{moved}/report.pdf"] == {("pdf", moved)}
    assert not any(p.startswith(MAIL) for p in paths(memory_store))
    assert_exact(memory_store, root, tiny_encoder)


def test_an_unchanged_mail_is_not_read_again_and_keeps_its_attachments(
    root: Path, memory_store: Store, tiny_encoder: Encoder, reads: list[str], settled: None
) -> None:
    run_sync(root, memory_store, tiny_encoder)
    held = paths(memory_store)
    reads.clear()
    again = run_sync(root, memory_store, tiny_encoder)
    assert reads == [] and paths(memory_store) == held
    assert (again.files_scanned, again.files_changed, again.files_deleted) == (2, 0, 0)
    assert again.points_upserted == again.points_deleted == 0


def test_a_mail_whose_attachment_was_written_from_another_version_is_read_again(
    root: Path, memory_store: Store, tiny_encoder: Encoder, reads: list[str], settled: None
) -> None:
    """The mail's own points current, an attachment's not (as a store restored from two
    backups could hold): the mail is read again, and the attachment written afresh."""
    run_sync(root, memory_store, tiny_encoder)
    ids = [p.id for p in memory_store.scroll({"path": SHEET}, fields=())]
    memory_store.set_payload(ids, {"file_hash": "0" * 64, "text": "stale"})
    reads.clear()
    report = run_sync(root, memory_store, tiny_encoder)
    assert reads == [MAIL] and report.points_upserted == len(ids)
    assert_exact(memory_store, root, tiny_encoder)


class Crash(BaseException):
    """A `kill -9` between two writes: nothing after it is written."""


def test_a_crash_at_any_write_of_a_moved_and_edited_mail_is_repaired_by_the_next_sync(
    root: Path, memory_store: Store, tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mail moved to another folder, an attachment dropped, one changed, its text edited:
    the sync stopped before each of the store writes it makes, then run again, must leave
    exactly what a fresh sync of the new folder holds."""
    first = (root / MAIL).read_bytes()
    fresh_first = fresh_state(root, tiny_encoder)
    moved = root / "archive" / "a.eml"
    (root / MAIL).unlink()
    write_mail(moved, {"report.pdf": OTHER_PDF}, body="Moved, and the sheet dropped.")
    second = moved.read_bytes()
    fresh_second = fresh_state(root, tiny_encoder)
    writes, limit = 0, -1

    def counted(real: Any) -> Any:
        def write(*args: Any, **kwargs: Any) -> Any:
            nonlocal writes
            writes += 1
            if 0 <= limit < writes:
                raise Crash
            return real(*args, **kwargs)

        return write

    for name in ("upsert", "delete", "set_payload"):
        monkeypatch.setattr(memory_store, name, counted(getattr(memory_store, name)))

    def at(version: bytes | None, other: bytes | None) -> None:
        for path, data in ((root / MAIL, version), (moved, other)):
            path.unlink(missing_ok=True)
            if data is not None:
                path.write_bytes(data)

    at(first, None)
    run_sync(root, memory_store, tiny_encoder)
    at(None, second)
    writes = 0
    run_sync(root, memory_store, tiny_encoder)
    total = writes
    assert total >= 4
    for crash_at in range(total):
        at(first, None)
        limit = -1
        run_sync(root, memory_store, tiny_encoder)
        assert_same(memory_store, fresh_first)
        at(None, second)
        writes, limit = 0, crash_at
        with pytest.raises(Crash):
            run_sync(root, memory_store, tiny_encoder)
        limit = -1
        run_sync(root, memory_store, tiny_encoder)
        assert_same(memory_store, fresh_second)


def test_a_zip_bomb_attached_is_skipped_and_the_rest_of_the_mail_indexed(
    root: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    write_mail(root / MAIL, {"report.pdf": PDF, "bomb.xlsx": make.zip_bomb()})
    report = run_sync(root, memory_store, tiny_encoder)
    assert report.ok and dict(report.files_skipped) == {"too_large": 1}
    assert set(paths(memory_store)) == {"notes.md", MAIL, REPORT}
    assert "bomb.xlsx (not read: too_large)" in read_stored(memory_store, MAIL).text


def test_show_prints_an_attachment_as_docsync_reads_it(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from docsync.worker.cli import app

    monkeypatch.chdir(root)
    monkeypatch.delenv("DOCSYNC_INCLUDE", raising=False)
    runner = CliRunner()
    mail = read_eml((root / MAIL).read_bytes())
    pdf = next(a.content for a in mail.attachments if a.name == "report.pdf")
    assert pdf is not None
    shown = runner.invoke(app, ["show", REPORT])
    assert shown.exit_code == 0 and shown.output == pdf.text + "\n"
    pages = runner.invoke(app, ["show", "--pages", SHEET])
    assert pages.exit_code == 0 and pages.output.startswith("arts!A1:F9 (1)\t0")
    missing = runner.invoke(app, ["show", "inbox/a.eml/nothing.pdf"])
    assert "nor an attachment of a.eml" in missing.output
    # A path as a hit gives it, relative to a root that is not here: said how to name it.
    elsewhere = runner.invoke(app, ["show", "py/howto/sockets.rst"])
    assert "no such file: py/howto/sockets.rst" in elsewhere.output
    assert "relative to its root: give ROOT/PATH" in elsewhere.output


def test_images_attached_are_named_not_read() -> None:
    png = (DOCUMENTS / "macos-workflow.png").read_bytes()
    mail = read_eml(write_mail_bytes({"image001.png": png, "report.pdf": PDF}))
    assert [a.name for a in mail.attachments] == ["report.pdf"]
    assert "Attachments: image001.png, report.pdf" in mail.text


def test_attachment_names_are_safe_and_unique() -> None:
    taken: set[str] = set()
    names = [unique_name(n, taken) for n in ("a/b.pdf", "B.pdf", "b.pdf", "..", "x\x00.txt")]
    assert names == ["a_b.pdf", "B.pdf", "b (2).pdf", "attachment..", "x_.txt"]
