"""Small chunks to match, larger text to return: search hits grown into passages.

Chunks are small so that a question's vector meets a passage about one thing; an answer
often needs the sentences around it. A matched chunk is grown with its neighbours in the
same file and section (same heading path) while the passage stays within a token budget:
the next one and the one before in turn, except that where the rest of the section after
the match fits, it comes first (what a matched question, term or heading goes on to say:
the passage finishes its section), then the chunks before it (`walk`). Passages that
overlap or touch are merged into one, which keeps the better score and the chunk it matched
(`match_start`, `match_end`). A chunk that carries almost no words (a table border, a lone
directive) is never a hit on its own, and hits can be limited per file.

A point names the chunks it may grow into and their tokens (`schema.NEXT`, `schema.PREVIOUS`,
`schema.TOKENS`), so each hit's growth is decided from its own payload, and the chunks every
passage needs are fetched by ID in one request (`fetch`) after all of them are decided;
nothing is tokenized. (Measured at 100k points: see `docsync.plugin.backends.LocalBackend`.)
Points written before those fields grow as they always did, one request per hit for its
neighbours (`neighbours`) and their tokens counted (`count_tokens`), until the next sync
adds them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from docsync.plugin import schema
from docsync.plugin.store import Around, Point, ScoredPoint

# Neighbours looked at on each side of a matched chunk; the token budget stops sooner.
REACH = schema.REACH
MIN_WORDS = 3  # a chunk with fewer words than this never stands alone as a hit
_WORD = re.compile(r"[^\W\d_]{2,}")

Neighbours = Callable[[str, str, Sequence[int]], Sequence[dict[str, Any]]]
CountTokens = Callable[[str], int]
# The payloads of points by ID, in one request (IDs not found are left out).
Fetch = Callable[[Sequence[str]], Mapping[str, dict[str, Any]]]


@dataclass
class Passage:
    score: float
    root: str
    path: str
    title: str
    section: str
    match: dict[str, Any]  # the payload of the chunk that matched
    chunks: dict[int, dict[str, Any]] = field(default_factory=dict)  # index -> payload
    # index -> point ID of a chunk it grows into that is still to be fetched (`fill`)
    wanted: dict[int, str] = field(default_factory=dict)

    @property
    def first(self) -> int:
        return min(itertools.chain(self.chunks, self.wanted))

    @property
    def last(self) -> int:
        return max(itertools.chain(self.chunks, self.wanted))

    def holds(self, index: int) -> bool:
        return index in self.chunks or index in self.wanted

    def take(self, other: Passage) -> None:
        """Merge `other` (a worse hit's passage that overlaps or touches this one) in."""
        self.chunks.update(other.chunks)
        self.wanted.update((i, pid) for i, pid in other.wanted.items() if i not in self.chunks)
        for index in other.chunks:
            self.wanted.pop(index, None)

    def fill(self, fetched: Mapping[str, dict[str, Any]]) -> bool:
        """Its wanted chunks from `fetched`; False when one is not there as it was named
        (deleted or rewritten since the hit's point was written)."""
        for index, pid in self.wanted.items():
            chunk = fetched.get(pid)
            if chunk is None or not _is_at(chunk, self.root, self.path, index):
                return False
            self.chunks[index] = chunk
        self.wanted.clear()
        return True

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
    fetch: Fetch | None = None,
    per_file: int | None = None,
) -> list[Passage]:
    """At most `limit` passages from `points` (best first): each matched chunk grown to
    about `budget` tokens (0: the chunk alone, never merged with another), overlapping
    ones merged, at most `per_file` from one file. `fetch`: how to fetch the chunks a
    point names (None: every hit grows the way of points written before they named them)."""
    found = _gather(points, limit, budget, per_file, neighbours, count_tokens, planned=fetch)
    wanted = sorted({pid for p in found for pid in p.wanted.values()})
    if fetch is not None and wanted:
        fetched = fetch(wanted)
        if not all(p.fill(fetched) for p in found):  # the file changed under the search
            return passages(
                points,
                limit=limit,
                budget=budget,
                neighbours=neighbours,
                count_tokens=count_tokens,
                per_file=per_file,
            )
    return found


def _gather(
    points: Sequence[ScoredPoint],
    limit: int,
    budget: int,
    per_file: int | None,
    neighbours: Neighbours,
    count_tokens: CountTokens,
    *,
    planned: Fetch | None,
) -> list[Passage]:
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
        if budget > 0 and not (planned is not None and _plan(passage, budget)):
            _grow(passage, budget, neighbours, count_tokens)
        # A budget of 0 asks for each chunk alone: two adjacent hits stay two hits (merged,
        # they would be a passage of neighbours, across a section's end as well).
        merged = next((p for p in found if _touches(p, passage)), None) if budget > 0 else None
        if merged is not None:
            merged.take(passage)  # the better (earlier) one keeps its match
            continue
        same_file = sum(1 for p in found if (p.root, p.path) == (root, path))
        if per_file is not None and same_file >= per_file:
            continue
        found.append(passage)
        if len(found) >= limit:
            break
    return found


def _plan(passage: Passage, budget: int) -> bool:
    """Grow as `_grow` does, from the neighbours and tokens the matched point names: the
    chunks go to `passage.wanted`. False when its payload names none (written before)."""
    chosen = named(passage.match, budget)
    if chosen is None:
        return False
    index = passage.first
    passage.wanted.update((index + offset, pid) for offset, pid in chosen)
    return True


def named(payload: Mapping[str, Any], budget: int) -> list[tuple[int, str]] | None:
    """The chunks a point's payload names (`schema.NEXT`, `schema.PREVIOUS`) that its passage
    grows into within `budget` tokens, as `_grow` would choose them: (offset from the point,
    ID), in the order `walk` takes them. None where it names none."""
    tokens, after, before = (payload.get(k) for k in (schema.TOKENS, schema.NEXT, schema.PREVIOUS))
    if not isinstance(tokens, int) or not isinstance(after, list) or not isinstance(before, list):
        return None
    sides = {1: [(str(pid), int(cost)) for pid, cost in after[:REACH]]}
    sides[-1] = [(str(pid), int(cost)) for pid, cost in before[:REACH]]
    return [
        (offset, sides[1 if offset > 0 else -1][abs(offset) - 1][0])
        for offset in walk(tokens, [c for _, c in sides[1]], [c for _, c in sides[-1]], budget)
    ]


def walk(tokens: int, after: Sequence[int], before: Sequence[int], budget: int) -> list[int]:
    """The offsets a passage of `tokens` grows into within `budget`, given the tokens of the
    chunks after and before it in its section (nearest first, at most `REACH`): when the
    section ends within reach after the match (fewer than `REACH` after it) and all of that
    fits, the rest of the section first (a FAQ entry's answer, a definition's explanation),
    then the chunks before it; else the next one and the one before in turn, each side while
    its next chunk fits. `named` and `_grow` both walk this way."""
    chosen: list[int] = []
    if len(after) < REACH and tokens + sum(after) <= budget:
        chosen = list(range(1, len(after) + 1))
        tokens += sum(after)
        for distance, cost in enumerate(before, start=1):
            if tokens + cost > budget:
                break
            chosen.append(-distance)
            tokens += cost
        return chosen
    sides = {1: after, -1: before}
    growing = {1: True, -1: True}
    for distance in range(1, REACH + 1):
        for direction in (1, -1):
            side = sides[direction]
            if (
                not growing[direction]
                or distance > len(side)
                or tokens + side[distance - 1] > budget
            ):
                growing[direction] = False
                continue
            chosen.append(direction * distance)
            tokens += side[distance - 1]
    return chosen


def with_named(
    hits: list[ScoredPoint], budget: int, retrieve: Callable[[list[str]], Sequence[Point]]
) -> Around:
    """`hits` and the payloads of the chunks they name within `budget` (`named_ids`), fetched
    by `retrieve` in one call (none where they name none): what a store's `search_around`
    answers after its search."""
    ids = named_ids(hits, budget)
    return hits, {p.id: p.payload for p in (retrieve(ids) if ids else ())}


def named_ids(points: Sequence[ScoredPoint], budget: int) -> list[str]:
    """Every chunk the `points` name within `budget` tokens (see `named`), each once: what
    their passages may be grown with, fetched in the same request as the search where the
    store can (`Store.search_around`)."""
    ids = {pid for p in points for _, pid in named(p.payload, budget) or ()}
    return sorted(ids)


def _grow(passage: Passage, budget: int, neighbours: Neighbours, count: CountTokens) -> None:
    index = passage.first
    wanted = [i for i in range(index - REACH, index + REACH + 1) if i >= 0 and i != index]
    around = {
        int(p.get(schema.CHUNK_INDEX, -1)): p
        for p in neighbours(passage.root, passage.path, wanted)
    }
    sides: dict[int, list[dict[str, Any]]] = {1: [], -1: []}
    for direction, side in sides.items():  # the chunks each way in the section, nearest first
        for distance in range(1, REACH + 1):
            chunk = around.get(index + direction * distance)
            if chunk is None or chunk.get(schema.SECTION, "") != passage.section:
                break
            side.append(chunk)
    costs = {d: [_tokens(c, count) for c in side] for d, side in sides.items()}
    for offset in walk(_tokens(passage.match, count), costs[1], costs[-1], budget):
        passage.chunks[index + offset] = sides[1 if offset > 0 else -1][abs(offset) - 1]


def _tokens(chunk: dict[str, Any], count: CountTokens) -> int:
    stored = chunk.get(schema.TOKENS)
    return stored if isinstance(stored, int) else count(str(chunk.get(schema.TEXT, "")))


def _is_at(chunk: dict[str, Any], root: str, path: str, index: int) -> bool:
    where = (chunk.get(schema.ROOT), chunk.get(schema.PATH), chunk.get(schema.CHUNK_INDEX))
    return where == (root, path, index)


def _covers(passage: Passage, root: str, path: str, index: int) -> bool:
    return passage.root == root and passage.path == path and passage.holds(index)


def _touches(a: Passage, b: Passage) -> bool:
    same_file = a.root == b.root and a.path == b.path
    return same_file and a.first <= b.last + 1 and b.first <= a.last + 1
