"""A child process of docsync's own, and the channel to it: the one transport of the shard
host (`docsync.plugin.stores.edge_host`) and the document reader
(`docsync.worker.formats.isolated`).

The child is a fresh interpreter, `python -P -m MODULE ARG... FD`: forking a process that
runs torch's threads is unsafe, a fresh one needs none of the parent's memory, and `-P`
keeps the current directory off its path (a user's own `docsync/`, `plugin/` or `worker/`
folder where docsync runs is never imported there). Parent and child talk over a socketpair
whose child end is the descriptor FD, one pickled message at a time
(`multiprocessing.connection.Connection`). The parent's end is in no other process (not
inheritable): when the parent dies, however it dies, the child's next read ends (EOF).

What crosses is typed at each end: `Channel[Out, In]` sends `Out` and receives `In`; the
child makes its end with `Channel(int(sys.argv[-1]))`.
Pickle trusts what it reads: both ends are docsync, started by docsync.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Generic, TypeVar, cast

Out = TypeVar("Out")
In = TypeVar("In")


class ChildGone(Exception):
    """The other end of the channel ended (the process died, or closed it)."""


class ChildTimeout(Exception):
    """No message came in the time given."""


# A channel closed by another thread (a child found dead) while this one reads or writes on
# it: multiprocessing's Connection then reads from a handle that is None, a TypeError (it
# raises OSError only for one closed before the call). Seen in bench/chaos.py's run: a write
# thread's TypeError ended a daemon.
_CLOSED = (OSError, TypeError)


class Channel(Generic[Out, In]):
    """One end of a socket carrying pickled messages: `Out` sent, `In` received."""

    def __init__(self, fd: int) -> None:
        self._conn = Connection(fd)

    @property
    def closed(self) -> bool:
        return self._conn.closed

    def send(self, message: Out) -> None:
        try:
            self._conn.send(message)
        except _CLOSED as exc:
            raise ChildGone(str(exc) or type(exc).__name__) from exc

    def receive(self, timeout: float | None = None) -> In:
        """The next message; `ChildTimeout` when none came within `timeout` seconds (None:
        wait as long as it takes)."""
        try:
            if timeout is not None and not self._conn.poll(timeout):
                raise ChildTimeout(f"no answer in {timeout:g}s")
            # Each end sends only `In`s to this one: the type is the protocol's.
            return cast(In, self._conn.recv())
        except (EOFError, *_CLOSED) as exc:
            raise ChildGone(str(exc) or type(exc).__name__) from exc

    def close(self) -> None:
        self._conn.close()


class Child(Generic[Out, In]):
    """`python -P -m module *args FD`, with the channel to it. `new_session`: the child
    leaves this process's session and process group, so a terminal's Ctrl-C (or a signal
    to the group) is the parent's to handle, not the child's. `pass_fds`: descriptors the
    child inherits besides its end of the channel (a lock it holds while it lives)."""

    def __init__(
        self,
        module: str,
        args: Sequence[str] = (),
        *,
        new_session: bool = False,
        pass_fds: Sequence[int] = (),
    ) -> None:
        ours, theirs = socket.socketpair()
        self.channel: Channel[Out, In] = Channel(ours.detach())
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-P", "-m", module, *args, str(theirs.fileno())],
                pass_fds=(theirs.fileno(), *pass_fds),
                stdin=subprocess.DEVNULL,
                start_new_session=new_session,
            )
        except BaseException:
            self.channel.close()
            raise
        finally:
            theirs.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None and not self.channel.closed

    def poll(self) -> int | None:
        """The child's exit status once it has ended, else None."""
        return self.process.poll()

    def send(self, message: Out) -> None:
        self.channel.send(message)

    def receive(self, timeout: float | None = None) -> In:
        return self.channel.receive(timeout)

    def close(self) -> None:
        """Close this end of the channel: the child reads EOF and ends."""
        self.channel.close()

    def kill(self) -> None:
        self.process.kill()

    def wait(self, timeout: float | None = None) -> int:
        """The child's exit status (negative: the signal that ended it), waiting up to
        `timeout` seconds (`subprocess.TimeoutExpired` after)."""
        return self.process.wait(timeout)
