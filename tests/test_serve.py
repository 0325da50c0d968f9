"""The daemon's HTTP endpoint as real servers on 127.0.0.1 (port 0) and a Unix socket in
tmp_path: slow and idle clients, the connection bound, Host checks, the bearer token, the
refusal to listen beyond loopback without one, a busy port, and the socket's mode."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import shutil
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge
from pydantic import ValidationError

from docsync.plugin import daemon_client
from docsync.plugin.backends import DaemonBackend
from docsync.plugin.daemon_client import SOCKET_NAME, daemon_answers
from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import ConfigError, StoreUnavailableError
from docsync.plugin.search import Searcher
from docsync.plugin.settings import Settings
from docsync.plugin.store import Store
from docsync.worker.cli import cli
from docsync.worker.http_connections import MAX_HEAD, MAX_WAITING
from docsync.worker.mcp_server import Collection, build_server
from docsync.worker.serve import (
    BACKLOG,
    LIMITS,
    MCP_MAX_BODY,
    STOP_SECONDS,
    Api,
    Endpoints,
    Limits,
    TcpListener,
    allowed_hosts,
    ask_daemon,
    host_name,
    listen_tcp,
)
from tests.conftest import CORPUS, HANG, run_sync

TOKEN = "s3cret-token-for-tests"
DEADLINE = HANG  # seconds any one condition may take; the tests never wait for it to pass


def poll(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def searcher(tiny_encoder: Encoder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from qdrant_client import QdrantClient

    from docsync.plugin.stores.qdrant import QdrantClientStore

    docs = tmp_path_factory.mktemp("serve-docs")
    shutil.copy(CORPUS / "howto" / "sockets.rst", docs / "sockets.rst")
    store: Store = QdrantClientStore(QdrantClient(location=":memory:"), "serve")
    run_sync(docs, store, tiny_encoder)
    yield Searcher(store, tiny_encoder)
    store.close()


def make_api(searcher: Searcher, status: Callable[[], dict[str, Any]] | None = None) -> Api:
    registry = CollectorRegistry()
    Gauge("docsync_ready", "1 once the initial sync is done", registry=registry).set(1)
    return Api(
        searcher=searcher,
        healthy=lambda: True,
        ready=lambda: True,
        metrics=registry,
        status=status or (lambda: {"collection": "serve"}),
    )


@contextmanager
def serving(
    api: Api,
    *,
    socket_path: Path | None = None,
    limits: Limits = LIMITS,
    listener: TcpListener | None = None,
    **tcp: Any,
) -> Iterator[tuple[Endpoints, int]]:
    server = listener or listen_tcp("127.0.0.1", 0, **tcp)
    endpoints = Endpoints(api, socket_path=socket_path, tcp=server, limits=limits)
    try:
        address = endpoints.tcp_address
        assert address is not None
        yield endpoints, address[1]
    finally:
        endpoints.close()


def get(port: int, route: str, **headers: str) -> tuple[int, dict[str, str], Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
    try:
        connection.request("GET", route, headers=headers)
        response = connection.getresponse()
        body = response.read()
        return response.status, dict(response.getheaders()), json.loads(body or b"null")
    except json.JSONDecodeError:
        return response.status, dict(response.getheaders()), body.decode()
    finally:
        connection.close()


def half_request(address: Any, family: int = socket.AF_INET) -> socket.socket:
    """A client that sends half a request line, then nothing."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(DEADLINE)
    sock.connect(address)
    sock.sendall(b"GET /heal")
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has hung up (EOF or a reset), without waiting."""
    sock.setblocking(False)  # a socket with a timeout would wait for it instead
    try:
        return sock.recv(4096) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_a_slow_client_is_dropped_after_the_request_timeout(
    searcher: Searcher, tmp_path: Path, transport: str
) -> None:
    limits = Limits(request_seconds=0.3)
    sock_path = tmp_path / "daemon.sock"
    with serving(make_api(searcher), socket_path=sock_path, limits=limits) as (_, port):
        if transport == "tcp":
            client = half_request(("127.0.0.1", port))
        else:
            client = half_request(str(sock_path), socket.AF_UNIX)
        started = time.monotonic()
        with client:
            # recv blocks until the server hangs up; on a server without a timeout it would
            # raise socket.timeout after DEADLINE instead.
            assert client.recv(4096) == b""
        assert time.monotonic() - started >= 0.25


def test_idle_connections_beyond_the_bound_do_not_lock_out_healthz(searcher: Searcher) -> None:
    limits = Limits(request_seconds=60, max_connections=4)  # the timeout cannot help here
    with serving(make_api(searcher), limits=limits) as (_, port):
        idle = [half_request(("127.0.0.1", port)) for _ in range(12)]
        try:
            status, _, body = get(port, "/healthz")
            assert (status, body) == (200, {"status": "ok"})
            # The server made room by closing the oldest idle clients: of 12 idle ones and
            # the probe on 4 slots, only the 3 newest idle ones can still be open.
            poll(lambda: sum(map(closed_by_server, idle)) >= 9, "oldest idle ones closed")
            assert [closed_by_server(sock) for sock in idle] == [True] * 9 + [False] * 3
        finally:
            for sock in idle:
                sock.close()


def test_connections_beyond_the_bound_are_answered_503_when_all_are_busy(
    searcher: Searcher,
) -> None:
    release = threading.Event()
    entered = threading.Semaphore(0)

    def slow_status() -> dict[str, Any]:
        entered.release()
        release.wait(DEADLINE)
        return {"collection": "serve"}

    limits = Limits(request_seconds=5, max_connections=2)
    with serving(make_api(searcher, slow_status), limits=limits) as (_, port):
        answers: list[int] = []

        def ask() -> None:
            answers.append(get(port, "/status")[0])

        busy = [threading.Thread(target=ask) for _ in range(2)]
        for thread in busy:
            thread.start()
        try:
            for _ in busy:
                assert entered.acquire(timeout=DEADLINE)  # both slots hold a request
            status, _, body = get(port, "/healthz")
            assert (status, body) == (503, {"error": "too many open connections"})
        finally:
            release.set()
            for thread in busy:
                thread.join(DEADLINE)
        assert answers == [200, 200]
        assert get(port, "/healthz")[0] == 200  # the slots come back


def test_the_listen_backlog_is_not_five(searcher: Searcher) -> None:
    assert BACKLOG >= 128  # the backlog both sockets listen with, and uvicorn's
    server = listen_tcp("127.0.0.1", 0)
    try:
        # A burst of clients before the endpoint serves: each waits in the backlog.
        waiting = [socket.create_connection(server.server_address) for _ in range(32)]
        with serving(make_api(searcher), listener=server):
            for sock in waiting:
                sock.sendall(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
                assert sock.makefile("rb").readline().split()[1] == b"200"
                sock.close()
    finally:
        server.server_close()


class Recorder:
    """An MCP server's tool that records every question that reached it."""

    def __init__(self, searcher: Searcher) -> None:
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        self.server = build_server(settings, Collection(settings, searcher=searcher, status=dict))
        self.texts: list[str] = []

        def record(text: str) -> str:
            self.texts.append(text)
            return "recorded"

        self.server.add_tool(record, name="record")


def mcp_api(searcher: Searcher, recorder: Recorder) -> Api:
    """An endpoint whose /mcp is a real MCP server with a `record` tool."""
    api = make_api(searcher)
    api.mcp = recorder.server
    return api


def post_headers(port: int, *headers: str) -> tuple[int, dict[str, str], bytes]:
    """POST /mcp's request line and headers, and not a byte of a body: the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        lines = ["POST /mcp HTTP/1.1", "Host: localhost", *headers, "", ""]
        sock.sendall("\r\n".join(lines).encode())
        response = http.client.HTTPResponse(sock)
        response.begin()  # socket.timeout here: the server waits for a body
        answer = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        # And the server hangs up: the body it refused is never read.
        assert sock.recv(1) == b""
        return answer


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (["Content-Length: -1"], 400),  # rfile.read(-1) read to the end of the stream
        (["Content-Length: abc"], 400),  # int() raised: the connection ended unanswered
        (["Content-Length: +5"], 400),
        (["Content-Length: 5", "Content-Length: 6"], 400),
        ([f"Content-Length: {MCP_MAX_BODY + 1}"], 413),
        (["Content-Length: " + "9" * 5000], 400),  # beyond the digits int() takes
        (["Transfer-Encoding: chunked"], 411),  # chunks have no length up front
    ],
    ids=["negative", "not-a-number", "signed", "two-lengths", "too-large", "huge", "chunked"],
)
def test_a_body_is_refused_by_its_declared_length_before_it_is_read(
    searcher: Searcher, headers: list[str], status: int
) -> None:
    recorder = Recorder(searcher)
    # A request timeout longer than the client waits: the answer cannot be a timeout's.
    with serving(mcp_api(searcher, recorder), limits=Limits(request_seconds=60)) as (_, port):
        code, answer_headers, body = post_headers(port, *headers)
    assert code == status and answer_headers["connection"] == "close"
    if status == 400:  # uvicorn's parser (httptools) refuses a malformed length itself
        assert body == b"Invalid HTTP request received."
    else:
        assert "error" in json.loads(body)


def call_tool(port: int, name: str, arguments: dict[str, Any]) -> tuple[int, Any]:
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/call"}
    request["params"] = {"name": name, "arguments": arguments}  # type: ignore[assignment]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
    try:
        accept = {"Content-Type": "application/json", "Accept": "application/json"}
        connection.request("POST", "/mcp", body=json.dumps(request).encode(), headers=accept)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_body_within_its_bound_reaches_mcp(searcher: Searcher) -> None:
    recorder = Recorder(searcher)
    with serving(mcp_api(searcher, recorder)) as (_, port):
        status, answer = call_tool(port, "record", {"text": "x" * (MCP_MAX_BODY // 2)})
    assert status == 200 and answer["result"]["content"][0]["text"] == "recorded"
    assert recorder.texts == ["x" * (MCP_MAX_BODY // 2)]


def partial_post(port: int, head: bytes = b"Content-Length: 1000\r\n\r\nx") -> socket.socket:
    """A client that sends POST /mcp's request line and `head` (by default its headers and
    the first byte of a body), then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: localhost\r\n" + head)
    return sock


def test_slow_bodies_beyond_the_bound_do_not_lock_out_healthz(searcher: Searcher) -> None:
    recorder = Recorder(searcher)
    limits = Limits(request_seconds=60, max_connections=4)  # the deadline cannot help here
    with serving(mcp_api(searcher, recorder), limits=limits) as (_, port):
        slow = [partial_post(port) for _ in range(8)]
        try:
            status, _, body = get(port, "/healthz")
            assert (status, body) == (200, {"status": "ok"})
            # A request whose body is not all in makes room as an idle one does: of 8 slow
            # ones and the probe on 4 slots, only the 3 newest slow ones can still be open.
            poll(lambda: sum(map(closed_by_server, slow)) >= 5, "oldest slow ones closed")
            assert [closed_by_server(sock) for sock in slow] == [True] * 5 + [False] * 3
        finally:
            for sock in slow:
                sock.close()
    assert recorder.texts == []


def kept_alive(port: int) -> socket.socket:
    """A client that was answered once on its connection, and keeps it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    answer = b""
    while not answer.endswith(b'{"status": "ok"}'):
        answer += sock.recv(4096)
    return sock


@pytest.mark.parametrize("part", ["headers", "body", "next-request"])
def test_a_request_trickled_a_byte_at_a_time_is_dropped_at_its_deadline(
    searcher: Searcher, part: str
) -> None:
    recorder = Recorder(searcher)
    # A byte every 20 ms: only a deadline for the whole request drops this client, not a
    # timeout of one read (which each byte would start again).
    limits = Limits(request_seconds=0.5)
    head = b"X-Slow: " if part != "body" else b"Content-Length: 100000\r\n\r\n"
    dropped = threading.Event()
    with serving(mcp_api(searcher, recorder), limits=limits) as (_, port):
        if part == "next-request":  # the second request of a connection has a deadline too
            sock = kept_alive(port)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + head)
        else:
            sock = partial_post(port, head)
        started = time.monotonic()

        def trickle() -> None:
            while not dropped.wait(0.02):
                try:
                    sock.sendall(b"x")
                except OSError:  # reset or broken pipe: the server hung up
                    dropped.set()

        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        try:
            assert dropped.wait(DEADLINE), "the trickling client was never dropped"
            took = time.monotonic() - started
            # By the deadline: not before, nor after minutes, when the 16 KiB bound on
            # headers would end it anyway. fixed: a bound that only a missing deadline fails
            assert 0.45 <= took < 60, took  # fixed: see above
            assert get(port, "/healthz")[0] == 200
        finally:
            dropped.set()
            sender.join(DEADLINE)
    sock.close()
    assert recorder.texts == []


@pytest.mark.parametrize("part", ["url", "headers"])
def test_a_request_head_beyond_its_bound_is_refused_unread(searcher: Searcher, part: str) -> None:
    """The parser keeps every header until the last: beyond `MAX_HEAD` bytes the request
    is answered 400 and its connection closed, whatever else the client sends."""
    oversized = b"x" * (MAX_HEAD + 1)
    with serving(make_api(searcher)) as (_, port):
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as raw:
            if part == "url":
                raw.sendall(b"GET /healthz?" + oversized + b" HTTP/1.1\r\n")
            else:
                raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + oversized)
            answer = raw.makefile("rb")
            assert answer.readline().split()[1] == b"400"
            with contextlib.suppress(ConnectionResetError):
                raw.sendall(b"\r\n\r\n" + b"y" * 100_000)  # never read
            with contextlib.suppress(ConnectionResetError):
                while answer.read(4096):  # the server hangs up after its answer
                    pass
        # Just within the bound, the same request is answered.
        fits = "x" * (MAX_HEAD - 200)
        assert get(port, "/healthz", **{"X-Big": fits})[0] == 200


@pytest.mark.parametrize(
    "head",
    [b"a: b\r\n" * (MAX_HEAD // 3), b"X-Big: " + b"x" * 2 * MAX_HEAD + b"\r\n"],
    ids=["many-headers", "one-value"],
)
def test_a_whole_head_beyond_its_bound_in_one_read_is_refused(
    searcher: Searcher, head: bytes
) -> None:
    """A head that ends in the read that brings it is counted by what the parser handed
    over: twice `MAX_HEAD` in one write is refused as one trickled is."""
    with (
        serving(make_api(searcher)) as (_, port),
        socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as raw,
    ):
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + head + b"\r\n")
        assert raw.makefile("rb").readline().split()[1] == b"400"


def test_a_body_sent_after_its_answer_leaves_the_deadline_running(searcher: Searcher) -> None:
    """A route that reads no body answers before it is in (GET /healthz with a
    Content-Length): the body that follows ends a request already answered, and the
    connection is then idle as any kept-alive one, under the deadline, not held forever."""
    limits = Limits(request_seconds=0.3, max_connections=2)
    with serving(make_api(searcher), limits=limits) as (_, port):
        idle = []
        for _ in range(2):
            sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\n")
            answer = b""
            while not answer.endswith(b'{"status": "ok"}'):
                answer += sock.recv(4096)
            sock.sendall(b"xxxxx")
            idle.append(sock)
        try:
            poll(lambda: all(map(closed_by_server, idle)), "idle connections dropped")
            assert get(port, "/healthz")[0] == 200
        finally:
            for sock in idle:
                sock.close()


def test_pipelined_requests_beyond_those_waiting_are_never_parsed(searcher: Searcher) -> None:
    """httptools parses a whole read at once: behind a slow answer, at most `MAX_WAITING`
    requests wait their turn; they are answered, the last with Connection: close, and the
    rest of what the client sent is never parsed (nor kept)."""
    release, entered = threading.Event(), threading.Event()

    def slow_status() -> dict[str, Any]:
        entered.set()
        release.wait(DEADLINE)
        return {"collection": "serve"}

    limits = Limits(request_seconds=1)  # after its last answer, a connection kept is dropped
    with (
        serving(make_api(searcher, slow_status), limits=limits) as (endpoints, port),
        socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock,
    ):
        sock.sendall(b"GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert entered.wait(DEADLINE)
        # 40 KB in one write: one read on loopback, all parsed before the answer.
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n" * 1000)
        (connections,) = [guards for _, _, guards in endpoints._servers]
        (connection,) = connections.open
        poll(lambda: len(connection.pipeline) >= MAX_WAITING, "requests waiting")
        release.set()
        answers = sock.makefile("rb").read()  # to the server's close
    assert answers.count(b"HTTP/1.1 200 OK") == 1 + MAX_WAITING
    assert answers.endswith(b'connection: close\r\n\r\n{"status": "ok"}')


@pytest.mark.parametrize(
    "spoilt",
    [
        b"\x00garbage\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"x" * 2 * MAX_HEAD + b"\r\n\r\n",
    ],
    ids=["invalid", "head-beyond-bound"],
)
def test_a_request_spoilt_behind_one_being_answered_gets_no_400_ahead_of_it(
    searcher: Searcher, spoilt: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """httptools parses what follows a request while its answer is under way: a bad one
    there is not answered 400 ahead of it (the client would take the 400 for its first
    answer, and that answer, written to a closed transport, was a traceback in the log).
    The request in full is answered, then the connection closed."""
    release, entered = threading.Event(), threading.Event()

    def slow_status() -> dict[str, Any]:
        entered.set()
        release.wait(DEADLINE)
        return {"collection": "serve"}

    with (
        serving(make_api(searcher, slow_status)) as (_, port),
        socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock,
    ):
        sock.sendall(b"GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n" + spoilt)
        assert entered.wait(DEADLINE)
        release.set()
        answers = sock.makefile("rb").read()  # to the server's close
    assert answers.startswith(b"HTTP/1.1 200 OK") and answers.count(b"HTTP/1.1") == 1
    assert answers.endswith(b'{"collection": "serve"}')
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_client_gone_while_its_pipelined_requests_wait_leaves_no_traceback(
    searcher: Searcher, caplog: pytest.LogCaptureFixture
) -> None:
    """uvicorn tells only the newest request of a connection that its client has gone: an
    answer under way while a later request waits was written to the closed transport,
    which uvloop refuses with an exception (a traceback in the daemon's log, at will)."""
    with serving(make_api(searcher)) as (endpoints, port):
        (server,) = [server for server, _, _ in endpoints._servers]
        (connections,) = [guards for _, _, guards in endpoints._servers]
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n" * 3)
            # Gone once the first is answered: the second under way, the third waiting.
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        poll(lambda: not connections.open and not server.server_state.tasks, "all given up")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_request_to_upgrade_with_a_body_is_refused(searcher: Searcher) -> None:
    """httptools skips the body of a request that asks to upgrade its connection (curl's
    `Upgrade: h2c`): its route would see no body, and the body's bytes, sent later, would
    be parsed as requests of their own. Such a request is refused, and nothing after it read."""
    smuggled = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
    head = b"GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
    with (
        serving(make_api(searcher)) as (_, port),
        socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock,
    ):
        sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(smuggled))
        answer = sock.makefile("rb")
        assert answer.readline().split()[1] == b"400"
        with contextlib.suppress(OSError):  # the server may have hung up already
            sock.sendall(smuggled)
        with contextlib.suppress(ConnectionResetError):
            assert b"HTTP/1.1" not in answer.read()  # to the server's close
        # Without a body, an upgrade asked for is ignored: the request is answered.
        assert get(port, "/healthz", Connection="Upgrade", Upgrade="h2c")[0] == 200


def test_an_answer_that_ends_in_a_close_is_taken_within_the_deadline(searcher: Searcher) -> None:
    """A client that never reads an answer that closes its connection: what is left of it
    once the kernel's buffers are full may lie below the write buffer's high mark (64 KiB),
    where no pause_writing starts the write timer. The connection is dropped at the
    deadline all the same, not held (with its slot) for as long as the client keeps it."""
    size = [1 << 20]
    listener = listen_tcp("127.0.0.1", 0)
    # Small kernel buffers both ways (the server's sockets take the listener's): the rest of
    # an answer waits in the server's own buffer; how much, a first client measures.
    listener.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    api = make_api(searcher, lambda: {"x": "y" * size[0]})
    limits = Limits(request_seconds=1)
    with serving(api, limits=limits, listener=listener) as (endpoints, port):
        (connections,) = [guards for _, _, guards in endpoints._servers]

        def unread(request: bytes) -> tuple[socket.socket, Any]:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET /status HTTP/1.1\r\nHost: localhost\r\n" + request + b"\r\n")
            name = sock.getsockname()[:2]
            poll(lambda: any(c.client == name for c in connections.open), "connection seen")
            (connection,) = [c for c in connections.open if c.client == name]
            return sock, connection

        first, measured = unread(b"")
        poll(lambda: measured.flow.write_paused, "the first answer waits")
        size[0] -= measured.transport.get_write_buffer_size() - 32 * 1024  # 32 KiB left
        first.close()
        sock, closing = unread(b"Connection: close\r\n")
        with sock:
            poll(closing.transport.is_closing, "answered, closing")
            assert 0 < closing.transport.get_write_buffer_size() < 64 * 1024
            poll(lambda: not connections.open, "the unread answer's connection dropped")


def test_a_foreign_host_is_refused_and_local_names_are_answered(searcher: Searcher) -> None:
    with serving(make_api(searcher), extra_hosts=["Docs.Internal"]) as (_, port):
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.2", "localhost.evil"):
            status, _, body = get(port, "/status", Host=host)
            assert status == 403, host
            assert "DOCSYNC_HTTP_ALLOWED_HOSTS" in body["error"]
        for host in (
            "localhost",
            f"localhost:{port}",
            f"127.0.0.1:{port}",
            "[::1]:80",
            "[::1]",
            "docs.internal:8080",
            "LOCALHOST.",
        ):
            assert get(port, "/status", Host=host)[0] == 200, host
        # A request with no Host at all is no name of ours either.
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as raw:
            raw.sendall(b"GET /status HTTP/1.0\r\n\r\n")
            assert raw.makefile("rb").readline().split()[1] == b"403"


def test_the_unix_socket_answers_the_cli_client_and_is_owner_only(
    searcher: Searcher, tmp_path: Path
) -> None:
    sock_path = tmp_path / "daemon.sock"
    with serving(make_api(searcher), socket_path=sock_path, token=TOKEN) as (_, port):
        assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o600
        # No token on the socket: the file's mode is its guard.
        assert ask_daemon(sock_path, "/status") == {"collection": "serve"}
        hits = ask_daemon(sock_path, "/search", {"q": "socket", "limit": "2"})
        assert len(hits) == 2
        assert get(port, "/status")[0] == 401  # while TCP asks for the token
    assert not sock_path.exists()


def test_status_asks_the_daemon_only_for_its_own_collection(
    searcher: Searcher, tmp_path: Path
) -> None:
    """`docsync status --collection other` while a daemon holds the store: the daemon's
    collection is not the one asked of (the store answers for it, or says it is missing)."""
    from docsync.worker.wiring import daemon_status

    with serving(make_api(searcher), socket_path=tmp_path / SOCKET_NAME):
        own = Settings(qdrant_path=tmp_path, collection="serve")
        assert daemon_status(own) == {"collection": "serve"}
        assert daemon_status(Settings(qdrant_path=tmp_path, collection="other")) is None


def test_a_searcher_of_a_daemon_that_stopped_fails_with_one_store_error(
    searcher: Searcher, tmp_path: Path
) -> None:
    sock_path = tmp_path / "daemon.sock"
    remote = Searcher.over(DaemonBackend(sock_path))
    with serving(make_api(searcher), socket_path=sock_path):
        assert len(remote.search("socket", limit=2)) == 2
        assert daemon_answers(sock_path)
    # The daemon stopped (its socket is gone), then one killed left its socket behind.
    for state in ("gone", "left behind"):
        if state == "left behind":
            with socket.socket(socket.AF_UNIX) as left:
                left.bind(str(sock_path))
        with pytest.raises(StoreUnavailableError, match="daemon does not answer") as caught:
            remote.search("socket", limit=2)
        assert isinstance(caught.value.__cause__, OSError), state
        assert "\n" not in str(caught.value) and str(sock_path) in str(caught.value)
        assert not daemon_answers(sock_path), state


def test_a_daemon_searcher_keeps_its_connection_and_opens_another_when_it_was_closed(
    searcher: Searcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new connection costs the daemon half a millisecond: a searcher asking again uses
    the one it has; one the daemon closed meanwhile (a restart) is opened again for the
    same search, which is answered."""
    opened: list[Path] = []
    connect = daemon_client.UnixConnection.connect

    def counted(self: daemon_client.UnixConnection) -> None:
        opened.append(self._path)
        connect(self)

    monkeypatch.setattr(daemon_client.UnixConnection, "connect", counted)
    sock_path = tmp_path / "daemon.sock"
    remote = Searcher.over(DaemonBackend(sock_path))
    with serving(make_api(searcher), socket_path=sock_path):
        for _ in range(5):
            assert len(remote.search("socket", limit=2)) == 2
        assert len(opened) == 1
    with serving(make_api(searcher), socket_path=sock_path):  # the daemon started again
        assert len(remote.search("socket", limit=2)) == 2
        assert len(opened) == 2
        many = [threading.Thread(target=remote.search, args=("socket",)) for _ in range(3)]
        for thread in many:
            thread.start()
        for thread in many:
            thread.join(HANG)
        assert 2 < len(opened) <= 5  # threads asking at once ask on connections of their own
    remote.close()


def test_the_token_guards_every_route_but_the_probes(searcher: Searcher) -> None:
    with serving(make_api(searcher), token=TOKEN) as (_, port):
        for route in ("/search?q=socket", "/status", "/metrics", "/nowhere"):
            for auth in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                status, headers, body = get(port, route, **auth)
                assert status == 401, (route, auth)
                assert headers["www-authenticate"].startswith("Bearer")  # names in lower case
                assert "error" in body
            status, _, body = get(port, route, Authorization=f"Bearer {TOKEN}")
            assert status == (404 if route == "/nowhere" else 200), (route, body)
        metrics = get(port, "/metrics", Authorization=f"bearer {TOKEN}")[2]
        assert "\ndocsync_ready 1.0\n" in metrics  # prometheus-client's own text
        for route in ("/healthz", "/readyz"):
            assert get(port, route)[0] == 200, route
        # With a token any Host is answered: a rebinding page cannot know the token.
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert get(port, "/status", Host="docsync.lan:8080", **auth)[0] == 200


def test_listening_beyond_loopback_needs_a_token_or_the_opt_out() -> None:
    for host in ("0.0.0.0", "::"):
        with pytest.raises(ConfigError, match=r"DOCSYNC_HTTP_TOKEN.*DOCSYNC_HTTP_INSECURE"):
            listen_tcp(host, 0)
    # Bound (never served, never connected to) once the user opts out or sets a token.
    for options in ({"insecure": True}, {"token": TOKEN}):
        server = listen_tcp("0.0.0.0", 0, **options)  # type: ignore[arg-type]
        try:
            assert not server.loopback
        finally:
            server.server_close()
    server = listen_tcp("localhost", 0)
    try:
        assert server.loopback  # loopback by name needs nothing
    finally:
        server.server_close()


def test_allowed_host_names() -> None:
    assert host_name("[::1]:8080") == "::1"
    assert host_name("LocalHost.:80") == "localhost"
    assert host_name("::1") == "::1"  # an address as configured, not a Host with a port
    hosts = allowed_hosts("0.0.0.0", "::", extra=["docs.lan:8080", " ", "10.0.0.5"])
    assert hosts == {"localhost", "127.0.0.1", "::1", "docs.lan", "10.0.0.5"}
    assert "192.168.1.9" in allowed_hosts("192.168.1.9")


def test_http_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSYNC_HTTP_ALLOWED_HOSTS", "docs.lan, nas.local")
    monkeypatch.setenv("DOCSYNC_HTTP_TOKEN", "")  # compose passes an unset variable as ""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.http_allowed_hosts == ["docs.lan", "nas.local"]
    assert settings.http_token is None and settings.http_insecure is False
    monkeypatch.setenv("DOCSYNC_HTTP_TOKEN", f" {TOKEN}\n")
    token = Settings(_env_file=None).http_token  # type: ignore[call-arg]
    assert token is not None and token.get_secret_value() == TOKEN
    assert TOKEN not in repr(Settings(_env_file=None))  # type: ignore[call-arg]
    monkeypatch.setenv("DOCSYNC_HTTP_TOKEN", "two words")
    with pytest.raises(ValidationError, match="printable ASCII"):
        Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model_dir: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("DOCSYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCSYNC_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("DOCSYNC_QDRANT_PATH", str(tmp_path / "store"))
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(CORPUS / "howto" / "sockets.rst", docs / "sockets.rst")
    return docs


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("docsync: error:")]
    assert len(errors) == 1, err
    return errors[0]


def test_a_busy_port_is_one_error_line_before_the_store_or_model(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = cli("run", str(env), "--http-port", str(port))
    err = capsys.readouterr().err
    assert code == 2
    line = one_error_line(err)
    assert f"127.0.0.1:{port}" in line and "in use" in line
    assert not (tmp_path / "store").exists()  # no store folder, so no collection
    assert "loading model" not in err


def test_run_refuses_to_listen_beyond_loopback_without_a_token(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Were the address not refused, this stands in for the daemon that would run for ever.
    monkeypatch.setattr("docsync.worker.wiring.run_daemon", lambda *_, **__: 99)
    code = cli("run", str(env), "--http-host", "0.0.0.0", "--http-port", "0")
    err = capsys.readouterr().err
    assert code == 2
    assert "DOCSYNC_HTTP_TOKEN" in one_error_line(err)
    assert not (tmp_path / "store").exists()


def test_search_filters_by_where_and_refuses_unknown_keys(searcher: Searcher) -> None:
    api = make_api(searcher)
    status, _, body = api.answer("/search?q=socket&where=format=rst&where=path=*.rst")
    hits = json.loads(body)
    assert status == 200 and hits and all(h["format"] == "rst" for h in hits)
    assert all(h["page_start"] is None for h in hits)
    status, _, body = api.answer("/search?q=socket&where=format=pdf")
    assert status == 200 and json.loads(body) == []
    status, _, body = api.answer("/search?q=socket&where=colour=red")
    assert status == 400 and "unknown filter key 'colour'" in json.loads(body)["error"]


def test_wrong_methods_and_routes_are_refused_in_json(searcher: Searcher) -> None:
    with serving(mcp_api(searcher, Recorder(searcher))) as (_, port):
        assert get(port, "/nowhere")[::2] == (404, {"error": "no route /nowhere"})
        for method, route, allowed in (("POST", "/status", "GET"), ("GET", "/mcp", "POST")):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
            connection.request(method, route, headers={"Accept": "text/event-stream"})
            response = connection.getresponse()
            assert response.status == 405 and allowed in response.headers["Allow"]
            assert json.loads(response.read()) == {"error": "Method Not Allowed"}
            connection.close()


def test_a_stop_waits_for_no_client_still_sending(
    searcher: Searcher, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`docsync run` stops within seconds of SIGTERM: a body half sent, a request half sent
    on the socket and a kept-alive idle client are dropped, not waited for, and nobody's
    task is cancelled with a traceback."""
    recorder = Recorder(searcher)
    sock_path = tmp_path / "daemon.sock"
    server = listen_tcp("127.0.0.1", 0)
    endpoints = Endpoints(mcp_api(searcher, recorder), socket_path=sock_path, tcp=server)
    port = server.server_address[1]
    clients = [partial_post(port), half_request(str(sock_path), socket.AF_UNIX)]
    kept = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
    kept.request("GET", "/healthz")
    assert kept.getresponse().read() == b'{"status": "ok"}'
    started = time.monotonic()
    endpoints.close()
    assert time.monotonic() - started < STOP_SECONDS
    for client in clients:
        assert client.recv(4096) == b""
        client.close()
    kept.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not sock_path.exists()
