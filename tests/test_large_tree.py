"""A root whose points outnumber `WHOLE_LISTING_POINTS` is reconciled a folder at a time: no
sync holds the listing of the whole tree, and the collection still ends exactly as a sync of
the whole would leave it (files gone from a folder, whole folders gone, excluded folders,
files moved between folders without embedding them again)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient

from docsync.plugin.encoder import Encoder
from docsync.plugin.store import Store
from docsync.plugin.stores.qdrant import QdrantClientStore
from docsync.worker import scopes
from docsync.worker.pipeline import sync
from docsync.worker.plan import IndexedFile
from tests.conftest import run_sync, state

LIMIT = 5  # points: a folder of more is split


def note(i: int) -> str:
    return f"Note {i}. The lighthouse keeper logged {i} ships passing the northern cape.\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """21 one-chunk files: 2 in the root, 4 folders of 4 (one with a folder of 3)."""
    root = tmp_path / "tree"
    files = ["a.md", "b.md"]
    for folder in ("f0", "f1", "f2", "f3"):
        files += [f"{folder}/n{i}.md" for i in range(4)]
    files += [f"f1/deep/d{i}.md" for i in range(3)]
    for i, rel in enumerate(files):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(note(i), encoding="utf-8")
    return root


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each listing a sync holds, with the split past `LIMIT` points."""
    monkeypatch.setattr(scopes, "WHOLE_LISTING_POINTS", LIMIT)
    sizes: list[int] = []
    real = scopes.list_files

    def listed(*args: Any, **kwargs: Any) -> dict[str, IndexedFile]:
        files = real(*args, **kwargs)
        sizes.append(len(files))
        return files

    monkeypatch.setattr(scopes, "list_files", listed)
    return sizes


class Counted:
    def __init__(self) -> None:
        self.total = self.done = 0

    def set_total(self, total: int) -> None:
        self.total, self.done = total, 0

    def more(self, files: int) -> None:
        self.total += files

    def advance(self, files: int = 1) -> None:
        self.done += files

    def embedded(self, chunks: int) -> None:
        pass


def fresh(root: Path, encoder: Encoder, **options: Any) -> set[Any]:
    store = QdrantClientStore(QdrantClient(location=":memory:"), "fresh")
    run_sync(root, store, encoder, **options)
    return state(store)


def test_a_no_op_sync_of_a_large_tree_lists_a_folder_at_a_time(
    tree: Path, memory_store: Store, tiny_encoder: Encoder, listings: list[int]
) -> None:
    first = run_sync(tree, memory_store, tiny_encoder)
    assert first.files_changed == 21 and memory_store.count() == 21
    listings.clear()
    progress = Counted()
    again = sync([tree], store=memory_store, encoder=tiny_encoder, progress=progress)
    assert again.ok and again.files_scanned == 21
    assert progress.total == progress.done == 21  # the total grew part by part
    assert again.files_changed == again.files_deleted == again.chunks_embedded == 0
    # The root's own files, then each folder (f1 split again: its own, then f1/deep).
    assert sorted(listings) == [2, 3, 4, 4, 4, 4]
    assert max(listings) <= LIMIT < sum(listings)


def test_changes_across_folders_end_as_a_whole_sync_would(
    tree: Path, memory_store: Store, tiny_encoder: Encoder, listings: list[int]
) -> None:
    run_sync(tree, memory_store, tiny_encoder)
    (tree / "f0" / "n1.md").unlink()  # a file gone from a folder
    shutil.rmtree(tree / "f2")  # a whole folder gone: its files are listed with the root's
    (tree / "f3" / "n2.md").rename(tree / "f1" / "deep" / "n2.md")  # across folders
    (tree / "f1" / "new.md").write_text("A new note about tides.\n", encoding="utf-8")

    listings.clear()
    report = run_sync(tree, memory_store, tiny_encoder)
    # As indexed before: f0, f3 whole; f1 split (its own 4, then deep's 3); the root's own
    # 2 with the 4 of f2, a folder gone.
    assert sorted(listings) == [3, 4, 4, 4, 2 + 4]
    assert report.ok
    assert report.files_deleted == 1 + 4 + 1 and report.files_changed == 2
    # The moved file's vector was still there when it was planned: only the new one embeds.
    assert report.chunks_embedded == 1
    assert state(memory_store) == fresh(tree, tiny_encoder)


def test_a_folder_excluded_now_loses_its_points(
    tree: Path, memory_store: Store, tiny_encoder: Encoder, listings: list[int]
) -> None:
    run_sync(tree, memory_store, tiny_encoder)
    report = run_sync(tree, memory_store, tiny_encoder, exclude=["f1"])
    assert report.files_deleted == 7 and report.chunks_embedded == 0
    assert state(memory_store) == fresh(tree, tiny_encoder, exclude=["f1"])


def test_a_large_root_that_looks_unmounted_keeps_its_points(
    tree: Path, memory_store: Store, tiny_encoder: Encoder, listings: list[int]
) -> None:
    run_sync(tree, memory_store, tiny_encoder)
    for entry in tree.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    report = run_sync(tree, memory_store, tiny_encoder)
    assert report.protected_roots == [str(tree.resolve())]
    assert memory_store.count() == 21
