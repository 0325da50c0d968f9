"""A shard held by a child process, for a process that answers searches all the time (a
daemon).

The engine holds the GIL while it opens a shard: about a second per million points, ten
with int8 copies (measured, `bench/million.py`). A daemon reopens its shard whenever it
swaps in an index built elsewhere (`EdgeStore.optimize(serving=True)`); opened in the
daemon's own process, that would stop every search (and every HTTP answer) for as long. So
a serving store keeps its shard in a child (`python -m docsync.plugin.stores.edge_host PATH FD`)
and asks
it over a socket: the next shard opens in a second child while the first still answers, and
the swap is one assignment.

Several requests may be in flight at once (a daemon answers several clients): the child
listens on `CHANNELS` sockets, one thread each, so one client's request never queues behind
another's transfer; the engine's calls themselves take turns in the child (one lock).

Not `multiprocessing.Manager`: its proxies start the child by re-importing the parent's main
module, and hide which process died; here the child (`docsync.plugin.child`) imports only the
engine adapter, and the protocol is one typed request (`docsync.plugin.stores.shard_requests`),
one answer.
"""

from __future__ import annotations

import contextlib
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from docsync.plugin.child import Channel, Child, ChildGone
from docsync.plugin.errors import ShardProcessError, StoreError
from docsync.plugin.keyword import SparseVector
from docsync.plugin.store import Around, Fusion, Match, Point, ScoredPoint
from docsync.plugin.stores import shard_requests as ask
from docsync.plugin.stores.edge_shard import LocalShard
from docsync.plugin.stores.preread import preread_behind
from docsync.plugin.stores.shard import SCROLL_PAGE, Offset

T = TypeVar("T")
# What the child answers: (True, what the request returned) or (False, the error it raised).
Answer = tuple[bool, object]
STOP_SECONDS = 60.0  # for the child to flush and close its shard before it is killed
# Sockets to the child: requests in flight at once (each a thread there, idle in a read).
CHANNELS = 4


class HostedShard:
    """A `docsync.plugin.stores.shard.Shard` answered by a child process that holds the
    shard, up to `CHANNELS` requests at a time: each method takes a free channel, sends its
    request (`docsync.plugin.stores.shard_requests`) and waits for the answer on it. The
    engine's errors are raised here as it raised them there; a child that died is a
    `ShardProcessError` (and `alive` is False from then on): `EdgeStore` starts another and
    asks again."""

    def __init__(self, path: Path) -> None:
        """Start the child and wait until it has opened the shard at `path` (the engine's
        error, raised here, when it cannot)."""
        self.path = path
        pairs = [socket.socketpair() for _ in range(CHANNELS - 1)]
        try:
            self._child: Child[ask.Request[object], Answer] = Child(
                "docsync.plugin.stores.edge_host",
                [str(path), ",".join(str(theirs.fileno()) for _, theirs in pairs)],
                new_session=True,  # a terminal's Ctrl-C is the daemon's to handle
                pass_fds=[theirs.fileno() for _, theirs in pairs],
            )
        finally:
            for _, theirs in pairs:
                theirs.close()
        self._extra: list[Channel[ask.Request[object], Answer]] = [
            Channel(ours.detach()) for ours, _ in pairs
        ]
        self._free: queue.SimpleQueue[Channel[ask.Request[object], Answer]] = queue.SimpleQueue()
        for channel in [self._child.channel, *self._extra]:
            self._free.put(channel)
        self._asking = threading.local()  # the channel this thread waits on
        try:
            self._answer()
        except BaseException:
            self.close()
            raise

    def upsert(self, points: Sequence[Point]) -> None:
        self._ask(ask.Upsert(list(points)))

    def delete(self, ids: Sequence[str]) -> None:
        self._ask(ask.Delete(list(ids)))

    def set_payload(self, ids: Sequence[str], payload: dict[str, Any]) -> None:
        self._ask(ask.SetPayload(list(ids), payload))

    def add_keyword_vector(self) -> None:
        self._ask(ask.AddKeywordVector())

    def set_keyword_vectors(self, vectors: Sequence[tuple[str, SparseVector]]) -> None:
        self._ask(ask.SetKeywordVectors(list(vectors)))

    def flush(self) -> None:
        self._ask(ask.Flush())

    def optimize(self) -> bool:
        return self._ask(ask.Optimize())

    def retrieve(
        self,
        ids: Sequence[str],
        *,
        with_vectors: bool = False,
        fields: Sequence[str] | None = None,
    ) -> list[Point]:
        wanted = list(fields) if fields is not None else None
        return self._ask(ask.Retrieve(list(ids), with_vectors, wanted))

    def scroll_page(
        self,
        match: Match | None,
        *,
        offset: Offset = None,
        fields: Sequence[str] | None = None,
        with_vectors: bool = False,
        lacking_keyword: bool = False,
        exclude: Match | None = None,
        limit: int = SCROLL_PAGE,
    ) -> tuple[list[Point], Offset]:
        fields = list(fields) if fields is not None else None
        page = ask.ScrollPage(match, offset, fields, with_vectors, lacking_keyword, exclude, limit)
        return self._ask(page)

    def search(
        self,
        vector: Sequence[float] | None,
        *,
        limit: int,
        match: Match | None = None,
        keyword: SparseVector | None = None,
        fusion: Fusion | None = None,
        exact: bool = False,
        fields: Sequence[str] | None = None,
    ) -> list[ScoredPoint]:
        dense = list(vector) if vector is not None else None
        wanted = list(fields) if fields is not None else None
        return self._ask(ask.Search(dense, limit, match, keyword, fusion, exact, wanted))

    def search_around(
        self,
        vector: Sequence[float] | None,
        *,
        limit: int,
        match: Match | None = None,
        keyword: SparseVector | None = None,
        fusion: Fusion | None = None,
        fields: Sequence[str] | None = None,
        budget: int,
        around_fields: Sequence[str],
    ) -> Around:
        dense = list(vector) if vector is not None else None
        wanted = list(fields) if fields is not None else None
        search = ask.Search(dense, limit, match, keyword, fusion, False, wanted)
        return self._ask(ask.SearchAround(search, budget, list(around_fields)))

    def count(self, match: Match | None = None, *, lacking_keyword: bool = False) -> int:
        return self._ask(ask.Count(match, lacking_keyword))

    def unindexed(self, *, keyword: bool) -> int:
        return self._ask(ask.Unindexed(keyword))

    @property
    def alive(self) -> bool:
        return self._child.alive

    def close(self) -> None:
        """Ask the child to flush and close its shard, and wait for it to end."""
        if not self._child.channel.closed:
            # Already gone, it says so: the engine's own log (its WAL) holds the last writes.
            with contextlib.suppress(StoreError):
                self._ask_on(self._take(main=True), ask.Close())
            self._child.close()
        for channel in self._extra:
            channel.close()
        self._reap()

    def _ask(self, request: ask.Request[T]) -> T:
        return self._ask_on(self._take(main=False), request)

    def _ask_on(self, channel: Channel[ask.Request[object], Answer], request: ask.Request[T]) -> T:
        """`request` on `channel`, taken from the free ones (`_take`), given back after."""
        self._asking.channel = channel
        try:
            try:
                channel.send(request)
            except ChildGone as exc:
                raise self._gone() from exc
            # The child answers each request with what that request's call returned.
            return cast(T, self._answer())
        finally:
            self._asking.channel = None
            self._free.put(channel)

    def _take(self, *, main: bool) -> Channel[ask.Request[object], Answer]:
        """A free channel (`main`: the child's first one, which its main thread reads: the
        one that may close the shard)."""
        if not main:
            return self._free.get()
        others = []
        while (channel := self._free.get()) is not self._child.channel:
            others.append(channel)
        for other in others:
            self._free.put(other)
        return channel

    def _answer(self) -> object:
        channel = getattr(self._asking, "channel", None) or self._child.channel
        try:
            ok, value = channel.receive()
        except ChildGone as exc:
            raise self._gone() from exc
        if not ok and isinstance(value, BaseException):
            raise value
        return value

    def _reap(self) -> int:
        """Wait for the child to end (killed if it does not); its exit status."""
        try:
            return self._child.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self._child.kill()
            return self._child.wait()

    def _gone(self) -> ShardProcessError:
        self._child.close()
        for channel in self._extra:
            channel.close()
        status = self._reap()
        how = f"signal {-status}" if status < 0 else f"exit status {status}"
        return ShardProcessError(
            f"the process that held the embedded store's shard {self.path} ended ({how})"
        )


def _serve(
    path: str,
    channel: Channel[Answer, ask.Request[object]],
    extra: Sequence[Channel[Answer, ask.Request[object]]] = (),
) -> None:
    """The child: open the shard, then answer requests until the parent asks it to close
    (on `channel`) or goes away; `extra` channels are answered by threads of their own."""
    # Stopped by its parent (or by the end of its socket), never by a signal meant for the
    # whole service: a half-done write is what it would leave.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        # Held until this process ends: a daemon killed with -9 leaves this process to end
        # its request and close the shard, and the next one waits for it
        # (`edge_folder.hold_shard`).
        shard = LocalShard.load(path, hold=True)
        shard.warm()  # before it is "opened": a daemon's first search after a swap is fast
        preread_behind(Path(path))  # and the searches after it (docsync.plugin.stores.preread)
    except Exception as exc:
        channel.send((False, _portable(exc)))
        return
    engine = threading.Lock()  # the engine's calls take turns (each holds the GIL anyway)
    for other in extra:
        threading.Thread(target=_answer_extra, args=(other, shard, engine), daemon=True).start()
    try:
        channel.send((True, None))
        _answer_all(channel, shard, engine)
    except ChildGone:
        return  # the parent died: the engine's WAL holds what it wrote
    finally:
        with engine:
            shard.flush()
            shard.close()
    channel.send((True, None))


def _answer_all(
    channel: Channel[Answer, ask.Request[object]], shard: LocalShard, engine: threading.Lock
) -> None:
    """Answer the requests of `channel` until a `Close` (returns) or the parent's end of it
    closes (ChildGone): when the parent dies, however it dies, the read ends (EOF)."""
    while True:
        request = channel.receive()
        if isinstance(request, ask.Close):
            return
        try:
            with engine:
                answer: Answer = (True, request(shard))
        except Exception as exc:
            answer = (False, _portable(exc))
        channel.send(answer)


def _answer_extra(
    channel: Channel[Answer, ask.Request[object]], shard: LocalShard, engine: threading.Lock
) -> None:
    with contextlib.suppress(ChildGone):  # the parent closed it, or died
        _answer_all(channel, shard, engine)


def _portable(exc: Exception) -> Exception:
    """`exc`, if it survives pickling whole (the engine's plain Exception and OSError do);
    else an Exception with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return Exception(str(exc))
    return exc


if __name__ == "__main__":  # python -m docsync.plugin.stores.edge_host SHARD_PATH [FD,...] FD
    fds = sys.argv[2].split(",") if len(sys.argv) > 3 else []
    _serve(sys.argv[1], Channel(int(sys.argv[-1])), [Channel(int(fd)) for fd in fds if fd])
