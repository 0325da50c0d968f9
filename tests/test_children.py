"""DESIGN invariant 12, the embedded store's children: the process holding a daemon's shard
(`docsync.plugin.stores.edge_host`) and the index builder (`python -m
docsync.plugin.stores.edge_index`) may
die at any moment (kill -9, out of memory, a bus error on a full disk); the store starts
another, asks again, and nothing is lost; what it cannot survive is an outage the daemon
retries, never an error that ends it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import ShardProcessError, StoreFullError, StoreUnavailableError
from docsync.plugin.profile import EmbeddingProfile
from docsync.plugin.store import Point
from docsync.plugin.stores import edge as edge_store
from docsync.plugin.stores import edge_folder, edge_index
from docsync.plugin.stores.edge import EdgeStore
from docsync.plugin.stores.edge_count import LEDGER_FILE
from docsync.plugin.stores.edge_folder import hold_shard, let_go
from docsync.plugin.stores.edge_host import HostedShard
from docsync.plugin.stores.edge_shard import LocalShard
from docsync.worker.daemon import Daemon
from docsync.worker.pipeline import SyncOptions
from tests.conftest import CORPUS, HANG
from tests.test_daemon import FAST, Silent, exact

DIMENSION = 8
PROFILE = EmbeddingProfile("m", None, DIMENSION, "cosine", "", "", "c")


def poll(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.05)


def points(first: int, n: int) -> list[Point]:
    rng = np.random.default_rng(first)
    vectors = rng.standard_normal((n, DIMENSION)).tolist()
    return [
        Point(str(uuid.UUID(int=first + i + 1)), {"n": first + i}, v, None)
        for i, v in enumerate(vectors)
    ]


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[EdgeStore]:
    store = EdgeStore.connect(path=tmp_path / "store", collection="docsync", serving=True)
    store.open(PROFILE, create=True)
    yield store
    store.close()


def child_of(store: EdgeStore) -> int:
    shard = store._shard
    assert isinstance(shard, HostedShard) and shard.alive
    return shard._child.pid


def test_writes_land_when_the_shard_process_is_killed_between_them(serving: EdgeStore) -> None:
    serving.upsert(points(0, 100))
    os.kill(child_of(serving), signal.SIGKILL)
    serving.upsert(points(100, 100))
    os.kill(child_of(serving), signal.SIGKILL)
    serving.delete([p.id for p in points(0, 10)])
    os.kill(child_of(serving), signal.SIGKILL)
    serving.set_payload([p.id for p in points(10, 10)], {"tag": "x"})
    assert serving.count() == 190
    assert serving.count({"tag": "x"}) == 10


def test_writes_land_when_the_shard_process_is_killed_during_them(
    serving: EdgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child is killed after a request was sent, before it answered (whether it applied
    it or not: the request is asked again)."""
    real_answer = HostedShard._answer
    asked = [0]

    def killed_while_answering(self: HostedShard) -> Any:
        asked[0] += 1
        if asked[0] % 7 == 0:
            os.kill(self._child.pid, signal.SIGKILL)
        return real_answer(self)

    monkeypatch.setattr(HostedShard, "_answer", killed_while_answering)
    serving.upsert(points(0, 1000))  # 16 batches: two of them meet a dead child
    serving.delete([p.id for p in points(0, 100)])
    assert asked[0] > 14
    assert serving.count() == 900
    assert {p.id for p in serving.retrieve([p.id for p in points(900, 100)])} == {
        p.id for p in points(900, 100)
    }


def test_a_child_that_dies_again_is_an_outage_to_retry(
    serving: EdgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_ask = HostedShard._ask

    def always_killed(self: HostedShard, *request: Any) -> Any:
        # Before the request is sent: a child killed after it could answer may still have
        # answered (SIGKILL lands at its next entry into the kernel), and the test raced.
        os.kill(self._child.pid, signal.SIGKILL)
        return real_ask(self, *request)

    serving.upsert(points(0, 10))
    monkeypatch.setattr(HostedShard, "_ask", always_killed)
    with pytest.raises(StoreUnavailableError) as raised:
        serving.upsert(points(10, 10))
    assert isinstance(raised.value, ShardProcessError)
    assert "signal 9" in str(raised.value)
    monkeypatch.setattr(HostedShard, "_ask", real_ask)
    serving.upsert(points(10, 10))
    assert serving.count() == 20


def test_the_daemon_outlives_its_shard_process(
    tmp_path: Path, tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(CORPUS / "using", docs)
    store = EdgeStore.connect(path=tmp_path / "store", collection="docsync", serving=True)
    daemon = Daemon(
        [docs], store=store, encoder=tiny_encoder, sync_options=SyncOptions(), options=FAST
    )
    real_answer = HostedShard._answer
    kills = [0]

    def dying(self: HostedShard) -> Any:
        # Each child dies in its second request: every write meets a death, some two.
        if kills[0] < 8 and getattr(self, "_asked", 0) == 1:
            kills[0] += 1
            os.kill(self._child.pid, signal.SIGKILL)
        self._asked = getattr(self, "_asked", 0) + 1  # type: ignore[attr-defined]
        return real_answer(self)

    monkeypatch.setattr(HostedShard, "_answer", dying)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        poll(daemon.ready.is_set)
        (docs / "mac.rst").write_text("Macs\n====\n\nRewritten while its store dies.\n")
        (docs / "unix.rst").unlink()
        poll(lambda: kills[0] >= 8 and exact(store, docs, tiny_encoder))
        assert thread.is_alive()
    finally:
        daemon.stop()
        thread.join(timeout=HANG)
        store.close()
    assert not thread.is_alive()


def killed_at_open(monkeypatch: pytest.MonkeyPatch, kills: list[int]) -> None:
    """The next `kills[0]` shard processes are killed as they open the shard (before they
    say it is open)."""
    real_answer = HostedShard._answer

    def answer(self: HostedShard) -> Any:
        if not getattr(self, "_opened", False):
            self._opened = True  # type: ignore[attr-defined]
            if kills[0] > 0:
                kills[0] -= 1
                os.kill(self._child.pid, signal.SIGKILL)
        return real_answer(self)

    monkeypatch.setattr(HostedShard, "_answer", answer)


@pytest.mark.parametrize("existing", [False, True])
def test_a_shard_process_killed_as_it_opens_is_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    """`open` (and `_create`, `ping`) started the child directly: its death there was an
    error that ended a starting daemon (exit 2)."""
    path = tmp_path / "store"
    if existing:
        store = EdgeStore.connect(path=path, collection="docsync")
        store.open(PROFILE, create=True)
        store.upsert(points(0, 10))
        store.close()
    kills = [1]
    killed_at_open(monkeypatch, kills)
    store = EdgeStore.connect(path=path, collection="docsync", serving=True)
    try:
        store.ping()
        store.open(PROFILE, create=True)
        assert kills == [0]
        store.upsert(points(10, 10))
        assert store.count() == (20 if existing else 10)
        kills[0] = 2  # twice in a row: an outage to wait out
        os.kill(child_of(store), signal.SIGKILL)
        with pytest.raises(ShardProcessError, match="signal 9"):
            store.count()
        assert store.count() == (20 if existing else 10)
    finally:
        store.close()


def test_a_starting_daemon_waits_out_shard_processes_that_die_as_they_open(
    tmp_path: Path, tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`docsync run` opens its store through `Daemon.wait_for_store`: deaths there are an
    outage it waits out, not an exit."""
    docs = tmp_path / "docs"
    shutil.copytree(CORPUS / "using", docs)
    kills = [5]  # the first start and its retry, twice, and once more
    killed_at_open(monkeypatch, kills)
    store = EdgeStore.connect(path=tmp_path / "store", collection="docsync", serving=True)
    daemon = Daemon(
        [docs], store=store, encoder=tiny_encoder, sync_options=SyncOptions(), options=FAST
    )
    thread = threading.Thread(target=daemon.run, daemon=True)
    try:
        assert daemon.wait_for_store(tiny_encoder.profile())
        assert kills == [0]
        assert store.read_profile() == tiny_encoder.profile()
        thread.start()
        poll(lambda: daemon.ready.is_set() and exact(store, docs, tiny_encoder))
    finally:
        daemon.stop()
        if thread.is_alive():
            thread.join(timeout=HANG)
        store.close()


@pytest.mark.parametrize("engine", ["takes the repeat", "refuses the repeat"])
def test_a_keyword_vector_added_by_a_process_that_died_is_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    """The shard process adds the keyword vector and dies before it answers: the request is
    asked again of the next, which finds it there."""
    store = EdgeStore.connect(path=tmp_path / "store", collection="docsync", serving=True)
    store.open(PROFILE, create=True)  # without keyword vectors
    real_answer = HostedShard._answer
    asked: list[str] = []
    pending = [""]  # the request this answer is for ("": a process saying it opened)
    real_ask = HostedShard._ask

    def ask(self: HostedShard, request: Any) -> Any:
        name = type(request).__name__
        asked.append(name)
        pending[0] = name
        return real_ask(self, request)

    def answer(self: HostedShard) -> Any:
        value = real_answer(self)
        request, pending[0] = pending[0], ""
        if request == "AddKeywordVector":
            if asked.count("AddKeywordVector") == 1:  # applied, then died unanswered
                os.kill(self._child.pid, signal.SIGKILL)
                raise self._gone()
            if engine == "refuses the repeat":
                raise Exception("Wrong input: sparse vector keyword already exists")
        return value

    monkeypatch.setattr(HostedShard, "_ask", ask)
    monkeypatch.setattr(HostedShard, "_answer", answer)
    try:
        store.add_keyword_vectors()
        assert asked.count("AddKeywordVector") == 2
        assert store.has_keyword_vectors()
        store.upsert(points(0, 10))
        assert store.count() == 10
    finally:
        store.close()


class FailingBuilds:
    """A store whose index builds fail with `error` (the rest is the real store)."""

    def __init__(self, inner: EdgeStore, error: Exception) -> None:
        self._inner = inner
        self.error = error
        self.builds = 0

    def optimize(self, **_: Any) -> bool:
        self.builds += 1
        raise self.error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.mark.parametrize(
    "error", [StoreFullError("out of space"), ShardProcessError("ended (signal 7)")]
)
def test_a_failed_index_build_backs_off_and_never_ends_the_daemon(
    tmp_path: Path, tiny_encoder: Encoder, caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    now = [0.0]
    store = FailingBuilds(EdgeStore.connect(path=tmp_path / "store", collection="c"), error)
    daemon = Daemon(
        [tmp_path],
        store=store,  # type: ignore[arg-type]
        encoder=tiny_encoder,
        sync_options=SyncOptions(),
        options=FAST,
        watcher_factory=Silent,
        clock=lambda: now[0],
    )
    daemon.ready.set()
    for _ in range(3):
        daemon.step()  # raises nothing
    assert store.builds == 1
    waits = []
    for _ in range(8):  # 0.01, 0.02, ... up to FAST.backoff_max
        start, builds = now[0], store.builds
        while store.builds == builds:
            now[0] += 0.005
            daemon.step()
        waits.append(round(now[0] - start, 3))
    assert waits[:4] == pytest.approx([0.01, 0.02, 0.04, 0.08], abs=0.006)
    assert max(waits) <= FAST.backoff_max + 0.006
    said = [r for r in caplog.records if "index build failed" in r.getMessage()]
    assert len(said) == 1 and str(error) in said[0].getMessage()
    store.close()


@pytest.mark.parametrize("death", ["exit 1", "kill -9 $$"])
def test_a_builder_that_keeps_failing_is_tried_again_only_after_a_backoff(
    tmp_path: Path,
    tiny_encoder: Encoder,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    death: str,
) -> None:
    """A builder that fails (an error, or killed) made `optimize` return False, so an idle
    daemon copied the whole shard and started another at each turn of its loop."""
    now = [0.0]
    store = EdgeStore.connect(path=tmp_path / "store", collection="c")
    store.open(PROFILE, create=True)
    store.upsert(points(0, 20))
    monkeypatch.setattr(edge_store, "OPTIMIZE_MIN_UNINDEXED", 1)
    real_popen = edge_index.subprocess.Popen
    builds: list[str] = []

    def failing(args: list[str], **kwargs: Any) -> Any:
        builds.append(Path(args[3]).name)
        return real_popen(["sh", "-c", death], **kwargs)

    monkeypatch.setattr(edge_index.subprocess, "Popen", failing)
    daemon = Daemon(
        [tmp_path],
        store=store,
        encoder=tiny_encoder,
        sync_options=SyncOptions(),
        options=FAST,
        watcher_factory=Silent,
        clock=lambda: now[0],
    )
    daemon.ready.set()
    try:
        for _ in range(5):
            daemon.step()  # raises nothing
        assert len(builds) == 1
        now[0] += FAST.backoff_min + 0.001
        daemon.step()
        assert len(builds) == 2  # tried again after the backoff, a killed builder too
        for _ in range(5):
            daemon.step()
        assert len(builds) == 2
        said = [r.getMessage() for r in caplog.records if "index build failed" in r.getMessage()]
        how = "exit status 1" if death == "exit 1" else "signal 9"
        assert len(said) == 1 and how in said[0]
        left = sorted(p.name for p in store._dir.iterdir() if p.name != LEDGER_FILE)
        # No copy left behind (the lock is the open shard's own)
        assert left == ["profile.json", "shard", "shard.0", "shard.0.lock"]
        assert store.count() == 20
    finally:
        store.close()


def test_the_space_a_copy_needs_is_counted_in_allocated_blocks(tmp_path: Path) -> None:
    """The engine's files are sparse: what a copy needs is what they take on disk."""
    folder = tmp_path / "shard.0"
    (folder / "segments").mkdir(parents=True)
    with open(folder / "segments" / "vectors.mmap", "wb") as sparse:
        sparse.truncate(1 << 30)  # 1 GiB apparent, nothing allocated
        sparse.write(b"x" * 8192)
    (folder / "wal").write_bytes(b"y" * 100_000)
    assert 100_000 <= edge_folder.folder_bytes(folder) < 1 << 20


def builders_of(shard: Path) -> list[int]:
    """The pids of the index builders working on `shard` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if (
            b"docsync.plugin.stores.edge_index" in argv
            and str(shard).encode() in argv
            and state != "Z"
        ):
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc (Linux)")
def test_the_index_builder_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    n, dimension = 8000, 384  # a build of some seconds: it is killed long before its end
    store = EdgeStore.connect(path=tmp_path / "store", collection="docsync")
    store.open(EmbeddingProfile("m", None, dimension, "cosine", "", "", "c"), create=True)
    vectors = np.random.default_rng(5).standard_normal((n, dimension)).tolist()
    store.upsert([Point(str(uuid.UUID(int=i + 1)), {}, v, None) for i, v in enumerate(vectors)])
    shard = store._live()
    store.close()
    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; "
            "from docsync.plugin.stores.edge_index import run_indexer; "
            "run_indexer(Path(sys.argv[1]), lambda: False)",
            str(shard),
        ]
    )
    poll(lambda: bool(builders_of(shard)))
    assert edge_folder.held(shard)  # a restarted daemon would leave this folder alone
    os.kill(starter.pid, signal.SIGKILL)
    starter.wait()
    poll(lambda: not builders_of(shard))
    # A dying process's command line empties before its descriptors close (the kernel lets
    # its memory go first): its lock goes a moment after it leaves `builders_of`.
    poll(lambda: not edge_folder.held(shard))
    built = LocalShard.load(str(shard))
    try:  # it was killed, not left to finish the build
        assert built.unindexed(keyword=False) == n
    finally:
        built.close()


def gone(pid: int) -> bool:
    """Whether process `pid` has ended (a zombie nobody reaped has ended too)."""
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) == "Z"
    except (OSError, IndexError):
        return True


# Opens a serving store, starts its shard process on a long request (an index build of some
# seconds), prints the shard process's pid and waits to be killed.
HOLDER = """
import sys, time, uuid
from pathlib import Path
import numpy as np
from docsync.plugin.profile import EmbeddingProfile
from docsync.plugin.store import Point
from docsync.plugin.stores.edge import EdgeStore
from docsync.plugin.stores.shard_requests import Optimize
store = EdgeStore.connect(path=Path(sys.argv[1]), collection="docsync", serving=True)
store.open(EmbeddingProfile("m", None, 384, "cosine", "", "", "c"), create=True)
n = int(sys.argv[2])
vectors = np.random.default_rng(5).standard_normal((n, 384)).tolist()
store.upsert([Point(str(uuid.UUID(int=i + 1)), {}, v, None) for i, v in enumerate(vectors)])
if sys.argv[3] == "busy":
    store._shard._child.send(Optimize())  # in the socket before this process dies
print(store._shard._child.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("serving", [True, False])
def test_a_store_opened_after_a_kill_waits_for_the_old_shard_process(
    tmp_path: Path, serving: bool
) -> None:
    """A daemon killed with -9 leaves its shard process to end the request it is in (here an
    index build of seconds), then flush and close the shard: a store opened meanwhile (a
    restarted daemon) opened the same shard at once, two engines on one shard."""
    n = 8000
    path = tmp_path / "store"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(n), "busy"], stdout=subprocess.PIPE
    )
    assert holder.stdout is not None
    old = int(holder.stdout.readline())
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    assert not gone(old)  # still building: it has not read the end of its socket yet
    store = EdgeStore.connect(path=path, collection="docsync", serving=serving)
    try:
        store.open(EmbeddingProfile("m", None, 384, "cosine", "", "", "c"), create=False)
        # The open waited for the old shard process to end its build and close the shard:
        # it sees the index that build made.
        assert store._use(lambda shard: shard.unindexed(keyword=False)) == 0
        assert store.count() == n
        ids = [str(uuid.UUID(int=i + 1)) for i in (0, n // 2, n - 1)]
        assert [p.id for p in store.retrieve(ids)] == ids
    finally:
        store.close()
    poll(lambda: gone(old))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_an_idle_shard_process_ends_with_its_parent(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "store"), "10", "idle"],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None
    old = int(holder.stdout.readline())
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    poll(lambda: gone(old))


def test_a_shard_held_too_long_is_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "store"
    store = EdgeStore.connect(path=path, collection="docsync")
    store.open(PROFILE, create=True)
    shard = store._live()
    with pytest.raises(StoreUnavailableError, match="still held by another process"):
        hold_shard(str(shard), timeout=0.2)  # fixed: meant to fire, this store has it open
    store.close()
    held = hold_shard(str(shard), timeout=HANG)
    assert held is not None
    let_go(held)
    assert not Path(held.path).exists()  # no lock file beside a shard nobody holds


def test_a_folder_a_live_builder_holds_is_neither_deleted_nor_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store"
    store = EdgeStore.connect(path=path, collection="docsync")
    store.open(PROFILE, create=True)
    store.upsert(points(0, 20))
    store.close()
    folder = path / "docsync"
    shutil.copytree(folder / "shard.0", folder / "shard.1")
    held = edge_folder.hold(folder / "shard.1")  # as a builder of a killed daemon would
    copies: list[str] = []

    def recorded(copy: Path, should_stop: Callable[[], bool]) -> bool:
        copies.append(copy.name)
        return False

    monkeypatch.setattr(edge_store, "OPTIMIZE_MIN_UNINDEXED", 1)
    monkeypatch.setattr(edge_index, "run_indexer", recorded)
    store = EdgeStore.connect(path=path, collection="docsync", serving=True)
    try:
        assert (folder / "shard.1").is_dir()
        store.open(PROFILE, create=False)
        store.optimize(serving=True)
        assert copies == ["shard.2"] and (folder / "shard.1").is_dir()
    finally:
        store.close()
        edge_folder.release(folder / "shard.1", held)
    EdgeStore.connect(path=path, collection="docsync").close()
    left = sorted(p.name for p in folder.iterdir() if p.name != LEDGER_FILE)
    assert left == ["profile.json", "shard", "shard.0"]


def low_disk(monkeypatch: pytest.MonkeyPatch, free: dict[str, int]) -> None:
    """The store's file system has `free["bytes"]` free (what statvfs says, at the seam)."""
    real = os.statvfs

    def statvfs(path: object) -> os.statvfs_result:
        s = real(path)  # type: ignore[arg-type]
        return os.statvfs_result((*s[:4], free["bytes"] // s.f_frsize, *s[5:]))

    monkeypatch.setattr(edge_folder.os, "statvfs", statvfs)


def test_a_disk_too_small_for_a_new_shard_is_found_before_one_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new shard takes about 43 MiB once opened: on a 40 MiB disk the floor alone passed,
    the shard was made, and its first open filled the disk and died of a bus error."""
    free = {"bytes": 40 << 20}
    low_disk(monkeypatch, free)
    path = tmp_path / "store"
    store = EdgeStore.connect(path=path, collection="docsync", serving=True)
    try:
        with pytest.raises(StoreFullError, match="out of space"):
            store.open(PROFILE, create=True)
        assert not (path / "docsync" / "shard.0").exists()
        free["bytes"] = 1 << 40
        store.open(PROFILE, create=True)  # room again: made as usual
        store.upsert(points(0, 3))
        assert store.count() == 3
    finally:
        store.close()


def stored(path: Path, count: int) -> Path:
    """An embedded store at `path` holding `count` points, closed."""
    store = EdgeStore.connect(path=path, collection="docsync")
    store.open(PROFILE, create=True)
    store.upsert(points(0, count))
    store.close()
    return path


def test_a_reader_on_a_full_disk_is_refused_before_it_opens_the_shard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine writes as it opens a shard even to read it: `docsync export` on a full
    disk died of a bus error (exit -7) where it should say the disk is full."""
    path = stored(tmp_path / "store", 5)
    free = {"bytes": 1 << 20}
    low_disk(monkeypatch, free)
    reader = EdgeStore.connect(path=path, collection="docsync", reading=True)
    try:
        with pytest.raises(StoreFullError, match="out of space"):
            reader.open(PROFILE, create=False)
        free["bytes"] = 1 << 40
        reader.open(PROFILE, create=False)
        assert reader.count() == 5
    finally:
        reader.close()


def test_a_full_disk_is_found_before_a_shard_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a shard writes: on a full disk the engine died of a bus error in the shard
    process, and the daemon with it."""
    path = stored(tmp_path / "store", 10)
    free = {"bytes": 1 << 20}
    low_disk(monkeypatch, free)
    started: list[Path] = []
    real_init = HostedShard.__init__

    def recorded(self: HostedShard, shard: Path) -> None:
        started.append(shard)
        real_init(self, shard)

    monkeypatch.setattr(HostedShard, "__init__", recorded)
    store = EdgeStore.connect(path=path, collection="docsync", serving=True)
    try:
        with pytest.raises(StoreFullError, match="out of space"):
            store.open(PROFILE, create=False)
        assert started == []
        free["bytes"] = 1 << 40
        store.open(PROFILE, create=False)
        store.upsert(points(10, 10))
        assert store.count() == 20 and len(started) == 1
    finally:
        store.close()


def test_a_shard_process_that_dies_of_a_bus_error_is_survived(
    serving: EdgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a full disk does to the engine (SIGBUS on a page it cannot get): asked again on
    a new process while there is room, refused as "out of space" (pending, to the daemon)
    once there is not."""
    free = {"bytes": 1 << 40}
    low_disk(monkeypatch, free)
    real_ask = HostedShard._ask
    bus_errors = [1]
    fills = [False]

    def bus_error(self: HostedShard, request: Any) -> Any:
        if bus_errors[0]:
            bus_errors[0] -= 1
            # Dead before the request reaches it: killed while it answered, it could have
            # written its answer first (the child answers on any of its channels' threads).
            os.kill(self._child.pid, signal.SIGBUS)
            self._child.wait(HANG)
            if fills[0]:
                free["bytes"] = 1 << 20  # the disk filled up during the request
        return real_ask(self, request)

    serving.upsert(points(0, 10))
    monkeypatch.setattr(HostedShard, "_ask", bus_error)
    serving.upsert(points(10, 10))  # the first process died; the second wrote it
    bus_errors[0], fills[0] = 1, True
    with pytest.raises(StoreFullError):
        serving.upsert(points(20, 10))
    free["bytes"] = 1 << 40
    serving.upsert(points(20, 10))
    assert serving.count() == 30
