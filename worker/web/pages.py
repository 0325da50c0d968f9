"""The page's static files, served from inside the package (no build step, nothing fetched
at run time), and the headers that keep a browser strict with every answer: a
Content-Security-Policy that allows this origin's script and styles only (no inline script,
no third-party origin, no framing), no content sniffing, no referrer."""

from __future__ import annotations

import functools
from importlib import resources

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# route -> (file in static/, its media type)
PAGE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
    "/icon.svg": ("icon.svg", "image/svg+xml"),
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


@functools.cache
def static_file(name: str) -> bytes:
    return (resources.files("docsync.worker.web") / "static" / name).read_bytes()


async def _page_file(request: Request) -> Response:
    name, media_type = PAGE_FILES[request.url.path]
    # no-cache: a browser asks again (cheaply) after an upgrade instead of running old script
    return Response(static_file(name), 200, {"Cache-Control": "no-cache"}, media_type)


def page_routes() -> list[Route]:
    return [Route(path, _page_file, methods=["GET"]) for path in PAGE_FILES]


class SecurityHeaders:
    """`SECURITY_HEADERS` on every answer, and no caching of data (the JSON routes)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if "cache-control" not in headers:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
