"""The routes through which `docsync reindex`, `docsync switch` and `docsync eval --compare`
reach a daemon that holds the embedded store (no other process may open it): on the daemon's
Unix socket only, the owner's alone (mode 0600), never on TCP.

    GET  /generations             the collection's generations and the build's progress
    POST /generations/reindex     {"roots": [...], "model", "chunk_tokens", "query_prefix",
                                  "passage_prefix"}: the next generation's build starts (202)
    POST /generations/switch      {"back", "keep", "discard", "questions": [...], "mode"}
    POST /generations/compare     {"questions": [...], "mode"}

The build runs on a thread of the daemon (`docsync.worker.next_generation`); a switch and a
comparison run on its sync loop, between two syncs (`docsync.worker.loop_calls`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from docsync.plugin.choices import SEARCH_MODES, one_of
from docsync.plugin.embedding.runner import StopRequested
from docsync.plugin.errors import DocsyncError, StoreError
from docsync.plugin.evaluate import Question, Scores, question_of
from docsync.plugin.generations import GenerationError
from docsync.worker.generation_switch import GenerationSwitch, NotSwitched
from docsync.worker.loop_calls import LoopCalls
from docsync.worker.next_generation import Side

Response = tuple[int, str, bytes]
ROUTES = ("/generations", "/generations/reindex", "/generations/switch", "/generations/compare")
MAX_QUESTIONS = 10_000  # a question file of a day's labelling, and a comparison of minutes


class BadRequest(ValueError):
    pass


@dataclass
class GenerationApi:
    """What the routes answer; `moved`: the daemon's writes and searches onto a generation
    made live (on the loop)."""

    next: GenerationSwitch
    calls: LoopCalls
    roots: Sequence[Path]
    moved: Callable[[Side], None]

    def answer(self, method: str, path: str, body: bytes) -> Response:
        try:
            if method == "GET" and path == "/generations":
                return _json(200, self.next.describe())
            if method != "POST" or path not in ROUTES:
                return _json(405, {"error": f"{method} {path} is not a route of this daemon"})
            asked = _object(body)
            if path == "/generations/reindex":
                return self._reindex(asked)
            if path == "/generations/switch":
                return self._switch(asked)
            return self._compare(asked)
        except BadRequest as exc:
            return _json(400, {"error": str(exc)})
        except StopRequested:  # the daemon's stop, in a switch's catch-up: nothing switched
            return _json(503, {"error": "the daemon is stopping: nothing was switched"})
        except NotSwitched as exc:
            return _json(409, {"error": str(exc), "not_switched": True})
        except GenerationError as exc:
            return _json(409, {"error": str(exc)})
        except DocsyncError as exc:
            return _json(503 if isinstance(exc, StoreError) else 400, {"error": str(exc)})

    def _reindex(self, asked: dict[str, object]) -> Response:
        roots = asked.get("roots")
        if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
            raise BadRequest("'roots' must be a list of folders")
        wanted = {Path(str(r)).resolve() for r in roots}
        following = {Path(r).resolve() for r in self.roots}
        if wanted != following:
            raise BadRequest(
                "the running daemon follows "
                f"{', '.join(sorted(map(str, following)))}: a reindex through it builds from "
                "the same folders (stop it to reindex others)"
            )
        chunk_tokens = asked.get("chunk_tokens")
        if chunk_tokens is not None and (
            not isinstance(chunk_tokens, int) or not 32 <= chunk_tokens <= 8192
        ):
            raise BadRequest("'chunk_tokens' must be a whole number from 32 to 8192")
        model = _text(asked, "model")
        if model is not None and not model.strip():
            raise BadRequest("'model' must name a model (a folder or a hub name), not be empty")
        self.next.start(
            model=model,
            chunk_tokens=chunk_tokens,
            query_prefix=_text(asked, "query_prefix"),
            passage_prefix=_text(asked, "passage_prefix"),
        )
        return _json(202, self.next.describe())

    def _switch(self, asked: dict[str, object]) -> Response:
        back, keep, discard = (_flag(asked, name) for name in ("back", "keep", "discard"))
        if discard and (back or keep):
            raise BadRequest("'discard' deletes the generation beside the live one: alone")
        questions = _questions(asked) if asked.get("questions") is not None else None
        mode = _mode(asked)

        def on_loop() -> dict[str, object]:
            if discard:
                return {"discarded": self.next.discard()}
            side, replaced, rows = self.next.switch(
                back=back, keep=keep, questions=questions, modes=(mode,)
            )
            self.moved(side)
            return {"live": side.name, "replaced": replaced, "kept": keep, "rows": _rows(rows)}

        return _json(200, self.calls.call(on_loop))

    def _compare(self, asked: dict[str, object]) -> Response:
        questions = _questions(asked)
        mode = _mode(asked)
        rows = self.calls.call(lambda: self.next.compare(questions, (mode,)))
        return _json(200, {"rows": _rows(rows)})


def _object(body: bytes) -> dict[str, object]:
    try:
        asked = json.loads(body or b"{}")
    except ValueError as exc:
        raise BadRequest(f"the body is not JSON ({exc})") from None
    except RecursionError:  # arrays nested thousands deep: within the body limit
        raise BadRequest("the body is nested too deeply") from None
    if not isinstance(asked, dict):
        raise BadRequest("the body must be a JSON object")
    return asked


def _text(asked: dict[str, object], name: str) -> str | None:
    value = asked.get(name)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{name!r} must be a string")
    return value


def _mode(asked: dict[str, object]) -> str:
    mode = _text(asked, "mode") or "hybrid"
    if mode not in SEARCH_MODES:
        raise BadRequest(f"'mode' must be {one_of(SEARCH_MODES)}, not {mode!r}")
    return mode


def _flag(asked: dict[str, object], name: str) -> bool:
    value = asked.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{name!r} must be true or false")
    return value


def _questions(asked: dict[str, object]) -> list[Question]:
    rows = asked.get("questions")
    if not isinstance(rows, list) or not rows:
        raise BadRequest("'questions' must be a non-empty list")
    if len(rows) > MAX_QUESTIONS:
        raise BadRequest(f"at most {MAX_QUESTIONS} questions")
    try:
        return [question_of(row) for row in rows]
    except ValueError as exc:
        raise BadRequest(f"a question: {exc}") from None


def _rows(rows: dict[str, Scores] | None) -> dict[str, dict[str, object]] | None:
    return None if rows is None else {name: s.to_dict() for name, s in rows.items()}


def _json(status: int, body: object) -> Response:
    return status, "application/json", json.dumps(body, ensure_ascii=False).encode()
