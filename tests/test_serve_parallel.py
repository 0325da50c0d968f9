"""Several clients at once: the daemon's endpoint answers searches from several clients
together (HTTP and its Unix socket), a client that sends its request slowly or never reads
its answer holds no one up, and a serving store (its shard in a child process) carries
several requests at once, each answered with its own result, while a swap still waits for
those in flight. Real sockets; every wait is a polled deadline, nothing is timed."""

from __future__ import annotations

import http.client
import shutil
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest

from docsync.plugin.encoder import Encoder
from docsync.plugin.profile import EmbeddingProfile
from docsync.plugin.request import SearchRequest
from docsync.plugin.search import Searcher
from docsync.plugin.store import Point, Store
from docsync.plugin.stores.edge import EdgeStore
from docsync.plugin.stores.edge_host import CHANNELS, HostedShard
from docsync.plugin.stores.turns import Turns
from docsync.worker.serve import ask_daemon
from tests.conftest import CORPUS, HANG, run_sync
from tests.test_serve import kept_alive, make_api, poll, serving

DEADLINE = HANG
CLIENTS = 3


@pytest.fixture(scope="module")
def searcher(tiny_encoder: Encoder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from qdrant_client import QdrantClient

    from docsync.plugin.stores.qdrant import QdrantClientStore

    docs = tmp_path_factory.mktemp("parallel-docs")
    shutil.copy(CORPUS / "howto" / "sockets.rst", docs / "sockets.rst")
    store: Store = QdrantClientStore(QdrantClient(location=":memory:"), "parallel")
    run_sync(docs, store, tiny_encoder)
    yield Searcher(store, tiny_encoder)
    store.close()


class Gate:
    """A searcher's `find` that lets no search through until `together` are inside it at
    once: a server that answers one search at a time never gets them all in (the barrier
    breaks at its deadline and the searches fail)."""

    def __init__(self, searcher: Searcher, together: int) -> None:
        self._find = searcher.find
        self.barrier = threading.Barrier(together, timeout=DEADLINE)

    def find(self, request: SearchRequest) -> Any:
        self.barrier.wait()
        return self._find(request)


def search_http(port: int, question: str) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
    try:
        connection.request("GET", "/search?" + urlencode({"q": question, "limit": 2}))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def together(asks: list[Callable[[], Any]]) -> list[Any]:
    """Run each ask on a thread of its own; their results (or the error each raised)."""
    results: list[Any] = [None] * len(asks)

    def run(n: int) -> None:
        try:
            results[n] = asks[n]()
        except Exception as exc:
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(asks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    return results


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_searches_from_several_clients_are_answered_together(
    searcher: Searcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    gate = Gate(searcher, CLIENTS)
    monkeypatch.setattr(searcher, "find", gate.find)
    sock_path = tmp_path / "daemon.sock"
    with serving(make_api(searcher), socket_path=sock_path) as (_, port):
        if transport == "tcp":
            asks = [lambda: search_http(port, "socket")[0] for _ in range(CLIENTS)]
        else:
            asks = [
                lambda: len(ask_daemon(sock_path, "/search", {"q": "socket", "limit": "2"}))
                for _ in range(CLIENTS)
            ]
        results = together(asks)
    assert not gate.barrier.broken
    expected = 200 if transport == "tcp" else 2
    assert results == [expected] * CLIENTS


def test_a_search_under_way_holds_up_neither_another_search_nor_the_probes(
    searcher: Searcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside, release = threading.Event(), threading.Event()
    real_find = searcher.find

    def find(request: SearchRequest) -> Any:
        if request.question == "stuck":
            inside.set()
            release.wait(DEADLINE)
        return real_find(request)

    monkeypatch.setattr(searcher, "find", find)
    with serving(make_api(searcher)) as (_, port):
        stuck = threading.Thread(target=search_http, args=(port, "stuck"))
        stuck.start()
        try:
            assert inside.wait(DEADLINE)
            assert search_http(port, "socket")[0] == 200
            assert search_http(port, "socket")[0] == 200
        finally:
            release.set()
            stuck.join(DEADLINE)


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_clients_that_send_slowly_or_never_read_hold_no_one_up(
    searcher: Searcher, tmp_path: Path, transport: str
) -> None:
    sock_path = tmp_path / "daemon.sock"
    with serving(make_api(searcher), socket_path=sock_path) as (_, port):
        address: Any = ("127.0.0.1", port) if transport == "tcp" else str(sock_path)
        family = socket.AF_INET if transport == "tcp" else socket.AF_UNIX
        slow = []
        for _ in range(3):  # half a search request each, then nothing
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.connect(address)
            sock.sendall(b"GET /search?q=sock")
            slow.append(sock)
        # A client that asks for answers and never reads them: many searches in one write,
        # so that their answers fill the socket's buffers and the server must wait on it.
        deaf = socket.socket(family, socket.SOCK_STREAM)
        deaf.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        deaf.connect(address)
        request = b"GET /search?q=socket&limit=20&context=512 HTTP/1.1\r\nHost: localhost\r\n\r\n"
        deaf.sendall(request * 200)
        slow.append(deaf)
        try:
            for _ in range(3):
                if transport == "tcp":
                    assert search_http(port, "socket")[0] == 200
                else:
                    assert ask_daemon(sock_path, "/search", {"q": "socket", "limit": "2"})
        finally:
            for sock in slow:
                sock.close()


def test_turns_share_and_a_lone_turn_waits_for_those_in_flight() -> None:
    turns = Turns()
    first, second = turns.shared(), turns.shared()
    first.__enter__()
    second.__enter__()  # two shared turns at once: this would wait forever otherwise
    alone_in = threading.Event()

    def lone() -> None:
        with turns.alone():
            alone_in.set()

    waiter = threading.Thread(target=lone)
    waiter.start()
    late_in = threading.Event()

    def late() -> None:
        with turns.shared():
            late_in.set()

    latecomer = threading.Thread(target=late)
    poll(lambda: turns._waiting_alone == 1, "the lone turn waiting")
    latecomer.start()
    first.__exit__(None, None, None)
    assert not alone_in.is_set()  # one shared turn is still in flight
    assert not late_in.is_set()  # after a waiting lone turn: it goes first
    second.__exit__(None, None, None)
    waiter.join(DEADLINE)
    latecomer.join(DEADLINE)
    assert alone_in.is_set() and late_in.is_set()


DIMENSION = 16
PROFILE = EmbeddingProfile("m", None, DIMENSION, "cosine", "", "", "c")


def test_a_serving_store_answers_several_searches_at_once_each_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors = np.random.default_rng(5).standard_normal((40, DIMENSION)).tolist()
    store = EdgeStore.connect(path=tmp_path / "edge", collection="docsync", serving=True)
    try:
        store.open(PROFILE, create=True)
        ids = [str(uuid.UUID(int=i + 1)) for i in range(len(vectors))]
        store.upsert([Point(ids[i], {"n": i}, v, None) for i, v in enumerate(vectors)])
        shard = store._shard
        assert isinstance(shard, HostedShard)
        # Every channel taken at once: a search that found one lock in its way would never
        # get them all.
        held = threading.Barrier(CHANNELS, timeout=DEADLINE)
        real_answer = HostedShard._answer

        def answer(self: HostedShard) -> Any:
            held.wait()
            return real_answer(self)

        monkeypatch.setattr(HostedShard, "_answer", answer)
        found = together(
            [lambda n=n: store.search(vectors[n], limit=1)[0].id for n in range(CHANNELS)]
        )
        monkeypatch.setattr(HostedShard, "_answer", real_answer)
        assert found == ids[:CHANNELS]
        # Many more threads than channels, each with its own question, many times over.
        rounds = 10
        found = together(
            [
                lambda n=n: [store.search(vectors[n], limit=1)[0].id for _ in range(rounds)]
                for n in range(len(vectors))
            ]
        )
        assert found == [[ids[n]] * rounds for n in range(len(vectors))]
    finally:
        store.close()


def test_answers_on_tcp_are_sent_without_waiting_for_the_clients_ack(searcher: Searcher) -> None:
    """Nagle's algorithm off on every TCP connection: with it on, an answer written in two
    parts (headers, body) on a kept-alive connection waits for the client's delayed ACK."""
    with serving(make_api(searcher)) as (endpoints, port):
        client = kept_alive(port)
        with client:
            connections = [c for _, _, group in endpoints._servers for c in group.open]
            assert connections
            for connection in connections:
                sock = connection.transport.get_extra_info("socket")
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
