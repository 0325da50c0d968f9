"""The text of an indexed file as the collection holds it: what an agent reads around a hit.

Read from the file's stored chunks (in order, with the whitespace between them), never from
the disk: only a file docsync indexed, under a synced root, can be read this way, whatever
path is asked for, and the text is exactly the one the hits' offsets point into.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from docsync.plugin import schema
from docsync.plugin.passages import Passage
from docsync.plugin.store import Store

MAX_READ_CHARS = 8000  # the most one read answers: a few pages, not a whole book
_PLACES = (schema.ROOT, schema.START, schema.END, schema.TITLE)


@dataclass(frozen=True)
class StoredText:
    root: str
    path: str
    title: str
    start: int  # the span answered, in the file's text: text == source[start:end]
    end: int
    length: int  # where the file's last chunk ends: a read past it answers nothing more
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_stored(
    store: Store,
    path: str,
    *,
    root: str | None = None,
    start: int = 0,
    end: int | None = None,
    limit: int = MAX_READ_CHARS,
) -> StoredText:
    """`[start:end]` of the indexed file `path` (relative to its root, as hits give it; `root`
    picks one where several roots hold that path), at most `limit` characters of it.
    `LookupError` when no root holds `path`; `ValueError` for a span that is no span."""
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"start and end must be 0 <= start <= end, not {start} and {end}")
    match: dict[str, Any] = {schema.PATH: path, **({schema.ROOT: root} if root else {})}
    # The chunks' places first (a few fields each), then the text of those in the span only:
    # a long file's other chunks are never read.
    chunks = [(point.id, point.payload) for point in store.scroll(match, fields=_PLACES)]
    if not chunks:
        raise LookupError(f"no indexed file {path!r}: give a path as hits give it")
    first_root = min(str(c.get(schema.ROOT, "")) for _, c in chunks)
    chunks = [(i, c) for i, c in chunks if str(c.get(schema.ROOT, "")) == first_root]
    length = max(int(c[schema.END]) for _, c in chunks)
    stop = min(length, start + limit, length if end is None else end)
    wanted = [i for i, c in chunks if int(c[schema.END]) > start and int(c[schema.START]) < stop]
    inside = {int(p.payload[schema.CHUNK_INDEX]): p.payload for p in store.retrieve(wanted)}
    text, first = "", start
    if inside:
        whole = Passage(0.0, first_root, path, "", "", {}, inside)
        offset = int(inside[whole.first][schema.START])
        text = whole.text()[max(0, start - offset) : max(0, stop - offset)]
        first = max(start, offset)
    title = str(chunks[0][1].get(schema.TITLE, ""))
    return StoredText(first_root, path, title, first, first + len(text), length, text)
