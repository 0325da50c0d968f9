"""The client of a running `docsync run`: its HTTP routes over the Unix socket it keeps
beside the embedded store (`<DOCSYNC_QDRANT_PATH>/daemon.sock`). While a daemon holds the
embedded store no other process may open it, so readers (`docsync query`, `docsync status`,
`Searcher.from_settings()`) ask the daemon instead. The server half is `worker/serve.py`.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from docsync.plugin.errors import DaemonUnavailableError, StoreError

SOCKET_NAME = "daemon.sock"
IDLE_KEPT = 8  # a client's idle connections to the daemon, each a slot of its server


class UnixConnection(http.client.HTTPConnection):
    """An HTTP connection to the daemon's Unix socket."""

    def __init__(self, path: Path, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(str(self._path))
        except OSError:
            sock.close()  # no daemon there: `close()` cannot see a socket not yet `self.sock`
            raise
        self.sock = sock


def ask_daemon(
    socket_path: Path,
    route: str,
    params: Mapping[str, str | list[str]] | None = None,
    timeout: float = 60.0,
) -> Any:
    """GET a route of the daemon behind `socket_path` on a connection of its own;
    DaemonUnavailableError when none answers there, LookupError for what it does not have
    (404), StoreError for its other refusals."""
    connection = UnixConnection(socket_path, timeout)
    try:
        status, body = _get(connection, route, params)
    except (OSError, http.client.HTTPException) as exc:
        raise _unavailable(socket_path, exc) from exc
    finally:
        connection.close()
    return _answer(route, status, body)


def post_daemon(
    socket_path: Path, route: str, body: Mapping[str, object], timeout: float | None = None
) -> tuple[int, Any]:
    """POST `body` as JSON to a route of the daemon behind `socket_path`: its status and
    its answer. `timeout` None: as long as it takes (a switch waits for the daemon's sync
    loop). DaemonUnavailableError when none answers there."""
    connection = UnixConnection(socket_path, timeout)
    try:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        connection.request("POST", route, body=data, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    except (OSError, http.client.HTTPException) as exc:
        raise _unavailable(socket_path, exc) from exc
    finally:
        connection.close()


class DaemonClient:
    """Asks the daemon behind `socket_path` over kept connections: a request takes an idle
    one (or opens one) and gives it back after, so a client asking again and again opens
    one, and threads asking at once one each; at most `IDLE_KEPT` idle ones are kept. A new
    connection costs the daemon about half a millisecond (`/healthz` 1.1 ms on a new one
    against 0.6 on a kept one, 2 cores), as much as a search's whole step through its shard
    process. A connection the daemon has closed meanwhile (idle past its request limit, or a
    daemon restarted) is opened again once for the same request: every route is a GET, so
    asking twice changes nothing."""

    def __init__(self, socket_path: Path, timeout: float = 60.0) -> None:
        self.socket_path, self.timeout = socket_path, timeout
        self._lock = threading.Lock()
        self._idle: list[UnixConnection] = []
        self._closed = False
        # A client dropped without close() closes its idle connections as it goes.
        weakref.finalize(self, _close_all, self._idle)

    def ask(self, route: str, params: Mapping[str, str | list[str]] | None = None) -> Any:
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        reused = connection is not None
        while True:
            if connection is None:
                connection = UnixConnection(self.socket_path, self.timeout)
            try:
                status, body = _get(connection, route, params)
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                if not reused or isinstance(exc, TimeoutError):
                    raise _unavailable(self.socket_path, exc) from exc
                connection, reused = None, False  # once more, on a new connection
                continue
            self._give_back(connection)
            return _answer(route, status, body)

    def _give_back(self, connection: UnixConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < IDLE_KEPT:
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        """Close the connections; one in use closes when its request is done. A client
        asked again after it opens a connection for each request."""
        with self._lock:
            self._closed = True
            _close_all(self._idle)


def _close_all(connections: list[UnixConnection]) -> None:
    while connections:
        connections.pop().close()


def _get(
    connection: UnixConnection, route: str, params: Mapping[str, str | list[str]] | None
) -> tuple[int, Any]:
    connection.request("GET", route + ("?" + urlencode(params, doseq=True) if params else ""))
    response = connection.getresponse()
    return response.status, json.loads(response.read() or b"null")


def _unavailable(socket_path: Path, exc: BaseException) -> DaemonUnavailableError:
    # The socket gone (FileNotFoundError), one left by a killed daemon (refused), a daemon
    # that hung up or took longer than the timeout: all say it is not there.
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return DaemonUnavailableError(
        f"the docsync daemon does not answer on {socket_path} ({reason}): "
        "has `docsync run` stopped?"
    )


def _answer(route: str, status: int, body: Any) -> Any:
    if status != 200:
        message = body.get("error") if isinstance(body, dict) else None
        if status == 404:  # a file it does not hold (or a route an older one lacks)
            raise LookupError(message or f"the running daemon has no {route}")
        raise StoreError(f"the running daemon answered {status}: {message or body}")
    return body


def daemon_answers(socket_path: Path, timeout: float = 5.0) -> bool:
    """Whether a daemon listens on `socket_path` (a socket left by a killed one: no)."""
    if not socket_path.exists():
        return False
    try:
        ask_daemon(socket_path, "/healthz", timeout=timeout)
    except DaemonUnavailableError:
        return False
    except StoreError:
        return True  # it answered, if only to say its loop has stalled
    return True
