"""A PDF's structure, found in its lines (worker/formats/pdf_lines.py): running headers and
footers to drop, words hyphenated across line ends to join, and the page's text with its
headings (marked by worker/formats/pdf_headings.py) as Markdown headings.

* Running headers and footers: a line among the first or last two of a page (in text order
  or by position) whose letters, without its numbers (digits and roman numerals), are those
  of such a line on at least RUNNING_SHARE of the pages: `Release Notes for dblatex 5 / 32`,
  a bare page number; or one that begins or ends with the page's number, where this holds on
  at least NUMBERED_SHARE of the pages (`Chapter 8: Base modules 96` on the page after 95),
  or on MIN_PAGES pages for a bare page number (the foot of each chapter's first page).
  A document of under MIN_PAGES pages keeps every line.
* Headings: worker/formats/pdf_headings.py.
* Hyphens: a word split at a line end (`exam-` then `ple`: PDFium marks most such hyphens,
  a plain `-` between lower-case letters is taken as one too) is joined as `example`,
  unless the document spells the word with its hyphen elsewhere and never without
  (`cross-references`, which PDFium marks all the same).

Everything is decided from the document's own lines: the same bytes give the same text.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from docsync.worker.formats.pdf_lines import Line

RUNNING_SHARE = 0.4
# A line that ends (or begins) with its page's number, at the same place on this share of the
# pages, is running whatever its words (they change with each chapter).
NUMBERED_SHARE = 0.2
MIN_PAGES = 3
ROW_UNITS = 4  # PDF units (1/72 in)
_EDGE_LINES = 2  # lines at the top and the bottom of a page that may be running
_ROMAN = re.compile(r"^[ivxlcdm]+$")
_NOT_LETTER = re.compile(r"[\W\d_]+")
_WORD = re.compile(r"\w+")
_HYPHENATED = re.compile(r"(?<=[a-z])-$")  # a line that ends in the middle of a word
_CONTINUED = re.compile(r"^[a-z]")
_MARK = "\ufffe"  # PDFium's mark of a hyphen it took out of a word split at a line end
_MARKED = re.compile(r"(\w*)\ufffe\s*(\w*)")
_COMPOUND = re.compile(r"\w+(?:-\w+)+")
_TOP, _BOTTOM = "top", "bottom"


def running_key(text: str) -> str:
    """A line's letters without its numbers, lower case: what repeats on a running line."""
    words = [w for w in text.casefold().split() if not _ROMAN.match(w.strip(".,:;()/"))]
    return _NOT_LETTER.sub("", " ".join(words))


def _edges(lines: Sequence[Line], height: float) -> dict[int, str]:
    """Indexes of the lines that may be a running header (`top`) or footer (`bottom`)."""
    if not lines:
        return {}
    near = {
        *range(min(_EDGE_LINES, len(lines))),
        *range(max(0, len(lines) - _EDGE_LINES), len(lines)),
    }
    if any(line.top for line in lines):
        near.add(max(range(len(lines)), key=lambda i: lines[i].top))
        near.add(min(range(len(lines)), key=lambda i: lines[i].top))
    middle = height / 2
    return {
        i: (_TOP if (lines[i].top > middle if height else i < len(lines) / 2) else _BOTTOM)
        for i in sorted(near)
    }


def drop_running(pages: list[list[Line]], heights: Sequence[float]) -> None:
    """Remove running headers, footers and page numbers from `pages`, in place."""
    if len(pages) < MIN_PAGES:
        return
    edges = [_edges(lines, height) for lines, height in zip(pages, heights, strict=True)]
    seen: Counter[tuple[str, str | int, int]] = Counter()
    for p, (lines, near) in enumerate(zip(pages, edges, strict=True)):
        seen.update({key for i, zone in near.items() for key in _keys(lines[i], zone, p)})
    filled = sum(1 for lines in pages if lines)
    needed = max(MIN_PAGES, RUNNING_SHARE * filled)
    counted = max(MIN_PAGES, NUMBERED_SHARE * filled)
    for p, (lines, near) in enumerate(zip(pages, edges, strict=True)):
        drop = set()
        for i, zone in near.items():
            text, number = _keys(lines[i], zone, p)
            words = running_key(lines[i].text)
            alone = not words and _is_number(lines[i].text)  # a bare page number
            repeated = seen[text] >= needed and (len(words) >= 3 or alone)
            tracked = seen[number] >= (MIN_PAGES if alone else counted)
            if repeated or (number[1] != "" and tracked):
                drop.add(i)
        if drop:
            pages[p] = [line for i, line in enumerate(lines) if i not in drop]


def _keys(line: Line, zone: str, page: int) -> tuple[tuple[str, str | int, int], ...]:
    """What a running line shares with the others: its words without numbers, and (where it
    begins or ends with a page number) that number less the page's index, which a
    chapter's running head (`Chapter 8: Base modules 96`) keeps from page to page."""
    row = _row(line)
    words = line.text.split()
    ends = [w.strip(".,:;()[]|") for w in (words[0], words[-1])] if words else []
    number = next((int(w) for w in ends if w.isdigit() and len(w) <= 5), None)
    offset: str | int = "" if number is None else number - page
    return (zone, running_key(line.text), row), (zone + "#", offset, row)


def _row(line: Line) -> int:
    """Where a line stands, to ROW_UNITS: a running line stands at the same place on every
    page (a title page's title that repeats the running header's words does not)."""
    return int(line.top // ROW_UNITS)


def _is_number(text: str) -> bool:
    words = text.casefold().replace("/", " ").split()
    return bool(words) and all(w.isdigit() or _ROMAN.match(w) or w in ("page", "of") for w in words)


def join_hyphens(pages: list[list[Line]]) -> None:
    """Join words hyphenated across line ends, in place (see the module docstring): those
    PDFium marks (U+FFFE where the hyphen was), and a plain `-` that ends a line between
    two lower-case word parts."""
    vocabulary: set[str] = set()
    for lines in pages:
        for line in lines:
            vocabulary.update(_WORD.findall(line.text.casefold()))
            vocabulary.update(_COMPOUND.findall(line.text.casefold()))
    for lines in pages:
        joined: list[Line] = []
        for line in lines:
            last = joined[-1] if joined else None
            head = _HYPHENATED.search(last.text) if last and not last.heading else None
            if last and head and not line.heading and _CONTINUED.match(line.text):
                last.text = last.text[: head.start()] + _MARK + line.text.strip()
            else:
                joined.append(line)
        lines[:] = joined
        for line in lines:
            if _MARK in line.text:
                line.text = _MARKED.sub(lambda m: _rejoin(m, vocabulary), line.text)


def _rejoin(match: re.Match[str], vocabulary: set[str]) -> str:
    """The two parts of a split word joined, with their hyphen where the document spells
    the word with one elsewhere and never without (`cross-references`)."""
    left, right = match.group(1), match.group(2)
    whole, kept = (left + right).casefold(), f"{left}-{right}".casefold()
    return f"{left}-{right}" if kept in vocabulary and whole not in vocabulary else left + right


def page_text(lines: Sequence[Line]) -> tuple[str, list[int]]:
    """The page's text, headings as Markdown headings, and the offsets of its heading lines."""
    parts: list[str] = []
    headings: list[int] = []
    offset = 0
    for line in lines:
        text = line.text.strip() if line.heading else line.text
        if line.heading:
            text = "#" * line.heading + " " + " ".join(text.split())
            headings.append(offset)
        parts.append(text)
        offset += len(text) + 1
    joined = "\n".join(parts)
    lead = len(joined) - len(joined.lstrip())
    return joined.strip(), [at - lead for at in headings]
