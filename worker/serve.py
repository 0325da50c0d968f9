"""The daemon's HTTP endpoint, on TCP when `DOCSYNC_HTTP_PORT` is set and always on a Unix
socket beside the embedded store (`daemon.sock`), so that `docsync query` and `docsync status`
reach a daemon that holds the store.

    GET /healthz                      200 while the sync loop is turning (503 once stalled);
                                      200 `refused` while it writes nothing (the collection
                                      switched to a generation of another model)
    GET /readyz                       200 once the initial sync is done and the store answers
    GET /metrics                      Prometheus text format
    GET /search?q=...&limit=5&path_prefix=...&mode=...&context=...&per_file=...&where=k=v
                                      hits as JSON (mode: dense, keyword or hybrid; context:
                                      a passage's tokens; defaults: DOCSYNC_SEARCH_MODE,
                                      DOCSYNC_CONTEXT_TOKENS, DOCSYNC_HITS_PER_FILE)
    GET /status                       collection, points, files, profile as JSON
    GET /                             the web page (`docsync.worker.web`), with its files
    GET /api/folders, /api/health, /api/document?path=&start=&end=
                                      the JSON the page reads besides /search

    POST /mcp                         MCP over streamable HTTP, stateless (while TCP is served)
    GET /generations, POST /generations/reindex|switch|compare
                                      `docsync reindex`, `switch` and `eval --compare` through
                                      the daemon (the Unix socket's alone:
                                      `docsync.worker.generation_api`)

The server is `docsync.worker.http_server`: one ASGI application (Starlette) served by uvicorn
on a thread of the daemon, once per transport; `/mcp` is the MCP SDK's own streamable HTTP app
(`docsync.worker.mcp_server`), mounted. Guards (`docsync.worker.http_guards`,
`docsync.worker.http_connections`): on TCP, a Host
header that names this endpoint (against DNS rebinding; any Host once a token is set) and,
with `DOCSYNC_HTTP_TOKEN`, `Authorization: Bearer <token>` on every route but the two probes;
no listening beyond loopback without a token unless the user opts out. On both transports:
each request must arrive within a few seconds, its body is bounded before it is read, and
connections are bounded. The Unix socket is the owner's alone (mode 0600) and needs neither
Host nor token.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry

# The client half lives in plugin (which never imports worker); kept importable from here.
from docsync.plugin.daemon_client import SOCKET_NAME as SOCKET_NAME
from docsync.plugin.daemon_client import ask_daemon as ask_daemon
from docsync.plugin.errors import DocsyncError, StoreError
from docsync.plugin.request import SearchRequest
from docsync.plugin.search import Searcher
from docsync.plugin.stored_text import read_stored

# The server, kept importable from here.
from docsync.worker.http_connections import LIMITS as LIMITS
from docsync.worker.http_connections import Limits as Limits
from docsync.worker.http_guards import allowed_hosts as allowed_hosts
from docsync.worker.http_guards import host_name as host_name
from docsync.worker.http_server import BACKLOG as BACKLOG
from docsync.worker.http_server import MCP_MAX_BODY as MCP_MAX_BODY
from docsync.worker.http_server import STOP_SECONDS as STOP_SECONDS
from docsync.worker.http_server import Endpoints as Endpoints
from docsync.worker.http_server import TcpListener as TcpListener
from docsync.worker.http_server import listen_tcp as listen_tcp
from docsync.worker.web.views import API_ROUTES as WEB_ROUTES

if TYPE_CHECKING:
    from mcp.server import MCPServer

    from docsync.worker.generation_api import GenerationApi
    from docsync.worker.web.views import WebViews

Response = tuple[int, str, bytes]


@dataclass
class Api:
    """What each route answers, whatever the transport."""

    searcher: Searcher
    healthy: Callable[[], bool]
    ready: Callable[[], bool]
    metrics: CollectorRegistry  # served at /metrics by prometheus-client's own ASGI app
    status: Callable[[], Mapping[str, object]]
    # The MCP server whose streamable HTTP app is mounted at /mcp; None: no /mcp route.
    mcp: MCPServer | None = None
    # The web page's JSON (/api/...) and files; None: no page.
    web: WebViews | None = None
    # Why the daemon writes nothing (`Daemon.refused`), or None while it writes.
    refused: Callable[[], str | None] = lambda: None
    # `docsync reindex`, `switch` and `eval --compare` through the daemon: on its Unix
    # socket only (`docsync.worker.generation_api`); None: no such routes.
    generations: GenerationApi | None = None

    def answer(self, target: str) -> Response:
        url = urlsplit(target)
        query = parse_qs(url.query)
        params = {k: v[-1] for k, v in query.items()}
        wheres = query.get("where", [])
        routes: dict[str, Callable[[dict[str, str]], Response]] = {
            "/healthz": lambda _: self._healthz(),
            "/readyz": lambda _: self._readyz(),
            "/search": lambda p: self._search(p, wheres),
            "/read": self._read,
            "/status": lambda _: _json(200, self.status()),
        }
        if self.web is not None and url.path in WEB_ROUTES:
            web = self.web
            routes[url.path] = lambda p: _json(*web.answer(url.path, p))
        route = routes.get(url.path)
        if route is None:
            return _json(404, {"error": f"no route {url.path}"})
        try:
            return route(params)
        except DocsyncError as exc:
            return _json(503 if isinstance(exc, StoreError) else 400, {"error": str(exc)})

    def _healthz(self) -> Response:
        refused = self.refused()
        if refused is not None:
            # Alive, and answering searches, but syncing nothing. 200: a liveness probe that
            # restarted it would bring back a daemon its own model setting refuses at start,
            # and the searches would stop too. /status and the error metric say it.
            return _json(200, {"status": "refused", "reason": refused})
        return _flag(self.healthy(), "ok", "stalled")

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


def _json(status: int, body: object) -> Response:
    return status, "application/json", json.dumps(body, ensure_ascii=False).encode()


def _flag(ok: bool, good: str, bad: str) -> Response:
    return _json(200 if ok else 503, {"status": good if ok else bad})
