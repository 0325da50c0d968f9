"""`docsync run` as a real subprocess on the embedded store: live changes, the HTTP endpoint,
`docsync query` through the daemon, bursts of writes, and a clean SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from docsync.plugin.encoder import Encoder
from docsync.plugin.stores.edge import EdgeStore
from tests.conftest import CORPUS, HANG, state
from tests.test_sync import fresh_state

DOCSYNC = str(Path(sys.executable).with_name("docsync"))


def poll(condition: Callable[[], bool], timeout: float = HANG, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    def __init__(self, work: Path, docs: Path, model: Path) -> None:
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSYNC_")}
        self.env.update(
            DOCSYNC_MODEL=str(model),
            DOCSYNC_QDRANT_PATH=str(work / "store"),
            DOCSYNC_HTTP_PORT=str(self.port),
            DOCSYNC_DEBOUNCE_SECONDS="0.2",
            HF_HUB_OFFLINE="1",
        )
        self.work = work
        self.log = work / "daemon.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [DOCSYNC, "run", str(docs), "--log-format", "json", "--log-level", "DEBUG"],
                env=self.env,
                cwd=work,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def get(self, route: str, **params: str) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.port}{route}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            # fixed: a poll asks again after a timeout (OSError below)
            with urllib.request.urlopen(url, timeout=10) as response:
                body = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read(), exc.code
        except OSError:
            return 0, None
        is_json = body[:1] in (b"{", b"[")
        return status, json.loads(body) if is_json else body.decode()

    def texts(self, path: str) -> list[str]:
        status, hits = self.get("/search", q="anything", limit="50", path_prefix=path)
        assert status == 200, hits
        return [hit["text"] for hit in hits]

    def has(self, path: str, phrase: str) -> bool:
        return any(phrase in text for text in self.texts(path))

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def terminate(self) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=HANG)
        return code, time.monotonic() - started


@pytest.fixture
def daemon(tmp_path: Path, tiny_model_dir: Path) -> Iterator[tuple[Daemon, Path]]:
    docs = tmp_path / "docs"
    shutil.copytree(CORPUS / "using", docs)
    process = Daemon(tmp_path, docs, tiny_model_dir)
    try:
        poll(lambda: process.get("/readyz")[0] == 200, what="ready")
        yield process, docs
    finally:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait()


def test_live_changes_endpoints_and_clean_stop(
    daemon: tuple[Daemon, Path], tiny_encoder: Encoder, tmp_path: Path
) -> None:
    d, docs = daemon
    assert d.get("/healthz") == (200, {"status": "ok"})
    # create
    (docs / "new.md").write_text("# New\n\nThe zebra quantum pancake is here.\n")
    poll(lambda: d.has("new.md", "zebra quantum pancake"), what="created file")
    # edit
    (docs / "new.md").write_text("# New\n\nThe walrus orbit lemonade replaced it.\n")
    poll(lambda: d.has("new.md", "walrus orbit") and not d.has("new.md", "zebra"), what="edit")
    # atomic replace: write a temporary file, rename it over the original
    (docs / ".mac.rst.tmp").write_text("Mac\n===\n\nAtomically replaced content.\n")
    os.replace(docs / ".mac.rst.tmp", docs / "mac.rst")
    poll(
        lambda: d.texts("mac.rst") == ["Mac\n===\n\nAtomically replaced content."],
        what="atomic replace",
    )
    # rename into a new folder
    (docs / "sub").mkdir()
    (docs / "new.md").rename(docs / "sub" / "renamed.md")
    poll(lambda: not d.texts("new.md") and d.has("sub/renamed.md", "walrus"), what="rename")
    # delete a file
    (docs / "unix.rst").unlink()
    poll(lambda: not d.texts("unix.rst"), what="delete")
    # folders: create, rename, delete
    (docs / "folder").mkdir()
    (docs / "folder" / "a.md").write_text("# A\n\nFolder file alpha.\n")
    (docs / "folder" / "b.md").write_text("# B\n\nFolder file beta.\n")
    poll(lambda: d.has("folder", "alpha") and d.has("folder", "beta"), what="new folder")
    (docs / "folder").rename(docs / "moved")
    poll(lambda: not d.texts("folder") and len(d.texts("moved")) == 2, what="folder rename")
    shutil.rmtree(docs / "moved")
    poll(lambda: not d.texts("moved"), what="folder delete")

    status, metrics = d.get("/metrics")
    assert status == 200 and "docsync_sync_lag_seconds_bucket" in metrics
    assert "docsync_files_synced_total" in metrics and "docsync_pending_changes" in metrics
    # the CLI reaches the daemon that holds the embedded store
    query = subprocess.run(
        [DOCSYNC, "query", "replaced", "--path-prefix", "mac.rst", "--json"],
        env={k: v for k, v in d.env.items() if k != "DOCSYNC_HTTP_PORT"},
        cwd=d.work,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert query.returncode == 0, query.stderr
    assert json.loads(query.stdout)[0]["text"] == "Mac\n===\n\nAtomically replaced content."
    status_cli = subprocess.run(
        [DOCSYNC, "status", "--json"],
        env=d.env,
        cwd=d.work,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert json.loads(status_cli.stdout)["files"] == len(list(docs.rglob("*.*")))

    code, seconds = d.terminate()
    assert code == 0 and seconds < 10
    store = EdgeStore.connect(path=tmp_path / "store", collection="docsync")
    try:
        assert state(store) == fresh_state(docs, tiny_encoder)
        assert store.count() == len(state(store))
    finally:
        store.close()


def shard_hosts(parent: int) -> list[int]:
    """The processes holding an embedded shard (`docsync.plugin.stores.edge_host`) that `parent`
    started."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue  # not a process, or one that ended meanwhile
        if ppid == parent and b"docsync.plugin.stores.edge_host" in command:
            found.append(int(proc.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_shard_is_held_by_a_child_that_ends_with_the_daemon(
    daemon: tuple[Daemon, Path], tmp_path: Path
) -> None:
    """A daemon's store lives in a child process (opening a rebuilt shard there stops no
    search); killed without a word, the daemon takes it along, and nothing written is lost."""
    d, docs = daemon
    hosts = shard_hosts(d.proc.pid)
    assert len(hosts) == 1
    (docs / "late.md").write_text("# Late\n\nThe heron counted seven lanterns.\n")
    poll(lambda: d.has("late.md", "seven lanterns"), what="late file")
    _, points = d.get("/status")
    d.proc.kill()
    d.proc.wait()
    poll(lambda: not alive(hosts[0]), what="the shard's process ends with the daemon")
    store = EdgeStore.connect(path=tmp_path / "store", collection="docsync", reading=True)
    try:
        assert store.count() == points["points"] and store.count({"path": "late.md"}) == 1
    finally:
        store.close()


def test_burst_of_writes_is_embedded_at_most_three_times(daemon: tuple[Daemon, Path]) -> None:
    d, docs = daemon
    target = docs / "burst.md"
    for i in range(200):
        target.write_text(f"# Burst\n\nVersion {i} of a file saved over and over.\n")
    target.write_text("# Burst\n\nThe final version, saved last.\n")
    poll(lambda: d.has("burst.md", "final version"), what="final content")
    poll(lambda: "docsync_pending_changes 0.0" in d.get("/metrics")[1], what="nothing pending")
    passes = [r for r in d.records() if r.get("path") == "burst.md" and r.get("embedded", 0) > 0]
    assert 1 <= len(passes) <= 3, passes
    assert d.texts("burst.md") == ["# Burst\n\nThe final version, saved last."]
    assert d.terminate()[0] == 0


def test_sigterm_during_the_initial_sync_exits_cleanly(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    docs = tmp_path / "docs"
    for copy in range(3):
        shutil.copytree(CORPUS, docs / f"copy{copy}")
    d = Daemon(tmp_path, docs, tiny_model_dir)
    try:
        poll(lambda: "initial sync of" in d.log.read_text(), what="initial sync")
        poll(lambda: any(r.get("embedded") for r in d.records()), what="a first batch written")
        assert d.get("/readyz")[0] == 503  # still syncing
        code, seconds = d.terminate()
        assert code == 0 and seconds < 10
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
