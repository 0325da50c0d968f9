"""The daemon's HTTP endpoint as a server (the routes' answers are `docsync.worker.serve.Api`):
one ASGI application (Starlette) per transport, `/metrics` from prometheus-client, `POST /mcp`
from the MCP SDK, behind the guards of `docsync.worker.http_guards`, served by uvicorn on one
event loop on a thread of the daemon, its connections guarded by
`docsync.worker.http_connections`, on a TCP socket and a Unix socket bound beforehand.
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
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from prometheus_client import make_asgi_app
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from docsync.plugin.errors import ConfigError
from docsync.worker.generation_api import ROUTES as GENERATION_ROUTES
from docsync.worker.http_connections import LIMITS, Connections, Limits
from docsync.worker.http_guards import Access, AccessGuard, BodyLimit, allowed_hosts
from docsync.worker.web.pages import SecurityHeaders, page_routes
from docsync.worker.web.views import API_ROUTES as WEB_ROUTES

if TYPE_CHECKING:
    from docsync.worker.generation_api import GenerationApi
    from docsync.worker.serve import Api

log = logging.getLogger("docsync.http")

MCP_ROUTE = "/mcp"
GENERATIONS = GENERATION_ROUTES[0]
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
    # IPPROTO_TCP named, not left 0: asyncio turns Nagle's algorithm off only on connections
    # whose socket says TCP, and with it on, each answer on a kept-alive connection waited
    # for the client's delayed ACK (40 ms: /healthz took 44 ms, against 0.6 ms on the socket).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
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


def build_app(
    api: Api,
    *,
    mcp: ASGIApp | None = None,
    access: Access | None = None,
    generations: GenerationApi | None = None,
) -> Starlette:
    """The endpoint as one ASGI application: `/metrics` from prometheus-client, `/mcp` from
    the MCP SDK, `/generations` (the Unix socket's alone) from `generations`, the other
    routes answered by `api`; behind `access` (None: anyone who reaches the socket) and the
    body limit."""

    async def answer(request: Request) -> Response:
        query = request.scope["query_string"].decode("latin-1")
        target = request.scope["raw_path"].decode("latin-1") + (f"?{query}" if query else "")
        # A search embeds its question: on a worker thread, not the server's loop.
        began = time.perf_counter()
        status, content_type, body = await run_in_threadpool(api.answer, target)
        # The answer's own time (its thread included), so a client can tell what the
        # transport added (bench/clients.py): the standard Server-Timing header.
        took = f"app;dur={(time.perf_counter() - began) * 1000:.3f}"
        return Response(body, status, {"Server-Timing": took}, content_type)

    routes = [Route("/metrics", _Route(make_asgi_app(api.metrics)), methods=["GET"])]
    if generations is not None:
        asked_of = generations

        async def generation(request: Request) -> Response:
            body = await request.body()  # bounded by the body limit
            path, method = request.url.path, request.method
            # A switch waits for the sync loop: on a worker thread, not the server's loop.
            status, content_type, data = await run_in_threadpool(
                asked_of.answer, method, path, body
            )
            return Response(data, status, media_type=content_type)

        routes += [Route(GENERATIONS, generation, methods=["GET"])]
        routes += [Route(path, generation, methods=["POST"]) for path in GENERATION_ROUTES[1:]]
    if mcp is not None:
        # POST only, as the transport is stateless: a GET would open an event stream that
        # holds its connection (and slot) until the server stops, with nothing to send.
        routes.append(Route(MCP_ROUTE, mcp, methods=["POST"]))
    routes += [Route(path, answer, methods=["GET"]) for path in API_ROUTES]
    if api.web is not None:  # the page, and the JSON it reads besides /search
        routes += page_routes() + [Route(path, answer, methods=["GET"]) for path in WEB_ROUTES]
    middleware = [Middleware(SecurityHeaders)]
    if access is not None:
        middleware.append(Middleware(AccessGuard, access=access))
    middleware.append(Middleware(BodyLimit, limit=MCP_MAX_BODY))
    return Starlette(
        routes=routes, middleware=middleware, exception_handlers={HTTPException: _error}
    )


async def _error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, a POST to a GET route) in the endpoint's
    JSON, as `Api.answer` words them."""
    assert isinstance(exc, HTTPException)
    message = f"no route {request.url.path}" if exc.status_code == 404 else exc.detail
    body = json.dumps({"error": message}, ensure_ascii=False).encode()
    return Response(body, exc.status_code, exc.headers, "application/json")


def _run_loop(main: Coroutine[object, object, None]) -> None:
    """`main` on uvloop where it is installed (not on Windows): its loop and transports are
    libuv's, a tenth of a millisecond less per answer on the socket (bench/NOTES.md); on
    asyncio's own loop elsewhere."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


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
            app = build_app(api, mcp=mcp, generations=api.generations)
            self._serve(listen_unix(socket_path), app, limits)
        if tcp is not None:
            self._serve(tcp.socket, build_app(api, mcp=mcp, access=tcp.access), limits)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(
            target=_run_loop, args=(self._run(),), daemon=True, name="docsync-http"
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
