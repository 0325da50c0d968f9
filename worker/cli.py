"""The `docsync` command. `cli(*args)` is the whole program (tests call it directly); library
errors become one-line messages here and nowhere else.

Exit codes: 0 done; 1 the sync finished but a file failed or a root was held back;
2 nothing done (bad settings or arguments, model or store unavailable, profile mismatch);
141 the reader of the output went away (`docsync export | head`), as a command stopped by
SIGPIPE.
"""

from __future__ import annotations

import argparse
import ctypes
import faulthandler
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from docsync.plugin import schema
from docsync.plugin.choices import DEFAULT_CONTEXT_TOKENS, DEFAULT_SEARCH_MODE, SEARCH_MODES
from docsync.plugin.device import check_present
from docsync.plugin.errors import DaemonUnavailableError, DocsyncError
from docsync.plugin.evaluate import DEPTH, Question, Scores, load_questions, score, table, unmatched
from docsync.plugin.filters import parse_where
from docsync.plugin.search import MAX_LIMIT, DaemonSearcher, Hit, Searcher, check_query, connect
from docsync.plugin.settings import Settings
from docsync.plugin.store import Store, open_store

log = logging.getLogger("docsync")

EXCERPT_CHARS = 300  # of each hit, in `docsync query`'s text output

# Flags that override a setting of the same name (when given).
_SETTING_FLAGS = (
    "model",
    "device",
    "collection",
    "qdrant_url",
    "qdrant_path",
    "http_host",
    "http_port",
    "polling",
)


def main() -> None:
    # A crash in native code (a SIGBUS from an engine's memory-mapped file, say) then at
    # least says where, instead of ending the process without a word.
    faulthandler.enable()
    # Everything docsync creates holds the documents' text or serves it: the engine's own
    # files (segments, WAL) included, which it creates with the process's umask.
    os.umask(os.umask(0o077) | 0o077)
    sys.exit(cli(*sys.argv[1:]))


def cli(*args: str) -> int:
    parser = _parser()
    # Unknown flags are reported by the command's own parser, with its usage: argparse would
    # otherwise print the top-level usage, which does not name the command's flags.
    ns, unknown = parser.parse_known_args(args)
    if unknown:
        ns.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    _configure_logging(ns.log_level, ns.log_format)
    try:
        flags = {k: getattr(ns, k) for k in _SETTING_FLAGS if getattr(ns, k, None) is not None}
        settings = Settings(**flags)
        # Every command takes --device: one that is not there is refused now, also by a
        # command that would never load the model (DESIGN: never a silent fallback).
        check_present(settings.device)
        command: Callable[[argparse.Namespace, Settings], int] = ns.command
        return command(ns, settings)
    except ValidationError as exc:
        return _fail("; ".join(_validation_lines(exc)))
    except DocsyncError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted", code=130)
    except BrokenPipeError:
        # The reader closed our output (`docsync export | head`): stop quietly, and keep
        # Python from failing again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _fail(message: str, code: int = 2) -> int:
    print(f"docsync: error: {message}", file=sys.stderr)
    return code


def _validation_lines(exc: ValidationError) -> Iterator[str]:
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        yield f"setting DOCSYNC_{field.upper()}: {message}"


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", help="model name or local directory (DOCSYNC_MODEL)")
    common.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (DOCSYNC_DEVICE)")
    common.add_argument("--collection", help="collection name (DOCSYNC_COLLECTION)")
    common.add_argument("--qdrant-url", help="Qdrant server URL (DOCSYNC_QDRANT_URL)")
    common.add_argument(
        "--qdrant-path", type=Path, help="embedded store folder (DOCSYNC_QDRANT_PATH)"
    )
    common.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log lines on stderr at this level and above (default INFO)",
    )
    common.add_argument(
        "--log-format", default="text", choices=["text", "json"], help="json: one object a line"
    )
    parser = argparse.ArgumentParser(
        prog="docsync",
        description="Keep a Qdrant collection exactly in step with folders of documents, "
        "and answer questions from it. Settings come from DOCSYNC_* environment variables "
        "and a .env file; the flags below override them.",
    )
    parser.add_argument("--version", action="version", version=f"docsync {_version()}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    sync = commands.add_parser("sync", parents=[common], help="sync folders once and exit")
    sync.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="folder to index")
    sync.add_argument("--json", action="store_true", help="print one JSON report on stdout")
    sync.add_argument(
        "--allow-empty",
        action="store_true",
        help="let a folder with no files delete its points (refused by default: it may be "
        "an unmounted volume)",
    )
    sync.add_argument(
        "--allow-mass-delete",
        action="store_true",
        help="let new include/exclude rules remove most of a folder's files from the "
        "collection (refused by default: a mistyped DOCSYNC_INCLUDE would empty it)",
    )
    sync.set_defaults(command=_sync)

    run = commands.add_parser(
        "run", parents=[common], help="sync folders, then keep them in sync until stopped"
    )
    run.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="folder to index")
    run.add_argument(
        "--http-host",
        help="HTTP endpoint address (DOCSYNC_HTTP_HOST); beyond loopback it needs "
        "DOCSYNC_HTTP_TOKEN or DOCSYNC_HTTP_INSECURE=true",
    )
    run.add_argument("--http-port", type=int, help="HTTP endpoint port (DOCSYNC_HTTP_PORT)")
    run.add_argument(
        "--polling",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="poll the folders instead of inotify, or not (DOCSYNC_POLLING)",
    )
    run.add_argument(
        "--allow-empty", action="store_true", help="let an emptied folder delete its points"
    )
    run.add_argument(
        "--allow-mass-delete",
        action="store_true",
        help="let new include/exclude rules remove most of a folder's files",
    )
    run.set_defaults(command=_run)

    query = commands.add_parser("query", parents=[common], help="ask a question")
    query.add_argument("question", help='the question, in quotes: "How do I open a socket?"')
    query.add_argument(
        "-k", "--limit", type=_limit, default=5, help=f"hits (default 5, at most {MAX_LIMIT})"
    )
    query.add_argument(
        "--path-prefix",
        help="only files under this folder, or this file; relative to the synced folder, "
        "as hits show it (howto, howto/sockets.rst)",
    )
    query.add_argument(
        "--mode",
        metavar="{" + ",".join(SEARCH_MODES) + "}",
        help="dense (the model), keyword (BM25: exact words, names, identifiers) or hybrid "
        f"(both, fused); default {DEFAULT_SEARCH_MODE} (DOCSYNC_SEARCH_MODE)",
    )
    query.add_argument(
        "--context",
        type=int,
        metavar="TOKENS",
        help="grow each hit to about this many tokens around the chunk that matched, within "
        f"its section; 0: the chunk alone (default {DEFAULT_CONTEXT_TOKENS}, "
        "DOCSYNC_CONTEXT_TOKENS)",
    )
    query.add_argument(
        "--per-file",
        type=int,
        metavar="N",
        help="at most N hits from one file (default: no limit, DOCSYNC_HITS_PER_FILE)",
    )
    query.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only documents whose KEY is VALUE (repeatable; a key twice: either value): "
        f"format ({', '.join(schema.FORMATS)}), path (a glob: guides/*.pdf), tags, "
        "title, author, meta.NAME (a front matter field)",
    )
    query.add_argument("--json", action="store_true", help="print the hits as JSON")
    query.set_defaults(command=_query)

    evaluate = commands.add_parser(
        "eval", parents=[common], help="score labelled questions in every search mode"
    )
    evaluate.add_argument(
        "questions",
        type=Path,
        metavar="QUESTIONS.jsonl",
        help='one JSON object a line: {"question": ..., "path": ..., "answer": ...} (path as '
        "hits show it; answer, optional, a phrase the answering passage contains)",
    )
    evaluate.add_argument(
        "--mode", choices=SEARCH_MODES, help="only this search mode (default: all of them)"
    )
    evaluate.add_argument(
        "--path-prefix", help="only files under this folder, or this file (as for query)"
    )
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.set_defaults(command=_eval)

    show = commands.add_parser(
        "show",
        parents=[common],
        help="print a document's text as docsync extracted it (to check a hit's span)",
    )
    show.add_argument("file", type=Path, help="the file (a PDF, web page, Word or text file)")
    show.add_argument("--start", type=int, default=0, help="first character (a hit's start)")
    show.add_argument("--end", type=int, help="end character (a hit's end; default: the end)")
    show.add_argument(
        "--pages", action="store_true", help="print where each page starts instead (PDF)"
    )
    show.set_defaults(command=_show)

    mcp = commands.add_parser(
        "mcp",
        parents=[common],
        help="answer an MCP client (an agent) on stdin/stdout: tools search, read, status",
    )
    mcp.set_defaults(command=_mcp)

    status = commands.add_parser("status", parents=[common], help="describe the collection")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(command=_status)

    export = commands.add_parser(
        "export", parents=[common], help="write every point as JSON lines on stdout"
    )
    export.add_argument("--vectors", action="store_true", help="include vectors (needed by import)")
    export.set_defaults(command=_export)

    load = commands.add_parser(
        "import", parents=[common], help="read an export (--vectors) into the collection"
    )
    load.add_argument("file", nargs="?", type=Path, help="export file (default: standard input)")
    load.set_defaults(command=_import)
    for command in commands.choices.values():
        command.set_defaults(parser=command)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("docsync")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_LIMIT}")
    return value


def _configure_logging(level: str, style: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if style == "json"
        else logging.Formatter("docsync: %(levelname)s %(message)s")
    )
    logging.basicConfig(level=getattr(logging, level), handlers=[handler], force=True)
    # The hub client logs every retry of an unreachable hub; our one error line says it all.
    for noisy in ("huggingface_hub", "httpx", "sentence_transformers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # huggingface_hub sets its own logger's level when it is imported, over the one above.
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and the fields a record carries
    (`path`, `embedded`) for machines to pick out."""

    EXTRA = ("path", "embedded")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: getattr(record, k) for k in self.EXTRA if hasattr(record, k)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


@contextmanager
def _store(settings: Settings, *, reading: bool = False) -> Iterator[Store]:
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


def _load_encoder(settings: Settings, *, warm: bool = False) -> Any:
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


def _sync(ns: argparse.Namespace, settings: Settings) -> int:
    from docsync.worker.pipeline import check_roots, sync
    from docsync.worker.progress import progress_bar
    from docsync.worker.skips import SkipMemory

    roots = check_roots(ns.dirs)
    # A skip is said once, not on every run of a cron job: remembered in the cache folder.
    where = settings.qdrant_url or str(settings.qdrant_path.resolve())
    skips = SkipMemory.for_collection(settings.cache, where, settings.collection)
    options = _sync_options(settings, allow_empty=ns.allow_empty, mass_delete=ns.allow_mass_delete)
    with _store(settings) as store:
        encoder = _load_encoder(settings)
        _log_start("syncing", roots, store, encoder)
        with progress_bar(interval=settings.progress_seconds) as progress:
            report = sync(
                roots,
                store=store,
                encoder=encoder,
                options=options,
                progress=progress,
                skips=skips,
            )
        # The index is built after the model is let go: building it is a large sync's
        # memory peak (the engine copies its segments), and nothing is embedded any more.
        del encoder
        release_memory()
        # Index building blocks the process, so it runs here, once the writes are done,
        # not inside sync() where a search in the same process may be waiting.
        store.optimize()
    if ns.json:
        print(json.dumps(report.to_dict()))
    else:
        print(_summary(report.to_dict()))
    return 0 if report.ok else 1


def _run(ns: argparse.Namespace, settings: Settings) -> int:
    from docsync.worker.pipeline import check_roots

    roots = check_roots(ns.dirs)
    # Bound before the store and the model: a busy port or a refused address is one error
    # line, with no collection created and no seconds spent loading.
    tcp = _listen(settings)
    try:
        return _daemon(ns, settings, roots, tcp)
    finally:
        if tcp is not None:
            tcp.server_close()  # also when the endpoints never started


def _daemon(ns: argparse.Namespace, settings: Settings, roots: list[Path], tcp: Any) -> int:
    from docsync.worker.daemon import Daemon, DaemonOptions
    from docsync.worker.progress import progress_bar

    store = open_store(settings, serving=True)  # not pinged: it waits for a server that is down
    try:
        encoder = _load_encoder(settings, warm=True)
        _log_start("watching", roots, store, encoder)
        daemon = Daemon(
            roots,
            store=store,
            encoder=encoder,
            sync_options=_sync_options(
                settings, allow_empty=ns.allow_empty, mass_delete=ns.allow_mass_delete
            ),
            options=DaemonOptions(
                rescan_seconds=settings.rescan_seconds,
                debounce_seconds=settings.debounce_seconds,
                max_wait_seconds=settings.max_wait_seconds,
                polling=settings.polling,
            ),
        )
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: daemon.stop())
        # Refuse another profile before anything; an outage (a server down, a shard process
        # that dies as it opens) is waited out.
        if not daemon.wait_for_store(encoder.profile()):
            return 0
        endpoints = _endpoints(settings, daemon, store, encoder, tcp)
        try:
            with progress_bar(interval=settings.progress_seconds) as progress:
                daemon.run(progress=progress)
        finally:
            endpoints.close()
    finally:
        store.close()
    log.info("stopped")
    return 0


def _listen(settings: Settings) -> Any:
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


def _log_start(verb: str, roots: list[Path], store: Store, encoder: Any) -> None:
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


def _endpoints(settings: Settings, daemon: Any, store: Store, encoder: Any, tcp: Any) -> Any:
    from docsync.plugin.search import Searcher, fusion
    from docsync.worker.serve import SOCKET_NAME, Api, Endpoints
    from docsync.worker.status import collection_status

    searcher = Searcher(store, encoder, mode=settings.search_mode, fusion=fusion(settings))

    def status() -> dict[str, Any]:
        return {**collection_status(store), "daemon": daemon.state()}

    api = Api(
        searcher=searcher,
        healthy=daemon.healthy,
        ready=daemon.ready.is_set,
        metrics=daemon.metrics.registry,
        status=status,
        mcp=_mcp_server(settings, searcher, status) if tcp is not None else None,
    )
    socket_path = None if settings.qdrant_url else settings.qdrant_path / SOCKET_NAME
    endpoints = Endpoints(api, socket_path=socket_path, tcp=tcp)
    if endpoints.tcp_address:
        host, port = endpoints.tcp_address
        guard = "bearer token required" if settings.http_token else "no token"
        log.info(
            "HTTP endpoint on http://%s:%d (/healthz /readyz /metrics /search /read /status "
            "/mcp; %s)",
            host,
            port,
            guard,
        )
    return endpoints


def _mcp_server(settings: Settings, searcher: Any, status: Callable[[], dict[str, Any]]) -> Any:
    """MCP over streamable HTTP on the daemon's endpoint, its tools on the daemon's own
    searcher and status (the daemon holds the store)."""
    from docsync.worker.mcp_server import Collection, build_server

    return build_server(settings, Collection(settings, searcher=searcher, status=status))


def _sync_options(settings: Settings, *, allow_empty: bool, mass_delete: bool) -> Any:
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
    )


def _summary(r: dict[str, Any]) -> str:
    skipped = sum(r["files_skipped"].values())
    reasons = ", ".join(f"{n} {why}" for why, n in r["files_skipped"].items())
    return (
        f"{r['files_scanned']} files scanned: {r['files_changed']} changed, "
        f"{r['files_deleted']} deleted, {skipped} skipped{f' ({reasons})' if reasons else ''}, "
        f"{r['files_failed']} failed; {r['chunks_embedded']} chunks embedded, "
        f"{r['vectors_reused']} vectors reused; {r['points_upserted']} points upserted, "
        f"{r['points_deleted']} deleted in {r['seconds']:.1f}s"
    )


def _query(ns: argparse.Namespace, settings: Settings) -> int:
    from docsync.plugin.search import check_context

    try:
        check_query(ns.question, ns.limit, ns.path_prefix, ns.mode)
        check_context(ns.context, ns.per_file)
        filters = parse_where(ns.where)
    except ValueError as exc:
        return _fail(str(exc))
    # The Searcher's own path: the daemon when one holds the store, else the store itself.
    with connect(settings, load_encoder=_load_encoder) as searcher:
        try:
            hits = searcher.search(
                ns.question,
                limit=ns.limit,
                path_prefix=ns.path_prefix,
                mode=ns.mode,
                context=ns.context,
                per_file=ns.per_file,
                filters=filters,
            )
        except ValueError as exc:
            return _fail(str(exc))
    if ns.json:
        print(json.dumps([hit.to_dict() for hit in hits], ensure_ascii=False))
        return 0
    if not hits:
        print("no hits")
        if ns.path_prefix:
            print(
                f"(--path-prefix {ns.path_prefix!r} is relative to a synced folder and does "
                "not start with that folder's name)"
            )
    for hit in hits:
        print(f"{hit.score:.3f}  {_where(hit)}  [{hit.start}:{hit.end}]\n    {_excerpt(hit)}\n")
    return 0


def _where(hit: Hit) -> str:
    """`guide.pdf p. 12` (or `pp. 12-13`) where the hit has pages, else its path."""
    if hit.page_start is None:
        return hit.path
    if hit.page_end is None or hit.page_end == hit.page_start:
        return f"{hit.path} p. {hit.page_start}"
    return f"{hit.path} pp. {hit.page_start}-{hit.page_end}"


def _excerpt(hit: Hit, width: int = EXCERPT_CHARS) -> str:
    """A hit's text on one line, from the start of the chunk that matched (the passage
    around it may begin earlier: `...` says so), cut at `width` characters."""
    offset = min(max(hit.match_start - hit.start, 0), len(hit.text))
    excerpt = ("... " if offset else "") + " ".join(hit.text[offset:].split())
    return excerpt if len(excerpt) <= width else excerpt[: width - 3] + "..."


def _eval(ns: argparse.Namespace, settings: Settings) -> int:
    questions = load_questions(ns.questions)  # a bad file: one error line, nothing opened
    try:
        check_query(questions[0].question, DEPTH, ns.path_prefix)  # an absolute prefix
    except ValueError as exc:
        return _fail(str(exc))
    modes = (ns.mode,) if ns.mode else SEARCH_MODES
    with connect(settings, load_encoder=_load_encoder) as searcher:
        _warn_unmatched(searcher, questions)
        results = _score_modes(searcher, questions, modes, ns.path_prefix)
    about = _eval_about(settings, searcher, len(questions))
    if ns.json:
        print(json.dumps({**about, **{m: s.to_dict() for m, s in results.items()}}))
        return 0
    print(
        f"{about['questions']} questions on collection {about['collection']!r} "
        f"({about['store']}), model {about['model']}; hybrid fuses by {about['fusion']}"
    )
    print(table(results))
    return 0


def _eval_about(settings: Settings, searcher: Searcher, questions: int) -> dict[str, Any]:
    """What `docsync eval` measured: the collection, the model, the fusion, the count."""
    # A DaemonSearcher has no encoder here: the daemon loaded the model the settings name.
    model = searcher.encoder.name if not isinstance(searcher, DaemonSearcher) else settings.model
    fusion = settings.fusion + (f" k={settings.rrf_k}" if settings.fusion == "rrf" else "")
    return {
        "collection": settings.collection,
        "store": settings.store_description(),
        "model": model,
        "fusion": fusion,
        "questions": questions,
        "via_daemon": isinstance(searcher, DaemonSearcher),
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
    if isinstance(searcher, DaemonSearcher):
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


def _show(ns: argparse.Namespace, settings: Settings) -> int:
    """The extracted text of a file, or a span of it: what a hit's start and end index."""
    from docsync.worker.read import Unchanged, read_document
    from docsync.worker.report import Skip
    from docsync.worker.scan import SourceFile

    path = ns.file.absolute()
    if not path.is_file():
        return _fail(f"no such file: {ns.file}")
    real = path.resolve()  # a link is shown as the file it names (the read checks the root)
    source = SourceFile(real.parent, real.name)
    document = read_document(
        source,
        max_bytes=settings.max_file_bytes,
        timeout=settings.read_timeout,
        memory_mb=settings.reader_memory_mb,
    )
    if isinstance(document, Skip):
        return _fail(f"{ns.file} is not indexed as text: {document.reason} ({document.detail})", 1)
    assert not isinstance(document, Unchanged)
    if ns.pages:
        if not document.content.pages:
            return _fail(f"{ns.file} has no pages ({document.content.format})", 1)
        for number, start in enumerate(document.content.pages, 1):
            print(f"p. {number}\t{start}")
        return 0
    end = len(document.text) if ns.end is None else ns.end
    if not 0 <= ns.start <= end <= len(document.text):
        return _fail(
            f"--start and --end must satisfy 0 <= start <= end <= {len(document.text)} "
            f"(the length of {ns.file}'s text)"
        )
    sys.stdout.write(document.text[ns.start : end] + "\n")
    return 0


def _mcp(ns: argparse.Namespace, settings: Settings) -> int:
    from docsync.worker.mcp_server import serve_stdio

    serve_stdio(settings)
    return 0


def _status(ns: argparse.Namespace, settings: Settings) -> int:
    from docsync.worker.status import collection_status

    info = _from_daemon(settings, "/status")
    if info is None:
        with _store(settings, reading=True) as store:
            info = collection_status(store)
    if ns.json:
        print(json.dumps(info, ensure_ascii=False))
        return 0
    print(f"collection     {info['collection']} ({info['store']})")
    print(f"points         {info['points']}")
    print(f"files          {info['files']}")
    for root, files in info["roots"].items():
        print(f"  {root}: {files} files")
    shown = info["profile"] or {"profile": "none (not made by docsync)"}
    for key, value in shown.items():
        print(f"{key:<15} {value!r}")
    return 0


def _from_daemon(settings: Settings, route: str, params: dict[str, str] | None = None) -> Any:
    """The answer of a `docsync run` that holds the embedded store, or None when there is
    none (then the caller opens the store itself)."""
    from docsync.plugin.daemon_client import SOCKET_NAME, ask_daemon

    socket_path = settings.qdrant_path / SOCKET_NAME
    if settings.qdrant_url or not socket_path.exists():
        return None
    try:
        return ask_daemon(socket_path, route, params)
    except DaemonUnavailableError:
        return None  # a socket left by a daemon that was killed: nobody answers


def _export(ns: argparse.Namespace, settings: Settings) -> int:
    from docsync.worker.transfer import export_points

    with _store(settings, reading=True) as store:
        count = export_points(store, sys.stdout, vectors=ns.vectors)
    log.info(
        "exported %d points from collection %r (%s)", count, store.collection, store.description
    )
    return 0


def _import(ns: argparse.Namespace, settings: Settings) -> int:
    from docsync.worker.progress import progress_bar
    from docsync.worker.transfer import import_points, read_export

    try:
        source = ns.file.open(encoding="utf-8") if ns.file else sys.stdin
    except OSError as exc:
        return _fail(f"cannot read {ns.file}: {exc.strerror or exc}")
    try:
        incoming = read_export(source)  # a broken input creates no store or collection
        with _store(settings) as store, progress_bar() as progress:
            count = import_points(store, incoming, on_batch=progress.advance)
            store.optimize()
    except UnicodeDecodeError:
        return _fail(f"{ns.file or 'the input'} is not a docsync export (not UTF-8 text)")
    finally:
        if ns.file:
            source.close()
    print(f"imported {count} points into collection {store.collection!r} ({store.description})")
    return 0


if __name__ == "__main__":  # python -m docsync.worker.cli
    main()
