"""Questions through a running daemon, as its users ask them: a real `docsync run` started on
a copy of a built store, then one client and `clients` clients at once against its HTTP
endpoint (TCP, each client on one kept-alive connection) and against its Unix socket (each
client on the connection it keeps, as a `Searcher` of a running daemon asks: `DaemonClient`;
until stop 28 a connection per question, which cost the daemon about half a millisecond
more). Each phase reports questions per second and p50/p99 latency as the clients saw them,
and `_route_p50_ms`: the median of each answer's latency less the daemon's own time on it
(its `Server-Timing` header), what the route itself added: the transport, both ways.

`during_sync`: one client's latency on the socket while the daemon is idle, then while it
syncs `SYNC_FILES` new files written into its folder at once (the daemon's own watcher
finds them), until its `docsync_files_synced` counter says they are all in: the two p99s
and their ratio.

Used by bench/query.py (`--clients N`, `--during-sync`).
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from docsync.plugin.daemon_client import SOCKET_NAME, UnixConnection, ask_daemon

SYNC_FILES = 1000
WARM_QUESTIONS = 50
START_SECONDS = 600.0  # a daemon opening a million points and loading the model
SYNC_SECONDS = 1800.0
Ask = Callable[[str], float]  # a question asked: the daemon's own milliseconds on it


@dataclass(frozen=True)
class Phase:
    """What `clients` clients asking together saw."""

    clients: int
    questions: int
    seconds: float
    latencies_ms: list[float]
    route_ms: list[float]  # each answer's latency less the daemon's own time on it

    def figures(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}_qps": round(self.questions / self.seconds, 1),
            f"{prefix}_p50_ms": round(statistics.median(self.latencies_ms), 2),
            f"{prefix}_p99_ms": round(percentile(self.latencies_ms, 0.99), 2),
            f"{prefix}_route_p50_ms": round(statistics.median(self.route_ms), 2),
        }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


class RunningDaemon:
    """`docsync run` on `store` (collection `collection`) following an almost empty folder,
    with its HTTP endpoint on a free loopback port; stopped with SIGTERM on `close`."""

    def __init__(self, store: Path, collection: str, work: Path) -> None:
        self.store, self.root = store, work / "docs"
        self.root.mkdir()
        (self.root / "readme.md").write_text("# Bench\n\nThe daemon's own folder.\n")
        self.port = _free_port()
        self.socket = store / SOCKET_NAME
        env = {
            **os.environ,
            "DOCSYNC_QDRANT_PATH": str(store),
            "DOCSYNC_COLLECTION": collection,
            "DOCSYNC_HTTP_PORT": str(self.port),
            "DOCSYNC_HTTP_HOST": "127.0.0.1",
        }
        self._log = open(work / "daemon.log", "wb")  # noqa: SIM115 (closed in close)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "docsync", "run", str(self.root)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=work,  # `-m` puts the current folder first: the docsync of PYTHONPATH runs
        )
        self.log_path = work / "daemon.log"
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the daemon ended: {self.log_path.read_text()[-2000:]}")
            try:
                ask_daemon(self.socket, "/readyz", timeout=5)
                return
            except Exception:
                time.sleep(0.2)
        raise RuntimeError(
            f"the daemon was not ready in {START_SECONDS:g}s: {self.log_path.read_text()[-2000:]}"
        )

    def files_synced(self) -> float:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", "/metrics")
            text = connection.getresponse().read().decode()
        finally:
            connection.close()
        found = re.search(r"^docsync_files_synced_total ([0-9.e+]+)$", text, re.MULTILINE)
        return float(found[1]) if found else 0.0

    def close(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def http_client(port: int) -> Ask:
    """One client of the HTTP endpoint: one kept-alive connection, as a service asks."""
    return _asker(http.client.HTTPConnection("127.0.0.1", port, timeout=60))


def socket_client(path: Path) -> Ask:
    """One client of the Unix socket on the connection it keeps, as a `Searcher` of a
    running daemon asks (`DaemonClient`)."""
    return _asker(UnixConnection(path, 60))


def _asker(connection: http.client.HTTPConnection) -> Ask:
    """Asks on `connection`; returns the daemon's own time on the answer in milliseconds
    (its Server-Timing header), so that what the route added is the rest."""

    def ask(question: str) -> float:
        connection.request("GET", "/search?" + urlencode({"q": question, "limit": 5}))
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
        found = re.search(r"app;dur=([0-9.]+)", response.getheader("Server-Timing") or "")
        if found is None:
            raise RuntimeError("the daemon sent no Server-Timing header")
        return float(found[1])

    return ask


def load(make: Callable[[], Ask], clients: int, questions: list[str], total: int) -> Phase:
    """`clients` threads, each with its own client, asking `total` questions between them
    (after two each to warm up), all starting together."""
    each = max(1, total // clients)
    start = threading.Barrier(clients + 1)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    routes: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []

    def client(n: int) -> None:
        ask = make()
        try:
            for question in questions[:2]:
                ask(question)
            start.wait()
            for i in range(each):
                question = questions[(n * 7 + i) % len(questions)]
                began = time.perf_counter()
                own = ask(question)
                latencies[n].append((time.perf_counter() - began) * 1000)
                routes[n].append(latencies[n][-1] - own)
        except BaseException as exc:
            errors.append(exc)
            start.abort()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"a client failed: {errors[0]!r}") from errors[0]
    flat = [ms for each_client in latencies for ms in each_client]
    return Phase(clients, len(flat), seconds, flat, [ms for each in routes for ms in each])


def through_daemon(
    store: Path,
    collection: str,
    questions: list[str],
    *,
    clients: int,
    during_sync: bool,
    texts: list[str],
    total: int = 400,
) -> dict[str, Any]:
    """The daemon's figures, on a copy of `store` (the daemon's syncs leave the original as
    it was); `texts`: what the files synced during the sync phase hold."""
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="docsync-clients-") as tmp:
        work = Path(tmp)
        copy = work / "store"
        began = time.perf_counter()
        shutil.copytree(store, copy, symlinks=True)
        daemon = RunningDaemon(copy, collection, work)
        result["daemon_start_s"] = round(time.perf_counter() - began, 1)
        try:
            # A daemon just ready pages in its store and warms its model on its first
            # questions: not measured.
            load(lambda: socket_client(daemon.socket), 1, questions, WARM_QUESTIONS)
            counts = sorted({1, clients}) if clients else [1]
            for n in counts:
                for name, make in (
                    ("socket", lambda: socket_client(daemon.socket)),
                    ("http", lambda: http_client(daemon.port)),
                ):
                    phase = load(make, n, questions, total if n > 1 else total // 2)
                    result.update(phase.figures(f"{name}_{n}c"))
            if during_sync:
                result.update(sync_phase(daemon, questions, texts, total // 2))
        finally:
            daemon.close()
    return result


def sync_phase(
    daemon: RunningDaemon, questions: list[str], texts: list[str], idle_total: int
) -> dict[str, Any]:
    """One socket client's latency idle, then while `SYNC_FILES` new files sync."""
    ask = socket_client(daemon.socket)
    idle = load(lambda: ask, 1, questions, idle_total)
    before = daemon.files_synced()
    folder = daemon.root / "new"
    folder.mkdir()
    for i in range(SYNC_FILES):
        body = texts[i % len(texts)]
        (folder / f"note{i:04d}.md").write_text(f"# Note {i}\n\n{body}\n", encoding="utf-8")
    began = time.perf_counter()
    busy: list[float] = []
    last_look = began
    deadline = began + SYNC_SECONDS
    turn = 0
    while time.perf_counter() < deadline:
        if time.perf_counter() - last_look > 0.5:
            last_look = time.perf_counter()
            if daemon.files_synced() - before >= SYNC_FILES:
                break
        asked = time.perf_counter()
        ask(questions[turn % len(questions)])
        busy.append((time.perf_counter() - asked) * 1000)
        turn += 1
    else:
        raise RuntimeError(f"{SYNC_FILES} files did not sync in {SYNC_SECONDS:g}s")
    idle_p99 = percentile(idle.latencies_ms, 0.99)
    busy_p99 = percentile(busy, 0.99)
    return {
        "idle_p50_ms": round(statistics.median(idle.latencies_ms), 2),
        "idle_p99_ms": round(idle_p99, 2),
        "during_sync_p50_ms": round(statistics.median(busy), 2),
        "during_sync_p99_ms": round(busy_p99, 2),
        "during_sync_p99_ratio": round(busy_p99 / idle_p99, 2),
        "during_sync_questions": len(busy),
        "sync_files": SYNC_FILES,
        "sync_s": round(time.perf_counter() - began, 1),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
