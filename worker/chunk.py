"""Stage 3: cut a document into token-bounded chunks whose boundaries survive edits.

Where cuts go, strongest first:
1. before every heading (Markdown `#`, setext and reStructuredText adornments), so a chunk
   never straddles two sections (unless what comes before is under TINY_TOKENS); a heading
   (and an rst `.. _label:` above it) sticks to the text after it;
2. before every page (a PDF's page starts, `breaks`), on the same terms: a chunk is on one
   page unless a page holds less than TINY_TOKENS, so an edit of one page re-embeds chunks
   of that page only;
3. between paragraphs (blank lines);
4. between sentences, then lines, then at token boundaries, only inside a paragraph that
   alone is over the limit.

Paragraphs are packed into chunks of at most `max_tokens`, but not greedily from the top of
the file: a chunk also ends after a paragraph whose *content* hash says "cut" once it holds
`min_tokens` (a third of the limit by default). Such content-defined cuts fall in the same
places before and after an edit, so inserting a paragraph near the top of a long file changes
the chunk it lands in and rarely more than one neighbour, instead of shifting every later
boundary.

Every chunk satisfies `chunk.text == text[chunk.start:chunk.end]` and starts and ends on
non-whitespace; only whitespace lies between chunks, and each chunk keeps the whitespace
before it (`gap`), so the chunks' gaps and texts in order make the text less its trailing
whitespace. (Front matter is not chunked: the first chunk's gap then holds it.)
"""

from __future__ import annotations

import itertools
import re
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from docsync.plugin.schema import content_hash
from docsync.plugin.spans import TokenSpans

TITLE_MAX_TOKENS = 32
# A chunk this small when a new section begins joins that section instead of standing alone
# (a `.. highlight::` line above the first heading, a heading with one short line under it).
TINY_TOKENS = 16
# One paragraph in CUT_PERIOD (by content hash) ends a chunk once the chunk holds min_tokens.
CUT_PERIOD = 2

_ADORNMENT = re.compile(r"^([=\-~^*+#\"'`:._])\1{2,}[ \t]*$")
_ATX = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t#]*$")
# A code fence: it opens with three or more backticks or tildes, and only a run of the same
# character at least as long, alone on its line, closes it (CommonMark), so a `~~~` or a
# shorter run inside code does not end the code and let its `# comment` lines be headings.
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")
_LABEL = re.compile(r"^\.\. _[^:]+:[ \t]*$")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s)")
_LINE_END = re.compile(r"\n")
# Every line break `str.splitlines` knows; of these, `\r`, `\n` and `\r\n` are not part
# of the line they end.
_LINE_BREAK = re.compile("\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_STRIPPED_BREAKS = frozenset(("\n", "\r", "\r\n"))


class Tokenizer(Protocol):
    def token_spans(self, text: str) -> Sequence[tuple[int, int]]: ...


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int
    end: int
    text: str
    tokens: int
    section: str = ""  # the heading path where the chunk ends: "Title > Section > Subsection"
    # the whitespace between the previous chunk's end (or the text's start) and this chunk
    gap: str = ""


SECTION_SEPARATOR = " > "


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    heading: bool = False


def find_title(text: str, fallback: str, headings: Sequence[int] | None = None) -> str:
    """The first heading's text, or `fallback` (the file name) when there is none.
    `headings`: as for `chunk_text`."""
    for block in _blocks(text, headings):
        if block.heading:
            title = _heading_text(text[block.start : block.end])
            if title:
                return title
    return fallback


def clip_title(title: str, tokenizer: Tokenizer, max_tokens: int = TITLE_MAX_TOKENS) -> str:
    """At most `max_tokens` tokens of `title`, cut at a token boundary."""
    title = " ".join(title.split())
    spans = tokenizer.token_spans(title)
    if len(spans) <= max_tokens:
        return title
    return title[: spans[max_tokens - 1][1]]


def chunk_text(
    text: str,
    *,
    tokenizer: Tokenizer,
    max_tokens: int,
    min_tokens: int | None = None,
    spans: Sequence[tuple[int, int]] | None = None,
    breaks: Sequence[int] = (),
    body_start: int = 0,
    headings: Sequence[int] | None = None,
) -> list[Chunk]:
    """Cut `text` into chunks of at most `max_tokens` tokens (see the module docstring).
    `spans`: the text's token spans, when the caller already has them (`token_spans` of
    `tokenizer`, computed together with other texts' in one call). `breaks`: ascending
    offsets where a page starts; no paragraph may span one. `body_start`: text before it
    (front matter) is not chunked; the first chunk's gap then holds it. `headings`: where
    the only heading lines start (a PDF's, each a Markdown `#` line its reader wrote); any
    other line is text, even one that looks like a heading (a `# comment` in a listing)."""
    if max_tokens < 1:
        raise ValueError("max_tokens must be positive")
    floor = max_tokens // 3 if min_tokens is None else min_tokens
    counter = _TokenCounter(tokenizer.token_spans(text) if spans is None else spans)
    found = _blocks(text, headings)
    blocks = list(_after(text, found, body_start)) if body_start else list(found)
    if breaks:
        blocks = list(_split_at_breaks(text, blocks, breaks))
    units = [piece for unit in blocks for piece in _fit(text, unit, counter, max_tokens)]
    groups = _pack(text, units, counter, max_tokens, floor, breaks)
    sections = _Sections(text, blocks, by_depth=headings is not None)
    ends = [0] + [g[-1].end for g in groups]
    return [
        Chunk(
            index=i,
            start=g[0].start,
            end=g[-1].end,
            text=text[g[0].start : g[-1].end],
            tokens=sum(counter.count(u.start, u.end) for u in g),
            section=sections.at(g[-1].end),
            gap=text[ends[i] : g[0].start],
        )
        for i, g in enumerate(groups)
    ]


class _Sections:
    """The heading path in effect at any offset of a text. A heading's level is its style's
    rank in order of first appearance (reStructuredText's rule; it also orders Markdown's
    `#`, `##` and setext headings as a document uses them). `by_depth`: the headings are a
    reader's `#` lines (a PDF's), whose depth is their level."""

    def __init__(self, text: str, blocks: Sequence[_Unit], by_depth: bool = False) -> None:
        self._ends: list[int] = []
        self._paths: list[str] = []
        styles: list[tuple[str, int]] = []
        stack: list[tuple[int, str]] = []
        for block in blocks:
            source = text[block.start : block.end]
            title = _heading_text(source) if block.heading else ""
            if not title:
                continue
            style = _heading_style(source)
            if style not in styles:
                styles.append(style)
            level = style[1] if by_depth else styles.index(style)
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, " ".join(title.split())))
            self._ends.append(block.end)
            self._paths.append(SECTION_SEPARATOR.join(t for _, t in stack))

    def at(self, offset: int) -> str:
        """The path of the last heading that ends at or before `offset`."""
        index = bisect_left(self._ends, offset + 1) - 1
        return self._paths[index] if index >= 0 else ""


def _heading_style(block: str) -> tuple[str, int]:
    """("#", depth) for an ATX heading; (adornment character, 1 if overlined) otherwise."""
    lines = [line for line in block.splitlines() if line.strip() and not _LABEL.match(line)]
    atx = _ATX.match(lines[0]) if lines else None
    if atx:
        return "#", len(atx.group(1))
    over = 1 if lines and _ADORNMENT.match(lines[0]) else 0
    under = next((line for line in reversed(lines) if _ADORNMENT.match(line)), "=")
    return under.strip()[0], over


class _TokenCounter:
    """Tokens of any span of one text, from a single tokenizer pass over the whole text."""

    def __init__(self, spans: Sequence[tuple[int, int]]) -> None:
        self.spans = TokenSpans.of(spans)  # two arrays: 8 bytes a token, not 130
        self.starts = self.spans.starts

    def count(self, start: int, end: int) -> int:
        return bisect_left(self.starts, end) - bisect_left(self.starts, start)

    def window(self, start: int, end: int) -> range:
        return range(bisect_left(self.starts, start), bisect_left(self.starts, end))


class _Lines:
    """Where each line of a text starts and ends (before the `\r`, `\n` or `\r\n` that
    ends it; other breaks stay part of the line, as `str.splitlines` cuts). Two arrays of
    offsets, 16 bytes a line: a list of the lines' strings took about 120, for a whole
    large file at once."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts: array[int] = array("q")
        self.ends: array[int] = array("q")
        start = 0
        for brk in _LINE_BREAK.finditer(text):
            self.starts.append(start)
            self.ends.append(brk.start() if brk.group() in _STRIPPED_BREAKS else brk.end())
            start = brk.end()
        if start < len(text):
            self.starts.append(start)
            self.ends.append(len(text))

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> str:
        return self.text[self.starts[index] : self.ends[index]]

    def get(self, index: int) -> str:
        """Line `index`, or "" past the last one."""
        return self[index] if index < len(self.starts) else ""


def _blocks(text: str, headings: Sequence[int] | None = None) -> Iterator[_Unit]:
    """Paragraphs and headings, in order, trimmed of surrounding whitespace. `headings`:
    the offsets of the only lines that are headings (no fences either), or None."""
    lines = _Lines(text)
    explicit = None if headings is None else frozenset(headings)
    para_start: int | None = None
    fence = ""  # the run that opened the code fence we are in ("" outside code)
    i = 0

    def paragraph(first: int | None, last: int) -> _Unit | None:
        """Lines `first` to `last` as a paragraph, if they hold any text."""
        unit = None if first is None else _trim(text, lines.starts[first], lines.ends[last])
        if first is None or unit is None:
            return None
        label = explicit is None and all(_LABEL.match(lines[j]) for j in range(first, last + 1))
        return _Unit(unit.start, unit.end, heading=label)

    while i < len(lines):
        line = lines[i]
        if explicit is not None:  # a reader named its heading lines (a PDF): no fences
            height = 1 if lines.starts[i] in explicit and _ATX.match(line) else 0
        else:
            if opened := _FENCE.match(line):
                run = opened.group(1)
                if not fence:
                    fence = run
                elif (
                    run[0] == fence[0]
                    and len(run) >= len(fence)
                    and not line[opened.end() :].strip()
                ):
                    fence = ""
            height = 0 if fence else _heading_height(lines, i, para_start is None)
        in_fence = bool(fence)
        if height:
            if (block := paragraph(para_start, i - 1)) is not None:
                yield block
            para_start = None
            unit = _trim(text, lines.starts[i], lines.ends[i + height - 1])
            if unit is not None:
                yield _Unit(unit.start, unit.end, heading=True)
            i += height
            continue
        if not line.strip() and not in_fence:
            if (block := paragraph(para_start, i - 1)) is not None:
                yield block
            para_start = None
        elif para_start is None:
            para_start = i
        i += 1
    if (block := paragraph(para_start, len(lines) - 1)) is not None:
        yield block


def _heading_height(lines: _Lines, i: int, block_start: bool) -> int:
    """How many lines the heading starting at line `i` spans (0: not a heading)."""
    line = lines[i]
    if _ATX.match(line):
        return 1
    if not block_start or not line.strip():
        return 0
    nxt = lines.get(i + 1)
    third = lines.get(i + 2)
    over = _ADORNMENT.match(line)
    if over and nxt.strip() and not _ADORNMENT.match(nxt):
        under = _ADORNMENT.match(third)
        return 3 if under and under.group(1) == over.group(1) else 0
    if not line[0].isspace() and _ADORNMENT.match(nxt) and not over:
        return 2
    return 0


def _heading_text(block: str) -> str:
    for line in block.splitlines():
        atx = _ATX.match(line)
        if atx:
            return atx.group(2).strip()
        if line.strip() and not _ADORNMENT.match(line) and not _LABEL.match(line):
            return line.strip()
    return ""


def _trim(text: str, start: int, end: int) -> _Unit | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return _Unit(start, end) if start < end else None


def _fit(text: str, unit: _Unit, counter: _TokenCounter, limit: int) -> list[_Unit]:
    """`unit`, or its pieces (sentences, then lines, then token windows) when over `limit`."""
    if counter.count(unit.start, unit.end) <= limit:
        return [unit]
    for pattern in (_SENTENCE_END, _LINE_END):
        pieces = _split_at(text, unit, pattern)
        if len(pieces) > 1:
            return [p for piece in pieces for p in _fit(text, piece, counter, limit)]
    return _token_windows(unit, counter, limit)


def _split_at(text: str, unit: _Unit, pattern: re.Pattern[str]) -> list[_Unit]:
    cuts = [m.end() for m in pattern.finditer(text, unit.start, unit.end)]
    bounds = [unit.start, *cuts, unit.end]
    pieces = (_trim(text, a, b) for a, b in itertools.pairwise(bounds))
    return [p for p in pieces if p is not None]


def _token_windows(unit: _Unit, counter: _TokenCounter, limit: int) -> list[_Unit]:
    window = counter.window(unit.start, unit.end)
    pieces = []
    for first in range(window.start, window.stop, limit):
        last = min(first + limit, window.stop) - 1
        start = unit.start if first == window.start else counter.spans[first][0]
        end = unit.end if last == window.stop - 1 else counter.spans[last][1]
        pieces.append(_Unit(start, end))
    return pieces


def _after(text: str, blocks: Iterator[_Unit], start: int) -> Iterator[_Unit]:
    """The blocks, or their parts, that lie after `start`."""
    for block in blocks:
        if block.start >= start:
            yield block
        elif block.end > start and (rest := _trim(text, start, block.end)) is not None:
            yield rest


def _split_at_breaks(text: str, blocks: list[_Unit], breaks: Sequence[int]) -> Iterator[_Unit]:
    """`blocks`, each cut where a page starts inside it."""
    for block in blocks:
        inside = breaks[bisect_left(breaks, block.start + 1) : bisect_left(breaks, block.end)]
        if not inside:
            yield block
            continue
        bounds = [block.start, *inside, block.end]
        for a, b in itertools.pairwise(bounds):
            piece = _trim(text, a, b)
            if piece is not None:
                yield _Unit(piece.start, piece.end, heading=block.heading and a == block.start)


def _pack(
    text: str,
    units: list[_Unit],
    counter: _TokenCounter,
    limit: int,
    floor: int,
    breaks: Sequence[int] = (),
) -> list[list[_Unit]]:
    groups: list[list[_Unit]] = []
    current: list[_Unit] = []
    size = 0
    page = 0  # pages started before the current unit
    for unit in units:
        tokens = counter.count(unit.start, unit.end)
        new_section = unit.heading and size >= TINY_TOKENS and not all(u.heading for u in current)
        reached = bisect_left(breaks, unit.start + 1)  # page starts at or before this unit
        new_page, page = reached > page and size >= TINY_TOKENS, reached
        if current and (new_section or new_page or size + tokens > limit):
            groups.append(current)
            current, size = [], 0
        current.append(unit)
        size += tokens
        if not unit.heading and size >= floor and _cuts(text[unit.start : unit.end]):
            groups.append(current)
            current, size = [], 0
    if current:
        groups.append(current)
    return groups


def _cuts(paragraph: str) -> bool:
    return int(content_hash(paragraph)[:8], 16) % CUT_PERIOD == 0
