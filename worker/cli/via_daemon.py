"""`docsync reindex`, `docsync switch` and `docsync eval --compare` while a daemon holds the
embedded store (no other process may open it): asked of the daemon over its socket
(`docsync.worker.generation_api`), which builds, compares and switches while it keeps
serving and syncing the live generation."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from docsync.plugin.daemon_client import SOCKET_NAME, ask_daemon, daemon_answers, post_daemon
from docsync.plugin.embedding.loading import model_named
from docsync.plugin.errors import StoreError
from docsync.plugin.evaluate import Question, Scores, table
from docsync.plugin.generations import GenerationError
from docsync.plugin.settings import Settings
from docsync.worker import render
from docsync.worker.cli.app import fail

POLL_SECONDS = 1.0  # how often `docsync reindex` asks the daemon how far its build is


def daemon_socket(settings: Settings) -> Path | None:
    """The socket of a daemon that holds the embedded store, or None (a server, or no
    daemon: the command opens the store itself)."""
    if settings.qdrant_url:
        return None
    socket_path = settings.qdrant_path / SOCKET_NAME
    return socket_path if daemon_answers(socket_path) else None


def reindex(socket_path: Path, settings: Settings, roots: list[Path], as_json: bool) -> int:
    """The daemon builds the next generation (or goes on with the build under way); this
    shows its progress until it ends. Stopped here (Ctrl-C), the build goes on there."""
    # Always asked: a build under way goes on when it has these settings, and the daemon
    # refuses when it has others (never followed as if it were this one).
    asked = {
        "roots": [str(root) for root in roots],
        # A folder given relative to this command's working directory (`--model
        # ./my-model-v2`) by its absolute path: the daemon reads paths from its own.
        "model": model_named(settings.model),
        "chunk_tokens": settings.chunk_tokens,
        "query_prefix": settings.query_prefix,
        "passage_prefix": settings.passage_prefix,
    }
    state = _posted(socket_path, "/generations/reindex", asked)
    try:
        state = _follow(socket_path, settings, state)
    except KeyboardInterrupt:
        print("the build goes on in the daemon: `docsync reindex` shows it again", file=sys.stderr)
        raise
    build, other = state["build"], state["other"] or {}
    built = build["state"] == "built"
    if as_json:
        print(json.dumps({"generation": other.get("name"), "live": state["live"], **build}))
    else:
        if "report" in build:
            print(render.summary_of(build["report"]))
        if built:
            print(
                f"generation {other.get('name')} built: `docsync switch` makes it live "
                f"(live: {state['live']})"
            )
        else:
            name = other.get("name") or "the next generation"
            print(f"{name} not built: {build.get('error', '')}")
    return 0 if built else 1


def _follow(socket_path: Path, settings: Settings, state: Any) -> Any:
    """The build's progress as a bar (or log lines), until it ends."""
    from docsync.worker.progress import progress_bar

    with progress_bar(desc="reindex", interval=settings.progress_seconds) as bar:
        total = done = 0
        while state["build"]["state"] == "building":
            build = state["build"]
            if build["files_total"] != total:
                total = build["files_total"]
                bar.set_total(total)
                done = 0
            bar.advance(build["files_done"] - done)
            done = build["files_done"]
            time.sleep(POLL_SECONDS)
            state = ask_daemon(socket_path, "/generations")
    return state


def switch(
    socket_path: Path,
    settings: Settings,
    *,
    back: bool,
    keep: bool,
    discard: bool,
    questions: list[Question] | None,
) -> int:
    asked: dict[str, object] = {"back": back, "keep": keep, "discard": discard}
    if questions is not None:
        asked["questions"] = [vars(q) for q in questions]
        asked["mode"] = settings.search_mode
    status, answer = post_daemon(socket_path, "/generations/switch", asked)
    rows = answer.get("rows") if isinstance(answer, dict) else None
    if rows:
        render.print_lines([table(_scores(rows))])
    if status != 200:
        code = 1 if isinstance(answer, dict) and answer.get("not_switched") else 2
        return fail(_message(status, answer), code)
    if discard:
        print(f"generation {answer['discarded']} deleted")
        return 0
    kept = "kept: switch --back returns to it" if keep else "deleted"
    live, replaced = answer["live"], answer["replaced"]
    print(f"collection {settings.collection!r}: {live} is live ({replaced} {kept})")
    return 0


def compare(socket_path: Path, questions: list[Question], mode: str) -> dict[str, Scores]:
    asked: dict[str, object] = {"questions": [vars(q) for q in questions], "mode": mode}
    return _scores(_posted(socket_path, "/generations/compare", asked)["rows"])


def _posted(socket_path: Path, route: str, asked: dict[str, object]) -> Any:
    status, answer = post_daemon(socket_path, route, asked)
    if status not in (200, 202):
        error = GenerationError if status == 409 else StoreError
        raise error(_message(status, answer))
    return answer


def _message(status: int, answer: object) -> str:
    found = answer.get("error") if isinstance(answer, dict) else None
    return str(found or f"the running daemon answered {status}")


def _scores(rows: dict[str, dict[str, Any]]) -> dict[str, Scores]:
    return {name: Scores.from_dict(row) for name, row in rows.items()}
