"""The daemon's HTTP endpoint, on TCP when `DOCSYNC_HTTP_PORT` is set and always on a Unix
socket beside the embedded store (`daemon.sock`), so that `docsync query` and `docsync status`
reach a daemon that holds the store.

    GET /healthz                      200 while the sync loop is turning
    GET /readyz                       200 once the initial sync is done and the store answers
    GET /metrics                      Prometheus text format
    GET /search?q=...&limit=5&path_prefix=...    hits as JSON
    GET /status                       collection, points, files, profile as JSON
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST

# The client half lives in plugin (which never imports worker); kept importable from here.
from plugin.daemon_client import SOCKET_NAME as SOCKET_NAME
from plugin.daemon_client import ask_daemon as ask_daemon
from plugin.errors import DocsyncError, StoreError
from plugin.search import MAX_LIMIT, Searcher

log = logging.getLogger("docsync.http")
Response = tuple[int, str, bytes]


@dataclass
class Api:
    """What each route answers, whatever the transport."""

    searcher: Searcher
    healthy: Callable[[], bool]
    ready: Callable[[], bool]
    metrics: Callable[[], bytes]
    status: Callable[[], dict[str, Any]]

    def answer(self, target: str) -> Response:
        url = urlsplit(target)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        routes: dict[str, Callable[[dict[str, str]], Response]] = {
            "/healthz": lambda _: _flag(self.healthy(), "ok", "stalled"),
            "/readyz": lambda _: self._readyz(),
            "/metrics": lambda _: (200, CONTENT_TYPE_LATEST, self.metrics()),
            "/search": self._search,
            "/status": lambda _: _json(200, self.status()),
        }
        route = routes.get(url.path)
        if route is None:
            return _json(404, {"error": f"no route {url.path}"})
        try:
            return route(params)
        except DocsyncError as exc:
            return _json(503 if isinstance(exc, StoreError) else 400, {"error": str(exc)})

    def _readyz(self) -> Response:
        if not self.ready():
            return _json(503, {"ready": False, "reason": "initial sync not finished"})
        self.searcher.store.ping()
        return _json(200, {"ready": True})

    def _search(self, params: dict[str, str]) -> Response:
        question = params.get("q", "").strip()
        if not question:
            return _json(400, {"error": "missing q (the question)"})
        try:
            limit = int(params.get("limit", "5"))
        except ValueError:
            return _json(400, {"error": "limit must be a number"})
        if not 1 <= limit <= MAX_LIMIT:
            return _json(400, {"error": f"limit must be between 1 and {MAX_LIMIT}"})
        hits = self.searcher.search(question, limit=limit, path_prefix=params.get("path_prefix"))
        return _json(200, [hit.to_dict() for hit in hits])


def _json(status: int, body: Any) -> Response:
    return status, "application/json", json.dumps(body, ensure_ascii=False).encode()


def _flag(ok: bool, good: str, bad: str) -> Response:
    return _json(200 if ok else 503, {"status": good if ok else bad})


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        status, content_type, body = self.server.api.answer(self.path)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s", format % args)

    def address_string(self) -> str:
        return str(self.client_address[0]) if self.client_address else "unix"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: Api


class _UnixServer(_Server):
    address_family = socket.AF_UNIX

    def server_bind(self) -> None:
        path = str(self.server_address)
        if os.path.exists(path):
            os.unlink(path)  # left by a daemon that was killed; we hold the store's lock
        self.socket.bind(path)
        self.server_name, self.server_port = "localhost", 0

    def server_close(self) -> None:
        super().server_close()
        if os.path.exists(str(self.server_address)):
            os.unlink(str(self.server_address))


class Endpoints:
    """The TCP and Unix-socket servers, each on its own thread."""

    def __init__(self, api: Api, *, socket_path: Path | None, tcp: tuple[str, int] | None):
        self._servers: list[_Server] = []
        if socket_path is not None:
            self._servers.append(_UnixServer(str(socket_path), _Handler))  # type: ignore[arg-type]
        if tcp is not None:
            self._servers.append(_Server(tcp, _Handler))
        for server in self._servers:
            server.api = api
            threading.Thread(target=server.serve_forever, daemon=True).start()

    @property
    def tcp_address(self) -> tuple[str, int] | None:
        for server in self._servers:
            if not isinstance(server, _UnixServer):
                host, port = server.server_address[:2]
                return str(host), int(port)
        return None

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
