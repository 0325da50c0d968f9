"""Stage 4: the difference between the chunks a file should have and the points it has.

The collection is the only record: a file is current when every point stored for its path
carries the file's present hash and chunker signature and there are exactly as many as the
file has chunks. Anything else (an edit, a rename, an interrupted earlier write) is planned
afresh from the points that are there, so a crash between an upsert and a delete is repaired
by the next sync.
"""

from __future__ import annotations

import sys
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from docsync.plugin import schema
from docsync.plugin.store import Point, Store
from docsync.worker.chunk import Chunk

ComposeInput = Callable[[str, str], str]


# What a listed file's points disagree on (a file written halfway, or by two versions).
MIXED = "\x00mixed"
MIXED_COUNT = -2  # never a file's number of points: such a file is not complete


@dataclass(slots=True)
class IndexedFile:
    """What the collection holds for one path of one root, in a few words: a tree of a
    hundred thousand files is listed whole at every sync, so a listed file keeps no point
    IDs (`point_ids` asks for them, for the few files that change) and one value of each
    field, `MIXED` where its points disagree."""

    points: int = 0
    file_hash: str = ""
    stat_key: str = ""
    chunker: str = ""
    count: int = -1

    def add(self, payload: Mapping[str, Any]) -> None:
        """Take in one more point of the file (its listing fields)."""
        values = (
            str(payload.get(schema.FILE_HASH, "")),
            str(payload.get(schema.FILE_STAT, "")),
            # One string object for the value thousands of points repeat.
            sys.intern(str(payload.get(schema.CHUNKER, ""))),
        )
        count = int(payload.get(schema.CHUNK_COUNT, -1))
        if not self.points:
            self.file_hash, self.stat_key, self.chunker = values
            self.count = count
        else:
            self.file_hash = _same(self.file_hash, values[0])
            self.stat_key = _same(self.stat_key, values[1])
            self.chunker = _same(self.chunker, values[2])
            self.count = self.count if self.count == count else MIXED_COUNT
        self.points += 1

    def current_hash(self, chunker: str) -> str | None:
        """The file hash its points were all written from, when they are complete and of
        this chunker: a file whose bytes still hash so is current, and needs no extracting."""
        complete = self.chunker == chunker and self.count == self.points
        return self.file_hash if complete and self.file_hash != MIXED else None

    def is_unchanged(self, stat_key: str, chunker: str) -> bool:
        """Current without reading the file: every point was written from a file with this
        stat key (see worker/read.py), complete and with this chunker."""
        return (
            bool(stat_key) and self.stat_key == stat_key and self.current_hash(chunker) is not None
        )


def scope_match(root: str, scope: str = "") -> dict[str, str]:
    """The points of `root`, or of the file or folder `scope` in it."""
    return {schema.ROOT: root, **({schema.PATH_PREFIXES: scope} if scope else {})}


def list_files(
    store: Store, root: str, scope: str = "", *, outside: Sequence[str] = ()
) -> dict[str, IndexedFile]:
    """The indexed files of `root`, or of the file or folder `scope` in it; none of those
    in the folders `outside`."""
    exclude = {schema.PATH_PREFIXES: list(outside)} if outside else None
    files: dict[str, IndexedFile] = {}
    points = store.scroll(scope_match(root, scope), fields=schema.LISTING_FIELDS, exclude=exclude)
    for point in points:
        path = str(point.payload.get(schema.PATH, ""))
        entry = files.get(path)
        if entry is None:
            entry = files[path] = IndexedFile()
        entry.add(point.payload)
    return files


def point_ids(store: Store, root: str, path: str) -> list[str]:
    """The IDs of the points of one file."""
    match = {schema.ROOT: root, schema.PATH: path}
    return [point.id for point in store.scroll(match, fields=())]


def _same(held: str, value: str) -> str:
    return held if held == value else MIXED


# A vector as it travels through the pipeline: an array, made a list only when written (a
# list of floats per point would give the garbage collector hundreds of items to walk per
# point while thousands wait to be written, pausing every thread, searches included).
PlannedVector = np.ndarray[Any, np.dtype[np.float32]]


def compact(vector: Sequence[float] | None) -> PlannedVector | None:
    """A stored vector in the pipeline's form."""
    return None if vector is None else np.asarray(vector, dtype=np.float32)


@dataclass
class PlannedPoint:
    id: str
    payload: schema.Payload
    embed_input: str
    vector: PlannedVector | None = None

    @property
    def embed_hash(self) -> str:
        return self.payload["embed_hash"]


@dataclass
class FileWrite:
    """What the parts of one file's plan share: whether one of them failed to write, after
    which the others write nothing (the deletes of the last part above all: a file whose
    new points are not all in must keep its old ones)."""

    failed: bool = False


@dataclass
class FilePlan:
    """The writes for one file, or for one part of a long file: a file of tens of thousands
    of chunks is planned, embedded and written a part at a time, so memory holds a few
    windows of points, not the whole file's. Only the last part deletes anything."""

    root: str
    path: str
    upserts: list[PlannedPoint] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    embedded: int = 0  # how many of its texts were computed rather than reused
    final: bool = True  # the file's last part (or its only one)
    write: FileWrite = field(default_factory=FileWrite)

    @property
    def empty(self) -> bool:
        return not self.upserts and not self.deletes

    @property
    def weight(self) -> int:
        """What holding this plan in a queue costs, in points (the file itself counts one)."""
        return len(self.upserts) + 1

    def needs_vectors(self) -> list[PlannedPoint]:
        return [p for p in self.upserts if p.vector is None]


@dataclass(frozen=True)
class FileVersion:
    """One file's present state, as the planner needs it."""

    root: str
    path: str
    title: str
    file_hash: str
    chunker: str
    chunks: Sequence[Chunk]
    stat_key: str = ""
    format: str = "text"
    pages: Sequence[int] = ()  # where each page starts in the text (PDF)
    labels: Sequence[str] = ()  # each page's printed label, where they differ (PDF)
    ocr: Sequence[float | None] = ()  # each page's OCR confidence, None where not OCR'd
    tags: Sequence[str] = ()
    meta: Mapping[str, str] = field(default_factory=dict)
    # Each chunk's tokens, its text counted alone (`Encoder.count_tokens`): what a passage
    # counts them as (`schema.TOKENS`).
    tokens: Sequence[int] = ()
    container: str = ""  # the path of the file it was read out of (a mail's, for an attachment)


def plan_parts(
    version: FileVersion,
    existing: Iterable[Point],
    compose: ComposeInput,
    *,
    part_points: int | None,
    write: FileWrite | None = None,
) -> Iterator[FilePlan]:
    """Upserts for every chunk whose point is missing or out of date (carrying the old vector
    whenever the embedded text is unchanged), deletes for every point no chunk wants; in parts
    of at most `part_points` upserts (None: one part), made as they are asked for; the last
    part holds the deletes. `write`: shared with the plans of the other documents of the same
    file (a mail's attachments): one that fails to write stops the rest."""
    stored = {p.id: p for p in existing}
    old_vectors = {
        str(p.payload.get(schema.EMBED_HASH)): p.vector for p in stored.values() if p.vector
    }
    write = write or FileWrite()
    plan = FilePlan(root=version.root, path=version.path, final=False, write=write)
    wanted: set[str] = set()
    for point in _desired_points(version, compose):
        wanted.add(point.id)
        old = stored.get(point.id)
        if old is not None and old.payload == point.payload:
            continue
        same_point = old.vector if old is not None else None
        point.vector = compact(same_point or old_vectors.get(point.embed_hash))
        if part_points is not None and len(plan.upserts) >= part_points:
            yield plan  # only once more is to come: the last part is never empty
            plan = FilePlan(root=version.root, path=version.path, final=False, write=write)
        plan.upserts.append(point)
    plan.deletes = [pid for pid in stored if pid not in wanted]
    plan.final = True
    yield plan


def plan_removal(root: str, path: str, ids: list[str]) -> FilePlan:
    return FilePlan(root=root, path=path, deletes=ids)


def _desired_points(version: FileVersion, compose: ComposeInput) -> Iterator[PlannedPoint]:
    repeats: Counter[str] = Counter()
    inputs, hashes, ids = [], [], []
    for chunk in version.chunks:  # every ID first: each point names its neighbours'
        embed_input = compose(chunk.text, version.title)
        embed_hash = schema.content_hash(embed_input)
        occurrence = repeats[embed_hash]
        repeats[embed_hash] += 1
        inputs.append(embed_input)
        hashes.append(embed_hash)
        ids.append(schema.point_id(version.root, version.path, embed_hash, occurrence))
    for i, chunk in enumerate(version.chunks):
        payload = _payload(version, chunk, hashes[i])
        payload["next"] = _around(version, ids, i, 1)
        payload["previous"] = _around(version, ids, i, -1)
        yield PlannedPoint(ids[i], payload, inputs[i])


def _around(
    version: FileVersion, ids: Sequence[str], index: int, step: int
) -> list[list[str | int]]:
    """[id, tokens] of the chunks a passage around chunk `index` may grow into going `step`
    (1: after, -1: before): nearest first, in its section, at most `schema.REACH`."""
    chunks, section = version.chunks, version.chunks[index].section
    found: list[list[str | int]] = []
    at = index + step
    while 0 <= at < len(chunks) and len(found) < schema.REACH and chunks[at].section == section:
        found.append([ids[at], version.tokens[at]])
        at += step
    return found


def _payload(version: FileVersion, chunk: Chunk, embed_hash: str) -> schema.Payload:
    payload = _common(version, chunk, embed_hash)
    if version.pages:
        payload["page_start"] = bisect_right(version.pages, chunk.start)
        payload["page_end"] = bisect_right(version.pages, chunk.end - 1)
        if version.labels:
            payload["page_label"] = version.labels[payload["page_start"] - 1]
            payload["page_label_end"] = version.labels[payload["page_end"] - 1]
        read = [
            c for c in version.ocr[payload["page_start"] - 1 : payload["page_end"]] if c is not None
        ]
        if read:
            payload["ocr_confidence"] = min(read)
    if version.container:
        payload["container"] = version.container
    return payload


def _common(version: FileVersion, chunk: Chunk, embed_hash: str) -> schema.Payload:
    return {
        "root": version.root,
        "path": version.path,
        "path_prefixes": schema.path_prefixes(version.path),
        "title": version.title,
        "text": chunk.text,
        "section": chunk.section,
        "gap": chunk.gap,
        "start": chunk.start,
        "end": chunk.end,
        "chunk_index": chunk.index,
        "chunk_count": len(version.chunks),
        "chunk_hash": schema.content_hash(chunk.text),
        "embed_hash": embed_hash,
        "file_hash": version.file_hash,
        "file_stat": version.stat_key,
        "chunker": version.chunker,
        "format": version.format,
        "tags": list(version.tags),
        "meta": dict(version.meta),
        "tokens": version.tokens[chunk.index],
        "next": [],
        "previous": [],
    }
