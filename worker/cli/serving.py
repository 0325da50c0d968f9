"""`docsync serve`: the web page over a synced store, without watching."""

from __future__ import annotations

import click

from docsync.plugin.settings import Settings
from docsync.worker import wiring
from docsync.worker.cli.app import command, edge

DEFAULT_PORT = 8765  # when neither --http-port nor DOCSYNC_HTTP_PORT is given


@command(
    "serve",
    "serve the web page (search, read, folders, health) over a synced store, without watching",
    "Open the address it prints in a browser. A `docsync run DIR --http-port N` serves the "
    "same page at / while it syncs.",
)
@click.option(
    "--http-host",
    metavar="HTTP_HOST",
    help="address (DOCSYNC_HTTP_HOST, default 127.0.0.1); beyond loopback it needs "
    "DOCSYNC_HTTP_TOKEN or DOCSYNC_HTTP_INSECURE=true",
)
@click.option(
    "--http-port",
    type=int,
    metavar="HTTP_PORT",
    help=f"port (DOCSYNC_HTTP_PORT, default {DEFAULT_PORT}; 0: any free port)",
)
@edge
def serve(settings: Settings) -> int:
    from docsync.worker.web.standalone import serve_until_signal

    if settings.http_port is None:
        settings = settings.model_copy(update={"http_port": DEFAULT_PORT})
    tcp = wiring.listen(settings)  # bound before the store and the model: one error line
    assert tcp is not None
    try:
        serve_until_signal(settings, tcp)
    finally:
        tcp.server_close()
    return 0
