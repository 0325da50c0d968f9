"""A search's answer: `Hit`, one passage of a file with where it comes from, the same value
whether this process searched or a daemon did (`Hit.to_dict` / `Hit.from_dict` carry it
over the daemon's socket)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from docsync.plugin import schema
from docsync.plugin.passages import Passage


@dataclass(frozen=True)
class Hit:
    """One passage of the file at `path` under `root`: `text` is exactly `source[start:end]`,
    grown around the chunk that matched, `source[match_start:match_end]`."""

    score: float
    text: str
    path: str
    start: int
    end: int
    root: str = ""
    title: str = ""
    chunk_index: int = 0
    match_start: int = -1  # the chunk that matched, inside [start, end); -1: all of it
    match_end: int = -1
    section: str = ""  # the heading path: "Title > Section > Subsection"
    format: str = ""  # what the file was read as: markdown, rst, text, pdf, html, docx
    page_start: int | None = None  # the pages the passage spans, 1-based (PDF only)
    page_end: int | None = None
    # their printed labels (`ix`, `9`), where the PDF labels its pages; None: the numbers
    page_label: str | None = None
    page_label_end: str | None = None

    def __post_init__(self) -> None:
        if self.match_start < 0:
            object.__setattr__(self, "match_start", self.start)
        if self.match_end < 0:
            object.__setattr__(self, "match_end", self.end)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hit:
        """A hit as `to_dict` (or the daemon's /search) gives it; unknown keys are ignored."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    @classmethod
    def from_passage(cls, passage: Passage) -> Hit:
        first = passage.chunks[passage.first]
        last = passage.chunks[passage.last]
        return cls(
            score=passage.score,
            text=passage.text(),
            path=passage.path,
            start=int(first.get(schema.START, 0)),
            end=int(last.get(schema.END, 0)),
            root=passage.root,
            title=passage.title,
            chunk_index=int(passage.match.get(schema.CHUNK_INDEX, 0)),
            match_start=int(passage.match.get(schema.START, 0)),
            match_end=int(passage.match.get(schema.END, 0)),
            section=passage.section,
            format=str(passage.match.get(schema.FORMAT, "")),
            page_start=_page(first.get(schema.PAGE_START)),
            page_end=_page(last.get(schema.PAGE_END)),
            page_label=_label(first.get(schema.PAGE_LABEL)),
            page_label_end=_label(last.get(schema.PAGE_LABEL_END)),
        )

    def where(self) -> str:
        """How a person cites it: `guide.pdf p. 12`, `guide.pdf pp. 12-13`, `deck.pptx slide
        7`, `book.xlsx Sales!A1:D30`, or the path alone where the format has no pages.
        Where the PDF prints other page labels, they come first and the physical pages after
        them: `guide.pdf p. 9 (18)`, `pp. ix-x (9-10)`."""
        if self.page_start is None:
            return self.path
        if self.format in schema.SLIDE_FORMATS:
            if self.page_end is None or self.page_end == self.page_start:
                return f"{self.path} slide {self.page_start}"
            return f"{self.path} slides {self.page_start}-{self.page_end}"
        if self.format in schema.SHEET_FORMATS and self.page_label:
            return f"{self.path} {cell_range(self.page_label, self.page_label_end)}"
        first, last = str(self.page_start), str(self.page_end or self.page_start)
        printed = (self.page_label or first, self.page_label_end or self.page_label or last)
        if last == first:
            if printed[0] == first:
                return f"{self.path} p. {first}"
            return f"{self.path} p. {printed[0]} ({first})"
        if printed == (first, last):
            return f"{self.path} pp. {first}-{last}"
        return f"{self.path} pp. {printed[0]}-{printed[1]} ({first}-{last})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "path": self.path,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "root": self.root,
            "title": self.title,
            "chunk_index": self.chunk_index,
            "match_start": self.match_start,
            "match_end": self.match_end,
            "section": self.section,
            "format": self.format,
            "page_start": self.page_start,
            "page_end": self.page_end,
            "page_label": self.page_label,
            "page_label_end": self.page_label_end,
        }


def cell_range(first: str, last: str | None) -> str:
    """The cell range of a spreadsheet's blocks of rows from the first's to the last's:
    `Sales!A1:D30` and `Sales!A31:D60` give `Sales!A1:D60` (blocks of other sheets, both)."""
    if not last or last == first:
        return first
    sheet, _, cells = first.rpartition("!")
    last_sheet, _, last_cells = last.rpartition("!")
    if sheet != last_sheet or ":" not in cells or ":" not in last_cells:
        return f"{first} to {last}"
    return f"{first.rpartition(':')[0]}:{last_cells.rpartition(':')[2]}"


def _page(value: object) -> int | None:
    return int(value) if isinstance(value, int) else None


def _label(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
