"""Retries at the Qdrant client boundary: connection errors, timeouts, 5xx and 429 are
retried with backoff, a bounded number of times, and logged; a 4xx is reported for its file
and never retried. The fault-injecting client wraps a real (in-memory) one."""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import UnexpectedResponse

from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import StoreUnavailableError
from docsync.plugin.retry import backoff
from docsync.plugin.settings import Settings
from docsync.plugin.stores import open_store
from docsync.plugin.stores.qdrant import SERVER_ATTEMPTS, QdrantClientStore
from tests.conftest import CORPUS, run_sync, state
from tests.test_sync import fresh_state


def http_error(status: int) -> UnexpectedResponse:
    return UnexpectedResponse(status, "injected", b'{"status": "injected"}', httpx.Headers())


class FaultyClient:
    """A real QdrantClient whose next calls fail on cue; `applied` means the write happened
    before the failure (the acknowledgement was lost)."""

    def __init__(self) -> None:
        self._real = QdrantClient(location=":memory:")
        self._faults: dict[str, list[tuple[Exception, bool]]] = {}
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def fail(self, method: str, error: Exception, times: int = 1, *, applied: bool = False) -> None:
        self._faults.setdefault(method, []).extend([(error, applied)] * times)

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._real, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls[name] = self.calls.get(name, 0) + 1
                queue = self._faults.get(name)
                fault = queue.pop(0) if queue else None
            if fault is None:
                return target(*args, **kwargs)
            error, applied = fault
            if applied:
                target(*args, **kwargs)
            raise error

        return call


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the backoff's shape but not its seconds."""
    import docsync.plugin.retry

    real = docsync.plugin.retry.call_with_retry
    monkeypatch.setattr(
        docsync.plugin.retry,
        "call_with_retry",
        lambda fn, *, attempts, **_: real(fn, attempts=attempts, initial=0.001, maximum=0.004),
    )
    import docsync.plugin.stores.qdrant

    monkeypatch.setattr(
        docsync.plugin.stores.qdrant, "call_with_retry", docsync.plugin.retry.call_with_retry
    )


def server_store(client: FaultyClient) -> QdrantClientStore:
    return QdrantClientStore(client, "docsync", description="server", server=True)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        http_error(503),
        http_error(429),
    ],
    ids=["connect", "timeout", "503", "429"],
)
def test_transient_errors_are_retried_and_logged(
    error: Exception, tiny_encoder: Encoder, caplog: pytest.LogCaptureFixture
) -> None:
    client = FaultyClient()
    store = server_store(client)
    client.fail("upsert", error, times=2)
    client.fail("upsert", error, applied=True)  # written, then the answer was lost
    client.fail("scroll", error)
    with caplog.at_level(logging.WARNING, logger="docsync.retry"):
        report = run_sync(CORPUS / "using", store, tiny_encoder)
    assert report.ok
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 4
    assert state(store) == fresh_state(CORPUS / "using", tiny_encoder)
    assert store.count() == len(state(store))  # the lost acknowledgement duplicated nothing


def test_retries_are_bounded(tiny_encoder: Encoder) -> None:
    client = FaultyClient()
    store = server_store(client)
    store.open(tiny_encoder.profile(), create=True)
    client.calls.clear()
    client.fail("count", httpx.ConnectError("down"), times=SERVER_ATTEMPTS + 5)
    with pytest.raises(StoreUnavailableError, match="unreachable"):
        store.count()
    assert client.calls["count"] == SERVER_ATTEMPTS


def test_a_4xx_is_reported_for_its_file_not_retried(tiny_encoder: Encoder, tmp_path: Path) -> None:
    client = FaultyClient()
    store = server_store(client)
    (tmp_path / "a.md").write_text("# A\n\nFirst file.\n")
    (tmp_path / "b.md").write_text("# B\n\nSecond file.\n")
    store.open(tiny_encoder.profile(), create=True)
    client.calls.clear()
    client.fail("upsert", http_error(400))
    report = run_sync(tmp_path, store, tiny_encoder)
    assert [f.reason for f in report.failures] == ["rejected"]
    assert "400" in report.failures[0].detail
    assert client.calls["upsert"] == 2  # one refused (not retried), one for the other file
    assert {p.payload["path"] for p in store.scroll({})} == {"b.md"}


def test_tries_follow_the_setting(caplog: pytest.LogCaptureFixture) -> None:
    """DOCSYNC_QDRANT_RETRIES reaches the server store: a server that refuses connections is
    tried that many times per call, then reported unreachable."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(qdrant_url=f"http://127.0.0.1:{port}", qdrant_retries=2)
    store = open_store(settings)
    with (
        caplog.at_level(logging.WARNING, logger="docsync.retry"),
        pytest.raises(StoreUnavailableError),
    ):
        store.ping()
    assert len([r for r in caplog.records if "retry" in r.getMessage()]) == 1
    store.close()


def test_backoff_doubles_up_to_its_bound_and_never_overflows() -> None:
    waits = [backoff(n, first=0.5, maximum=8.0) for n in range(1, 8)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    # A daemon that has waited out a day-long outage: 2 ** 1100 is past a float's range.
    assert backoff(1100, first=1.0, maximum=60.0) == 60.0
