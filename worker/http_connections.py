"""The daemon's HTTP connections (both transports), as a uvicorn protocol: each request
(headers and body) must arrive within `Limits.request_seconds`, however steadily it trickles,
and an answer must be taken within it too; at most `Limits.max_connections` are open, and when
all are taken the oldest one still sending its request makes room, so slow or idle clients can
neither use up the file descriptors nor lock out `/healthz`; a request's line and headers are
bounded (`MAX_HEAD`), and so are the requests pipelined behind an answer (`MAX_WAITING`: those
waiting are answered, the last with Connection: close, and nothing more is parsed).
uvicorn has none of these: its protocols start no timer before a request's headers are in,
its httptools protocol keeps headers and pipelined requests without bound, and its
`limit_concurrency` answers 503 to a health check while idle connections hold every slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


@dataclass(frozen=True)
class Limits:
    """What one client may hold: its request (headers and body) must be in within
    `request_seconds` of the connection's start or of the answer before; at most
    `max_connections` are open at once, per server."""

    request_seconds: float = 5.0
    max_connections: int = 64


LIMITS = Limits()
# A request line and headers: h11's bound, which the endpoint had before httptools.
MAX_HEAD = 16 * 1024
# Requests of one connection waiting for the answer before theirs: httptools parses every
# request of a read at once (thousands of small ones in one read of 256 KiB), where h11
# parsed the next one only once the one before was answered.
MAX_WAITING = 8
# The answer to a connection beyond the bound while every one of them is being answered.
_BUSY_BODY = b'{"error": "too many open connections"}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(_BUSY_BODY)}\r\nConnection: close\r\n\r\n".encode()
    + _BUSY_BODY
)


def _declares_body(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    return any(
        name == b"transfer-encoding" or (name == b"content-length" and value.strip(b" \t0"))
        for name, value in headers
    )


class Connections:
    """One server's open connections, and those still sending a request, oldest first;
    `protocol()` is uvicorn's httptools protocol under their deadline and bounds."""

    def __init__(self, limits: Limits = LIMITS) -> None:
        self.limits = limits
        self.open: set[HttpToolsProtocol] = set()
        self.sending: dict[HttpToolsProtocol, asyncio.TimerHandle] = {}

    def admit(self, connection: HttpToolsProtocol) -> bool:
        if len(self.open) >= self.limits.max_connections:
            if not self.sending:
                return False  # every slot serves a request: answer 503 at once
            self.drop(next(iter(self.sending)))  # the oldest still sending makes room
        self.open.add(connection)
        return True

    def wait_for_request(self, connection: HttpToolsProtocol) -> None:
        """A request is due on `connection`: from now, within the deadline."""
        self.received(connection)
        timer = connection.loop.call_later(self.limits.request_seconds, self.drop, connection)
        self.sending[connection] = timer

    def received(self, connection: HttpToolsProtocol) -> None:
        timer = self.sending.pop(connection, None)
        if timer is not None:
            timer.cancel()

    def drop(self, connection: HttpToolsProtocol) -> None:
        """Close without a word (abort: nothing of a client we drop is waited for)."""
        self.forget(connection)
        connection.transport.abort()

    def forget(self, connection: HttpToolsProtocol) -> None:
        self.received(connection)
        self.open.discard(connection)

    def drop_all(self, *, sending_only: bool = False) -> None:
        for connection in list(self.sending if sending_only else self.open):
            self.drop(connection)

    def protocol(self) -> type[HttpToolsProtocol]:
        connections, seconds = self, self.limits.request_seconds

        class Guarded(HttpToolsProtocol):
            """The client is sending while every request it sent in full has been answered
            (none in yet, or the next one due): then its deadline runs."""

            _write_timer: asyncio.TimerHandle | None = None
            _close_timer: asyncio.TimerHandle | None = None
            _requests_in = 0  # requests received in full
            _answered = 0  # answers sent in full
            _head = 0  # bytes of the request line and headers of the request coming in
            _parsed = 0  # the same, as the parser hands them over (a whole head in one read)
            _heads_done = 0  # requests whose headers are all in
            _in_body = False  # between a request's headers and its end
            _last = False  # no request is taken after those waiting: the last one closes

            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                super().connection_made(transport)
                self._cycles: list[RequestResponseCycle] = []  # those not answered yet
                if not connections.admit(self):
                    transport.write(_BUSY)
                    transport.close()
                    return
                connections.wait_for_request(self)

            def data_received(self, data: bytes) -> None:
                if self._last:
                    return  # beyond the requests waiting: never parsed, nor kept
                # The parser keeps a request's line and headers until the last one ends:
                # bounded here, as h11 bounded them. A read that lies wholly in one head
                # counts; one where a head or a request ends does not (so at most the bound
                # and one read are kept), and a head that ends is counted by what the parser
                # handed over (`on_headers_complete`).
                whole = (self._heads_done, self._requests_in)
                super().data_received(data)
                if (self._heads_done, self._requests_in) != whole or self.transport.is_closing():
                    self._head = 0
                    return
                if not self._in_body:
                    self._head += len(data)
                    if self._head > MAX_HEAD:
                        self.send_400_response(f"request headers beyond {MAX_HEAD} bytes")

            def send_400_response(self, msg: str) -> None:
                if self.transport.is_closing() or self._last:
                    return  # after a refusal of our own, which the parser's error repeats
                if self._answered < self._requests_in:
                    # Answers are owed to requests in full: a 400 now would come ahead of
                    # them, and they would be written to a closed transport (uvloop raises,
                    # a traceback in the log for each). They are answered, the last closes.
                    self._no_more()
                    return
                super().send_400_response(msg)
                self._closing()

            def _no_more(self) -> None:
                """No request is taken after those in: the newest one's answer closes the
                connection, and nothing that follows is parsed."""
                self._last = True
                self.cycle.keep_alive = False

            def on_message_begin(self) -> None:
                if len(self.pipeline) >= MAX_WAITING:
                    # Pipelined beyond what is kept: those waiting are answered, and the
                    # parser stops here (this read's rest is never parsed).
                    self._no_more()
                    raise ValueError(f"more than {MAX_WAITING} requests waiting")
                super().on_message_begin()
                self._parsed = 0

            def on_url(self, url: bytes) -> None:
                super().on_url(url)
                self._parsed += len(url)

            def on_header(self, name: bytes, value: bytes) -> None:
                super().on_header(name, value)
                self._parsed += len(name) + len(value) + 4  # ": " and CRLF

            def on_headers_complete(self) -> None:
                if self._parsed > MAX_HEAD:  # all in one read: never counted in data_received
                    self.send_400_response(f"request headers beyond {MAX_HEAD} bytes")
                    raise ValueError("request headers beyond the bound")  # stops the parser
                if self.parser.should_upgrade() and _declares_body(self.headers):
                    # httptools skips the body of a request that asks for an upgrade (none is
                    # served): the route would get it empty, and its bytes parsed as requests.
                    self.send_400_response("a request to upgrade its connection has no body")
                    raise ValueError("a body after an upgrade")  # stops the parser
                self._heads_done += 1
                self._in_body = True
                super().on_headers_complete()
                self._cycles = [c for c in self._cycles if not c.response_complete]
                self._cycles.append(self.cycle)

            def on_message_complete(self) -> None:
                super().on_message_complete()
                self._in_body = False
                self._requests_in += 1
                if self._answered >= self._requests_in and not self.transport.is_closing():
                    # Answered before its body was all in (a route that reads no body):
                    # the next request is due, as after any answer.
                    connections.wait_for_request(self)
                else:
                    connections.received(self)  # all in: the app has it

            def on_response_complete(self) -> None:
                self._answered += 1
                # The next request on a kept-alive connection has a deadline of its own
                # (not when one already in waits for its turn).
                if not self.transport.is_closing() and self._answered >= self._requests_in:
                    connections.wait_for_request(self)
                super().on_response_complete()
                if self.transport.is_closing():
                    self._closing()

            def _closing(self) -> None:
                # An answer that ends in a close may wait below the write buffer's high
                # mark, where no pause_writing starts a timer: it too must be taken within
                # the deadline, or the connection holds its slot for as long as the client
                # keeps it.
                if self._close_timer is None:
                    self._close_timer = self.loop.call_later(seconds, connections.drop, self)

            def pause_writing(self) -> None:
                # A client that does not read its answer holds a slot: it has as long as a
                # request to take the bytes that wait for it.
                super().pause_writing()
                self._write_timer = self.loop.call_later(seconds, connections.drop, self)

            def resume_writing(self) -> None:
                super().resume_writing()
                if self._write_timer is not None:
                    self._write_timer.cancel()

            def connection_lost(self, exc: Exception | None) -> None:
                super().connection_lost(exc)
                # uvicorn tells the newest request's answer that the client is gone, not
                # one under way while others wait: it would be written to a closed
                # transport (uvloop raises: a traceback in the log for each).
                for cycle in self._cycles:
                    if not cycle.response_complete:
                        cycle.disconnected = True
                        cycle.message_event.set()
                connections.forget(self)
                for timer in (self._write_timer, self._close_timer):
                    if timer is not None:
                        timer.cancel()

        return Guarded
