"""Files whose stat key matches their points' are current without being read, and every way a
file can change while keeping its size and modification time is still seen."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import docsync.worker.planner
import docsync.worker.read
from docsync.plugin.encoder import Encoder
from docsync.plugin.store import Store
from tests.conftest import run_sync
from tests.test_sync import assert_exact


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The paths the pipeline reads, in order."""
    seen: list[str] = []
    real = docsync.worker.planner.read_document

    def counting(source: Any, **kwargs: Any) -> Any:
        seen.append(source.path)
        return real(source, **kwargs)

    monkeypatch.setattr(docsync.worker.planner, "read_document", counting)
    yield seen


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files count as settled as soon as they are written (the default waits 2 s)."""
    monkeypatch.setattr(docsync.worker.read, "SETTLE_NS", 0)


def same_size_edit(path: Path, old: str, new: str) -> None:
    """Replace text by text of the same length and put the modification time back."""
    assert len(old) == len(new)
    info = path.stat()
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert path.stat().st_size == info.st_size and path.stat().st_mtime_ns == info.st_mtime_ns


def test_unchanged_files_are_not_read_again(
    docs: Path, memory_store: Store, tiny_encoder: Encoder, reads: list[str], settled: None
) -> None:
    run_sync(docs, memory_store, tiny_encoder)
    assert len(reads) == 21
    reads.clear()
    again = run_sync(docs, memory_store, tiny_encoder)
    assert reads == []
    assert (again.files_scanned, again.chunks_embedded, again.points_upserted) == (21, 0, 0)
    assert again.points_deleted == again.files_deleted == 0
    (docs / "howto" / "enum.rst").write_text("# Enum\n\nRewritten.\n", encoding="utf-8")
    run_sync(docs, memory_store, tiny_encoder)
    assert reads == ["howto/enum.rst"]


def test_same_size_edits_with_the_old_time_are_seen(
    docs: Path, memory_store: Store, tiny_encoder: Encoder, reads: list[str], settled: None
) -> None:
    run_sync(docs, memory_store, tiny_encoder)
    same_size_edit(docs / "howto" / "sockets.rst", "Socket Programming", "Socket Progrmaming")
    # An atomic save that keeps size and times: a new inode under the old name.
    target = docs / "howto" / "regex.rst"
    info = target.stat()
    text = target.read_text(encoding="utf-8").replace("regular expression", "regular exprezzion", 1)
    scratch = docs / "howto" / ".regex.rst.swp"
    scratch.write_text(text, encoding="utf-8")
    os.utime(scratch, ns=(info.st_atime_ns, info.st_mtime_ns))
    os.replace(scratch, target)
    reads.clear()
    report = run_sync(docs, memory_store, tiny_encoder)
    assert sorted(reads) == ["howto/regex.rst", "howto/sockets.rst"]
    assert report.files_changed == 2
    assert memory_store.count({"path": "howto/sockets.rst"}) > 0
    texts = {p.payload["text"] for p in memory_store.scroll({"path": "howto/regex.rst"})}
    assert any("regular exprezzion" in t for t in texts)
    assert_exact(memory_store, docs, tiny_encoder)


def test_files_changed_just_before_a_sync_are_read_until_they_settle(
    docs: Path,
    memory_store: Store,
    tiny_encoder: Encoder,
    reads: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Copied a moment ago, the files have not settled: their points carry no stat key, and
    the next sync reads them all again (and writes nothing). Once they have settled, a sync
    that reads them gives their points the key, without writing them anew, and the one
    after reads nothing. The clock is fake: however slowly the syncs run, it stays at the
    moment of the copy until the test moves it."""
    copied = max(max(p.stat().st_mtime_ns, p.stat().st_ctime_ns) for p in docs.rglob("*"))
    monkeypatch.setattr(docsync.worker.read, "clock", lambda: copied)
    run_sync(docs, memory_store, tiny_encoder)
    assert {p.payload["file_stat"] for p in memory_store.scroll({}, fields=["file_stat"])} == {""}
    reads.clear()
    again = run_sync(docs, memory_store, tiny_encoder)
    assert len(reads) == 21 and again.points_upserted == again.points_deleted == 0
    stamps = memory_store.scroll({}, fields=["file_stat"])
    assert {p.payload["file_stat"] for p in stamps} == {""}

    settled_at = copied + docsync.worker.read.SETTLE_NS
    monkeypatch.setattr(docsync.worker.read, "clock", lambda: settled_at)  # 2 s later
    before = {p.id: p for p in memory_store.scroll({}, with_vectors=True)}
    reads.clear()
    settled = run_sync(docs, memory_store, tiny_encoder)
    assert len(reads) == 21 and settled.points_upserted == settled.points_deleted == 0
    after = {p.id: p for p in memory_store.scroll({}, with_vectors=True)}
    assert after.keys() == before.keys()
    for pid, point in after.items():
        path = docs / point.payload["path"]
        assert point.payload["file_stat"] == docsync.worker.read.stat_key(path.stat())
        assert {**point.payload, "file_stat": ""} == before[pid].payload
        assert point.vector == before[pid].vector
    reads.clear()
    last = run_sync(docs, memory_store, tiny_encoder)
    assert reads == [] and last.files_scanned == 21
    assert_exact(memory_store, docs, tiny_encoder)


def test_a_lower_size_limit_is_applied_to_unread_files(
    docs: Path, memory_store: Store, tiny_encoder: Encoder, settled: None
) -> None:
    big = max(docs.rglob("*.rst"), key=lambda p: p.stat().st_size)
    run_sync(docs, memory_store, tiny_encoder)
    path = big.relative_to(docs).as_posix()
    assert memory_store.count({"path": path}) > 0
    report = run_sync(docs, memory_store, tiny_encoder, max_file_bytes=big.stat().st_size - 1)
    assert report.files_skipped == {"too_large": 1}
    assert memory_store.count({"path": path}) == 0


def test_stat_key_waits_for_the_file_to_settle(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_text("text")
    info = path.stat()
    changed = max(info.st_mtime_ns, info.st_ctime_ns)
    assert docsync.worker.read.stat_key(info, now_ns=changed + 1) == ""
    key = docsync.worker.read.stat_key(info, now_ns=changed + docsync.worker.read.SETTLE_NS)
    assert key == f"{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}:{info.st_ino}"
