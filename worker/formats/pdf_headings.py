"""A PDF's headings, marked on its lines (worker/formats/pdf_lines.py) by their level.

From the outline where the document has one: each bookmark is matched to the line that
prints its title on the page it points at (at or below where it points), after at most a
section number (`5.5.1`, `Chapter 3`); a bookmark whose title is not printed there becomes a
heading line of its own. Without an outline, from the fonts: short lines set larger than
the body (the size most of the text, listings aside, is set in), each larger size a level
higher, and bold numbered lines (`4.2 Tables`) at the body's size, each starting where the
body text does (a label set large inside a figure does not); a heading that is not followed
by text or by a heading under it (a title page's author and date) is text.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

from docsync.worker.formats.pdf_lines import Bookmark, Line

MAX_LEVEL = 6
MAX_PAGE_MARKS = 200  # bookmarks matched on one page; more are left out
# Font-size headings: at least this much larger than the body, and lines this short.
SIZE_RATIO = 1.15
BOLD_RATIO = 1.05
HEADING_CHARS = 90
EDGES = 4
FLUSH_UNITS = 3  # how far (PDF units) a heading may start from the body text's left edge
_FONT_LEVELS = 4  # distinct heading sizes kept; smaller ones are text
_NUMBERED = re.compile(r"^(\d+(\.\d+)*|[A-Z](\.\d+)+)\.?\s+\w")
_PAGE_REFERENCE = re.compile(r"(\s|\.)\d+$")  # a contents entry: `4 Example 5`
_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def mark_outline(pages: list[list[Line]], bookmarks: Sequence[Bookmark]) -> None:
    """Mark the line of each bookmark's title as a heading of its level (a line of its own
    where the page does not print it)."""
    by_page: dict[int, list[Bookmark]] = {}
    for mark in bookmarks:
        marks = by_page.setdefault(mark.page, [])
        if len(marks) < MAX_PAGE_MARKS:  # a page's lines are searched once a bookmark
            marks.append(mark)
    for index, marks in by_page.items():
        lines = pages[index]
        cursor = 0
        for mark in sorted(marks, key=lambda m: -(m.top if m.top is not None else 1e9)):
            level = min(mark.level, MAX_LEVEL)
            found = _find_title(lines, mark, cursor)
            if found is None:
                at = _below(lines, mark.top, cursor)
                lines.insert(at, Line(mark.title, top=mark.top or 0.0, heading=level))
                cursor = at + 1
                continue
            first, last = found
            lines[first] = Line(
                " ".join(lines[i].text.strip() for i in range(first, last + 1)),
                top=lines[first].top,
                heading=level,
            )
            del lines[first + 1 : last + 1]
            cursor = first + 1


def _below(lines: Sequence[Line], top: float | None, cursor: int) -> int:
    """The first line at or after `cursor` that stands at or below `top`."""
    if top is None:
        return cursor
    for i in range(cursor, len(lines)):
        if not lines[i].top or lines[i].top <= top + 1:
            return i
    return len(lines)


def _find_title(lines: Sequence[Line], mark: Bookmark, cursor: int) -> tuple[int, int] | None:
    """The lines (first, last) that print the bookmark's title: its words end them, after at
    most a section number's words."""
    title = _words(mark.title)
    if not title:
        return None
    start = _below(lines, mark.top, cursor)
    for first in range(start, len(lines)):
        if lines[first].heading:
            continue
        words: list[str] = []
        for last in range(first, min(first + 3, len(lines))):
            words += _words(lines[last].text)
            if len(words) > len(title) + 3:
                break
            if words[len(words) - len(title) :] == title and _prefix_is_number(words, title):
                return first, last
    return None


def _prefix_is_number(words: Sequence[str], title: Sequence[str]) -> bool:
    prefix = words[: len(words) - len(title)]
    return all(w.isdigit() or len(w) <= 2 or w in ("chapter", "part", "appendix") for w in prefix)


def mark_by_font(pages: list[list[Line]]) -> None:
    """Without an outline: mark lines set larger than the body text (and bold numbered
    lines at its size) as headings, larger sizes at higher levels."""
    sizes: Counter[float] = Counter()
    for lines in pages:
        for line in lines:
            if line.size and not line.mono:
                sizes[line.size] += len(line.text)
    if not sizes:
        return
    body = sizes.most_common(1)[0][0]
    top = max((line.size for lines in pages for line in lines), default=0.0)
    edge = _flush([line for lines in pages for line in lines], body, top)
    flush = [edge] * len(pages)
    candidates = [
        line
        for lines, edge in zip(pages, flush, strict=True)
        for line in lines
        if _looks_like_heading(line, body) and edge(line)
    ]
    larger = sorted({line.size for line in candidates if _larger(line, body)}, reverse=True)
    levels = {size: i + 1 for i, size in enumerate(larger[:_FONT_LEVELS])}
    numbered_level = len(levels) + 1
    for lines, edge in zip(pages, flush, strict=True):
        for line in lines:
            if not (_looks_like_heading(line, body) and edge(line)):
                continue
            if line.size in levels and _larger(line, body):
                line.heading = levels[line.size]
            elif _numbered(line, body):
                line.heading = min(numbered_level, MAX_LEVEL)
        _merge_headings(lines, levels)
    _drop_unfollowed(pages)


def _flush(lines: Sequence[Line], body: float, top: float) -> Callable[[Line], bool]:
    """Whether a line starts where the body text does (its EDGES most common left edges:
    a column's, two columns', odd and even pages'): a label inside a figure, set large,
    does not. Lines in the document's largest size (a centred title) pass."""
    lefts = Counter(round(line.left) for line in lines if abs(line.size - body) < 0.5)
    edges = [x for x, _ in lefts.most_common(EDGES)]

    def flush(line: Line) -> bool:
        near = any(abs(line.left - x) <= FLUSH_UNITS for x in edges)
        return not edges or near or line.size >= top

    return flush


def _drop_unfollowed(pages: list[list[Line]]) -> None:
    """A heading is followed by text or by a heading under it: a title page's author and
    date lines, set large one after the other, are text."""
    under = MAX_LEVEL + 1  # the level found for the line after this one (7: text)
    for lines in reversed(pages):
        for line in reversed(lines):
            level = line.heading
            if level and under <= level:
                line.heading = 0
            under = level or MAX_LEVEL + 1


def _larger(line: Line, body: float) -> bool:
    """Set larger than the body: by SIZE_RATIO, or by BOLD_RATIO in bold."""
    return line.size >= body * (BOLD_RATIO if line.bold else SIZE_RATIO)


def _numbered(line: Line, body: float) -> bool:
    text = line.text.strip()
    return (
        line.bold
        and abs(line.size - body) < 0.5
        and bool(_NUMBERED.match(text))
        and not _PAGE_REFERENCE.search(text)
    )


def _looks_like_heading(line: Line, body: float) -> bool:
    text = line.text.strip()
    letters = sum(c.isalpha() for c in text)
    return (
        not line.mono
        and line.size >= body - 0.5
        and len(text) <= HEADING_CHARS
        and letters >= 2
        and letters * 2 >= len(text.replace(" ", ""))
    )


def _merge_headings(lines: list[Line], levels: dict[float, int]) -> None:
    """A heading set large on two lines or more (same size, each under the last) is one."""
    merged: list[Line] = []
    below = 0.0  # where the last line merged into the heading before stands
    for line in lines:
        last = merged[-1] if merged else None
        if (
            last is not None
            and last.heading
            and last.size in levels
            and (last.heading, last.size) == (line.heading, line.size)
            and 0 < (below or last.top) - line.top <= last.size * 1.6
        ):
            last.text = last.text.rstrip() + " " + line.text.strip()
            below = line.top
            continue
        merged.append(line)
        below = 0.0
    lines[:] = merged
