"""`docsync query`, `docsync eval` and `docsync mcp`: questions, one at a time, labelled in
bulk, or from an agent."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import click

from docsync.plugin import schema
from docsync.plugin.choices import (
    DEFAULT_CONTEXT_TOKENS,
    DEFAULT_SEARCH_MODE,
    SEARCH_MODES,
    SearchMode,
)
from docsync.plugin.evaluate import (
    DEPTH,
    Question,
    Scores,
    load_questions,
    score,
    table,
    unmatched,
)
from docsync.plugin.request import SearchRequest
from docsync.plugin.search import MAX_LIMIT, Hit, Searcher, connect
from docsync.plugin.settings import Settings
from docsync.worker import render, wiring
from docsync.worker.cli.app import PATH, check_limit, command, edge, fail

log = logging.getLogger("docsync")


@command("query", "ask a question", 'QUESTION: the question, in quotes: "How do I open a socket?"')
@click.argument("question")
@click.option(
    "-k",
    "--limit",
    default="5",
    metavar="LIMIT",
    callback=check_limit,
    help=f"hits (default 5, at most {MAX_LIMIT})",
)
@click.option(
    "--path-prefix",
    metavar="PATH_PREFIX",
    help="only files under this folder, or this file; relative to the synced folder, "
    "as hits show it (howto, howto/sockets.rst)",
)
@click.option(
    "--mode",
    metavar="{" + ",".join(SEARCH_MODES) + "}",
    help="dense (the model), keyword (BM25: exact words, names, identifiers) or hybrid "
    f"(both, fused); default {DEFAULT_SEARCH_MODE} (DOCSYNC_SEARCH_MODE)",
)
@click.option(
    "--context",
    type=int,
    metavar="TOKENS",
    help="grow each hit to about this many tokens around the chunk that matched, within "
    f"its section; 0: the chunk alone (default {DEFAULT_CONTEXT_TOKENS}, "
    "DOCSYNC_CONTEXT_TOKENS)",
)
@click.option(
    "--per-file",
    type=int,
    metavar="N",
    help="at most N hits from one file (default: no limit, DOCSYNC_HITS_PER_FILE)",
)
@click.option(
    "--where",
    multiple=True,
    metavar="KEY=VALUE",
    help="only documents whose KEY is VALUE (repeatable; a key twice: either value): "
    f"format ({', '.join(schema.FORMATS)}), path (a glob: guides/*.pdf), tags, "
    "title, author, meta.NAME (a front matter field)",
)
@click.option("--json", "as_json", is_flag=True, help="print the hits as JSON")
@edge
def query(
    settings: Settings,
    question: str,
    limit: int,
    path_prefix: str | None,
    mode: str | None,
    context: int | None,
    per_file: int | None,
    where: tuple[str, ...],
    as_json: bool,
) -> int:
    try:
        request = SearchRequest.of(
            question,
            limit=limit,
            path_prefix=path_prefix,
            mode=mode,
            context=context,
            per_file=per_file,
            where=where,
        )
    except ValueError as exc:
        return fail(str(exc))
    # The Searcher's own path: the daemon when one holds the store, else the store itself.
    with connect(settings, load_encoder=wiring.load_encoder) as searcher:
        try:
            hits = searcher.find(request)
        except ValueError as exc:
            return fail(str(exc))
    if as_json:
        render.print_json([hit.to_dict() for hit in hits])
    else:
        render.print_lines(render.hits_text(hits, path_prefix))
    return 0


@command(
    "eval",
    "score labelled questions in every search mode",
    'QUESTIONS.jsonl: one JSON object a line: {"question": ..., "path": ..., "answer": ...} '
    "(path as hits show it; answer, optional, a phrase the answering passage contains)",
)
@click.argument("questions", type=PATH, metavar="QUESTIONS.jsonl")
@click.option(
    "--mode", type=click.Choice(SEARCH_MODES), help="only this search mode (default: all of them)"
)
@click.option(
    "--path-prefix",
    metavar="PATH_PREFIX",
    help="only files under this folder, or this file (as for query)",
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option(
    "--compare",
    is_flag=True,
    help="score the live generation and the one beside it (next or previous), each with "
    "its own model, in one table (default mode: DOCSYNC_SEARCH_MODE)",
)
@edge
def evaluate(
    settings: Settings,
    questions: Path,
    mode: SearchMode | None,
    path_prefix: str | None,
    as_json: bool,
    compare: bool,
) -> int:
    labelled = load_questions(questions)  # a bad file: one error line, nothing opened
    if compare:
        return _compare(settings, labelled, mode or settings.search_mode, as_json)
    try:
        # Its options, checked before anything is opened (an absolute prefix).
        SearchRequest.of(labelled[0].question, limit=DEPTH, path_prefix=path_prefix)
    except ValueError as exc:
        return fail(str(exc))
    modes = (mode,) if mode else SEARCH_MODES
    with connect(settings, load_encoder=wiring.load_encoder) as searcher:
        _warn_unmatched(searcher, labelled)
        results = _score_modes(searcher, labelled, modes, path_prefix)
    about = _eval_about(settings, searcher, len(labelled))
    if as_json:
        render.print_json(render.eval_json(about, results))
    else:
        render.print_lines(render.eval_text(about, results))
    return 0


def _compare(settings: Settings, labelled: list[Question], mode: str, as_json: bool) -> int:
    """`docsync eval --compare`: both generations, each with the model its profile names."""
    from docsync.plugin.stores import generations_of
    from docsync.worker.cli import via_daemon
    from docsync.worker.generation_runs import compare

    socket_path = via_daemon.daemon_socket(settings)
    if socket_path is not None:  # it holds the store, and both generations
        rows = via_daemon.compare(socket_path, labelled, mode)
    else:
        with wiring.checked_store(settings, reading=True) as store:
            rows = compare(settings, generations_of(store), labelled, (mode,))
    about = {
        "collection": settings.collection,
        "store": settings.store_description(),
        "questions": len(labelled),
    }
    if as_json:
        render.print_json({**about, "rows": {name: s.to_dict() for name, s in rows.items()}})
    else:
        print(f"{len(labelled)} questions on collection {settings.collection!r} ({about['store']})")
        render.print_lines([table(rows)])
    return 0


def _eval_about(settings: Settings, searcher: Searcher, questions: int) -> dict[str, object]:
    """What `docsync eval` measured: the collection, the model, the fusion, the count."""
    # Through a daemon no encoder is here: the daemon loaded the model the settings name.
    model = settings.model if searcher.via_daemon else searcher.encoder.name
    fusion = settings.fusion + (f" k={settings.rrf_k}" if settings.fusion == "rrf" else "")
    fusion += f" guard={settings.fusion_guard}" if settings.fusion_guard else ""
    return {
        "collection": settings.collection,
        "store": settings.store_description(),
        "model": model,
        "fusion": fusion,
        "questions": questions,
        "via_daemon": searcher.via_daemon,
    }


def _score_modes(
    searcher: Searcher, questions: list[Question], modes: Sequence[str], path_prefix: str | None
) -> dict[str, Scores]:
    """Each mode's scores, with a progress bar over every search of every mode."""
    from docsync.worker.progress import progress_bar

    results = {}
    with progress_bar(desc="eval", unit="question") as progress:
        progress.set_total(len(questions) * len(modes))
        for mode in modes:

            def search(question: str, mode: str = mode) -> list[Hit]:
                hits = searcher.search(question, limit=DEPTH, path_prefix=path_prefix, mode=mode)
                progress.advance()
                return hits

            results[mode] = score(questions, search)
    return results


def _warn_unmatched(searcher: Searcher, questions: list[Question]) -> None:
    """One warning when questions name files the collection does not hold: most likely
    paths written from another folder than the synced one."""
    if searcher.via_daemon:
        return  # the daemon holds the store, and lists no files: nothing to compare with
    stored = searcher.store.scroll({}, fields=[schema.PATH])
    missing = unmatched(questions, {str(p.payload.get(schema.PATH, "")) for p in stored})
    if missing:
        log.warning(
            "%d of %d questions name a file that is not in the collection (the first: %r); "
            "a question's path is relative to the synced folder, as hits show it",
            len(missing),
            len(questions),
            missing[0].path,
        )


@command("mcp", "answer an MCP client (an agent) on stdin/stdout: tools search, read, status")
@edge
def mcp(settings: Settings) -> int:
    from docsync.worker.mcp_server import serve_stdio

    serve_stdio(settings)
    return 0
