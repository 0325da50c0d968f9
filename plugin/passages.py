"""Small chunks to match, larger text to return: search hits grown into passages.

Chunks are small so that a question's vector meets a passage about one thing; an answer
often needs the sentences around it. A matched chunk is grown with its neighbours in the
same file and section (same heading path), next one first, then the one before, while the
passage stays within a token budget. Passages that overlap or touch are merged into one,
which keeps the better score and the chunk it matched (`match_start`, `match_end`). A chunk
that carries almost no words (a table border, a lone directive) is never a hit on its own,
and hits can be limited per file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from docsync.plugin import schema
from docsync.plugin.store import ScoredPoint

# Neighbours looked at on each side of a matched chunk; the token budget stops sooner.
REACH = 4
MIN_WORDS = 3  # a chunk with fewer words than this never stands alone as a hit
_WORD = re.compile(r"[^\W\d_]{2,}")

Neighbours = Callable[[str, str, Sequence[int]], Sequence[dict[str, Any]]]
CountTokens = Callable[[str], int]


@dataclass
class Passage:
    score: float
    root: str
    path: str
    title: str
    section: str
    match: dict[str, Any]  # the payload of the chunk that matched
    chunks: dict[int, dict[str, Any]] = field(default_factory=dict)  # index -> payload

    @property
    def first(self) -> int:
        return min(self.chunks)

    @property
    def last(self) -> int:
        return max(self.chunks)

    def text(self) -> str:
        """The chunks in order with the whitespace between them: exactly the file's text
        from the first chunk's start to the last one's end. (Points written before chunks
        kept their `gap` get a paragraph break for a gap of two characters or more, else
        a space, until the next sync adds it.)"""
        parts: list[str] = []
        previous: dict[str, Any] | None = None
        for index in sorted(self.chunks):
            chunk = self.chunks[index]
            if previous is not None:
                parts.append(_gap(previous, chunk))
            parts.append(str(chunk[schema.TEXT]))
            previous = chunk
        return "".join(parts)


def _gap(previous: dict[str, Any], chunk: dict[str, Any]) -> str:
    gap = chunk.get(schema.GAP)
    if isinstance(gap, str):
        return gap
    width = int(chunk[schema.START]) - int(previous[schema.END])
    return "\n\n" if width >= 2 else " " * max(width, 0)


def has_words(text: str) -> bool:
    return len(_WORD.findall(text)) >= MIN_WORDS


def passages(
    points: Sequence[ScoredPoint],
    *,
    limit: int,
    budget: int,
    neighbours: Neighbours,
    count_tokens: CountTokens,
    per_file: int | None = None,
) -> list[Passage]:
    """At most `limit` passages from `points` (best first): each matched chunk grown to
    about `budget` tokens (0: the chunk alone, never merged with another), overlapping
    ones merged, at most `per_file` from one file."""
    found: list[Passage] = []
    for point in points:
        payload = point.payload
        if not has_words(str(payload.get(schema.TEXT, ""))):
            continue
        root, path = str(payload.get(schema.ROOT, "")), str(payload.get(schema.PATH, ""))
        index = int(payload.get(schema.CHUNK_INDEX, 0))
        if any(_covers(p, root, path, index) for p in found):
            continue  # already inside a better hit's passage
        passage = Passage(
            point.score,
            root,
            path,
            str(payload.get(schema.TITLE, "")),
            str(payload.get(schema.SECTION, "")),
            payload,
            {index: payload},
        )
        if budget > 0:
            _grow(passage, budget, neighbours, count_tokens)
        # A budget of 0 asks for each chunk alone: two adjacent hits stay two hits (merged,
        # they would be a passage of neighbours, across a section's end as well).
        merged = next((p for p in found if _touches(p, passage)), None) if budget > 0 else None
        if merged is not None:
            merged.chunks.update(passage.chunks)  # the better (earlier) one keeps its match
            continue
        same_file = sum(1 for p in found if (p.root, p.path) == (root, path))
        if per_file is not None and same_file >= per_file:
            continue
        found.append(passage)
        if len(found) >= limit:
            break
    return found


def _grow(passage: Passage, budget: int, neighbours: Neighbours, count: CountTokens) -> None:
    index = passage.first
    wanted = [i for i in range(index - REACH, index + REACH + 1) if i >= 0 and i != index]
    around = {
        int(p.get(schema.CHUNK_INDEX, -1)): p
        for p in neighbours(passage.root, passage.path, wanted)
    }
    tokens = count(str(passage.match.get(schema.TEXT, "")))
    growing = {1: True, -1: True}  # after, before: still growing that way
    for distance in range(1, REACH + 1):
        for direction in (1, -1):
            if not growing[direction]:
                continue
            at = index + direction * distance
            chunk = around.get(at)
            if chunk is None or chunk.get(schema.SECTION, "") != passage.section:
                growing[direction] = False
                continue
            cost = count(str(chunk.get(schema.TEXT, "")))
            if tokens + cost > budget:
                growing[direction] = False
                continue
            passage.chunks[at] = chunk
            tokens += cost


def _covers(passage: Passage, root: str, path: str, index: int) -> bool:
    return passage.root == root and passage.path == path and index in passage.chunks


def _touches(a: Passage, b: Passage) -> bool:
    same_file = a.root == b.root and a.path == b.path
    return same_file and a.first <= b.last + 1 and b.first <= a.last + 1
