"""One contract, every adapter: Qdrant Edge (the embedded default), qdrant-client in memory
(the server's stand-in), qdrant-client's embedded mode, and a real server when
DOCSYNC_TEST_QDRANT_URL is set."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from qdrant_client import QdrantClient, models

from docsync.plugin.errors import (
    CollectionMissingError,
    ProfileMismatchError,
    StoreError,
    StoreFullError,
    StoreLockedError,
    StoreRequestError,
    StoreUnavailableError,
)
from docsync.plugin.profile import CHUNKER_VERSION, EmbeddingProfile
from docsync.plugin.store import Point, Store
from docsync.plugin.stores.edge import EdgeStore
from docsync.plugin.stores.qdrant import QdrantClientStore
from tests.conftest import CORPUS, held_elsewhere

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
DOCSYNC = str(Path(sys.executable).with_name("docsync"))


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
        # Opened twice in one process: the message says so, and blames no other process.
        twice = "already open in this process" if kind == "edge" else "in use by another"
        with pytest.raises(StoreLockedError, match=twice):
            connect(kind, tmp_path / "s", "c")
    finally:
        first.close()
    connect(kind, tmp_path / "s", "c").close()  # free again
    if kind == "edge":
        with (
            held_elsewhere(tmp_path / "s", "c"),
            pytest.raises(StoreLockedError, match="in use by another process"),
        ):
            connect(kind, tmp_path / "s", "c")


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
    # fixed: nothing listens on port 9, the timeout only bounds the refusal
    client = QdrantClient(url="http://127.0.0.1:9", timeout=2, check_compatibility=False)
    store = QdrantClientStore(client, "c", description="server", server=True, attempts=2)
    with pytest.raises(StoreUnavailableError, match="unreachable"):
        store.ping()


def test_edge_optimizes_once_enough_points_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    import docsync.plugin.stores.edge
    import docsync.plugin.stores.edge_shard

    monkeypatch.setattr(docsync.plugin.stores.edge, "OPTIMIZE_MIN_UNINDEXED", 1200)
    # 2,000 vectors past the index threshold (the engine's own needs 8,000 and 4x the time)
    monkeypatch.setattr(docsync.plugin.stores.edge_shard, "INDEXING_THRESHOLD_KB", 750)
    profile = replace(PROFILE, dimension=384)
    vectors = np.random.default_rng(1).standard_normal((2000, 384)).tolist()
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


def test_edge_creates_collections_with_cold_files(tmp_path: Path) -> None:
    """The engine's files are read on use, not loaded whole whenever a segment opens: the
    index build opens a second copy of every point, which would count twice against the
    worker's memory (the peak of a large sync; bench/memory.py measures it)."""
    store = EdgeStore.connect(path=tmp_path / "s", collection="c")
    try:
        store.open(replace(PROFILE, keyword="bm25"), create=True)
    finally:
        store.close()
    config = json.loads((tmp_path / "s" / "c" / "shard" / "edge_config.json").read_text())
    assert config["payload_memory"] == "cold"
    assert config["vectors"][""]["memory"] == "cold"
    assert config["sparse_vectors"]["keyword"]["memory"] == "cold"


def _fake_statvfs(free: int) -> Callable[[object], os.statvfs_result]:
    def statvfs(_: object) -> os.statvfs_result:
        # (bsize, frsize, blocks, bfree, bavail, files, ffree, favail, flag, namemax)
        return os.statvfs_result((4096, 4096, 1 << 20, free // 4096, free // 4096, 0, 0, 0, 0, 255))

    return statvfs


def test_edge_refuses_to_write_into_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write into the engine's memory-mapped files on a full disk is a SIGBUS: the store
    checks the free space first and raises an outage the daemon waits out."""
    import docsync.plugin.stores.edge

    store = filled(EdgeStore.connect(path=tmp_path / "s", collection="c"))
    try:
        monkeypatch.setattr(docsync.plugin.stores.edge_folder.os, "statvfs", _fake_statvfs(5 << 20))
        with pytest.raises(StoreFullError, match=r"out of space: 5\.0 MiB free") as caught:
            store.upsert([point(9, "c.md", [0, 0, 0, 1])])
        assert isinstance(caught.value, StoreUnavailableError)  # retried like an outage
        assert str(tmp_path / "s") in str(caught.value)
        with pytest.raises(StoreFullError):
            store.set_payload([pid(1)], {"file_stat": "x"})
        assert store.count() == 3  # reading goes on
        monkeypatch.setattr(docsync.plugin.stores.edge_folder.os, "statvfs", _fake_statvfs(1 << 30))
        store.upsert([point(9, "c.md", [0, 0, 0, 1])])  # space is back: writes resume
        assert store.count() == 4
    finally:
        store.close()


def test_edge_maps_the_engines_enospc(tmp_path: Path) -> None:
    store = EdgeStore.connect(path=tmp_path / "s", collection="c")
    try:
        error = store._engine_error("Service runtime error: No space left on device (os error 28)")
        assert isinstance(error, StoreFullError)
    finally:
        store.close()


def test_edge_takes_a_descriptor_closed_under_a_request_for_an_outage(tmp_path: Path) -> None:
    """A channel to a shard process closed by the thread that found it dead: the request
    is asked again later, never an error that ends a daemon (bench/chaos.py saw one)."""
    store = EdgeStore.connect(path=tmp_path / "s", collection="c")
    try:
        for code in (errno.EBADF, errno.EPIPE, errno.ECONNRESET):
            assert isinstance(store._os_error(OSError(code, "x")), StoreUnavailableError)
        assert not isinstance(store._os_error(OSError(errno.EIO, "x")), StoreUnavailableError)
    finally:
        store.close()


def _mount_tmpfs(where: Path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if result.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "6m")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_sync_into_a_real_full_disk_is_one_error_line(
    small_disk: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSYNC_")}
    env.update(DOCSYNC_MODEL=str(tiny_model_dir), DOCSYNC_QDRANT_PATH=str(small_disk / "q"))
    result = subprocess.run(
        [DOCSYNC, "sync", str(CORPUS / "using")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr  # not 135, SIGBUS
    errors = [line for line in result.stderr.splitlines() if line.startswith("docsync: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert "out of space" in errors[0] and str(small_disk / "q") in errors[0]
    assert "MiB free" in errors[0]


@pytest.fixture
def read_only_store(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "ro"
    _mount_tmpfs(disk, "200m")
    filled(EdgeStore.connect(path=disk / "q", collection="docsync")).close()
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    yield disk / "q"
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_read_only_store_is_one_clear_error(
    read_only_store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine opens its files for writing even to read them: on a read-only mount every
    command says so in one line (no traceback from opening `.lock`)."""
    from docsync.worker.cli import cli

    monkeypatch.setenv("DOCSYNC_QDRANT_PATH", str(read_only_store))
    for command in (["status"], ["export"], ["sync", str(CORPUS / "using")]):
        assert cli(*command) == 2
        out, err = capsys.readouterr()
        errors = [line for line in err.splitlines() if line.startswith("docsync: error:")]
        assert len(errors) == 1 and "Traceback" not in err, err
        assert str(read_only_store) in errors[0] and "Read-only file system" in errors[0]
        assert out == ""  # export printed no header before failing


def test_a_reader_opens_a_lock_file_it_may_not_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock file this user can only read: readers open it read-only (flock works on it),
    writers get a clear error, not a traceback."""
    import docsync.plugin.stores.edge

    filled(EdgeStore.connect(path=tmp_path / "s", collection="c")).close()
    real_open = os.open

    def no_writing(path: object, flags: int, *args: int) -> int:
        if str(path).endswith(".lock") and flags & (os.O_RDWR | os.O_WRONLY):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(docsync.plugin.stores.edge_folder.os, "open", no_writing)
    reader = EdgeStore.connect(path=tmp_path / "s", collection="c", reading=True)
    try:
        assert reader.count() == 3
        with pytest.raises(StoreLockedError):  # still one process at a time
            EdgeStore.connect(path=tmp_path / "s", collection="c", reading=True)
        with pytest.raises(StoreError, match="reading only"):
            reader.upsert([point(9, "c.md", [0, 0, 0, 1])])
    finally:
        reader.close()
    with pytest.raises(StoreError, match=r"is not writable \(Permission denied"):
        EdgeStore.connect(path=tmp_path / "s", collection="c")


def test_store_files_are_owner_only(tmp_path: Path) -> None:
    """The store holds the documents' text: folders 0700, docsync's own files 0600."""
    old = os.umask(0o022)
    try:
        filled(EdgeStore.connect(path=tmp_path / ".docsync" / "qdrant", collection="c")).close()
    finally:
        os.umask(old)
    root = tmp_path / ".docsync" / "qdrant"
    modes = {
        p: stat.S_IMODE(p.stat().st_mode)
        for p in (
            tmp_path / ".docsync",
            root,
            root / "c",
            root / ".lock",
            root / "c" / "profile.json",
        )
    }
    assert modes == {
        tmp_path / ".docsync": 0o700,
        root: 0o700,
        root / "c": 0o700,
        root / ".lock": 0o600,
        root / "c" / "profile.json": 0o600,
    }


def test_every_file_a_sync_creates_is_owner_only(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The engine's own files (segments, WAL) too, which it creates with the process's umask."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSYNC_")}
    env.update(DOCSYNC_MODEL=str(tiny_model_dir))
    subprocess.run(
        ["sh", "-c", f'umask 022 && exec "{DOCSYNC}" sync "{CORPUS / "using"}"'],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        check=True,
    )
    store = tmp_path / ".docsync"
    created = [store, *store.rglob("*")]
    assert len(created) > 10
    shared = [p for p in created if stat.S_IMODE(p.stat().st_mode) & 0o077]
    assert shared == []


def test_reading_a_missing_collection_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    reader = EdgeStore.connect(path=tmp_path / "s", collection="c", reading=True)
    with pytest.raises(CollectionMissingError):
        reader.read_profile()
    reader.close()
    assert list((tmp_path / "s").iterdir()) == []  # no lock file, no collection folder


def test_server_credentials_are_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    from docsync.plugin.settings import Settings

    url = "http://admin:s3cret@127.0.0.1:9/?api_key=k3y"
    assert "s3cret" not in Settings(qdrant_url=url).store_description()
    store = QdrantClientStore.connect(url=url, collection="c", attempts=1)
    try:
        assert "s3cret" not in store.description and "k3y" not in store.description
        with pytest.raises(StoreUnavailableError) as caught:
            store.ping()
        assert "s3cret" not in str(caught.value) and "k3y" not in str(caught.value)
        assert "127.0.0.1:9/?api_key=***)" in str(caught.value)
    finally:
        store.close()


def test_a_writer_gives_a_server_collection_the_indexes_it_lacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A collection made before `format` and `tags` were indexed gets their indexes when a
    worker opens it (qdrant-client's in-memory mode stands in for the server)."""
    client = QdrantClient(location=":memory:")
    old = QdrantClientStore(client, "c", server=True)
    monkeypatch.setattr("docsync.plugin.stores.qdrant.INDEXED_FIELDS", ("root", "path"))
    old.open(PROFILE, create=True)
    monkeypatch.undo()
    created: list[str] = []
    real = client.create_payload_index

    def spy(collection: str, field_name: str, **kwargs: object) -> object:
        created.append(field_name)
        return real(collection, field_name=field_name, **kwargs)  # type: ignore[arg-type]

    real_get = client.get_collection

    def get_collection(name: str) -> object:  # in-memory mode keeps no index list
        info = real_get(name)
        info.payload_schema = {"root": {}, "path": {}}  # type: ignore[assignment]
        return info

    monkeypatch.setattr(client, "create_payload_index", spy)
    monkeypatch.setattr(client, "get_collection", get_collection)
    QdrantClientStore(client, "c", server=True).open(PROFILE, create=True)
    assert "format" in created and "tags" in created and "root" not in created
