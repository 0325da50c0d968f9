"""A daemon serving the web page, as `docsync run DIR --http-port N` wires it (the real
`wiring.open_endpoints`), on an embedded store in a temporary folder, with the tiny model:
for tests/test_web.py and tests/test_web_browser.py."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from docsync.plugin.encoder import Encoder
from docsync.plugin.settings import Settings
from docsync.plugin.stores import open_store
from docsync.worker import wiring
from docsync.worker.daemon import Daemon, DaemonOptions
from docsync.worker.pipeline import SyncOptions
from docsync.worker.progress import NoProgress
from docsync.worker.serve import listen_tcp
from docsync.worker.web.folders import SyncProgress
from tests.conftest import CORPUS, HANG

TOKEN = "web-page-token-for-tests"
DOCUMENTS = Path(__file__).resolve().parent / "documents"
FAST = DaemonOptions(debounce_seconds=0.05, max_wait_seconds=0.2)
# A document whose text is markup: the page must show it as text, and run none of it.
HOSTILE = (
    "Escaping notes\n==============\n\n"
    "The page must show this as text: <script>alert(1)</script> and <b>not bold</b>,\n"
    'and an image that fails: <img src=x onerror="alert(2)">.\n'
)


def poll(condition: Callable[[], bool], what: str, timeout: float = HANG) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)


def make_docs(docs: Path) -> Path:
    """A small folder: a real reStructuredText page, a two-page PDF, a hostile page, a PDF
    skipped (encrypted) and a file no include rule selects."""
    docs.mkdir(parents=True, exist_ok=True)
    shutil.copy(CORPUS / "howto" / "sockets.rst", docs / "sockets.rst")
    shutil.copy(DOCUMENTS / "small.pdf", docs / "texshop.pdf")
    (docs / "escaping.rst").write_text(HOSTILE, encoding="utf-8")
    shutil.copy(DOCUMENTS / "encrypted.pdf", docs / "locked.pdf")
    (docs / "data.xyz").write_text("not selected\n", encoding="utf-8")
    return docs


@dataclass
class Served:
    daemon: Daemon
    port: int
    docs: Path
    store_path: Path


@contextmanager
def serving_daemon(
    base: Path, model_dir: Path, encoder: Encoder, *, token: str | None = TOKEN
) -> Iterator[Served]:
    docs = make_docs(base / "docs")
    settings = Settings(model=str(model_dir), qdrant_path=base / "store", http_token=token)
    store = open_store(settings, serving=True)
    tcp = listen_tcp("127.0.0.1", 0, token=token)
    daemon = Daemon([docs], store=store, encoder=encoder, sync_options=SyncOptions(), options=FAST)
    assert daemon.wait_for_store(encoder.profile())
    progress = SyncProgress(NoProgress())
    endpoints = wiring.open_endpoints(settings, daemon, store, encoder, tcp, progress)
    thread = threading.Thread(target=daemon.run, kwargs={"progress": progress}, daemon=True)
    thread.start()
    try:
        poll(daemon.ready.is_set, "the initial sync")
        yield Served(daemon, tcp.server_address[1], docs, base / "store")
    finally:
        daemon.stop()
        thread.join(HANG)
        endpoints.close()
        tcp.server_close()
        store.close()
