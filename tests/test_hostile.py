"""Regression tests for what a messy real folder did to docsync (issue 11): names that are not
UTF-8, symlink loops, folders that cannot be listed, invisible text, UTF-16 without a BOM,
files no rule includes, and a root given as a symlink. Each failed on the code before it."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from docsync.plugin.encoder import Encoder
from docsync.plugin.store import Store
from docsync.plugin.stores.edge import EdgeStore
from docsync.worker.daemon import Daemon
from docsync.worker.pipeline import Syncer, SyncOptions, check_roots
from docsync.worker.read import read_document
from docsync.worker.scan import Rules, SourceFile, scan_root
from tests.conftest import CORPUS, run_sync, state
from tests.test_daemon import FAST, Silent, poll, start, stop
from tests.test_sync import fresh_state


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A few real documents in two folders (the tests here need no more)."""
    root = tmp_path / "docs"
    for name in ("howto/enum.rst", "howto/ipaddress.rst", "using/mac.rst", "using/editors.rst"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CORPUS / name, root / name)
    return root


LATIN1_NAME = os.fsdecode(b"caf\xe9.md")  # what Python makes of a Latin-1 file name


def write_undecodable(folder: Path) -> None:
    with open(os.fsencode(folder) + b"/caf\xe9.md", "wb") as handle:
        handle.write(b"# Cafe\n\nA note saved by a Latin-1 system.\n")


def deny_listing(monkeypatch: pytest.MonkeyPatch, folder: Path, code: int) -> None:
    """Listing `folder` fails as it does without permission or file descriptors."""
    for name in ("scandir", "listdir"):
        monkeypatch.setattr(os, name, _failing(getattr(os, name), folder, code))


def _failing(real: Any, folder: Path, code: int) -> Any:
    def listing(path: Any = ".") -> Any:
        if Path(os.fsdecode(path)) == folder:
            raise OSError(code, os.strerror(code), str(path))
        return real(path)

    return listing


# names that are not UTF-8 ------------------------------------------------------------------


def test_a_name_that_is_not_utf8_is_skipped_and_the_rest_syncs(
    docs: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    write_undecodable(docs)
    write_undecodable(docs / "howto")
    report = run_sync(docs, memory_store, tiny_encoder)
    assert report.ok
    assert report.files_skipped == {"undecodable_name": 2}
    assert report.files_changed == 4
    assert state(memory_store) == fresh_state(docs, tiny_encoder)


def test_the_skip_names_the_file_printably(tmp_path: Path) -> None:
    write_undecodable(tmp_path)
    scan = scan_root(tmp_path, Rules(["*.md"], []))
    assert [(s.path, s.reason) for s in scan.skipped] == [("caf\\xe9.md", "undecodable_name")]
    assert not scan.skipped[0].is_failure


def test_a_scope_that_is_not_utf8_syncs_nothing_and_does_not_fail(
    docs: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    """The daemon's scopes come from file events, with the same surrogate-escaped names."""
    run_sync(docs, memory_store, tiny_encoder)
    before = state(memory_store)
    write_undecodable(docs)
    syncer = Syncer(memory_store, tiny_encoder, SyncOptions())
    report = syncer.sync_scopes([(docs.resolve(), LATIN1_NAME)])
    assert report.ok and report.files_skipped == {"undecodable_name": 1}
    assert state(memory_store) == before


def test_a_root_whose_path_is_not_utf8_is_one_error(tmp_path: Path) -> None:
    root = Path(os.fsdecode(os.fsencode(tmp_path) + b"/d\xe9"))
    root.mkdir()
    with pytest.raises(Exception, match=r"not UTF-8, rename it: .*d\\xe9"):
        check_roots([root])


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[EdgeStore]:
    store = EdgeStore.connect(path=tmp_path / "store", collection="docsync")
    yield store
    store.close()


def test_the_daemon_lives_through_a_name_that_is_not_utf8(
    docs: Path, edge: EdgeStore, tiny_encoder: Encoder
) -> None:
    daemon = Daemon(
        [docs], store=edge, encoder=tiny_encoder, sync_options=SyncOptions(), options=FAST
    )
    thread = start(daemon)
    write_undecodable(docs)
    (docs / "after.md").write_text("# After\n\nWritten after the file with the Latin-1 name.\n")
    poll(lambda: edge.count({"path": "after.md"}) > 0)
    assert thread.is_alive()
    poll(lambda: state(edge) == fresh_state(docs, tiny_encoder))
    stop(daemon, thread)


def test_a_daemon_out_of_file_descriptors_does_not_call_its_root_gone(
    docs: Path,
    memory_store: Store,
    tiny_encoder: Encoder,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    daemon = Daemon(
        [docs.resolve()],
        store=memory_store,
        encoder=tiny_encoder,
        sync_options=SyncOptions(),
        options=FAST,
        watcher_factory=Silent,
    )
    deny_listing(monkeypatch, docs.resolve(), errno.EMFILE)
    with caplog.at_level(logging.INFO, logger="docsync.daemon"):
        daemon._check_roots()
    assert "gone or empty" not in caplog.text and "is back" not in caplog.text


# symlink loops -----------------------------------------------------------------------------


def test_a_symlink_loop_is_skipped(docs: Path, memory_store: Store, tiny_encoder: Encoder) -> None:
    os.symlink("l2.md", docs / "l1.md")
    os.symlink("l1.md", docs / "l2.md")
    os.symlink("self.md", docs / "howto" / "self.md")
    report = run_sync(docs, memory_store, tiny_encoder)
    assert report.ok
    assert report.files_skipped == {"broken_symlink": 3}
    assert state(memory_store) == fresh_state(docs, tiny_encoder)


def test_a_symlink_loop_as_a_scope_is_skipped(tmp_path: Path) -> None:
    os.symlink("loop.md", tmp_path / "loop.md")
    scan = scan_root(tmp_path, Rules(["*.md"], []), "loop.md")
    assert [(s.path, s.reason, s.detail) for s in scan.skipped] == [
        ("loop.md", "broken_symlink", "symlink loop")
    ]


# folders that cannot be listed -------------------------------------------------------------


@pytest.mark.parametrize("code", [errno.EACCES, errno.EMFILE])
def test_a_folder_that_cannot_be_listed_keeps_its_points_and_fails_the_sync(
    docs: Path,
    memory_store: Store,
    tiny_encoder: Encoder,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
) -> None:
    run_sync(docs, memory_store, tiny_encoder)
    before = state(memory_store)
    deny_listing(monkeypatch, docs.resolve() / "howto", code)
    report = run_sync(docs, memory_store, tiny_encoder)
    assert not report.ok
    assert [(f.reason, f.path) for f in report.failures] == [
        ("unlistable", f"{docs.resolve()}/howto")
    ]
    assert os.strerror(code) in report.failures[0].detail
    assert report.points_deleted == 0
    assert state(memory_store) == before


def test_a_root_that_cannot_be_listed_keeps_every_point(
    docs: Path, memory_store: Store, tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_sync(docs, memory_store, tiny_encoder)
    before = state(memory_store)
    deny_listing(monkeypatch, docs.resolve(), errno.EACCES)
    report = run_sync(docs, memory_store, tiny_encoder)
    assert [(f.reason, f.path) for f in report.failures] == [("unlistable", str(docs.resolve()))]
    assert state(memory_store) == before


def test_a_scope_in_a_folder_that_cannot_be_listed_keeps_its_points(
    docs: Path, memory_store: Store, tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon syncs the path an event names: its folder failing to list is no deletion."""
    run_sync(docs, memory_store, tiny_encoder)
    before = state(memory_store)
    deny_listing(monkeypatch, docs.resolve() / "howto", errno.EMFILE)
    syncer = Syncer(memory_store, tiny_encoder, SyncOptions())
    report = syncer.sync_scopes([(docs.resolve(), "howto/enum.rst")])
    assert [f.reason for f in report.failures] == ["unlistable"]
    assert state(memory_store) == before


def test_a_folder_listed_again_syncs_again(
    docs: Path, memory_store: Store, tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_sync(docs, memory_store, tiny_encoder)
    (docs / "howto" / "enum.rst").unlink()
    with monkeypatch.context() as patch:
        deny_listing(patch, docs.resolve() / "howto", errno.EACCES)
        run_sync(docs, memory_store, tiny_encoder)
    assert memory_store.count({"path": "howto/enum.rst"}) > 0  # not seen, so kept
    assert run_sync(docs, memory_store, tiny_encoder).ok
    assert memory_store.count({"path": "howto/enum.rst"}) == 0
    assert state(memory_store) == fresh_state(docs, tiny_encoder)


# what is read as text ----------------------------------------------------------------------


def source(tmp_path: Path, name: str, data: bytes) -> SourceFile:
    (tmp_path / name).write_bytes(data)
    return SourceFile(tmp_path, name)


@pytest.mark.parametrize("text", ["\u200b" * 200, "\u200b\u200c\u200d\ufeff\u2060 \n" * 30])
def test_only_invisible_characters_is_empty(tmp_path: Path, text: str) -> None:
    skip = read_document(source(tmp_path, "zw.md", text.encode()), max_bytes=10_000)
    assert getattr(skip, "reason", None) == "empty"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_bom_is_read(tmp_path: Path, encoding: str) -> None:
    text = "Notes from a Windows tool\r\nwith a second line, caf\u00e9 cr\u00e8me.\r\n"
    document = read_document(source(tmp_path, "w.txt", text.encode(encoding)), max_bytes=10_000)
    assert getattr(document, "text", None) == text
    assert getattr(getattr(document, "content", None), "encoding", None) == encoding


def test_binary_with_many_nuls_is_still_binary(tmp_path: Path) -> None:
    data = bytes([0, 1, 0, 2, 0, 3, 7, 0] * 64)
    skip = read_document(source(tmp_path, "b.txt", data), max_bytes=10_000)
    assert getattr(skip, "reason", None) == "binary"


# files that no rule includes ---------------------------------------------------------------


def test_files_no_rule_includes_are_counted_and_said_once(
    docs: Path, memory_store: Store, tiny_encoder: Encoder, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("a.odg", "b.odg", "sub/c.PDF", "d.mobi", "Makefile", ".hidden.odg"):
        (docs / name).parent.mkdir(exist_ok=True)
        (docs / name).write_bytes(b"x")
    caplog.set_level(logging.WARNING, logger="docsync.sync")
    syncer = Syncer(memory_store, tiny_encoder, SyncOptions())
    report = syncer.sync_scopes([(docs.resolve(), "")])
    counts = {".odg": 2, ".PDF": 1, ".mobi": 1, "no extension": 1}  # globs are case-sensitive
    assert report.files_not_included == counts
    assert report.to_dict()["files_not_included"] == counts
    said = [r.getMessage() for r in caplog.records if "no include rule" in r.getMessage()]
    assert said == [
        "5 file(s) matched no include rule and were not indexed (2 .odg, 1 .PDF, 1 .mobi, "
        "1 no extension: Makefile, a.odg, b.odg, d.mobi, sub/c.PDF); DOCSYNC_INCLUDE chooses "
        "what is read"
    ]
    syncer.sync_scopes([(docs.resolve(), "")])  # a daemon's rescan: nothing new to say
    assert len([r for r in caplog.records if "no include rule" in r.getMessage()]) == 1


def test_an_empty_folder_says_why_nothing_was_indexed(
    tmp_path: Path, memory_store: Store, tiny_encoder: Encoder, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "book.mobi").write_bytes(b"PK")
    caplog.set_level(logging.WARNING, logger="docsync.sync")
    report = run_sync(tmp_path, memory_store, tiny_encoder)
    assert report.files_scanned == 0
    assert any("1 .mobi" in r.getMessage() for r in caplog.records)


# a root that is a symlink ------------------------------------------------------------------


def test_a_root_given_as_a_symlink_is_resolved_once_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    caplog.set_level(logging.INFO, logger="docsync.sync")
    assert check_roots([link]) == [real.resolve()]
    assert any(
        "is a symlink" in r.getMessage() and "restart" in r.getMessage() for r in caplog.records
    )
