"""`docsync serve`: the web page over a synced store, without watching anything. The store
is opened for reading (an embedded one must not be held by a `docsync run`: that daemon
serves the page itself), the model loaded for the questions only. Like a daemon, it answers
on the socket beside an embedded store, so the CLI's questions still reach the store."""

from __future__ import annotations

import logging
import signal
import threading

from prometheus_client import CollectorRegistry

from docsync.plugin.search import holding
from docsync.plugin.settings import Settings
from docsync.worker import wiring
from docsync.worker.serve import SOCKET_NAME, Api, Endpoints, TcpListener
from docsync.worker.skips import SkipMemory
from docsync.worker.status import collection_status
from docsync.worker.web.views import WebViews

log = logging.getLogger("docsync")


def serve_store(settings: Settings, tcp: TcpListener, stop: threading.Event) -> None:
    """Serve the page and the read-only routes on `tcp` until `stop` is set."""
    with wiring.checked_store(settings, reading=True) as store:
        searcher = holding(settings, store, wiring.load_encoder(settings))
        where = settings.qdrant_url or str(settings.qdrant_path.resolve())
        skips = SkipMemory.for_collection(settings.cache, where, settings.collection)
        web = WebViews(
            store,
            folder=None if settings.qdrant_url else settings.qdrant_path,
            reasons=skips.reasons(),
        )
        api = Api(
            searcher=searcher,
            healthy=lambda: True,
            ready=lambda: True,
            metrics=CollectorRegistry(),  # nothing syncs: nothing to count
            status=lambda: collection_status(store),
            web=web,
        )
        # The daemon's socket too: `docsync query` and `status` reach the store through it
        # while this process holds it, as they reach a `docsync run`.
        socket_path = None if settings.qdrant_url else settings.qdrant_path / SOCKET_NAME
        endpoints = Endpoints(api, socket_path=socket_path, tcp=tcp)
        try:
            host, port = tcp.server_address
            shown = f"[{host}]" if ":" in host else host
            print(f"docsync: the page is at http://{shown}:{port}/ (^C to stop)", flush=True)
            stop.wait()
        finally:
            endpoints.close()


def serve_until_signal(settings: Settings, tcp: TcpListener) -> None:
    """`serve_store` until SIGTERM or SIGINT."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    serve_store(settings, tcp, stop)
    log.info("stopped")
