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

One ASGI application (Starlette) served by uvicorn on its own thread, once per transport;
`POST /mcp` is the MCP SDK's own streamable HTTP app (`docsync.worker.mcp_server`), mounted
when the daemon serves TCP. Guards (`docsync.worker.http_guards`): on TCP, a Host header that
names this endpoint (against DNS rebinding; any Host once a token is set) and, with
`DOCSYNC_HTTP_TOKEN`, `Authorization: Bearer <token>` on every route but the two probes; no
listening beyond loopback without a token unless the user opts out. On both transports: each
request must arrive within a few seconds, its body is bounded before it is read, and
connections are bounded. The Unix socket is the owner's alone (mode 0600) and needs neither
Host nor token.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import math
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import uvicorn
from prometheus_client import CollectorRegistry, make_asgi_app
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response as HttpResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

# The client half lives in plugin (which never imports worker); kept importable from here.
from docsync.plugin.daemon_client import SOCKET_NAME as SOCKET_NAME
from docsync.plugin.daemon_client import ask_daemon as ask_daemon
from docsync.plugin.errors import ConfigError, DocsyncError, StoreError
from docsync.plugin.filters import parse_where
from docsync.plugin.search import MAX_LIMIT, Searcher, check_context, check_mode
from docsync.plugin.stored_text import read_stored
from docsync.worker.http_guards import LIMITS as LIMITS
from docsync.worker.http_guards import Access, AccessGuard, BodyLimit, Connections, allowed_hosts
from docsync.worker.http_guards import Limits as Limits
from docsync.worker.http_guards import host_name as host_name

if TYPE_CHECKING:
    from mcp.server import MCPServer

log = logging.getLogger("docsync.http")
Response = tuple[int, str, bytes]


@dataclass
class Api:
    """What each route answers, whatever the transport."""

    searcher: Searcher
    healthy: Callable[[], bool]
    ready: Callable[[], bool]
    metrics: CollectorRegistry  # served at /metrics by prometheus-client's own ASGI app
    status: Callable[[], dict[str, Any]]
    # The MCP server whose streamable HTTP app is mounted at /mcp; None: no /mcp route.
    mcp: MCPServer | None = None

    def answer(self, target: str) -> Response:
        url = urlsplit(target)
        query = parse_qs(url.query)
        params = {k: v[-1] for k, v in query.items()}
        wheres = query.get("where", [])
        routes: dict[str, Callable[[dict[str, str]], Response]] = {
            "/healthz": lambda _: _flag(self.healthy(), "ok", "stalled"),
            "/readyz": lambda _: self._readyz(),
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
        question = params.get("q", "").strip()
        if not question:
            return _json(400, {"error": "missing q (the question)"})
        try:
            limit = int(params.get("limit", "5"))
        except ValueError:
            return _json(400, {"error": "limit must be a number"})
        if not 1 <= limit <= MAX_LIMIT:
            return _json(400, {"error": f"limit must be between 1 and {MAX_LIMIT}"})
        mode = params.get("mode", "").strip() or None
        try:
            context = _optional_int(params, "context")
            per_file = _optional_int(params, "per_file")
            if mode is not None:
                check_mode(mode)
            check_context(context, per_file)
            filters = parse_where(wheres)
        except ValueError as exc:
            return _json(400, {"error": str(exc)})
        path_prefix = params.get("path_prefix")
        try:
            hits = self.searcher.search(
                question,
                limit=limit,
                path_prefix=path_prefix,
                mode=mode,
                context=context,
                per_file=per_file,
                filters=filters,
            )
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


MCP_ROUTE = "/mcp"
API_ROUTES = ("/healthz", "/readyz", "/search", "/read", "/status")  # what `Api.answer` answers
MCP_MAX_BODY = 1 << 20  # one JSON-RPC message: a question and its options
BACKLOG = socket.SOMAXCONN  # a small backlog drops bursts of clients
# How long a stop waits for answers under way; a sync loop's SIGTERM waits for no more.
STOP_SECONDS = 3


class TcpListener:
    """The TCP endpoint's socket, bound and listening before the store and the model are
    opened (a busy port is one error line), served once `Endpoints` starts; and who may ask."""

    def __init__(self, sock: socket.socket, access: Access) -> None:
        self.socket, self.access = sock, access
        self.server_address: tuple[str, int] = sock.getsockname()[:2]

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach the TCP address it is bound to."""
        return _is_loopback(str(self.server_address[0]))

    def server_close(self) -> None:
        self.socket.close()


def listen_tcp(
    host: str,
    port: int,
    *,
    token: str | None = None,
    insecure: bool = False,
    extra_hosts: Sequence[str] = (),
) -> TcpListener:
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
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {shown} for the HTTP endpoint: {exc.strerror or exc}"
        ) from exc
    return TcpListener(sock, Access(token, hosts))


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


def listen_unix(path: Path) -> socket.socket:
    """The daemon's socket beside the store, the owner's alone."""
    if os.path.exists(path):
        os.unlink(path)  # left by a daemon that was killed; we hold the store's lock
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    # Owner only, before listen(): nobody can connect in between. The socket answers
    # without a token, so only the user who runs the daemon may reach it. (uvicorn's own
    # `uds=` sets the mode after it listens.)
    os.chmod(path, 0o600)
    sock.listen(BACKLOG)
    return sock


class _Route:
    """An ASGI callable as a route's app (Starlette takes a plain function for a request
    handler, and prometheus-client's app is one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def build_app(api: Api, *, mcp: ASGIApp | None = None, access: Access | None = None) -> Starlette:
    """The endpoint as one ASGI application: `/metrics` from prometheus-client, `/mcp` from
    the MCP SDK, the other routes answered by `api`; behind `access` (None: anyone who
    reaches the socket) and the body limit."""

    async def answer(request: Request) -> HttpResponse:
        query = request.scope["query_string"].decode("latin-1")
        target = request.scope["raw_path"].decode("latin-1") + (f"?{query}" if query else "")
        # A search embeds its question: on a worker thread, not the server's loop.
        status, content_type, body = await run_in_threadpool(api.answer, target)
        return HttpResponse(body, status, media_type=content_type)

    routes = [Route("/metrics", _Route(make_asgi_app(api.metrics)), methods=["GET"])]
    if mcp is not None:
        # POST only, as the transport is stateless: a GET would open an event stream that
        # holds its connection (and slot) until the server stops, with nothing to send.
        routes.append(Route(MCP_ROUTE, mcp, methods=["POST"]))
    routes += [Route(path, answer, methods=["GET"]) for path in API_ROUTES]
    middleware = [Middleware(AccessGuard, access=access)] if access is not None else []
    middleware.append(Middleware(BodyLimit, limit=MCP_MAX_BODY))
    return Starlette(
        routes=routes, middleware=middleware, exception_handlers={HTTPException: _error}
    )


async def _error(request: Request, exc: Exception) -> HttpResponse:
    """Starlette's own refusals (no such route, a POST to a GET route) in the endpoint's
    JSON, as `Api.answer` words them."""
    assert isinstance(exc, HTTPException)
    message = f"no route {request.url.path}" if exc.status_code == 404 else exc.detail
    body = json.dumps({"error": message}, ensure_ascii=False).encode()
    return HttpResponse(body, exc.status_code, exc.headers, "application/json")


class Endpoints:
    """The TCP and Unix-socket servers: uvicorn, on one event loop on a thread of its own
    (the daemon's sync loop keeps the main thread, and its SIGTERM: uvicorn installs no
    signal handlers off the main thread)."""

    def __init__(
        self,
        api: Api,
        *,
        socket_path: Path | None,
        tcp: TcpListener | None,
        limits: Limits = LIMITS,
    ):
        self.api, self._socket_path, self._tcp = api, socket_path, tcp
        mcp = None
        if api.mcp is not None:
            from docsync.worker.mcp_server import streamable_http_app

            mcp = streamable_http_app(api.mcp, path=MCP_ROUTE, max_body=MCP_MAX_BODY)
        self._servers: list[tuple[uvicorn.Server, socket.socket, Connections]] = []
        if socket_path is not None:
            self._serve(listen_unix(socket_path), build_app(api, mcp=mcp), limits)
        if tcp is not None:
            self._serve(tcp.socket, build_app(api, mcp=mcp, access=tcp.access), limits)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._run(),), daemon=True, name="docsync-http"
        )
        self._thread.start()

    def _serve(self, sock: socket.socket, app: Starlette, limits: Limits) -> None:
        connections = Connections(limits)
        config = uvicorn.Config(
            app,
            http=connections.protocol(),
            ws="none",
            lifespan="off",  # the one lifespan, MCP's session manager, is run by `_run`
            log_config=None,  # the daemon's logging stays as it is
            # uvicorn's lines (a bad request is a warning) only when debugging docsync.http.
            log_level=logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.ERROR,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            backlog=BACKLOG,
            timeout_keep_alive=max(1, math.ceil(limits.request_seconds)),
            timeout_graceful_shutdown=STOP_SECONDS,
        )
        self._servers.append((uvicorn.Server(config), sock, connections))

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self.api.mcp is not None:
                    await stack.enter_async_context(self.api.mcp.session_manager.run())
                await asyncio.gather(*(s.serve(sockets=[sock]) for s, sock, _ in self._servers))
        except Exception:
            log.exception("the HTTP endpoint stopped")
        finally:
            for _, _, connections in self._servers:
                connections.drop_all()  # those a stop did not wait for
            await asyncio.sleep(0)  # their transports close

    def _drop_sending(self) -> None:
        for _, _, connections in self._servers:
            connections.drop_all(sending_only=True)

    @property
    def tcp_address(self) -> tuple[str, int] | None:
        return None if self._tcp is None else self._tcp.server_address

    def close(self) -> None:
        """Stop serving within seconds: answers under way get `STOP_SECONDS`; requests that
        are not all in are not waited for (no answer is under way for them)."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                self._loop.call_soon_threadsafe(self._drop_sending)
        for server, _, _ in self._servers:
            server.should_exit = True  # uvicorn looks every 0.1 s
        self._thread.join(STOP_SECONDS * 3)
        if self._socket_path is not None and os.path.exists(self._socket_path):
            os.unlink(self._socket_path)
