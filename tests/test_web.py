"""The web page's server side: its files served without the token but behind the Host check
and a strict CSP, its JSON behind the token (folders, health, a document's window around a
span), `docsync serve`; and the pieces (the folder log, the lag percentiles) alone."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from prometheus_client import CollectorRegistry

from docsync.plugin.encoder import Encoder
from docsync.plugin.search import Searcher
from docsync.plugin.settings import Settings
from docsync.plugin.stored_text import MAX_READ_CHARS
from docsync.worker.metrics import Metrics
from docsync.worker.progress import NoProgress
from docsync.worker.report import Skip, SyncReport
from docsync.worker.serve import SOCKET_NAME, Api, Endpoints, ask_daemon, listen_tcp
from docsync.worker.web.folders import FolderLog, SyncProgress
from docsync.worker.web.health import lag_summary, percentile
from docsync.worker.web.pages import CSP, PAGE_FILES
from docsync.worker.web.standalone import serve_store
from docsync.worker.web.views import COUNT_SPACING, Live, WebViews
from tests.conftest import HANG
from tests.web_host import TOKEN, Served, poll, serving_daemon

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, tiny_encoder: Encoder
) -> Iterator[Served]:
    with serving_daemon(tmp_path_factory.mktemp("web"), tiny_model_dir, tiny_encoder) as s:
        yield s


def get(port: int, route: str, **headers: str) -> tuple[int, dict[str, str], Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG)
    try:
        connection.request("GET", route, headers=headers)
        response = connection.getresponse()
        body = response.read()
        found = {k.lower(): v for k, v in response.getheaders()}
        if found.get("content-type", "").startswith("application/json"):
            return response.status, found, json.loads(body)
        return response.status, found, body
    finally:
        connection.close()


def test_the_page_files_need_no_token_and_carry_a_strict_csp(served: Served) -> None:
    for route in PAGE_FILES:
        status, headers, _ = get(served.port, route)
        assert status == 200, route
        assert headers["content-security-policy"] == CSP
        assert headers["x-content-type-options"] == "nosniff"
    page = get(served.port, "/?q=socket")[2].decode()
    # No inline script or style, nothing from another origin: the CSP would refuse it anyway.
    assert "<script>" not in page and "style=" not in page and "http" not in page.split("<body>")[1]
    assert "'unsafe-inline'" not in CSP and "*" not in CSP


def test_the_data_needs_the_token(served: Served) -> None:
    for route in (
        "/api/about",
        "/api/folders",
        "/api/health",
        "/api/document?path=x",
        "/search?q=a",
    ):
        status, headers, _ = get(served.port, route)
        assert status == 401, route
        assert headers["content-security-policy"] == CSP
        assert get(served.port, route, Authorization="Bearer wrong")[0] == 401


def test_a_wrong_host_gets_nothing_not_even_the_page(served: Served) -> None:
    """Without a token the endpoint checks Host (with one, any Host: a rebinding page
    cannot know the token); the page's files are refused like its data."""
    store = served.daemon.store  # read beside the daemon, as its own endpoint does
    api = Api(
        searcher=Searcher(store, served.daemon.syncer.encoder),
        healthy=lambda: True,
        ready=lambda: True,
        metrics=CollectorRegistry(),
        status=lambda: {},
        web=WebViews(store),
    )
    tcp = listen_tcp("127.0.0.1", 0)
    endpoints = Endpoints(api, socket_path=None, tcp=tcp)
    try:
        port = tcp.server_address[1]
        for route in ("/", "/app.js", "/api/folders"):
            status, _, body = get(port, route, Host="evil.example")
            assert status == 403 and "not a name of this endpoint" in body["error"]
        assert get(port, "/api/about", Host="localhost")[0] == 200
    finally:
        endpoints.close()
        tcp.server_close()


def test_no_route_changes_anything_on_get_and_others_are_refused(served: Served) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=HANG)
    connection.request("POST", "/api/folders", body=b"{}", headers=AUTH)
    assert connection.getresponse().status == 405
    connection.close()


def test_folders_show_counts_skips_with_reasons_and_unselected_files(served: Served) -> None:
    status, _, data = get(served.port, "/api/folders", **AUTH)
    assert status == 200 and data["live"] and data["ready"] and data["refused"] is None
    (root,) = data["roots"]
    assert root["root"] == str(served.docs)
    assert root["files"] == 3 and root["points"] > 3
    assert root["skipped"] == 1 and root["failed"] == 0
    assert root["set_aside"] == [
        {
            "path": "locked.pdf",
            "reason": "encrypted",
            "detail": "the PDF needs a password",
            "failed": False,
        }
    ]
    assert data["not_included"] == {".xyz": 1} and data["not_included_names"] == ["data.xyz"]


def test_a_new_file_shows_on_folders_and_its_lag_on_health(served: Served) -> None:
    (served.docs / "added.md").write_text("# Added\n\nA file added while watching.\n")

    def files() -> int:
        return int(get(served.port, "/api/folders", **AUTH)[2]["roots"][0]["files"])

    poll(lambda: files() == 4, "the added file counted")

    def lag_samples() -> int:
        return int(get(served.port, "/api/health", **AUTH)[2]["lag"]["samples"])

    # Its lag is recorded once the sync that wrote its points has finished: a moment later.
    poll(lambda: lag_samples() >= 1, "the added file's lag")
    status, _, health = get(served.port, "/api/health", **AUTH)
    assert status == 200 and health["live"]
    assert health["lag"]["p50"] is not None
    assert health["store"]["kind"] == "embedded" and health["store"]["bytes"] > 0
    assert health["profile"]["dimension"] == 32
    assert "unreadable" in health["errors"]


def test_a_document_window_around_a_span_with_its_section_and_neighbours(served: Served) -> None:
    hits = get(served.port, "/search?" + urlencode({"q": "create a socket", "limit": 1}), **AUTH)[2]
    hit = hits[0]
    query = {"path": hit["path"], "start": hit["match_start"], "end": hit["match_end"]}
    status, _, doc = get(served.port, "/api/document?" + urlencode(query), **AUTH)
    assert status == 200
    window = doc["window"]
    span = window["text"][hit["match_start"] - window["start"] : hit["match_end"] - window["start"]]
    assert span and span in hit["text"]
    assert doc["section"] == hit["section"] and doc["path"] == "sockets.rst"
    assert len(window["text"]) <= MAX_READ_CHARS
    if doc["next"] is not None:
        assert doc["next"]["start"] >= hit["match_end"]
    # A span far longer than a window is cut: the answer stays bounded.
    whole = {"path": "sockets.rst", "start": 0, "end": 10**9}
    assert (
        len(get(served.port, "/api/document?" + urlencode(whole), **AUTH)[2]["window"]["text"])
        <= MAX_READ_CHARS
    )
    assert get(served.port, "/api/document?path=nope.md", **AUTH)[0] == 404
    pdf = get(served.port, "/api/document?path=texshop.pdf&start=1200&end=1250", **AUTH)[2]
    assert pdf["page"] == 2 and pdf["format"] == "pdf" and pdf["previous"]["page"] == 1
    assert get(served.port, "/api/document?path=sockets.rst&start=x", **AUTH)[0] == 400


def test_the_folder_log_replaces_only_the_scopes_synced() -> None:
    log = FolderLog()
    whole = SyncReport(files_not_included=Counter({".xyz": 2}))
    whole.set_aside += [("/r", Skip("a/x.pdf", "encrypted")), ("/r", Skip("b/y.bin", "binary"))]
    log.record([(Path("/r"), "")], whole)
    part = SyncReport()
    part.set_aside.append(("/r", Skip("a/z.pdf", "reader_crashed", "exit 9")))
    log.record([(Path("/r"), "a")], part)
    assert [(s.path, s.reason, s.failed) for s in log.set_aside("/r")] == [
        ("a/z.pdf", "reader_crashed", True),
        ("b/y.bin", "binary", False),
    ]
    assert log.not_included == {".xyz": 2}  # a partial sync does not count them


def test_lag_percentiles_cover_the_last_hour_only() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    recent = [(0.0, 100.0)] + [(4000.0 + i, float(i)) for i in range(1, 101)]
    summary = lag_summary(recent, now=4200.0)
    assert summary["samples"] == 100  # the lag seen over an hour ago is left out
    assert summary["p50"] == 50.0 and summary["p95"] == 95.0


def test_docsync_serve_serves_a_synced_store_without_watching(
    served: Served,
    tmp_path: Path,
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [n for n in os.environ if n.startswith("DOCSYNC_")]:
        monkeypatch.delenv(name)
    copy = tmp_path / "store"  # the daemon holds its own: serve a copy, as after a sync
    shutil.copytree(served.store_path, copy, ignore=shutil.ignore_patterns("daemon.sock"))
    settings = Settings(model=str(tiny_model_dir), qdrant_path=copy, cache=tmp_path / "cache")
    tcp = listen_tcp("127.0.0.1", 0)
    stop = threading.Event()
    thread = threading.Thread(target=serve_store, args=(settings, tcp, stop), daemon=True)
    thread.start()
    try:
        port = tcp.server_address[1]
        poll(lambda: f":{port}/" in capsys.readouterr().out, "the address printed")
        assert get(port, "/")[0] == 200
        about = get(port, "/api/about")[2]
        assert about["live"] is False and about["collection"] == "docsync"
        folders = get(port, "/api/folders")[2]
        assert folders["roots"][0]["files"] >= 2 and folders["progress"] is None
        assert get(port, "/search?q=socket&limit=1")[2][0]["path"] == "sockets.rst"
        assert get(port, "/api/health")[2]["lag"] is None  # nothing syncs here
        # The CLI's questions reach the store it holds through its socket, as a daemon's.
        assert ask_daemon(copy / SOCKET_NAME, "/status")["points"] > 3
    finally:
        stop.set()
        thread.join(HANG)
        tcp.server_close()


def test_serve_is_a_command() -> None:
    from docsync.worker.cli import app

    assert "serve" in app.commands


class CountingStore:
    """A store that takes `cost` (on the fake timer) to count a root, and says how often."""

    collection, description = "c", "fake"

    def __init__(self, timer: list[float], cost: float) -> None:
        self.timer, self.cost, self.counts = timer, cost, 0

    def count(self, match: object = None) -> int:
        self.counts += 1
        self.timer[0] += self.cost
        return 7

    def scroll(self, match: object, fields: object = None) -> Iterator[object]:
        return iter([object(), object()])


def test_counts_are_asked_again_after_a_sync_but_spaced_by_their_cost() -> None:
    now = [0.0]
    store = CountingStore(now, cost=1.0)
    state = {"roots": ["/r"], "ready": True, "last_sync": "t0", "syncs": 1, "pending_changes": 0}
    live = Live(lambda: state, FolderLog(), None, Metrics())
    views = WebViews(store, live=live, timer=lambda: now[0])  # type: ignore[arg-type]
    assert views.folders()["roots"][0]["files"] == 2 and store.counts == 1
    views.folders()
    assert store.counts == 1  # nothing synced since
    state["syncs"] = 2  # a sync finished (in the same second: last_sync is the same)
    views.folders()
    assert store.counts == 1  # synced, but counting took 1 s: not again within 10 s
    now[0] += COUNT_SPACING
    assert views.folders()["roots"][0]["points"] == 7 and store.counts == 2


def test_folders_show_the_initial_syncs_progress_until_it_is_done() -> None:
    store = CountingStore([0.0], cost=0.0)
    state: dict[str, Any] = {"roots": ["/r"], "ready": False, "last_sync": None}
    progress = SyncProgress(NoProgress())
    views = WebViews(store, live=Live(lambda: state, FolderLog(), progress, Metrics()))  # type: ignore[arg-type]
    progress.set_total(10)
    progress.advance(3)
    progress.embedded(40)
    assert views.folders()["progress"] == {"done": 3, "total": 10, "chunks": 40}
    state["ready"] = True
    assert views.folders()["progress"] is None
