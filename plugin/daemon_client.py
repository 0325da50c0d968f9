"""The client of a running `docsync run`: its HTTP routes over the Unix socket it keeps
beside the embedded store (`<DOCSYNC_QDRANT_PATH>/daemon.sock`). While a daemon holds the
embedded store no other process may open it, so readers (`docsync query`, `docsync status`,
`Searcher.from_settings()`) ask the daemon instead. The server half is `worker/serve.py`.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from docsync.plugin.errors import DaemonUnavailableError, StoreError

SOCKET_NAME = "daemon.sock"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
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
    """GET a route of the daemon behind `socket_path`; DaemonUnavailableError when none
    answers there, LookupError for what it does not have (404), StoreError for its other
    refusals."""
    connection = _UnixConnection(socket_path, timeout)
    try:
        connection.request("GET", route + ("?" + urlencode(params, doseq=True) if params else ""))
        response = connection.getresponse()
        body = json.loads(response.read() or b"null")
    except (OSError, http.client.HTTPException) as exc:
        # The socket gone (FileNotFoundError), one left by a killed daemon (refused), a
        # daemon that hung up or took longer than `timeout`: all say it is not there.
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise DaemonUnavailableError(
            f"the docsync daemon does not answer on {socket_path} ({reason}): "
            "has `docsync run` stopped?"
        ) from exc
    finally:
        connection.close()
    if response.status != 200:
        message = body.get("error") if isinstance(body, dict) else None
        if response.status == 404:  # a file it does not hold (or a route an older one lacks)
            raise LookupError(message or f"the running daemon has no {route}")
        raise StoreError(f"the running daemon answered {response.status}: {message or body}")
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
