"""Memory bounds of a running daemon: its resident memory through the initial sync and the
first index swap, idle, under a flood of searches (HTTP and socket), under hostile request
bodies, and the reader child's while it reads a Word file that unpacks to hundreds of MB.

    python bench/bounds.py [--json] [--copies 7] [--model PATH] [--bomb-mb 200]
                           [--reader-memory-mb N]

One `docsync run` (as in bench/chaos.py: a subprocess, an embedded store in a temporary
folder, a tiny random BERT by default) follows copies of the corpus; a thread reads
`/proc/<pid>/status` (VmRSS) of the daemon and of each child every 0.1 s, and each phase
reports the peaks it saw, in MB:

    sync_and_swap   the initial sync and the first index build and swap (shard hosts: the
                    sum of both while the rebuilt shard opens beside the live one)
    idle            a few seconds after it
    search_flood    48 threads asking /search over HTTP (32) and the socket (16) at once
    bodies_in_limit 64 connections each posting a 1 MB body to /mcp (the limit) at once
    body_unbounded  one POST /mcp with `Content-Length: -1` and `--hostile-mb` of body
    reader_bomb     a .docx whose document.xml unpacks to `--bomb-mb` MB: the reader child

The reader is capped by the bench at `--reader-cap-mb` (killed there, so that the machine
survives the measurement); `--reader-memory-mb` passes DOCSYNC_READER_MEMORY_MB to the
daemon (the reader's own limit, where the daemon has that setting).
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chaos import (
    Daemon,
    base_env,
    children_by_kind,
    make_docs,
    memory_kb,
    poll,
    tiny_model,
)
from output import emit

PHASE_SECONDS = 20.0
PARTS = ("daemon", "shard_hosts", "index_builder", "reader")


class Sampler:
    """The peak VmRSS, in kB, of the daemon and of each kind of child, per phase."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.phase = "start"
        self.peaks: dict[str, dict[str, int]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.1):
            pid = self.daemon.proc.pid
            children = children_by_kind(pid)
            now = {
                "daemon": memory_kb(pid)[0],
                "shard_hosts": sum(memory_kb(p)[0] for p in children["shard_host"]),
                "index_builder": max(
                    (memory_kb(p)[0] for p in children["index_builder"]), default=0
                ),
                "reader": max((memory_kb(p)[0] for p in children["reader"]), default=0),
            }
            peaks = self.peaks.setdefault(self.phase, dict.fromkeys(PARTS, 0))
            for part, kb in now.items():
                peaks[part] = max(peaks[part], kb)

    def report(self) -> dict[str, dict[str, float]]:
        return {
            phase: {part: round(kb / 1024, 1) for part, kb in peaks.items() if kb}
            for phase, peaks in self.peaks.items()
        }


def flood(daemon: Daemon, seconds: float) -> dict[str, int]:
    """48 threads searching as fast as they can: 32 over HTTP, 16 over the socket."""
    from docsync.plugin.daemon_client import SOCKET_NAME, ask_daemon

    counts = {"answered": 0, "refused": 0, "failed": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    socket_path = Path(daemon.env["DOCSYNC_QDRANT_PATH"]) / SOCKET_NAME

    def http_search() -> None:
        query = urllib.parse.urlencode({"q": "How do I open a socket?", "limit": "10"})
        connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=60)
        connection.request("GET", f"/search?{query}")
        response = connection.getresponse()
        response.read()
        connection.close()
        if response.status != 200:
            raise LookupError(response.status)

    def socket_search() -> None:
        ask_daemon(socket_path, "/search", {"q": "enum members", "limit": "10"})

    def worker(ask: Callable[[], None]) -> None:
        while time.monotonic() < deadline:
            try:
                ask()
                outcome = "answered"
            except LookupError:
                outcome = "refused"
            except Exception:
                outcome = "failed"
            with lock:
                counts[outcome] += 1

    threads = [threading.Thread(target=worker, args=(http_search,)) for _ in range(32)]
    threads += [threading.Thread(target=worker, args=(socket_search,)) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts


def post_mcp(port: int, length_header: str, body_mb: int, chunk: bytes) -> str:
    """POST /mcp with `Content-Length: length_header` and `body_mb` MB of body; the status
    line it got, or what went wrong."""
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json, text/event-stream\r\nContent-Length: {length_header}\r\n\r\n"
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            s.sendall(head.encode())
            sent = 0
            while sent < body_mb << 20:
                s.sendall(chunk)
                sent += len(chunk)
            s.shutdown(socket.SHUT_WR)
            return s.recv(200).split(b"\r\n")[0].decode(errors="replace") or "closed"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def bodies_in_limit(port: int) -> list[str]:
    body = b"x" * (1 << 20)
    answers: list[str] = []
    threads = [
        threading.Thread(target=lambda: answers.append(post_mcp(port, str(len(body)), 1, body)))
        for _ in range(64)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(set(answers))


def write_bomb(path: Path, megabytes: int) -> int:
    """A .docx whose document.xml unpacks to `megabytes` MB of paragraphs; its size."""
    paragraph = b"<w:p><w:r><w:t>lorem ipsum dolor sit amet</w:t></w:r></w:p>" * 1000
    ns = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Default Extension="rels" ContentType="application/vnd.openxml'
            'formats-package.relationships+xml"/><Default Extension="xml" ContentType='
            '"application/xml"/><Override PartName="/word/document.xml" ContentType="'
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
            '"/></Types>',
        )
        z.writestr(
            "_rels/.rels",
            '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
            '2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org'
            '/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>'
            "</Relationships>",
        )
        with z.open("word/document.xml", "w", force_zip64=True) as xml:
            xml.write(f'<?xml version="1.0"?><w:document xmlns:w="{ns}"><w:body>'.encode())
            for _ in range((megabytes << 20) // len(paragraph)):
                xml.write(paragraph)
            xml.write(b"</w:body></w:document>")
    return path.stat().st_size


def reader_bomb(daemon: Daemon, docs: Path, megabytes: int, cap_mb: int) -> dict[str, Any]:
    bomb = docs / "bomb.docx"
    size = write_bomb(docs / ".bomb.tmp", megabytes)
    os.replace(docs / ".bomb.tmp", bomb)
    capped = False
    started = time.monotonic()

    def done() -> bool:
        nonlocal capped
        for pid in children_by_kind(daemon.proc.pid)["reader"]:
            if memory_kb(pid)[0] > cap_mb << 10:
                os.kill(pid, signal.SIGKILL)
                capped = True
        return (
            "bomb.docx" in daemon.log.read_text(errors="replace") or daemon.proc.poll() is not None
        )

    poll(done, timeout=600, step=0.1)
    lines = [ln for ln in daemon.log.read_text(errors="replace").splitlines() if "bomb.docx" in ln]
    return {
        "file_mb": round(size / (1 << 20), 2),
        "unpacked_mb": megabytes,
        "seconds": round(time.monotonic() - started, 1),
        "capped_by_bench": capped,
        "log": lines[-1][-300:] if lines else None,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--copies", type=int, default=7, help="copies of the corpus (10k points)")
    parser.add_argument("--model", help="model directory (default: a tiny random BERT)")
    parser.add_argument("--hostile-mb", type=int, default=256)
    parser.add_argument("--bomb-mb", type=int, default=200)
    parser.add_argument("--reader-cap-mb", type=int, default=3000)
    parser.add_argument("--reader-memory-mb", type=int)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="docsync-bounds-") as tmp:
        work = Path(tmp)
        env = base_env(work / "store", args.model or tiny_model(work), work / "cache")
        if args.reader_memory_mb:
            env["DOCSYNC_READER_MEMORY_MB"] = str(args.reader_memory_mb)
        docs = work / "docs"
        make_docs(docs, args.copies)
        daemon = Daemon(docs, env, work / "daemon.log")
        sampler = Sampler(daemon)
        try:
            result = phases(daemon, sampler, docs, args)
        finally:
            sampler.stop.set()
            daemon.stop()
    emit(result, as_json=args.json)
    return 0


def phases(
    daemon: Daemon, sampler: Sampler, docs: Path, args: argparse.Namespace
) -> dict[str, Any]:
    sampler.phase = "sync_and_swap"
    poll(lambda: daemon.get("/readyz")[0] == 200, timeout=1800)
    swapped = poll(lambda: "indexed in" in daemon.log.read_text(errors="replace"), timeout=900)
    _, status = daemon.get("/status")
    sampler.phase = "idle"
    time.sleep(5)  # a sample of the resting daemon, not a wait for a state
    sampler.phase = "search_flood"
    searches = flood(daemon, PHASE_SECONDS)
    sampler.phase = "bodies_in_limit"
    in_limit = bodies_in_limit(daemon.port)
    sampler.phase = "body_unbounded"
    unbounded = post_mcp(daemon.port, "-1", args.hostile_mb, b"x" * (1 << 20))
    sampler.phase = "reader_bomb"
    bomb = reader_bomb(daemon, docs, args.bomb_mb, args.reader_cap_mb)
    sampler.phase = "end"
    return {
        "points": (status or {}).get("points"),
        "swapped": swapped,
        "peaks_mb": sampler.report(),
        "search_flood": searches,
        "bodies_in_limit": in_limit,
        "body_unbounded": {"sent_mb": args.hostile_mb, "answer": unbounded},
        "reader_bomb": bomb,
        "reader_memory_mb_setting": args.reader_memory_mb,
        "daemon_alive": daemon.proc.poll() is None,
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
