"""A generation deleted in the embedded store (`switch` without --keep, `switch --discard`)
by a process killed while its files go: nothing of it stays in the lineup (it looked like a
generation being built, and the next reindex failed opening its half-deleted shard), and its
files are swept by the next deletion or build."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from docsync.plugin.encoder import Encoder
from docsync.plugin.stores import edge_generations, generations_of
from docsync.plugin.stores.edge import EdgeStore
from docsync.worker.pipeline import SyncOptions
from docsync.worker.reindex import reindex
from tests.conftest import CORPUS, run_sync


class Killed(BaseException):
    """The process's death, half way through deleting a generation's files."""


def test_a_deletion_killed_half_way_leaves_no_generation_behind(
    tmp_path: Path, tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(CORPUS / "howto" / "sockets.rst", docs / "sockets.rst")
    store = EdgeStore.connect(path=tmp_path / "store", collection="docs")
    try:
        assert run_sync(docs, store, tiny_encoder).ok
        options = SyncOptions(chunk_tokens=64)
        built = reindex([docs], live=store, encoder=tiny_encoder, options=options)
        assert built.built
        gens = generations_of(store)
        real_rmtree = shutil.rmtree

        def killed_half_way(path: Path, **kwargs: object) -> None:
            files = sorted(p for p in Path(path).rglob("*") if p.is_file())
            for found in files[: len(files) // 2]:
                found.unlink()
            raise Killed

        monkeypatch.setattr(edge_generations.shutil, "rmtree", killed_half_way)
        with pytest.raises(Killed):
            gens.discard(built.generation)
        monkeypatch.setattr(edge_generations.shutil, "rmtree", real_rmtree)

        assert gens.lineup().other is None  # nothing that looks like a build to go on with
        again = reindex([docs], live=store, encoder=tiny_encoder, options=options)
        assert again.built and again.report.files_changed == 1  # a new one, from the start
        left = sorted(p.name for p in (tmp_path / "store").iterdir() if "docs--g" in p.name)
        assert left == ["docs--g1", again.generation]  # the half-deleted one swept
    finally:
        store.close()
