"""The real things the commands run on, built from the settings: the store, the encoder, a
sync, the daemon with its endpoints; and the heap tricks that keep a loaded model from
pausing searches. Only the CLI calls this (dependencies are passed in everywhere else)."""

from __future__ import annotations

import ctypes
import gc
import logging
import signal
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from docsync.plugin.errors import DaemonUnavailableError
from docsync.plugin.settings import Settings
from docsync.plugin.store import Store
from docsync.plugin.stores import open_store

if TYPE_CHECKING:
    from mcp.server import MCPServer

    from docsync.plugin.encoder import Encoder
    from docsync.plugin.search import Searcher
    from docsync.worker.daemon import Daemon
    from docsync.worker.pipeline import SyncOptions
    from docsync.worker.report import SyncReport
    from docsync.worker.serve import Endpoints, TcpListener
    from docsync.worker.web.folders import SyncProgress

log = logging.getLogger("docsync")


@contextmanager
def checked_store(settings: Settings, *, reading: bool = False) -> Iterator[Store]:
    """The store, pinged. `reading`: for a command that only reads, an embedded store whose
    folder does not exist is a missing collection (not a new empty folder left behind), and
    the store is opened for reading (it creates nothing and refuses writes)."""
    if reading and not settings.qdrant_url and not settings.qdrant_path.exists():
        from docsync.plugin.store import collection_missing

        raise collection_missing(settings.collection, settings.store_description())
    store = open_store(settings, reading=reading)
    try:
        store.ping()
        yield store
    finally:
        store.close()


def load_encoder(settings: Settings, *, warm: bool = False) -> Encoder:
    """The encoder, lazy: where the model has a card (its first load wrote one) the model is
    loaded, and torch imported, only when passages must be embedded. `warm`: load it now."""
    from docsync.plugin.encoder import Encoder

    encoder = Encoder.from_settings(settings, lazy=True)
    if warm:
        encoder.warm()
    settle_heap()
    return encoder


def settle_heap() -> None:
    """Exempt everything loaded so far (torch, transformers, the model) from garbage
    collection. A full collection otherwise walks those millions of objects, pausing every
    thread for 50 to 150 ms: a search served beside a running sync would wait for it."""
    gc.collect()
    gc.freeze()


def release_memory() -> None:
    """Free what nothing references any more (the model, once a one-shot sync is done with
    it) and hand the allocator's free pages back to the system."""
    gc.unfreeze()  # settle_heap froze the model's objects: they must be collectable again
    gc.collect()
    _malloc_trim()


def _malloc_trim() -> None:
    # Hand-written: glibc keeps freed memory in its arenas for reuse, and only its own
    # malloc_trim returns it; no library exposes that call. Elsewhere (musl, macOS) a no-op.
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def sync_once(
    settings: Settings, roots: list[Path], *, allow_empty: bool, mass_delete: bool
) -> SyncReport:
    """`docsync sync`: the folders synced once, the model let go, the index built."""
    from docsync.worker.pipeline import sync
    from docsync.worker.progress import progress_bar
    from docsync.worker.skips import SkipMemory

    # A skip is said once, not on every run of a cron job: remembered in the cache folder.
    where = settings.qdrant_url or str(settings.qdrant_path.resolve())
    skips = SkipMemory.for_collection(settings.cache, where, settings.collection)
    options = sync_options(settings, allow_empty=allow_empty, mass_delete=mass_delete)
    with checked_store(settings) as store:
        encoder = load_encoder(settings)
        log_start("syncing", roots, store, encoder)
        with progress_bar(interval=settings.progress_seconds) as progress:
            report = sync(
                roots, store=store, encoder=encoder, options=options, progress=progress, skips=skips
            )
        # The index is built after the model is let go: building it is a large sync's
        # memory peak (the engine copies its segments), and nothing is embedded any more.
        del encoder
        release_memory()
        # Index building blocks the process, so it runs here, once the writes are done,
        # not inside sync() where a search in the same process may be waiting.
        store.optimize()
    return report


def sync_options(settings: Settings, *, allow_empty: bool, mass_delete: bool) -> SyncOptions:
    from docsync.worker.ocr_setup import ocr_options
    from docsync.worker.pipeline import SyncOptions

    return SyncOptions(
        include=settings.include,
        exclude=settings.exclude,
        max_file_bytes=settings.max_file_bytes,
        chunk_tokens=settings.chunk_tokens,
        allow_empty_roots=allow_empty,
        allow_mass_delete=mass_delete,
        read_timeout=settings.read_timeout,
        reader_memory_mb=settings.reader_memory_mb,
        ocr=ocr_options(settings),
    )


def log_start(verb: str, roots: list[Path], store: Store, encoder: Encoder) -> None:
    """The one line that says what a sync or daemon is about to do, and with what."""
    log.info(
        "%s %s into collection %r (%s) with %s on %s (%s)",
        verb,
        ", ".join(map(str, roots)),
        store.collection,
        store.description,
        encoder.name,
        encoder.device,
        encoder.precision,
    )


def run_daemon(
    settings: Settings,
    roots: list[Path],
    tcp: TcpListener | None,
    *,
    allow_empty: bool,
    mass_delete: bool,
) -> int:
    """`docsync run` once its address is bound: the daemon until SIGTERM or SIGINT."""
    from docsync.worker.daemon_generations import builder, live_side, named
    from docsync.worker.daemon_store import open_serving
    from docsync.worker.progress import progress_bar
    from docsync.worker.web.folders import SyncProgress

    # Not pinged: it waits for a server that is down; a reader holding the embedded store
    # is waited for a while (`docsync.worker.daemon_store`).
    store = open_serving(settings)
    try:
        encoder = load_encoder(settings, warm=True)
        log_start("watching", roots, store, encoder)
        options = sync_options(settings, allow_empty=allow_empty, mass_delete=mass_delete)
        daemon = build_daemon(settings, roots, store, encoder, options)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: daemon.stop())
        # An outage (a server down, a shard process that dies as it opens) is waited out.
        if not daemon.wait_for_store():
            return 0
        # The live generation keeps the model it was written with; a daemon set to another
        # builds the next generation with its own (`docsync.worker.daemon_generations`).
        live, other_model = live_side(settings, store, encoder)
        if other_model:
            daemon.write_into(live)
        if not daemon.wait_for_store(live.encoder.profile()):  # another profile: refused
            return 0
        daemon.next = builder(settings, roots, daemon, encoder)
        daemon.next.attach(named(live))
        if other_model:
            daemon.next.start()
        with progress_bar(interval=settings.progress_seconds) as bar:
            progress = SyncProgress(bar)  # the page shows it too
            endpoints = open_endpoints(settings, daemon, store, live.encoder, tcp, progress)
            try:
                daemon.run(progress=progress)
            finally:
                endpoints.close()
                if daemon.store is not store:  # a generation made live since it started
                    daemon.store.close()
    finally:
        store.close()
    log.info("stopped")
    return 0


def build_daemon(
    settings: Settings, roots: list[Path], store: Store, encoder: Encoder, options: SyncOptions
) -> Daemon:
    from docsync.worker.daemon import Daemon, DaemonOptions

    return Daemon(
        roots,
        store=store,
        encoder=encoder,
        sync_options=options,
        options=DaemonOptions(
            rescan_seconds=settings.rescan_seconds,
            debounce_seconds=settings.debounce_seconds,
            max_wait_seconds=settings.max_wait_seconds,
            polling=settings.polling,
        ),
    )


def listen(settings: Settings) -> TcpListener | None:
    """The TCP endpoint bound but not serving yet, or None when no port is set."""
    from docsync.worker.serve import listen_tcp

    if settings.http_port is None:
        return None
    token = settings.http_token.get_secret_value() if settings.http_token else None
    tcp = listen_tcp(
        settings.http_host,
        settings.http_port,
        token=token,
        insecure=settings.http_insecure,
        extra_hosts=settings.http_allowed_hosts,
    )
    if token is None and settings.http_insecure and not tcp.loopback:
        log.warning(
            "the HTTP endpoint has no token (DOCSYNC_HTTP_INSECURE): anyone who can reach "
            "port %d can search your documents",
            tcp.server_address[1],
        )
    return tcp


def open_endpoints(
    settings: Settings,
    daemon: Daemon,
    store: Store,
    encoder: Encoder,
    tcp: TcpListener | None,
    progress: SyncProgress | None = None,
) -> Endpoints:
    """The daemon's socket and HTTP endpoint, serving (with MCP at /mcp and the web page at
    / over TCP)."""
    from docsync.plugin.search import holding
    from docsync.worker.daemon_generations import routes
    from docsync.worker.serve import SOCKET_NAME, Api, Endpoints
    from docsync.worker.status import collection_status
    from docsync.worker.web.views import Live, WebViews

    searcher = holding(settings, store, encoder)

    def status() -> dict[str, object]:
        # The store the daemon writes now (a switch moves it to another generation).
        found = collection_status(daemon.store)
        return {**found, "collection": settings.collection, "daemon": daemon.state()}

    web = WebViews(
        store,
        folder=None if settings.qdrant_url else settings.qdrant_path,
        collection=settings.collection,
        live=Live(daemon.state, daemon.folder_log, progress, daemon.metrics),
    )
    api = Api(
        searcher=searcher,
        healthy=daemon.healthy,
        refused=daemon.refused,
        ready=daemon.ready.is_set,
        metrics=daemon.metrics.registry,
        status=status,
        mcp=mcp_server(settings, searcher, status) if tcp is not None else None,
        web=web,
    )
    if not settings.qdrant_url:  # a server's generations are switched by any process
        api.generations = routes(daemon, searcher, web, daemon.roots)
    socket_path = None if settings.qdrant_url else settings.qdrant_path / SOCKET_NAME
    endpoints = Endpoints(api, socket_path=socket_path, tcp=tcp)
    if endpoints.tcp_address:
        host, port = endpoints.tcp_address
        guard = "bearer token required" if settings.http_token else "no token"
        log.info(
            "HTTP endpoint on http://%s:%d (the web page at /; /healthz /readyz /metrics "
            "/search /read /status /mcp; %s)",
            host,
            port,
            guard,
        )
    return endpoints


def mcp_server(
    settings: Settings, searcher: Searcher, status: Callable[[], dict[str, object]]
) -> MCPServer:
    """MCP over streamable HTTP on the daemon's endpoint, its tools on the daemon's own
    searcher and status (the daemon holds the store)."""
    from docsync.worker.mcp_server import Collection, build_server

    return build_server(settings, Collection(settings, searcher=searcher, status=status))


def daemon_status(settings: Settings) -> Mapping[str, object] | None:
    """What `/status` of a `docsync run` that holds the embedded store answers, or None when
    there is none, or when it holds another collection than the settings name (then the
    caller opens the store itself)."""
    from docsync.plugin.daemon_client import SOCKET_NAME, ask_daemon

    socket_path = settings.qdrant_path / SOCKET_NAME
    if settings.qdrant_url or not socket_path.exists():
        return None
    try:
        answer: object = ask_daemon(socket_path, "/status")
    except DaemonUnavailableError:
        return None  # a socket left by a daemon that was killed: nobody answers
    if not isinstance(answer, Mapping) or answer.get("collection") != settings.collection:
        return None  # the daemon's is another collection of the store: this one is asked
    return answer
