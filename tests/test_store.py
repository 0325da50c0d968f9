"""One contract, every adapter: Qdrant Edge (the embedded default), qdrant-client in memory
(the server's stand-in), qdrant-client's embedded mode, and a real server when
DOCSYNC_TEST_QDRANT_URL is set."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from qdrant_client import QdrantClient, models

from plugin.edge_store import EdgeStore
from plugin.errors import (
    CollectionMissingError,
    ProfileMismatchError,
    StoreLockedError,
    StoreRequestError,
    StoreUnavailableError,
)
from plugin.profile import CHUNKER_VERSION, EmbeddingProfile
from plugin.qdrant_store import QdrantClientStore
from plugin.store import Point, Store

PROFILE = EmbeddingProfile(
    model="test-model",
    revision=None,
    dimension=4,
    distance="cosine",
    query_prefix="q: ",
    passage_prefix="",
    chunker=CHUNKER_VERSION,
)
SERVER_URL = os.environ.get("DOCSYNC_TEST_QDRANT_URL")
KINDS = ["edge", "memory", "client-embedded", *(["server"] if SERVER_URL else [])]
EMBEDDED = ["edge", "client-embedded"]


def connect(kind: str, path: Path, collection: str) -> Store:
    if kind == "edge":
        return EdgeStore.connect(path=path, collection=collection)
    if kind == "memory":
        return QdrantClientStore.connect(url=":memory:", collection=collection)
    if kind == "client-embedded":
        return QdrantClientStore.connect(path=path, collection=collection)
    return QdrantClientStore.connect(url=SERVER_URL, collection=collection)


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    collection = f"contract-{uuid.uuid4().hex[:8]}"
    s = connect(request.param, tmp_path / "store", collection)
    yield s
    if request.param == "server":
        s._client.delete_collection(collection)  # type: ignore[attr-defined]
    s.close()


def make_foreign_collection(store: Store) -> None:
    """A collection of the right shape that docsync did not make (no profile)."""
    if isinstance(store, EdgeStore):
        store._dir.mkdir(parents=True)
        (store._dir / "shard").mkdir()
        return
    assert isinstance(store, QdrantClientStore)
    store._client.create_collection(
        store.collection,
        vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE),
    )


def pid(n: int) -> str:
    return str(uuid.UUID(int=n))


def point(n: int, path: str, vector: list[float], **extra: object) -> Point:
    payload = {"root": "/r", "path": path, "path_prefixes": [path.split("/")[0], path], **extra}
    return Point(id=pid(n), payload=payload, vector=vector)


def filled(store: Store) -> Store:
    store.open(PROFILE, create=True)
    store.upsert(
        [
            point(1, "a/x.md", [1, 0, 0, 0], embed_hash="h1"),
            point(2, "a/x.md", [0, 1, 0, 0], embed_hash="h2"),
            point(3, "b/y.md", [0, 0, 1, 0], embed_hash="h3"),
        ]
    )
    return store


def test_create_writes_profile(store: Store) -> None:
    store.open(PROFILE, create=True)
    assert store.read_profile() == PROFILE
    store.open(PROFILE, create=False)  # same profile: fine
    assert store.count() == 0


def test_missing_collection(store: Store) -> None:
    with pytest.raises(CollectionMissingError, match="docsync sync"):
        store.open(PROFILE, create=False)


@pytest.mark.parametrize(
    "change", [{"model": "other-model"}, {"query_prefix": ""}, {"dimension": 8}]
)
def test_profile_mismatch_is_refused(store: Store, change: dict[str, object]) -> None:
    filled(store)
    with pytest.raises(ProfileMismatchError, match="another embedding profile"):
        store.open(replace(PROFILE, **change), create=True)  # type: ignore[arg-type]
    assert store.count() == 3


def test_foreign_collection_is_refused(store: Store) -> None:
    make_foreign_collection(store)
    with pytest.raises(ProfileMismatchError, match="not made by docsync"):
        store.open(PROFILE, create=True)


def test_upsert_retrieve_scroll_count_delete(store: Store) -> None:
    filled(store)
    assert store.count() == 3
    assert store.count({"path": "a/x.md"}) == 2
    got = store.retrieve([pid(1), pid(3), pid(99)], with_vectors=True)
    assert {p.id for p in got} == {pid(1), pid(3)}
    assert all(p.vector is not None and len(p.vector) == 4 for p in got)
    assert {p.id for p in store.scroll({"embed_hash": ["h1", "h3"]})} == {pid(1), pid(3)}
    (only,) = store.scroll({"path": "b/y.md"}, fields=["path"])
    assert only.payload == {"path": "b/y.md"} and only.vector is None
    store.delete([pid(1), pid(2)])
    assert [p.id for p in store.scroll({})] == [pid(3)]


def test_upsert_replaces_by_id(store: Store) -> None:
    filled(store)
    store.upsert([point(1, "a/x.md", [0, 0, 0, 1], embed_hash="new")])
    assert store.count() == 3
    (p,) = store.retrieve([pid(1)])
    assert p.payload["embed_hash"] == "new"


def test_set_payload_changes_only_the_given_fields(store: Store) -> None:
    filled(store)
    before = {p.id: p for p in store.scroll({}, with_vectors=True)}
    store.set_payload([pid(1), pid(2)], {"file_stat": "12:34"})
    store.set_payload([], {"file_stat": "never"})
    after = {p.id: p for p in store.scroll({}, with_vectors=True)}
    for n in (1, 2):
        assert after[pid(n)].payload == {**before[pid(n)].payload, "file_stat": "12:34"}
        assert after[pid(n)].vector == pytest.approx(before[pid(n)].vector)
    assert after[pid(3)].payload == before[pid(3)].payload
    assert store.count({"file_stat": "12:34"}) == 2


def test_search_with_filter(store: Store) -> None:
    filled(store)
    hits = store.search([1, 0.1, 0, 0], limit=2)
    assert next(h.id for h in hits) == pid(1)
    assert hits[0].score == pytest.approx(0.995, abs=0.01)
    scoped = store.search([1, 0.1, 0, 0], limit=5, match={"path_prefixes": "b"})
    assert [h.id for h in scoped] == [pid(3)]


def test_scroll_pages_through_everything(store: Store) -> None:
    store.open(PROFILE, create=True)
    store.upsert([point(i, f"p{i}.md", [1, i, 0, 0]) for i in range(1, 1201)])
    assert len({p.id for p in store.scroll({"root": "/r"}, fields=[])}) == 1200


def test_bad_request_is_not_retried_and_says_so(store: Store) -> None:
    store.open(PROFILE, create=True)
    with pytest.raises(StoreRequestError, match="refused"):
        store.upsert([point(1, "a.md", [1.0, 2.0])])  # wrong dimension


@pytest.mark.parametrize("kind", EMBEDDED)
def test_embedded_store_serves_one_process(tmp_path: Path, kind: str) -> None:
    first = connect(kind, tmp_path / "s", "c")
    try:
        with pytest.raises(StoreLockedError, match="in use by another process"):
            connect(kind, tmp_path / "s", "c")
    finally:
        first.close()
    connect(kind, tmp_path / "s", "c").close()  # free again


@pytest.mark.parametrize("kind", EMBEDDED)
def test_embedded_store_persists(tmp_path: Path, kind: str) -> None:
    filled(connect(kind, tmp_path / "s", "c")).close()
    reopened = connect(kind, tmp_path / "s", "c")
    try:
        reopened.open(PROFILE, create=False)
        assert reopened.read_profile() == PROFILE
        assert reopened.count() == 3
        assert reopened.search([0, 0, 1, 0], limit=1)[0].id == pid(3)
    finally:
        reopened.close()


def test_edge_optimizes_only_when_enough_points_wait(tmp_path: Path) -> None:
    store = EdgeStore.connect(path=tmp_path / "s", collection="c")
    try:
        filled(store)
        assert store.optimize() is False  # three points: brute force is faster
    finally:
        store.close()


def test_unreachable_server_is_transient_and_bounded() -> None:
    client = QdrantClient(url="http://127.0.0.1:9", timeout=2, check_compatibility=False)
    store = QdrantClientStore(client, "c", description="server", server=True, attempts=2)
    with pytest.raises(StoreUnavailableError, match="unreachable"):
        store.ping()


def test_edge_optimizes_once_enough_points_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    import plugin.edge_store

    monkeypatch.setattr(plugin.edge_store, "OPTIMIZE_MIN_UNINDEXED", 5000)
    profile = replace(PROFILE, dimension=384)
    vectors = np.random.default_rng(1).standard_normal((8000, 384)).tolist()
    store = EdgeStore.connect(path=tmp_path / "s", collection="c")
    try:
        store.open(profile, create=True)
        store.upsert(
            [Point(id=pid(i + 1), payload={"k": i}, vector=v) for i, v in enumerate(vectors)]
        )
        assert store.optimize() is True
        assert store.optimize() is False  # nothing left to index
        assert store.search(vectors[7], limit=1)[0].id == pid(8)
    finally:
        store.close()
