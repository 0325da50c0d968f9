"""Export and import a collection as JSON lines, to back it up or to move it between stores
(the embedded engine and a server) without re-embedding.

The format: a header line, then one line per point.

    {"docsync_export": 1, "collection": "docsync", "profile": {...}}
    {"id": "…", "payload": {...}, "vector": [...]}      # "vector" only with --vectors

Keyword vectors are not exported: import computes each point's from its payload (title and
text, see `docsync.plugin.keyword`), with the importing docsync's BM25 configuration, so an export
made before keyword vectors imports into a hybrid-ready collection, and an existing target
made before them is given them first (as a sync would).

Import creates the target collection with the header's profile, or checks an existing one
against it, then upserts every point under its own ID: importing twice changes nothing, and
points already in the target that the export lacks are left alone. The header and the first
batch of points are read and checked before anything is created, so that garbage (or an
export without vectors) leaves no empty collection or store folder behind.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import IO, Any

from docsync.plugin.errors import ConfigError
from docsync.plugin.keyword import KeywordEncoder
from docsync.plugin.profile import EmbeddingProfile
from docsync.plugin.store import Point, Store
from docsync.worker.upgrade import add_keyword_vectors

FORMAT_VERSION = 1
BATCH = 256


def export_points(store: Store, out: IO[str], *, vectors: bool) -> int:
    """Write the header and every point of `store`; returns the number of points."""
    profile = store.read_profile()
    if profile is None:
        raise ConfigError(f"collection {store.collection!r} has no docsync profile to export")
    header = {"docsync_export": FORMAT_VERSION, "collection": store.collection}
    out.write(json.dumps({**header, "profile": profile.to_dict()}) + "\n")
    count = 0
    for point in store.scroll({}, with_vectors=vectors):
        line: dict[str, object] = {"id": point.id, "payload": point.payload}
        if vectors:
            line["vector"] = point.vector
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
        count += 1
    return count


@dataclass
class Incoming:
    """An export whose header and first batch of points have been read and checked."""

    profile: EmbeddingProfile
    first: list[Point]
    rest: Iterator[tuple[int, str]]  # (line number, line) still to read


def read_export(lines: Iterable[str]) -> Incoming:
    """Check an export's header and first `BATCH` points (`ConfigError` when broken), before
    the caller creates anything."""
    numbered = enumerate(lines, start=1)
    profile = _header(next(numbered, (1, "")))
    first: list[Point] = []
    for number, line in numbered:
        if line.strip():
            first.append(_point(number, line, profile.dimension))
        if len(first) >= BATCH:
            break
    return Incoming(profile, first, numbered)


def import_points(
    store: Store,
    lines: Iterable[str] | Incoming,
    *,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Read an export (or what `read_export` made of one) into `store`; returns the number
    of points written."""
    incoming = lines if isinstance(lines, Incoming) else read_export(lines)
    keyword = KeywordEncoder()
    profile = replace(incoming.profile, keyword=keyword.profile)
    store.open(profile, create=True)
    add_keyword_vectors(store, profile, keyword)
    count = _flush(store, incoming.first, keyword, on_batch)
    batch: list[Point] = []
    for number, line in incoming.rest:
        if line.strip():
            batch.append(_point(number, line, incoming.profile.dimension))
        if len(batch) >= BATCH:
            count += _flush(store, batch, keyword, on_batch)
    return count + _flush(store, batch, keyword, on_batch)


def _flush(
    store: Store,
    batch: list[Point],
    keyword: KeywordEncoder,
    on_batch: Callable[[int], None] | None,
) -> int:
    store.upsert([replace(p, keyword=keyword.embed_payload(p.payload)) for p in batch])
    written = len(batch)
    batch.clear()
    if on_batch is not None and written:
        on_batch(written)
    return written


def _header(numbered: tuple[int, str]) -> EmbeddingProfile:
    number, line = numbered
    data = _json(number, line)
    if data.get("docsync_export") != FORMAT_VERSION or not isinstance(data.get("profile"), dict):
        raise ConfigError(
            "the input is not a docsync export (its first line must be the header that "
            "`docsync export` writes)"
        )
    try:
        return EmbeddingProfile.from_dict(data["profile"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"line {number}: the header's profile is not valid: {exc}") from exc


def _point(number: int, line: str, dimension: int) -> Point:
    data = _json(number, line)
    vector = data.get("vector")
    if not isinstance(vector, list):
        raise ConfigError(f"line {number} has no vector: export with `docsync export --vectors`")
    if len(vector) != dimension:
        raise ConfigError(f"line {number}: vector has {len(vector)} numbers, not {dimension}")
    if not isinstance(data.get("id"), str) or not isinstance(data.get("payload"), dict):
        raise ConfigError(f'line {number}: a point needs an "id" and a "payload"')
    return Point(id=data["id"], payload=data["payload"], vector=[float(x) for x in vector])


def _json(number: int, line: str) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"line {number} is not JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"line {number} is not a JSON object")
    return data
