"""Beyond one machine: collections created with the cluster's settings, writes with the chosen
ordering, and several workers (one per root) writing one collection without touching each
other's points. A real server (three nodes or one) is used when DOCSYNC_TEST_QDRANT_URL is set."""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from qdrant_client import QdrantClient

from docsync.plugin.encoder import Encoder
from docsync.plugin.settings import Settings
from docsync.plugin.store import Store
from docsync.plugin.stores import open_store
from docsync.plugin.stores.qdrant import QdrantClientStore
from tests.conftest import CORPUS, HANG, run_sync, state

SERVER_URL = os.environ.get("DOCSYNC_TEST_QDRANT_URL")


def recording(calls: list[tuple[str, dict[str, Any]]], name: str, fn: Callable[..., Any]) -> Any:
    def record(*args: Any, **kwargs: Any) -> Any:
        calls.append((name, kwargs))
        return fn(*args, **kwargs)

    return record


def test_a_collection_is_created_with_the_cluster_settings_and_written_in_order(
    tiny_encoder: Encoder, docs: Path
) -> None:
    client = QdrantClient(location=":memory:")
    calls: list[tuple[str, dict[str, Any]]] = []
    for name in ("create_collection", "upsert", "delete", "set_payload"):
        setattr(client, name, recording(calls, name, getattr(client, name)))
    cluster = {"shard_number": 6, "replication_factor": 2, "write_consistency_factor": 2}
    store = QdrantClientStore(
        client, "shared", cluster=cluster, ordering="strong", quantization="int8"
    )
    run_sync(docs, store, tiny_encoder)
    (docs / "howto" / "sockets.rst").unlink()
    run_sync(docs, store, tiny_encoder)

    created = [kwargs for name, kwargs in calls if name == "create_collection"]
    assert len(created) == 1
    assert {k: created[0][k] for k in cluster} == cluster
    assert created[0]["quantization_config"].scalar.type.value == "int8"
    writes = [(name, kwargs) for name, kwargs in calls if name != "create_collection"]
    assert {name for name, _ in writes} >= {"upsert", "delete"}
    assert all(str(kwargs["ordering"].value) == "strong" for _, kwargs in writes)
    assert all(kwargs["wait"] is True for _, kwargs in writes)


def test_cluster_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(replication_factor=3, write_consistency_factor=2, shard_number=4)
    assert settings.cluster_settings() == {
        "shard_number": 4,
        "replication_factor": 3,
        "write_consistency_factor": 2,
    }
    assert Settings(shard_number="").cluster_settings() == {}  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="more than the 1 replica"):
        Settings(write_consistency_factor=2)
    with pytest.raises(ValidationError, match="weak, medium or strong"):
        Settings(write_ordering="eventual")


def test_the_embedded_store_says_it_ignores_cluster_settings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(qdrant_path=tmp_path / "store", shard_number=3)
    store = open_store(settings)
    store.close()
    assert "apply to a Qdrant server" in caplog.text


def two_roots(tmp_path: Path) -> tuple[Path, Path]:
    """Two workers' folders: different documents, and one file name both have."""
    first, second = tmp_path / "host-a" / "docs", tmp_path / "host-b" / "docs"
    for root, names in ((first, ("sockets.rst", "enum.rst")), (second, ("argparse.rst",))):
        root.mkdir(parents=True)
        for name in names:
            shutil.copy(CORPUS / "howto" / name, root / name)
        shutil.copy(CORPUS / "howto" / "annotations.rst", root / "annotations.rst")
    return first, second


def points_of(store: Store, root: Path) -> set[tuple[str, str, str, int, int]]:
    return {point for point in state(store) if point[0] == str(root)}


def test_two_workers_write_one_collection_without_touching_each_others_points(
    tiny_encoder: Encoder, tmp_path: Path
) -> None:
    first, second = two_roots(tmp_path)
    store = shared_store()
    try:
        errors: list[BaseException] = []

        def worker(root: Path) -> None:
            try:
                run_sync(root, store, tiny_encoder)
            except BaseException as exc:  # the test thread reports it
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(root,)) for root in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=HANG)
        assert not errors and not any(t.is_alive() for t in threads)
        theirs = points_of(store, second)
        assert {p[1] for p in theirs} == {"argparse.rst", "annotations.rst"}
        assert {p[1] for p in points_of(store, first)} == {
            "sockets.rst",
            "enum.rst",
            "annotations.rst",
        }

        # The first worker's folder changes: a file goes, the shared name changes, one is new.
        (first / "sockets.rst").unlink()
        (first / "annotations.rst").write_text("Annotations\n===========\n\nRewritten here.\n")
        shutil.copy(CORPUS / "howto" / "regex.rst", first / "regex.rst")
        report = run_sync(first, store, tiny_encoder)
        assert report.ok and report.points_deleted > 0
        assert points_of(store, second) == theirs  # not one point of the other worker's moved
        assert {p[1] for p in points_of(store, first)} == {
            "enum.rst",
            "annotations.rst",
            "regex.rst",
        }
        # And the other worker, syncing again, finds everything of its own current.
        again = run_sync(second, store, tiny_encoder)
        assert (again.points_upserted, again.points_deleted) == (0, 0)
    finally:
        if SERVER_URL:
            store._client.delete_collection(store.collection)  # type: ignore[attr-defined]
        store.close()


def shared_store() -> Store:
    """One collection both workers write: on the server when one is given (a fresh
    collection, dropped after), else qdrant-client's in-process mode."""
    if SERVER_URL:
        name = f"docsync-test-{uuid.uuid4().hex[:8]}"
        return QdrantClientStore.connect(url=SERVER_URL, collection=name)
    return QdrantClientStore(QdrantClient(location=":memory:"), "shared")
