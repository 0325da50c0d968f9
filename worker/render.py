"""What the commands print: a sync's summary, hits, an evaluation's header and a collection's
status, as text for a person or JSON for a program. Printing only; nothing here opens the
store or loads the model."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from docsync.plugin.evaluate import Scores, table
from docsync.plugin.search import Hit
from docsync.worker.report import SyncReport

EXCERPT_CHARS = 300  # of each hit, in `docsync query`'s text output


def print_json(value: object) -> None:
    """One JSON document on stdout, text as it is (not \\u escapes)."""
    print(json.dumps(value, ensure_ascii=False))


def summary(report: SyncReport) -> str:
    """A sync's report on one line."""
    return summary_of(report.to_dict())


def summary_of(r: Mapping[str, Any]) -> str:
    """A sync's report (`SyncReport.to_dict`, as a daemon sends it) on one line."""
    skipped = sum(r["files_skipped"].values())
    reasons = ", ".join(f"{n} {why}" for why, n in r["files_skipped"].items())
    return (
        f"{r['files_scanned']} files scanned: {r['files_changed']} changed, "
        f"{r['files_deleted']} deleted, {skipped} skipped{f' ({reasons})' if reasons else ''}, "
        f"{r['files_failed']} failed; {r['chunks_embedded']} chunks embedded, "
        f"{r['vectors_reused']} vectors reused; {r['points_upserted']} points upserted, "
        f"{r['points_deleted']} deleted in {r['seconds']:.1f}s"
    )


def hits_text(hits: list[Hit], path_prefix: str | None) -> Iterator[str]:
    """Each hit as its score, where it is, its span and an excerpt; or why there is none."""
    if not hits:
        yield "no hits"
        if path_prefix:
            yield (
                f"(--path-prefix {path_prefix!r} is relative to a synced folder and does "
                "not start with that folder's name)"
            )
    for hit in hits:
        yield f"{hit.score:.3f}  {hit.where()}  [{hit.start}:{hit.end}]\n    {excerpt(hit)}\n"


def excerpt(hit: Hit, width: int = EXCERPT_CHARS) -> str:
    """A hit's text on one line, from the start of the chunk that matched (the passage
    around it may begin earlier: `...` says so), cut at `width` characters."""
    offset = min(max(hit.match_start - hit.start, 0), len(hit.text))
    text = ("... " if offset else "") + " ".join(hit.text[offset:].split())
    return text if len(text) <= width else text[: width - 3] + "..."


def eval_text(about: Mapping[str, object], results: Mapping[str, Scores]) -> Iterator[str]:
    """What was measured, then a line of scores per search mode."""
    yield (
        f"{about['questions']} questions on collection {about['collection']!r} "
        f"({about['store']}), model {about['model']}; hybrid fuses by {about['fusion']}"
    )
    yield table(results)


def eval_json(about: Mapping[str, object], results: Mapping[str, Scores]) -> dict[str, object]:
    return {**about, **{mode: scores.to_dict() for mode, scores in results.items()}}


def status_text(info: Mapping[str, object]) -> Iterator[str]:
    """`docsync status` for a person: the collection, its counts, its roots, its profile."""
    yield f"collection     {info['collection']} ({info['store']})"
    yield f"points         {info['points']}"
    yield f"files          {info['files']}"
    for root, files in _items(info["roots"]):
        yield f"  {root}: {files} files"
    shown = _items(info["profile"]) or [("profile", "none (not made by docsync)")]
    for key, value in shown:
        yield f"{key:<15} {_plain(value)}"


def _plain(value: object) -> str:
    """A profile's value for a person: as it reads, "none" for none, and quoted only where
    the quotes say something (an empty text, or spaces at its ends: a prefix's last space
    is part of it)."""
    if value is None:
        return "none"
    if isinstance(value, str) and (not value or value != value.strip()):
        return repr(value)
    return str(value)


def _items(value: object) -> list[tuple[object, object]]:
    """A JSON object's members (from the store, or a daemon's answer); none for null."""
    return list(value.items()) if isinstance(value, Mapping) else []


def print_lines(lines: Iterable[str]) -> None:
    for line in lines:
        print(line)
