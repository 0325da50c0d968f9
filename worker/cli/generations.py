"""`docsync reindex`, `docsync switch` and `docsync eval --compare`'s sibling: a new model or
chunker built beside the live generation, compared, and made live atomically
(`docsync.plugin.generations`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from docsync.plugin.evaluate import load_questions, table
from docsync.plugin.generations import switch_target
from docsync.plugin.settings import Settings
from docsync.plugin.stores import generations_of
from docsync.worker import render, wiring
from docsync.worker.cli import via_daemon
from docsync.worker.cli.app import PATH, command, edge, fail


@command(
    "reindex",
    "build the collection's next generation (a new model or chunker)",
    "DIR: a folder to index (one or more), as for sync. Searches keep reading the live "
    "generation; a run stopped (even by kill -9) goes on where it stopped when started again. "
    "Vectors of the live generation are reused where the model is the same. While `docsync "
    "run` holds the embedded store, the daemon builds it (from the folders it follows) and "
    "keeps serving and syncing the live generation; this shows the build's progress.",
)
@click.argument("dirs", nargs=-1, required=True, type=PATH, metavar="DIR...")
@click.option(
    "--chunk-tokens",
    type=click.IntRange(32, 8192),
    metavar="N",
    help="largest chunk, in model tokens (DOCSYNC_CHUNK_TOKENS)",
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON report on stdout")
@edge
def reindex(
    settings: Settings, dirs: tuple[Path, ...], chunk_tokens: int | None, as_json: bool
) -> int:
    from docsync.worker.generation_runs import reindex_once
    from docsync.worker.pipeline import check_roots

    roots = check_roots(dirs)
    if chunk_tokens is not None:
        settings = settings.model_copy(update={"chunk_tokens": chunk_tokens})
    socket_path = via_daemon.daemon_socket(settings)
    if socket_path is not None:  # it holds the store: it builds, and keeps serving
        return via_daemon.reindex(socket_path, settings, roots, as_json)
    done = reindex_once(settings, roots)
    if as_json:
        print(json.dumps(done.to_dict()))
    else:
        print(render.summary(done.report))
        state = "built: `docsync switch` makes it live" if done.built else "not complete"
        print(f"generation {done.generation} {state} (live: {done.live})")
    return 0 if done.built else 1


@command("switch", "make the collection's next generation live, atomically")
@click.option(
    "--back", is_flag=True, help="make the previous generation live again (kept by --keep)"
)
@click.option("--keep", is_flag=True, help="keep the generation replaced, for switch --back")
@click.option("--discard", is_flag=True, help="delete the generation beside the live one")
@click.option(
    "--if-not-worse",
    type=PATH,
    metavar="QUESTIONS.jsonl",
    help="switch only if its Hit@5 on these questions is not lower than the live one's",
)
@edge
def switch(
    settings: Settings, back: bool, keep: bool, discard: bool, if_not_worse: Path | None
) -> int:
    questions = load_questions(if_not_worse) if if_not_worse else None
    socket_path = via_daemon.daemon_socket(settings)
    if socket_path is not None:  # it holds the store: it switches, between two syncs
        return via_daemon.switch(
            socket_path, settings, back=back, keep=keep, discard=discard, questions=questions
        )
    with wiring.checked_store(settings) as store:
        gens = generations_of(store)
        other = gens.lineup().other
        if discard:
            if other is None:
                return fail(f"collection {settings.collection!r} has no other generation")
            gens.discard(other.name)
            print(f"generation {other.name} deleted")
            return 0
        other = switch_target(gens, back=back)
        if questions is not None:
            from docsync.worker.generation_runs import compare, hit_at_5

            rows = compare(settings, gens, questions, (settings.search_mode,))
            render.print_lines([table(rows)])
            side = "previous" if back else "next"
            if hit_at_5(rows, side) < hit_at_5(rows, "live"):
                return fail(f"not switched: {other.name}'s Hit@5 is lower than the live one's", 1)
        replaced = gens.switch(other.name, keep=keep)
    print(
        f"collection {settings.collection!r}: {other.name} is live "
        f"({replaced} {'kept: switch --back returns to it' if keep else 'deleted'})"
    )
    return 0
