"""`docsync sync` and `docsync run`: the folders into the collection, once or for good."""

from __future__ import annotations

import json
from pathlib import Path

import click

from docsync.plugin.settings import Settings
from docsync.worker import render, wiring
from docsync.worker.cli.app import PATH, command, edge


@command("sync", "sync folders once and exit", "DIR: a folder to index (one or more)")
@click.argument("dirs", nargs=-1, required=True, type=PATH, metavar="DIR...")
@click.option("--json", "as_json", is_flag=True, help="print one JSON report on stdout")
@click.option(
    "--allow-empty",
    is_flag=True,
    help="let a folder with no files delete its points (refused by default: it may be "
    "an unmounted volume)",
)
@click.option(
    "--allow-mass-delete",
    is_flag=True,
    help="let new include/exclude rules remove most of a folder's files from the "
    "collection (refused by default: a mistyped DOCSYNC_INCLUDE would empty it)",
)
@edge
def sync(
    settings: Settings,
    dirs: tuple[Path, ...],
    as_json: bool,
    allow_empty: bool,
    allow_mass_delete: bool,
) -> int:
    from docsync.worker.pipeline import check_roots

    roots = check_roots(dirs)
    report = wiring.sync_once(
        settings, roots, allow_empty=allow_empty, mass_delete=allow_mass_delete
    )
    if as_json:
        print(json.dumps(report.to_dict()))
    else:
        print(render.summary(report))
    return 0 if report.ok else 1


@command(
    "run",
    "sync folders, then keep them in sync until stopped",
    "DIR: a folder to index (one or more)",
)
@click.argument("dirs", nargs=-1, required=True, type=PATH, metavar="DIR...")
@click.option(
    "--http-host",
    metavar="HTTP_HOST",
    help="HTTP endpoint address (DOCSYNC_HTTP_HOST); beyond loopback it needs "
    "DOCSYNC_HTTP_TOKEN or DOCSYNC_HTTP_INSECURE=true",
)
@click.option(
    "--http-port", type=int, metavar="HTTP_PORT", help="HTTP endpoint port (DOCSYNC_HTTP_PORT)"
)
@click.option(
    "--polling/--no-polling",
    default=None,
    help="poll the folders instead of inotify, or not (DOCSYNC_POLLING)",
)
@click.option("--allow-empty", is_flag=True, help="let an emptied folder delete its points")
@click.option(
    "--allow-mass-delete",
    is_flag=True,
    help="let new include/exclude rules remove most of a folder's files",
)
@edge
def run(
    settings: Settings, dirs: tuple[Path, ...], allow_empty: bool, allow_mass_delete: bool
) -> int:
    from docsync.worker.pipeline import check_roots

    roots = check_roots(dirs)
    # Bound before the store and the model: a busy port or a refused address is one error
    # line, with no collection created and no seconds spent loading.
    tcp = wiring.listen(settings)
    try:
        return wiring.run_daemon(
            settings, roots, tcp, allow_empty=allow_empty, mass_delete=allow_mass_delete
        )
    finally:
        if tcp is not None:
            tcp.server_close()  # also when the endpoints never started
