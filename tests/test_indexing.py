"""A daemon's index builds in a child process, on a copy of the shard, so searches keep
answering (the embedded engine holds the GIL while it builds); the copy is swapped in, and a
crash at any step leaves a store that opens whole."""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from plugin import edge_store
from plugin.edge_store import INDEXING_DIR, READY_MARK, REPLACED_DIR, SHARD_DIR, EdgeStore
from plugin.profile import EmbeddingProfile
from plugin.store import Point

POINTS = 8000  # 12 MB of vectors: past the engine's own indexing threshold
DIMENSION = 384
PROFILE = EmbeddingProfile("m", None, DIMENSION, "cosine", "", "", "c")


@pytest.fixture
def vectors() -> list[list[float]]:
    return np.random.default_rng(3).standard_normal((POINTS, DIMENSION)).tolist()  # type: ignore[no-any-return]


@pytest.fixture
def store(
    tmp_path: Path, vectors: list[list[float]], monkeypatch: pytest.MonkeyPatch
) -> Iterator[EdgeStore]:
    monkeypatch.setattr(edge_store, "OPTIMIZE_MIN_UNINDEXED", POINTS // 2)
    store = EdgeStore.connect(path=tmp_path / "edge", collection="docsync")
    store.open(PROFILE, create=True)
    store.upsert(
        [Point(str(uuid.UUID(int=i + 1)), {"n": i}, v, None) for i, v in enumerate(vectors)]
    )
    yield store
    store.close()


def nearest(store: EdgeStore, vector: list[float]) -> str:
    return store.search(vector, limit=1)[0].id


def test_searches_answer_while_the_child_builds_and_the_copy_is_swapped_in(
    store: EdgeStore, vectors: list[list[float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    answered: list[str] = []
    children: list[bool] = []
    run_indexer = edge_store._run_indexer

    def with_a_search_meanwhile(copy: Path, should_stop: Callable[[], bool]) -> bool:
        # The copy is made and the shard still open: a search from another thread (as a
        # daemon's HTTP thread asks) must be answered now, not after the build.
        asker = threading.Thread(target=lambda: answered.append(nearest(store, vectors[42])))
        asker.start()
        asker.join(timeout=60)
        assert not asker.is_alive()
        assert copy.is_dir() and (store._dir / SHARD_DIR).is_dir()
        children.append(run_indexer(copy, should_stop))
        return children[-1]

    monkeypatch.setattr(edge_store, "_run_indexer", with_a_search_meanwhile)
    assert store.unindexed() == POINTS
    assert store.optimize(serving=True) is True
    assert answered == [str(uuid.UUID(int=43))] and children == [True]
    assert store.unindexed() == 0  # the swapped-in shard is the indexed copy
    assert nearest(store, vectors[7]) == str(uuid.UUID(int=8))
    folder = store._dir
    assert sorted(p.name for p in folder.iterdir()) == ["profile.json", SHARD_DIR]
    # It is a working shard: writes and reopening after the swap.
    store.upsert([Point(str(uuid.UUID(int=10**6)), {"n": -1}, vectors[0], None)])
    assert store.count() == POINTS + 1


def test_a_daemon_stopping_abandons_the_build_and_keeps_its_shard(
    store: EdgeStore, vectors: list[list[float]]
) -> None:
    assert store.optimize(serving=True, should_stop=lambda: True) is False
    assert store.unindexed() == POINTS and store.count() == POINTS
    assert not (store._dir / INDEXING_DIR).exists()
    assert nearest(store, vectors[5]) == str(uuid.UUID(int=6))


def test_a_child_that_fails_changes_nothing(
    store: EdgeStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_popen = edge_store.subprocess.Popen

    def broken(args: list[str], **kwargs: Any) -> Any:
        return real_popen([args[0], "-c", "raise SystemExit('the engine said no')"], **kwargs)

    monkeypatch.setattr(edge_store.subprocess, "Popen", broken)
    assert store.optimize(serving=True) is False
    assert "the engine said no" in caplog.text
    assert store.unindexed() == POINTS
    assert not (store._dir / INDEXING_DIR).exists()


@pytest.mark.parametrize("crash_after", ["copy made", "copy marked", "shard moved aside"])
def test_a_crash_during_the_swap_leaves_a_store_that_opens_whole(
    store: EdgeStore, vectors: list[list[float]], crash_after: str
) -> None:
    """The folders a crash can leave, rebuilt by hand from a real indexed copy."""
    folder, path = store._dir, store._root
    copy = folder / INDEXING_DIR

    store._use("flush")
    shutil.copytree(folder / SHARD_DIR, copy)
    assert edge_store._run_indexer(copy, lambda: False)
    store.close()
    if crash_after != "copy made":
        (copy / READY_MARK).touch()
    if crash_after == "shard moved aside":
        os.rename(folder / SHARD_DIR, folder / REPLACED_DIR)

    reopened = EdgeStore.connect(path=path, collection="docsync")
    try:
        reopened.open(PROFILE, create=False)
        assert reopened.count() == POINTS
        assert nearest(reopened, vectors[9]) == str(uuid.UUID(int=10))
        indexed = crash_after == "shard moved aside"  # only then was the copy taken
        assert (reopened.unindexed() == 0) is indexed
        assert sorted(p.name for p in folder.iterdir()) == ["profile.json", SHARD_DIR]
    finally:
        reopened.close()


def test_int8_copies_are_searched_and_rescored_with_the_originals(
    tmp_path: Path, vectors: list[list[float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edge_store, "OPTIMIZE_MIN_UNINDEXED", POINTS // 2)
    store = EdgeStore.connect(path=tmp_path / "edge", collection="docsync", quantization="int8")
    try:
        store.open(PROFILE, create=True)
        config = (store._dir / SHARD_DIR / "edge_config.json").read_text()
        assert "int8" in config.lower()
        store.upsert([Point(str(uuid.UUID(int=i + 1)), {}, v, None) for i, v in enumerate(vectors)])
        assert store.optimize() is True
        hits = store.search(vectors[11], limit=3)
        assert hits[0].id == str(uuid.UUID(int=12))
        # Rescored with the original vectors: the exact cosine of a vector with itself.
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    finally:
        store.close()
