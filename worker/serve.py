"""The daemon's HTTP endpoint, on TCP when `DOCSYNC_HTTP_PORT` is set and always on a Unix
socket beside the embedded store (`daemon.sock`), so that `docsync query` and `docsync status`
reach a daemon that holds the store.

    GET /healthz                      200 while the sync loop is turning
    GET /readyz                       200 once the initial sync is done and the store answers
    GET /metrics                      Prometheus text format
    GET /search?q=...&limit=5&path_prefix=...&mode=...&context=...&per_file=...&where=k=v
                                      hits as JSON (mode: dense, keyword or hybrid; context:
                                      a passage's tokens; defaults: DOCSYNC_SEARCH_MODE,
                                      DOCSYNC_CONTEXT_TOKENS, DOCSYNC_HITS_PER_FILE)
    GET /status                       collection, points, files, profile as JSON

Guards on TCP: a Host header that names this endpoint (against DNS rebinding; any Host once a
token is set); with `DOCSYNC_HTTP_TOKEN`, `Authorization: Bearer <token>` on every route but
the two probes; no listening beyond loopback without a token unless the user opts out. On
both transports: each request must arrive within a few seconds, its body is bounded before
it is read (`body_length`), and connections are bounded.
The Unix socket is the owner's alone (mode 0600) and needs neither Host nor token.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import ipaddress
import json
import logging
import os
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST

# The client half lives in plugin (which never imports worker); kept importable from here.
from docsync.plugin.daemon_client import SOCKET_NAME as SOCKET_NAME
from docsync.plugin.daemon_client import ask_daemon as ask_daemon
from docsync.plugin.errors import ConfigError, DocsyncError, StoreError
from docsync.plugin.request import SearchRequest
from docsync.plugin.search import Searcher
from docsync.plugin.stored_text import read_stored

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

log = logging.getLogger("docsync.http")
Response = tuple[int, str, bytes]
Refusal = tuple[Response, dict[str, str]]  # the answer, and headers to add


@dataclass
class Api:
    """What each route answers, whatever the transport."""

    searcher: Searcher
    healthy: Callable[[], bool]
    ready: Callable[[], bool]
    metrics: Callable[[], bytes]
    status: Callable[[], dict[str, Any]]
    # MCP over streamable HTTP (`docsync.worker.mcp_server.HttpBridge`): method, headers, body in,
    # an answer out; None: no /mcp route.
    mcp: Callable[[str, Sequence[tuple[str, str]], bytes], Response] | None = None

    def answer(self, target: str) -> Response:
        url = urlsplit(target)
        query = parse_qs(url.query)
        params = {k: v[-1] for k, v in query.items()}
        wheres = query.get("where", [])
        routes: dict[str, Callable[[dict[str, str]], Response]] = {
            "/healthz": lambda _: _flag(self.healthy(), "ok", "stalled"),
            "/readyz": lambda _: self._readyz(),
            "/metrics": lambda _: (200, CONTENT_TYPE_LATEST, self.metrics()),
            "/search": lambda p: self._search(p, wheres),
            "/read": self._read,
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

    def _search(self, params: dict[str, str], wheres: list[str]) -> Response:
        try:
            hits = self.searcher.find(SearchRequest.from_params(params, wheres))
        except ValueError as exc:
            return _json(400, {"error": str(exc)})
        return _json(200, [hit.to_dict() for hit in hits])

    def _read(self, params: dict[str, str]) -> Response:
        """More of an indexed file around a hit (`docsync.plugin.stored_text`): `path` as hits give
        it, `start`/`end` in its text, `root` where several roots hold the path."""
        path = params.get("path", "").strip()
        if not path:
            return _json(400, {"error": "missing path (a file as hits name it)"})
        try:
            start = _optional_int(params, "start") or 0
            end = _optional_int(params, "end")
            text = read_stored(
                self.searcher.store, path, root=params.get("root") or None, start=start, end=end
            )
        except LookupError as exc:
            return _json(404, {"error": str(exc)})
        except ValueError as exc:
            return _json(400, {"error": str(exc)})
        return _json(200, text.to_dict())


def _optional_int(params: dict[str, str], name: str) -> int | None:
    value = params.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be a number") from None


def _json(status: int, body: Any) -> Response:
    return status, "application/json", json.dumps(body, ensure_ascii=False).encode()


def _flag(ok: bool, good: str, bad: str) -> Response:
    return _json(200 if ok else 503, {"status": good if ok else bad})


@dataclass(frozen=True)
class Limits:
    """What one client may hold. A connection that has not sent its whole request (headers
    and body) within `request_seconds` of being accepted is dropped, however steadily it
    trickles; at most `max_connections` are open at once, and when all are taken the oldest
    one whose request is not yet all in makes room, so that slow or idle clients can neither
    use up the process's file descriptors nor lock out a health check. `clock`: the deadline's
    (monotonic seconds), for tests."""

    request_seconds: float = 5.0
    max_connections: int = 64
    clock: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class Access:
    """Who may ask. `allowed_hosts` None: any Host header; `token` None: no token."""

    token: str | None = None
    allowed_hosts: frozenset[str] | None = None

    def refusal(self, route: str, host: str | None, authorization: str | None) -> Refusal | None:
        """The answer to a request this endpoint must not serve, else None."""
        if self.allowed_hosts is not None and host_name(host or "") not in self.allowed_hosts:
            # A page in the user's browser that rebinds its own name to this address sends
            # that name as Host: refusing unknown names keeps it from reading the answers.
            message = f"Host {host!r} is not a name of this endpoint (DOCSYNC_HTTP_ALLOWED_HOSTS)"
            return _json(403, {"error": message}), {}
        if self.token is None or urlsplit(route).path in OPEN_ROUTES:
            return None
        if _bearer(authorization, self.token):
            return None
        message = "this endpoint requires Authorization: Bearer <token> (DOCSYNC_HTTP_TOKEN)"
        return _json(401, {"error": message}), {"WWW-Authenticate": 'Bearer realm="docsync"'}


class BodyRefused(Exception):
    """A request body refused before a byte of it was read, with the answer that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.response = _json(status, {"error": message})


def body_length(headers: Message, limit: int) -> int:
    """The length of the body a request declares, checked before any of it is read:
    BodyRefused (400) for a Content-Length that is not one whole number, (413) beyond
    `limit`, (411) for a Transfer-Encoding, whose chunks would have no length up front."""
    if headers.get("Transfer-Encoding") is not None:
        raise BodyRefused(411, "send the body with a Content-Length (no Transfer-Encoding)")
    values = {value.strip() for value in headers.get_all("Content-Length") or ()}
    if not values:
        return 0
    value = values.pop()
    # Only ASCII digits: int() would also take "-1" (read to the end), "+1", "1_0" or Arabic digits.
    if values or not (value.isascii() and value.isdigit()):
        raise BodyRefused(400, "Content-Length must be one whole number of bytes")
    # The digits are counted before int(), which refuses more than 4,300 of them.
    if len(value.lstrip("0")) > len(str(limit)) or int(value) > limit:
        raise BodyRefused(413, f"the body is larger than {limit} bytes")
    return int(value)


OPEN = Access()  # the Unix socket's: the owner-only file is the guard
LIMITS = Limits()
OPEN_ROUTES = frozenset({"/healthz", "/readyz"})  # probes carry no data worth a token
MCP_ROUTE = "/mcp"
MCP_MAX_BODY = 1 << 20  # one JSON-RPC message: a question and its options
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


def _bearer(authorization: str | None, token: str) -> bool:
    scheme, _, given = (authorization or "").strip().partition(" ")
    # compare_digest: the time taken must not tell how much of a guess was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def host_name(host: str) -> str:
    """The name in a Host header or an address, as compared: lower case, without port,
    brackets or a trailing dot (`[::1]:8080` -> `::1`, `LocalHost.:80` -> `localhost`)."""
    text = host.strip().lower()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    return text.rstrip(".")


def allowed_hosts(*names: str, extra: Sequence[str] = ()) -> frozenset[str]:
    """The Host names a TCP endpoint answers: loopback's, the address it is bound to (not a
    wildcard, which is nobody's name), and the names the user lists."""
    bound = {host_name(name) for name in names} - _WILDCARDS
    return LOCAL_NAMES | bound | {host_name(name) for name in extra if name.strip()}


class _Deadline(io.RawIOBase):
    """A connection's bytes until the deadline of its whole request. A socket timeout bounds
    one read only, and each byte starts it again: a client sending one a second would hold
    its thread and slot for ever. Past the deadline a read raises TimeoutError, on which
    `BaseHTTPRequestHandler` drops the connection."""

    def __init__(self, connection: socket.socket, limits: Limits) -> None:
        self._connection, self._clock = connection, limits.clock
        self._deadline = limits.clock() + limits.request_seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        left = self._deadline - self._clock()
        if left <= 0:
            raise TimeoutError("the request did not arrive within its deadline")
        self._connection.settimeout(left)
        return self._connection.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def setup(self) -> None:
        super().setup()
        # The request is read through its deadline; one request a connection (HTTP/1.0).
        self.rfile.close()
        self.rfile = io.BufferedReader(_Deadline(self.connection, self.server.limits))

    def _request_read(self) -> None:
        """The whole request is in (headers, and the body a route reads): the connection
        is no longer the first to make room, and the timeout bounds each write of the
        answer instead of what was left of the request's deadline."""
        self.server.received(self.connection)
        self.connection.settimeout(self.server.limits.request_seconds)

    def do_GET(self) -> None:
        self._request_read()  # no body is read on a GET
        if urlsplit(self.path).path == MCP_ROUTE:
            self._mcp("GET")
            return
        refused = self.server.access.refusal(
            self.path, self.headers.get("Host"), self.headers.get("Authorization")
        )
        (status, content_type, body), headers = refused or (self.server.api.answer(self.path), {})
        self._reply(status, content_type, body, headers)

    def do_POST(self) -> None:
        self._mcp("POST")

    def do_DELETE(self) -> None:
        self._mcp("DELETE")

    def _mcp(self, method: str) -> None:
        """`/mcp`: the MCP server's streamable HTTP transport, stateless: a POST carries one
        JSON-RPC message and gets its answer; there is no stream to GET or session to end."""
        refused = self.server.access.refusal(
            self.path, self.headers.get("Host"), self.headers.get("Authorization")
        )
        bridge = self.server.api.mcp
        if refused is not None:
            (status, content_type, body), headers = refused
        elif urlsplit(self.path).path != MCP_ROUTE or bridge is None:
            (status, content_type, body), headers = _json(404, {"error": "no such route"}), {}
        elif method != "POST":
            (status, content_type, body), headers = _json(405, {"error": "POST only"}), {}
        else:
            try:
                request = self._body(MCP_MAX_BODY)
            except BodyRefused as refusal:
                (status, content_type, body), headers = refusal.response, {}
            else:
                self._request_read()
                status, content_type, body = bridge(method, list(self.headers.items()), request)
                headers = {}
        self._reply(status, content_type, body, headers)

    def _body(self, limit: int) -> bytes:
        """The request's body: the one place a body is read, so that every route bounds it
        before reading it. BodyRefused (see `body_length`) before a byte is read; the body a
        refusal leaves unread is never read, so the connection closes after the answer."""
        try:
            length = body_length(self.headers, limit)
        except BodyRefused:
            self.close_connection = True
            raise
        body = self.rfile.read(length)
        if len(body) < length:
            raise ConnectionAbortedError("the client hung up before the end of its body")
        return body

    def _reply(self, status: int, content_type: str, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s", format % args)

    def address_string(self) -> str:
        return str(self.client_address[0]) if self.client_address else "unix"


_BUSY_BODY = b'{"error": "too many open connections"}'
_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(_BUSY_BODY)}\r\nConnection: close\r\n\r\n".encode()
    + _BUSY_BODY
)


class _Server(ThreadingHTTPServer):
    """A threaded HTTP server that holds at most `limits.max_connections` connections."""

    daemon_threads = True
    request_queue_size = socket.SOMAXCONN  # the default 5 drops bursts of clients
    api: Api

    def __init__(
        self,
        address: Any,
        *,
        family: socket.AddressFamily = socket.AF_INET,
        access: Access = OPEN,
        limits: Limits = LIMITS,
    ) -> None:
        self.address_family = family
        self.access, self.limits = access, limits
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        self._lock = threading.Lock()
        self._waiting: dict[socket.socket, None] = {}  # oldest first: request not yet all in
        super().__init__(address, _Handler)

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach the TCP address it is bound to."""
        return _is_loopback(str(self.server_address[0]))

    def server_bind(self) -> None:
        # HTTPServer's would look the address up in DNS (getfqdn), which can take seconds.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), 0

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._admit(request):
            _refuse(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()  # no thread started to release it
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _admit(self, request: socket.socket) -> bool:
        if not self._slots.acquire(blocking=False):
            if not self._evict_oldest():
                return False  # every slot serves a request: answer 503 at once
            # The evicted connection's thread ends as soon as its read returns.
            if not self._slots.acquire(timeout=self.limits.request_seconds):
                return False
        with self._lock:
            self._waiting[request] = None
        return True

    def _evict_oldest(self) -> bool:
        with self._lock:
            if not self._waiting:
                return False
            oldest = next(iter(self._waiting))
            del self._waiting[oldest]
            # Under the lock, so the socket cannot be closed (and its number reused) meanwhile.
            with contextlib.suppress(OSError):
                oldest.shutdown(socket.SHUT_RDWR)
        log.debug(
            "http: all %d connections taken: dropped the oldest one still sending its request",
            self.limits.max_connections,
        )
        return True

    def received(self, request: socket.socket) -> None:
        with self._lock:
            self._waiting.pop(request, None)

    def shutdown_request(self, request: Any) -> None:
        self.received(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer is routine, not a traceback on stderr.
        log.debug("http: connection from %s ended in error", client_address, exc_info=True)


def _refuse(request: socket.socket) -> None:
    with contextlib.suppress(OSError):
        request.setblocking(False)  # never wait on a client we are turning away
        request.send(_BUSY)


class _UnixServer(_Server):
    def __init__(self, path: Path, *, limits: Limits = LIMITS) -> None:
        super().__init__(str(path), family=socket.AF_UNIX, limits=limits)

    def server_bind(self) -> None:
        path = str(self.server_address)
        if os.path.exists(path):
            os.unlink(path)  # left by a daemon that was killed; we hold the store's lock
        self.socket.bind(path)
        # Owner only, before listen(): nobody can connect in between. The socket answers
        # without a token, so only the user who runs the daemon may reach it.
        os.chmod(path, 0o600)
        self.server_name, self.server_port = "localhost", 0

    def server_close(self) -> None:
        super().server_close()
        if os.path.exists(str(self.server_address)):
            os.unlink(str(self.server_address))


def listen_tcp(
    host: str,
    port: int,
    *,
    token: str | None = None,
    insecure: bool = False,
    extra_hosts: Sequence[str] = (),
    limits: Limits = LIMITS,
) -> _Server:
    """Bind the TCP endpoint (not serving yet). ConfigError when the address does not
    resolve, cannot be bound, or lies beyond loopback with neither a token nor `insecure`."""
    family, address = _resolve(host, port)
    shown = _host_port(host, port)
    if token is None and not _is_loopback(address[0]) and not insecure:
        raise ConfigError(
            f"the HTTP endpoint {shown} would be reachable beyond this machine with no token: "
            "set DOCSYNC_HTTP_TOKEN (clients send Authorization: Bearer <token>), or "
            "DOCSYNC_HTTP_INSECURE=true to serve it to anyone who can reach it"
        )
    # With a token, any Host is answered: a rebinding page cannot know the token, and a
    # server bound to 0.0.0.0 has names (container, LAN, DNS) we cannot list ourselves.
    hosts = None if token is not None else allowed_hosts(host, address[0], extra=extra_hosts)
    try:
        return _Server(address, family=family, access=Access(token, hosts), limits=limits)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {shown} for the HTTP endpoint: {exc.strerror or exc}"
        ) from exc


def _resolve(host: str, port: int) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"cannot resolve the HTTP endpoint's host {host!r}: {exc}") from exc
    family, _, _, _, address = found[0]
    return family, address


def _is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address.partition("%")[0]).is_loopback


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Endpoints:
    """The TCP and Unix-socket servers, each on its own thread."""

    def __init__(
        self,
        api: Api,
        *,
        socket_path: Path | None,
        tcp: _Server | None,
        limits: Limits = LIMITS,
    ):
        self.api = api
        self._servers: list[_Server] = []
        if socket_path is not None:
            self._servers.append(_UnixServer(socket_path, limits=limits))
        if tcp is not None:
            self._servers.append(tcp)
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
