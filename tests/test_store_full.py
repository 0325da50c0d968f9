"""A full disk under the embedded store is an outage to the daemon: its changes stay
pending, it says "out of space", and it resumes by itself once space is back."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest

import docsync.plugin.stores.edge
from docsync.plugin.encoder import Encoder
from docsync.plugin.stores.edge import EdgeStore
from tests.conftest import HANG
from tests.test_daemon import Silent, daemon_for, poll


def test_daemon_waits_out_a_full_disk(
    tmp_path: Path,
    tiny_encoder: Encoder,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nSome text to index.\n")
    free = {"bytes": 1 << 20}
    real = os.statvfs

    def statvfs(path: object) -> os.statvfs_result:
        s = real(path)  # type: ignore[arg-type]
        blocks = free["bytes"] // s.f_frsize
        return os.statvfs_result((*s[:4], blocks, *s[5:]))

    monkeypatch.setattr(docsync.plugin.stores.edge_folder.os, "statvfs", statvfs)
    store = EdgeStore.connect(path=tmp_path / "store", collection="docsync")
    daemon = daemon_for(docs, store, tiny_encoder, watcher_factory=Silent)
    caplog.set_level(logging.WARNING, logger="docsync.daemon")
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        poll(lambda: "store out of space" in caplog.text)
        assert "MiB free" in caplog.text and not daemon.ready.is_set()
        free["bytes"] = 1 << 40
        poll(daemon.ready.is_set)
        assert store.count() > 0
    finally:
        daemon.stop()
        thread.join(timeout=HANG)
        store.close()
    assert not thread.is_alive()
