"""The Read view's data: a window of a document's extracted text around a span (a hit's),
with the span's page and section, and the passages before and after it to step to.

The text comes from the stored chunks (`docsync.plugin.stored_text`), so the offsets are the
hits' own, and only a file docsync indexed can be read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from docsync.plugin import schema
from docsync.plugin.store import Store
from docsync.plugin.stored_text import MAX_READ_CHARS, read_stored

CONTEXT_CHARS = 3000  # shown each side of the span
MAX_SPAN_CHARS = MAX_READ_CHARS - 2 * CONTEXT_CHARS  # a longer span is cut to this
_PLACES = (
    schema.ROOT,
    schema.START,
    schema.END,
    schema.CHUNK_INDEX,
    schema.SECTION,
    schema.FORMAT,
    schema.PAGE_START,
    schema.PAGE_END,
    schema.PAGE_LABEL,
)


@dataclass(frozen=True)
class Place:
    """Where one chunk of the document lies, and what it is under."""

    index: int
    start: int
    end: int
    section: str
    page: int | None
    page_end: int | None
    page_label: str | None

    @classmethod
    def of(cls, payload: dict[str, Any]) -> Place:
        page = payload.get(schema.PAGE_START)
        page_end = payload.get(schema.PAGE_END)
        label = payload.get(schema.PAGE_LABEL)
        return cls(
            index=int(payload.get(schema.CHUNK_INDEX, 0)),
            start=int(payload[schema.START]),
            end=int(payload[schema.END]),
            section=str(payload.get(schema.SECTION, "")),
            page=page if isinstance(page, int) else None,
            page_end=page_end if isinstance(page_end, int) else None,
            page_label=label if isinstance(label, str) and label else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "section": self.section, "page": self.page}


def document_window(
    store: Store, path: str, *, root: str | None, start: int, end: int
) -> dict[str, Any]:
    """The text around `[start:end]` of the indexed file `path`, at most `MAX_READ_CHARS`.
    LookupError when no root holds `path`; ValueError for a span that is no span."""
    if start < 0 or end < start:
        raise ValueError(f"start and end must be 0 <= start <= end, not {start} and {end}")
    end = min(end, start + MAX_SPAN_CHARS)
    match: dict[str, Any] = {schema.PATH: path, **({schema.ROOT: root} if root else {})}
    payloads = [point.payload for point in store.scroll(match, fields=_PLACES)]
    if not payloads:
        raise LookupError(f"no indexed file {path!r}: give a path as hits give it")
    first_root = min(str(p.get(schema.ROOT, "")) for p in payloads)
    places = sorted(
        (Place.of(p) for p in payloads if str(p.get(schema.ROOT, "")) == first_root),
        key=lambda place: place.start,
    )
    text = read_stored(
        store,
        path,
        root=first_root,
        start=max(0, start - CONTEXT_CHARS),
        end=end + CONTEXT_CHARS,
    )
    at = _at(places, start)
    before = [p for p in places if p.end <= start]
    after = [p for p in places if p.start >= end]
    return {
        "root": first_root,
        "path": path,
        "title": text.title,
        "format": str(payloads[0].get(schema.FORMAT, "")),
        "length": text.length,
        "chunks": len(places),
        "window": {"start": text.start, "end": text.end, "text": text.text},
        "span": {"start": start, "end": end},
        "section": at.section,
        "page": at.page,
        "page_end": at.page_end,
        "page_label": at.page_label,
        "previous": before[-1].to_dict() if before else None,
        "next": after[0].to_dict() if after else None,
    }


def _at(places: list[Place], offset: int) -> Place:
    """The chunk holding `offset` (the last that starts at or before it)."""
    holding = [place for place in places if place.start <= offset]
    return holding[-1] if holding else places[0]
