"""`docsync mcp`: the collection as tools for agents, over the Model Context Protocol.

An MCP client (Claude Desktop, Cursor, an agent framework) starts `docsync mcp` and talks to
it on stdin and stdout (logs go to stderr). Three tools:

- `search`: the passages that answer a question, each with where it comes from (path, pages,
  section, span) in a form a model cites, and as structured hits;
- `read`: more of an indexed file around a hit, a bounded span at a time, from the
  collection itself (`docsync.plugin.stored_text`): only files docsync indexed can be read, never
  another path on the machine;
- `status`: what the collection holds, and what a running daemon is doing.

The store is opened for each call and closed after it, so the server never keeps a sync or
a daemon from the embedded store; while a daemon holds that store, calls go through its
socket, as `docsync query` does. The encoder (the model's card, see `docsync.plugin.embedding`) is
made once. `DOCSYNC_MCP_DESCRIPTION` says what the collection holds in the tools'
descriptions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, TextContent
from starlette.applications import Starlette

from docsync.plugin.daemon_client import SOCKET_NAME, ask_daemon, daemon_answers
from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import DocsyncError, StoreLockedError
from docsync.plugin.request import SearchRequest
from docsync.plugin.search import Hit, Searcher, connect
from docsync.plugin.settings import Settings
from docsync.plugin.store import Store
from docsync.plugin.stored_text import MAX_READ_CHARS, StoredText, read_stored
from docsync.plugin.stores import open_store

log = logging.getLogger("docsync.mcp")


class Collection:
    """The three tools' work, on the collection the settings name: opened for each call, or,
    in the daemon that holds it, through its own `searcher` and `status`."""

    def __init__(
        self,
        settings: Settings,
        *,
        searcher: Searcher | None = None,
        status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.settings = settings
        self._held, self._held_status = searcher, status
        self._encoder: Encoder | None = None

    def search(
        self,
        question: str,
        limit: int = 5,
        mode: str | None = None,
        where: list[str] | None = None,
        path_prefix: str | None = None,
    ) -> list[Hit]:
        request = SearchRequest.of(
            question, limit=limit, path_prefix=path_prefix, mode=mode, where=where or ()
        )
        if self._held is not None:
            return self._held.find(request)
        with connect(self.settings, load_encoder=self._encoder_for) as searcher:
            return searcher.find(request)

    def read(
        self, path: str, start: int = 0, end: int | None = None, root: str | None = None
    ) -> StoredText:
        if self._held is not None:
            return read_stored(self._held.store, path, root=root, start=start, end=end)
        params = {"path": path, "start": str(start), "end": "" if end is None else str(end)}
        answer = self._here_or_daemon(
            lambda store: read_stored(store, path, root=root, start=start, end=end),
            "/read",
            {**params, "root": root or ""},
        )
        return answer if isinstance(answer, StoredText) else StoredText(**answer)

    def status(self) -> dict[str, Any]:
        from docsync.worker.status import collection_status

        if self._held_status is not None:
            return self._held_status()
        return dict(self._here_or_daemon(collection_status, "/status"))

    def _encoder_for(self, settings: Settings) -> Encoder:
        if self._encoder is None:
            self._encoder = Encoder.from_settings(settings, lazy=True)
        return self._encoder

    def _here_or_daemon(
        self, here: Callable[[Store], Any], route: str, params: dict[str, str] | None = None
    ) -> Any:
        """`here` on the store, opened for this call; when another process holds the
        embedded store and it is a daemon, the daemon's answer to `route` instead (as
        `docsync.plugin.search.connect` does for searches). A 404 it answers is a LookupError."""
        try:
            store = open_store(self.settings, reading=True)
        except StoreLockedError:
            socket_path = self.settings.qdrant_path / SOCKET_NAME
            if not daemon_answers(socket_path):
                raise
            return ask_daemon(socket_path, route, params)
        try:
            return here(store)
        finally:
            store.close()


def hits_text(hits: list[Hit]) -> str:
    """The hits as a model reads and cites them: a numbered source line, then the passage."""
    if not hits:
        return "No passage matches the question."
    blocks = []
    for number, hit in enumerate(hits, 1):
        where = hit.where()
        section = f", section {hit.section!r}" if hit.section else ""
        head = f"[{number}] {where}{section}, characters {hit.start}-{hit.end}"
        blocks.append(f"{head} (score {hit.score:.3f})\n{hit.text}")
    return "\n\n".join(blocks)


def build_server(settings: Settings, collection: Collection | None = None) -> MCPServer:
    """The MCP server with docsync's three tools."""
    work = collection or Collection(settings)
    about = settings.mcp_description
    server = MCPServer(
        name="docsync",
        instructions=(
            f"This server searches {about}. Use `search` with a question to find passages, "
            "cite them by their path (and page) and character span, and use `read` to see "
            "more of a file around a passage."
        ),
    )

    def answer(text: str, structured: dict[str, Any]) -> CallToolResult:
        return CallToolResult(
            content=[TextContent(type="text", text=text)], structured_content=structured
        )

    def search(
        question: str,
        limit: int = 5,
        mode: str | None = None,
        where: list[str] | None = None,
        path_prefix: str | None = None,
    ) -> CallToolResult:
        try:
            hits = work.search(question, limit, mode, where, path_prefix)
        except (ValueError, DocsyncError) as exc:
            raise ToolError(str(exc)) from exc
        return answer(hits_text(hits), {"hits": [hit.to_dict() for hit in hits]})

    def read(
        path: str, start: int = 0, end: int | None = None, root: str | None = None
    ) -> CallToolResult:
        try:
            text = work.read(path, start, end, root)
        except (LookupError, ValueError, DocsyncError) as exc:
            raise ToolError(str(exc)) from exc
        more = f"; more from start={text.end}" if text.end < text.length else ""
        head = f"{text.path} [{text.start}:{text.end}] of {text.length} characters{more}"
        return answer(f"{head}\n{text.text}", text.to_dict())

    def status() -> CallToolResult:
        try:
            info = work.status()
        except DocsyncError as exc:
            raise ToolError(str(exc)) from exc
        lines = [f"{key}: {value}" for key, value in info.items()]
        return answer("\n".join(lines), info)

    server.add_tool(
        search,
        name="search",
        description=(
            f"Search {about} for the passages that answer a question. Returns up to `limit` "
            "passages (default 5, at most 100), best first, each with its file path, page "
            "(PDF), section, character span and score: cite them so. `mode`: hybrid "
            "(default), dense or keyword. `where`: filters as KEY=VALUE (format=pdf, "
            "tags=NAME, path=GLOB, title=..., author=..., meta.NAME=...). `path_prefix`: a "
            "folder or file as paths are shown."
        ),
    )
    server.add_tool(
        read,
        name="read",
        description=(
            f"Read more of a file of {about} around a passage `search` found: `path` as "
            f"search shows it, `start`/`end` character offsets in the file's text (at most "
            f"{MAX_READ_CHARS} characters a call; the answer says where to go on). Only "
            "indexed files can be read."
        ),
    )
    server.add_tool(
        status,
        name="status",
        description=(
            f"What the collection of {about} holds: its roots (folders), files and passages, "
            "the embedding profile, and, while a daemon keeps it in sync, when it last synced "
            "and how many changes wait."
        ),
    )
    return server


def serve_stdio(settings: Settings) -> None:
    """Answer an MCP client on stdin/stdout until it goes away."""
    build_server(settings).run()


# The SDK's transport ends its stateless "session" after every request and says so at INFO
# ("Terminating session: None"): a line a request that tells the daemon's log nothing.
SDK_SESSION_LOG = "mcp.server.streamable_http"


def streamable_http_app(server: MCPServer, *, path: str, max_body: int) -> Starlette:
    """The SDK's own ASGI app of the MCP server's streamable HTTP transport at `path`,
    stateless and answered in JSON, for the daemon's HTTP endpoint (`docsync.worker.serve`),
    which mounts it behind its token, Host and body checks. Whoever serves it runs
    `server.session_manager.run()` around it: the SDK refuses requests until that runs."""
    if not log.isEnabledFor(logging.DEBUG):  # kept for whoever debugs the daemon
        logging.getLogger(SDK_SESSION_LOG).setLevel(logging.WARNING)
    return server.streamable_http_app(
        streamable_http_path=path,
        stateless_http=True,
        json_response=True,
        max_request_body_size=max_body,
        # The endpoint checks Host names (and the token) before a request gets here.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
