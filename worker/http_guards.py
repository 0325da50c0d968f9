"""What guards the daemon's HTTP endpoint (`docsync.worker.serve`) as ASGI middleware:

- `AccessGuard` (TCP only): a Host header that names this endpoint, against DNS rebinding (any
  Host once a token is set), and `Authorization: Bearer <token>` on every route but the probes.
- `BodyLimit` (both transports): a body is bounded by the length it declares before a byte of it
  is read; a refused body is never read (the connection closes after the answer).

The connections themselves (a request's deadline, their number, the bounds on a request's
head and on pipelined requests) are guarded by the protocol of
`docsync.worker.http_connections`.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from docsync.worker.web.pages import PAGE_FILES

# Probes carry no data worth a token, nor do the web page's files (it asks for the token).
OPEN_ROUTES = frozenset({"/healthz", "/readyz", *PAGE_FILES})
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})
# A refusal leaves the client's body unread: closing the connection is what keeps it unread.
_CLOSE = {"Connection": "close"}


def refusal(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps({"error": message}, ensure_ascii=False).encode()
    return Response(body, status, {**_CLOSE, **(headers or {})}, "application/json")


@dataclass(frozen=True)
class Access:
    """Who may ask. `allowed_hosts` None: any Host header; `token` None: no token."""

    token: str | None = None
    allowed_hosts: frozenset[str] | None = None

    def refusal(self, path: str, host: str | None, authorization: str | None) -> Response | None:
        """The answer to a request this endpoint must not serve, else None."""
        if self.allowed_hosts is not None and host_name(host or "") not in self.allowed_hosts:
            # A page in the user's browser that rebinds its own name to this address sends
            # that name as Host: refusing unknown names keeps it from reading the answers.
            message = f"Host {host!r} is not a name of this endpoint (DOCSYNC_HTTP_ALLOWED_HOSTS)"
            return refusal(403, message)
        if self.token is None or path in OPEN_ROUTES or _bearer(authorization, self.token):
            return None
        message = "this endpoint requires Authorization: Bearer <token> (DOCSYNC_HTTP_TOKEN)"
        return refusal(401, message, {"WWW-Authenticate": 'Bearer realm="docsync"'})


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


class AccessGuard:
    """`Access` as middleware, in front of every route."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app, self.access = app, access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            refused = self.access.refusal(
                scope["path"], headers.get("host"), headers.get("authorization")
            )
            if refused is not None:
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyRefused(Exception):
    """A request body refused before a byte of it was read, with the answer that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.response = refusal(status, message)


def body_length(headers: Headers, limit: int) -> int:
    """The length of the body a request declares, checked before any of it is read:
    BodyRefused (400) for a Content-Length that is not one whole number, (413) beyond
    `limit`, (411) for a Transfer-Encoding, whose chunks would have no length up front.
    (uvicorn's parser, httptools, already answers 400 to most bad lengths; this is the rule.)"""
    if "transfer-encoding" in headers:
        raise BodyRefused(411, "send the body with a Content-Length (no Transfer-Encoding)")
    values = {value.strip() for value in headers.getlist("content-length")}
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


class BodyLimit:
    """`body_length` as middleware: a body no route may read is answered before it is read.
    Not Starlette's `RequestBodyLimitMiddleware`: that one answers 413 only once a route
    asks for the body, in plain text, and keeps the connection open to read the rest."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                body_length(Headers(scope=scope), self.limit)
            except BodyRefused as refused:
                await refused.response(scope, receive, send)
                return
        await self.app(scope, receive, send)
