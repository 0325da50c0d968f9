"""`docsync export --vectors | docsync import` moves a collection between stores without
re-embedding: same IDs, payloads and vectors, same answers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import ConfigError, ProfileMismatchError
from docsync.plugin.store import Store
from docsync.plugin.stores.edge import EdgeStore
from docsync.plugin.stores.qdrant import QdrantClientStore
from docsync.worker.transfer import export_points, import_points
from tests.conftest import CORPUS, run_sync

DOCSYNC = str(Path(sys.executable).with_name("docsync"))


def exported(store: Store, *, vectors: bool = True) -> list[str]:
    out = io.StringIO()
    export_points(store, out, vectors=vectors)
    return out.getvalue().splitlines(keepends=True)


def snapshot(store: Store) -> dict[str, tuple[str, list[float]]]:
    return {
        p.id: (json.dumps(p.payload, sort_keys=True), p.vector or [])
        for p in store.scroll({}, with_vectors=True)
    }


def assert_same_points(a: Store, b: Store) -> None:
    left, right = snapshot(a), snapshot(b)
    assert left.keys() == right.keys() and left
    for pid, (payload, vector) in left.items():
        assert right[pid][0] == payload
        np.testing.assert_allclose(right[pid][1], vector, atol=1e-6)


@pytest.fixture
def edge_store(tmp_path: Path, tiny_encoder: Encoder) -> Store:
    store = EdgeStore.connect(path=tmp_path / "edge", collection="docsync")
    run_sync(CORPUS / "using", store, tiny_encoder)
    return store


def test_round_trip_between_engines(
    edge_store: Store, tiny_encoder: Encoder, tmp_path: Path
) -> None:
    server_like = QdrantClientStore(QdrantClient(location=":memory:"), "moved")
    lines = exported(edge_store)
    assert json.loads(lines[0])["profile"] == tiny_encoder.profile().to_dict()
    assert import_points(server_like, lines) == edge_store.count() == len(lines) - 1
    assert_same_points(edge_store, server_like)
    (probe,) = edge_store.retrieve([next(iter(snapshot(edge_store)))], with_vectors=True)
    assert probe.vector is not None
    moved_hits = server_like.search(probe.vector, limit=5)
    hits = edge_store.search(probe.vector, limit=5)
    assert moved_hits[0].id == hits[0].id == probe.id
    np.testing.assert_allclose([h.score for h in moved_hits], [h.score for h in hits], atol=1e-5)
    back = EdgeStore.connect(path=tmp_path / "back", collection="docsync")
    import_points(back, exported(server_like))
    assert_same_points(edge_store, back)
    assert import_points(back, exported(server_like)) == back.count()  # idempotent
    back.close()
    edge_store.close()


def test_import_refuses_another_profile(edge_store: Store, tiny_encoder: Encoder) -> None:
    lines = exported(edge_store)
    target = QdrantClientStore(QdrantClient(location=":memory:"), "other")
    other = Encoder(tiny_encoder._model, name=tiny_encoder.name, query_prefix="query: ")
    target.open(other.profile(), create=True)
    with pytest.raises(ProfileMismatchError):
        import_points(target, lines)
    assert target.count() == 0
    edge_store.close()


def test_import_needs_vectors_and_a_header(edge_store: Store) -> None:
    target = QdrantClientStore(QdrantClient(location=":memory:"), "t")
    with pytest.raises(ConfigError, match="--vectors"):
        import_points(target, exported(edge_store, vectors=False))
    with pytest.raises(ConfigError, match="not a docsync export"):
        import_points(target, ['{"id": "x"}\n'])
    with pytest.raises(ConfigError, match="line 1 is not JSON"):
        import_points(target, ["garbage\n"])
    edge_store.close()


def test_cli_export_piped_into_import(tmp_path: Path, tiny_model_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSYNC_")}
    env.update(DOCSYNC_MODEL=str(tiny_model_dir), HF_HUB_OFFLINE="1")
    source = {**env, "DOCSYNC_QDRANT_PATH": str(tmp_path / "a")}
    target = {**env, "DOCSYNC_QDRANT_PATH": str(tmp_path / "b")}

    def docsync(settings: dict[str, str], *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [DOCSYNC, *args],
            env=settings,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    docsync(source, "sync", str(CORPUS / "using"))
    dump = docsync(source, "export", "--vectors")
    assert docsync(target, "import", stdin=dump).startswith("imported ")
    question = ("query", "How do I install Python on a Mac?", "--json")
    assert json.loads(docsync(target, *question)) == json.loads(docsync(source, *question))
    status = json.loads(docsync(target, "status", "--json"))
    assert status["points"] == len(dump.splitlines()) - 1
