"""The text of an indexed file as the collection holds it: what an agent reads around a hit.

Read from the file's stored chunks (in order, with the whitespace between them), never from
the disk: only a file docsync indexed, under a synced root, can be read this way, whatever
path is asked for, and the text is exactly the one the hits' offsets point into.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from plugin import schema
from plugin.passages import Passage
from plugin.store import Store

MAX_READ_CHARS = 8000  # the most one read answers: a few pages, not a whole book


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
    chunks = [point.payload for point in store.scroll(match)]
    if not chunks:
        raise LookupError(f"no indexed file {path!r}: give a path as hits give it")
    first_root = str(min(str(c.get(schema.ROOT, "")) for c in chunks))
    chunks = [c for c in chunks if str(c.get(schema.ROOT, "")) == first_root]
    length = max(int(c[schema.END]) for c in chunks)
    stop = min(length, start + limit, length if end is None else end)
    inside = {
        int(c[schema.CHUNK_INDEX]): c
        for c in chunks
        if int(c[schema.END]) > start and int(c[schema.START]) < stop
    }
    text, first = "", start
    if inside:
        whole = Passage(0.0, first_root, path, "", "", {}, inside)
        offset = int(inside[whole.first][schema.START])
        text = whole.text()[max(0, start - offset) : max(0, stop - offset)]
        first = max(start, offset)
    title = str(chunks[0].get(schema.TITLE, ""))
    return StoredText(first_root, path, title, first, first + len(text), length, text)
