"""Freshness benchmark: seconds from saving a file to its new text being searchable, through
a real `docsync run` daemon on the embedded store.

A 5 KB Markdown file is edited 50 times (a new sentence each time, in the middle); after each
save the daemon's search route is polled until a hit carries the new sentence.

    DOCSYNC_MODEL=/path/to/model python bench/freshness.py [--edits 50] [--json]

Honours the DOCSYNC_* settings (model, prefixes, debounce); the store goes to a temporary
folder.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

DOCSYNC = str(Path(sys.executable).with_name("docsync"))
PARAGRAPH = (
    "A socket is one endpoint of a two-way communication link between two programs running "
    "on the network. A socket is bound to a port number so that the transport layer can "
    "identify the application that data is destined to be sent to."
)


def document(marker: str) -> str:
    sections = []
    for i in range(8):
        body = "\n\n".join(PARAGRAPH for _ in range(2))
        if i == 4:
            body += f"\n\nThe newest note says {marker}."
        sections.append(f"## Section {i}\n\n{body}")
    return "# Notes on sockets\n\n" + "\n\n".join(sections) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, route: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}{route}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.loads(response.read())
    except OSError:
        return None


def wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="docsync-fresh-") as tmp:
        work = Path(tmp)
        (work / "docs").mkdir()
        target = work / "docs" / "notes.md"
        target.write_text(document("nothing yet"))
        port = free_port()
        env = {
            **os.environ,
            "DOCSYNC_QDRANT_PATH": str(work / "store"),
            "DOCSYNC_HTTP_PORT": str(port),
        }
        daemon = subprocess.Popen(
            [DOCSYNC, "run", str(work / "docs"), "--log-level", "WARNING"], env=env, cwd=work
        )
        try:
            wait(lambda: get(port, "/readyz") == {"ready": True}, 300, "the daemon")
            lags = [measure(port, target) for _ in range(args.edits)]
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
    result = {
        "edits": len(lags),
        "p50_s": round(statistics.median(lags), 3),
        "p95_s": round(sorted(lags)[max(0, int(len(lags) * 0.95) - 1)], 3),
        "max_s": round(max(lags), 3),
        "model": os.environ.get("DOCSYNC_MODEL", "(default)"),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"save -> searchable over {result['edits']} edits: p50 {result['p50_s']:.2f} s, "
            f"p95 {result['p95_s']:.2f} s, max {result['max_s']:.2f} s"
        )
    return 0


def measure(port: int, target: Path) -> float:
    marker = f"marker {uuid.uuid4().hex[:12]}"
    target.write_text(document(marker))
    saved = time.monotonic()

    def searchable() -> bool:
        hits = get(port, "/search", q=marker, limit="50", path_prefix="notes.md") or []
        return any(marker in hit["text"] for hit in hits)

    wait(searchable, 60, marker)
    return time.monotonic() - saved


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
