"""A daemon's index builds in a child process, on a copy of the shard, so searches keep
answering (the embedded engine holds the GIL while it builds); the copy is opened by a second
child while the first answers and linked in, and a crash at any step leaves a store that
opens whole."""

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

from docsync.plugin.errors import IndexBuildError
from docsync.plugin.profile import EmbeddingProfile
from docsync.plugin.store import Point
from docsync.plugin.stores import edge as edge_store
from docsync.plugin.stores import edge_folder, edge_index, edge_keeper, edge_shard
from docsync.plugin.stores.edge import EdgeStore
from docsync.plugin.stores.edge_count import LEDGER_FILE
from docsync.plugin.stores.edge_folder import INDEXING_DIR, READY_MARK, REPLACED_DIR, SHARD_DIR
from docsync.plugin.stores.edge_host import HostedShard
from tests.conftest import HANG

POINTS = 2000  # 3 MB of vectors: past the indexing threshold the tests' shards are made with
DIMENSION = 384
PROFILE = EmbeddingProfile("m", None, DIMENSION, "cosine", "", "", "c")


@pytest.fixture
def vectors(monkeypatch: pytest.MonkeyPatch) -> list[list[float]]:
    # A quarter of POINTS' vectors make a segment worth an index (the engine's own threshold
    # is 10 MB: 8,000 points, and a build four times as long).
    monkeypatch.setattr(edge_shard, "INDEXING_THRESHOLD_KB", POINTS * DIMENSION * 4 // 4096)
    return np.random.default_rng(3).standard_normal((POINTS, DIMENSION)).tolist()  # type: ignore[no-any-return]


def filled(path: Path, vectors: list[list[float]], *, serving: bool = False) -> EdgeStore:
    store = EdgeStore.connect(path=path, collection="docsync", serving=serving)
    store.open(PROFILE, create=True)
    store.upsert(
        [Point(str(uuid.UUID(int=i + 1)), {"n": i}, v, None) for i, v in enumerate(vectors)]
    )
    return store


@pytest.fixture
def store(
    tmp_path: Path, vectors: list[list[float]], monkeypatch: pytest.MonkeyPatch
) -> Iterator[EdgeStore]:
    monkeypatch.setattr(edge_store, "OPTIMIZE_MIN_UNINDEXED", POINTS // 2)
    store = filled(tmp_path / "edge", vectors)
    yield store
    store.close()


def layout(folder: Path) -> tuple[list[str], str]:
    """The collection folder's entries (less the count of writes since the last build, and
    the lock of the shard in use, there while a store has it open), and the one its `shard`
    link names."""
    live = os.readlink(folder / SHARD_DIR)
    skipped = {LEDGER_FILE, live + edge_folder.LOCK_SUFFIX}
    return sorted(p.name for p in folder.iterdir() if p.name not in skipped), live


def nearest(store: EdgeStore, vector: list[float]) -> str:
    return store.search(vector, limit=1)[0].id


def test_searches_answer_while_the_child_builds_and_the_copy_is_swapped_in(
    store: EdgeStore, vectors: list[list[float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    answered: list[str] = []
    children: list[bool] = []
    run_indexer = edge_index.run_indexer

    def with_a_search_meanwhile(copy: Path, should_stop: Callable[[], bool]) -> bool:
        # The copy is made and the shard still open: a search from another thread (as a
        # daemon's HTTP thread asks) must be answered now, not after the build.
        asker = threading.Thread(target=lambda: answered.append(nearest(store, vectors[42])))
        asker.start()
        asker.join(timeout=HANG)
        assert not asker.is_alive()
        assert copy.is_dir() and layout(store._dir)[1] == "shard.0"
        children.append(run_indexer(copy, should_stop))
        return children[-1]

    monkeypatch.setattr(edge_index, "run_indexer", with_a_search_meanwhile)
    assert store.unindexed() == POINTS
    assert store.optimize(serving=True) is True
    assert answered == [str(uuid.UUID(int=43))] and children == [True]
    assert store.unindexed() == 0  # the swapped-in shard is the indexed copy
    assert nearest(store, vectors[7]) == str(uuid.UUID(int=8))
    assert layout(store._dir) == (["profile.json", SHARD_DIR, "shard.1"], "shard.1")
    # It is a working shard: writes and reopening after the swap.
    store.upsert([Point(str(uuid.UUID(int=10**6)), {"n": -1}, vectors[0], None)])
    assert store.count() == POINTS + 1


def test_a_daemon_stopping_abandons_the_build_and_keeps_its_shard(
    store: EdgeStore, vectors: list[list[float]]
) -> None:
    assert store.optimize(serving=True, should_stop=lambda: True) is False
    assert store.unindexed() == POINTS and store.count() == POINTS
    assert layout(store._dir) == (["profile.json", SHARD_DIR, "shard.0"], "shard.0")
    assert nearest(store, vectors[5]) == str(uuid.UUID(int=6))


def test_a_child_that_fails_changes_nothing(
    store: EdgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_popen = edge_index.subprocess.Popen

    def broken(args: list[str], **kwargs: Any) -> Any:
        return real_popen([args[0], "-c", "raise SystemExit('the engine said no')"], **kwargs)

    monkeypatch.setattr(edge_index.subprocess, "Popen", broken)
    with pytest.raises(IndexBuildError, match="exit status 1: the engine said no"):
        store.optimize(serving=True)
    assert store.unindexed() == POINTS
    assert layout(store._dir) == (["profile.json", SHARD_DIR, "shard.0"], "shard.0")


@pytest.mark.parametrize("crash_after", ["copy made", "link switched"])
def test_a_crash_during_the_swap_leaves_a_store_that_opens_whole(
    store: EdgeStore, vectors: list[list[float]], crash_after: str
) -> None:
    """The folders a crash can leave, rebuilt by hand from a real indexed copy."""
    folder, path = store._dir, store._root
    store._use(lambda shard: shard.flush())
    shutil.copytree(folder / "shard.0", folder / "shard.1")
    assert edge_index.run_indexer(folder / "shard.1", lambda: False)
    store.close()
    if crash_after == "link switched":
        edge_folder.link(folder, "shard.1")
    (folder / edge_folder.LINK_TMP).symlink_to("shard.1")  # a link the rename never took

    reopened = EdgeStore.connect(path=path, collection="docsync")
    try:
        reopened.open(PROFILE, create=False)
        assert reopened.count() == POINTS
        assert nearest(reopened, vectors[9]) == str(uuid.UUID(int=10))
        indexed = crash_after == "link switched"  # only then was the copy taken
        assert (reopened.unindexed() == 0) is indexed
        live = "shard.1" if indexed else "shard.0"
        assert layout(folder) == (["profile.json", SHARD_DIR, live], live)
    finally:
        reopened.close()


@pytest.mark.parametrize("left", ["no swap", "copy marked", "shard moved aside"])
def test_a_store_made_before_the_link_gets_one_and_an_old_swap_is_finished(
    store: EdgeStore, vectors: list[list[float]], left: str
) -> None:
    """A shard in a plain `shard` folder, as docsync kept it before, and what its swap
    (two renames) could leave: the next writer finishes or undoes that swap and links the
    shard as `shard.0`. A reader opens such a store as it is."""
    folder, path = store._dir, store._root
    store._use(lambda shard: shard.flush())
    store.close()
    os.rename(folder / "shard.0", folder / "plain")
    os.unlink(folder / SHARD_DIR)
    os.rename(folder / "plain", folder / SHARD_DIR)
    if left != "no swap":
        copy = folder / INDEXING_DIR
        shutil.copytree(folder / SHARD_DIR, copy)
        assert edge_index.run_indexer(copy, lambda: False)
        (copy / READY_MARK).touch()
        if left == "shard moved aside":
            os.rename(folder / SHARD_DIR, folder / REPLACED_DIR)
    if left == "no swap":
        reader = EdgeStore.connect(path=path, collection="docsync", reading=True)
        assert reader.count() == POINTS and not (folder / SHARD_DIR).is_symlink()
        reader.close()

    reopened = EdgeStore.connect(path=path, collection="docsync")
    try:
        reopened.open(PROFILE, create=False)
        assert reopened.count() == POINTS
        assert nearest(reopened, vectors[9]) == str(uuid.UUID(int=10))
        assert (reopened.unindexed() == 0) is (left == "shard moved aside")
        assert layout(folder) == (["profile.json", SHARD_DIR, "shard.0"], "shard.0")
    finally:
        reopened.close()


def test_a_serving_store_opens_the_indexed_copy_while_the_old_shard_answers(
    tmp_path: Path, vectors: list[list[float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon's store: its shard is held by a child process, and the indexed copy is
    opened by a second one (the engine holds the GIL while it opens a shard: seconds at a
    million points), while searches go to the first, under no lock of the store's."""
    monkeypatch.setattr(edge_store, "OPTIMIZE_MIN_UNINDEXED", POINTS // 2)
    answered: list[str] = []

    class SearchedWhileItOpens(HostedShard):
        def _answer(self) -> Any:
            if not hasattr(self, "_opened"):  # the child's "opened" message is next
                self._opened = True
                if self.path.name == "shard.1":
                    asker = threading.Thread(
                        target=lambda: answered.append(nearest(store, vectors[42]))
                    )
                    asker.start()
                    asker.join(timeout=HANG)
                    assert not asker.is_alive()
            return super()._answer()

    monkeypatch.setattr(edge_keeper, "HostedShard", SearchedWhileItOpens)
    store = filled(tmp_path / "edge", vectors, serving=True)
    try:
        first = store._shard
        assert isinstance(first, HostedShard) and first.alive
        assert store.optimize(serving=True) is True
        assert answered == [str(uuid.UUID(int=43))]
        assert not first.alive  # the old child is gone, a new one holds the indexed copy
        second = store._shard
        assert isinstance(second, HostedShard) and second.path.name == "shard.1"
        assert store.unindexed() == 0 and nearest(store, vectors[7]) == str(uuid.UUID(int=8))
        assert layout(store._dir) == (["profile.json", SHARD_DIR, "shard.1"], "shard.1")
        store.upsert([Point(str(uuid.UUID(int=10**6)), {"n": -1}, vectors[0], None)])
    finally:
        store.close()
    reopened = EdgeStore.connect(path=tmp_path / "edge", collection="docsync", reading=True)
    try:  # closing the child flushed the last write
        assert reopened.count() == POINTS + 1
    finally:
        reopened.close()


def test_a_serving_store_whose_child_dies_starts_another(
    tmp_path: Path, vectors: list[list[float]]
) -> None:
    store = filled(tmp_path / "edge", vectors[:100], serving=True)
    try:
        assert isinstance(store._shard, HostedShard)
        store._shard._child.kill()
        store._shard._child.wait()
        assert store.count() == 100  # a new child, on the same shard
        # A request the engine refuses is its error, as in one process.
        with pytest.raises(edge_store.StoreRequestError, match="Qdrant Edge refused"):
            store.search([1.0, 2.0], limit=1)
    finally:
        store.close()


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


def test_a_shard_the_child_cannot_open_is_the_engines_error_and_leaves_no_child(
    tmp_path: Path,
) -> None:
    children: list[Any] = []

    class Watched(HostedShard):
        def _answer(self) -> Any:
            children.append(self._child)
            return super()._answer()

    with pytest.raises(Exception, match="cannot load edge shard"):
        Watched(tmp_path / "nothing here")
    assert children and children[0].poll() is not None


def test_a_store_at_a_relative_path_keeps_its_shard_when_a_writer_opens_it_again(
    tmp_path: Path, vectors: list[list[float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default store folder is relative (`.docsync/qdrant`): the shard in use is told
    from stale copies by its name, not by a path that is absolute on one side only."""
    monkeypatch.chdir(tmp_path)
    filled(Path(".docsync") / "qdrant", vectors[:50]).close()
    again = EdgeStore.connect(path=Path(".docsync") / "qdrant", collection="docsync")
    try:
        again.open(PROFILE, create=False)
        assert again.count() == 50
        assert layout(again._dir) == (["profile.json", SHARD_DIR, "shard.0"], "shard.0")
    finally:
        again.close()


def test_the_copy_a_build_swaps_in_keeps_the_engines_sparse_files_sparse(
    tmp_path: Path, vectors: list[list[float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine sizes its files ahead and fills them a page at a time: a copy that wrote
    their holes out made a 916 KB store take 207 MB after one swap."""
    monkeypatch.setattr(edge_store, "OPTIMIZE_MIN_UNINDEXED", 1)
    store = filled(tmp_path / "edge", vectors[:160])
    sizes: list[tuple[int, int]] = []

    def measured(copy: Path, should_stop: Callable[[], bool]) -> bool:
        sizes.append((edge_folder.folder_bytes(store._live()), edge_folder.folder_bytes(copy)))
        return True

    monkeypatch.setattr(edge_index, "run_indexer", measured)
    try:
        store.optimize(serving=True)
        ((live, copy),) = sizes
        assert copy <= live + (64 << 10)
        assert store.count() == 160 and nearest(store, vectors[7]) == str(uuid.UUID(int=8))
        apparent = sum(p.stat().st_size for p in store._live().rglob("*") if p.is_file())
        assert apparent > 4 * copy  # the engine's files are sparse, and stayed so
    finally:
        store.close()


def test_points_written_after_deletes_are_counted_unindexed_and_get_their_index(
    tmp_path: Path, vectors: list[list[float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's count of indexed vectors keeps the deleted points until a build drops
    them: 26,956 points beside 77,404 indexed vectors read as 0 unindexed, for ever."""
    monkeypatch.setattr(edge_store, "OPTIMIZE_MIN_UNINDEXED", POINTS // 4)
    path = tmp_path / "edge"
    store = filled(path, vectors)
    assert store.optimize() is True and store.unindexed() == 0
    store.delete([str(uuid.UUID(int=i + 1)) for i in range(POINTS * 3 // 4)])
    fresh = np.random.default_rng(4).standard_normal((POINTS, DIMENSION)).tolist()
    store.upsert([Point(str(uuid.UUID(int=10**6 + i)), {}, v, None) for i, v in enumerate(fresh)])
    try:
        assert store.unindexed() == POINTS
    finally:
        store.close()
    store = EdgeStore.connect(path=path, collection="docsync")  # the count is kept
    try:
        store.open(PROFILE, create=False)
        assert store.unindexed() == POINTS
        assert store.optimize() is True
        assert store.unindexed() == 0 and store.count() == POINTS + POINTS // 4
    finally:
        store.close()


@pytest.mark.parametrize("serving", [True, False])
def test_a_build_the_engine_declines_is_not_repeated_until_many_more_points_lack_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, serving: bool
) -> None:
    """Small vectors (32 dimensions: 80,000 fit the engine's indexing threshold) are never
    indexed: a daemon copied its shard and built nothing every 4-5 s, for ever."""
    dimension, n = 32, edge_store.OPTIMIZE_MIN_UNINDEXED + 2000
    rng = np.random.default_rng(6)

    def more(first: int, count: int) -> list[Point]:
        vectors = rng.standard_normal((count, dimension)).tolist()
        return [
            Point(str(uuid.UUID(int=first + i + 1)), {}, v, None) for i, v in enumerate(vectors)
        ]

    builds: list[str] = []
    run_indexer, local_build = edge_index.run_indexer, edge_store.LocalShard.optimize

    def counted(copy: Path, should_stop: Callable[[], bool]) -> bool:
        builds.append(copy.name)
        return run_indexer(copy, should_stop)

    def counted_here(shard: edge_store.LocalShard) -> bool:
        builds.append("here")
        return local_build(shard)

    monkeypatch.setattr(edge_index, "run_indexer", counted)
    monkeypatch.setattr(edge_store.LocalShard, "optimize", counted_here)
    path = tmp_path / "edge"
    store = EdgeStore.connect(path=path, collection="docsync", serving=serving)
    try:
        store.open(EmbeddingProfile("m", None, dimension, "cosine", "", "", "c"), create=True)
        store.upsert(more(0, n))
        for _ in range(3):
            store.optimize(serving=serving)
        assert len(builds) == 1
        assert store.unindexed() == n  # still said: the engine left them unindexed
        store.close()
        store = EdgeStore.connect(path=path, collection="docsync", serving=serving)
        store.optimize(serving=serving)
        assert len(builds) == 1  # a restart does not forget it
        store.upsert(more(n, edge_store.OPTIMIZE_MIN_UNINDEXED))
        store.optimize(serving=serving)
        assert len(builds) == 2  # many more points: worth asking the engine again
    finally:
        store.close()
