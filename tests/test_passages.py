"""Hits grown into passages (docsync.plugin.passages): neighbours within the section and the token
budget, overlapping passages merged, wordless chunks never alone, a per-file limit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from docsync.plugin.encoder import Encoder
from docsync.plugin.passages import passages
from docsync.plugin.store import ScoredPoint
from docsync.worker.chunk import chunk_text
from tests.conftest import CORPUS


def chunk(path: str, index: int, text: str, section: str = "T > A") -> dict[str, Any]:
    start = index * 100
    return {
        "root": "/r",
        "path": path,
        "chunk_index": index,
        "text": text,
        "section": section,
        "start": start,
        "end": start + len(text),
        "title": "T",
    }


FILE = [chunk("a.md", i, f"words in chunk number {i} of the file") for i in range(8)]
FILE[6]["section"] = "T > B"  # a new section starts at chunk 6
OTHER = [chunk("b.md", i, f"other file words {i} here") for i in range(3)]
BORDER = chunk("b.md", 3, "+-------+--------+")


def neighbours(root: str, path: str, indexes: Sequence[int]) -> list[dict[str, Any]]:
    chunks = FILE if path == "a.md" else [*OTHER, BORDER]
    return [c for c in chunks if c["chunk_index"] in indexes]


def words(text: str) -> int:
    return len(text.split())


def hit(payload: dict[str, Any], score: float) -> ScoredPoint:
    return ScoredPoint(
        id=f"{payload['path']}-{payload['chunk_index']}", score=score, payload=payload
    )


def grow(points: list[ScoredPoint], budget: int, **options: Any) -> list[Any]:
    return passages(
        points, limit=5, budget=budget, neighbours=neighbours, count_tokens=words, **options
    )


def test_a_hit_grows_next_first_within_its_section_and_budget() -> None:
    (one,) = grow([hit(FILE[3], 0.9)], budget=8 * 3)  # room for three chunks of 8 words
    assert sorted(one.chunks) == [2, 3, 4]
    assert one.match is FILE[3]
    (edge,) = grow([hit(FILE[5], 0.9)], budget=8 * 3)
    assert sorted(edge.chunks) == [3, 4, 5]  # chunk 6 is another section
    (alone,) = grow([hit(FILE[3], 0.9)], budget=0)
    assert sorted(alone.chunks) == [3]
    text = grow([hit(FILE[0], 0.9)], budget=16)[0].text()
    assert text == FILE[0]["text"] + "\n\n" + FILE[1]["text"]


def test_overlapping_passages_merge_and_keep_the_better_match() -> None:
    found = grow([hit(FILE[2], 0.9), hit(FILE[4], 0.8), hit(OTHER[0], 0.7)], budget=16)
    assert [p.path for p in found] == ["a.md", "b.md"]
    assert sorted(found[0].chunks) == [2, 3, 4, 5] and found[0].match is FILE[2]
    assert found[0].score == 0.9


def test_no_context_keeps_adjacent_hits_apart_even_across_sections() -> None:
    found = grow([hit(FILE[5], 0.9), hit(FILE[6], 0.8), hit(FILE[4], 0.7)], budget=0)
    assert [sorted(p.chunks) for p in found] == [[5], [6], [4]]
    assert [p.section for p in found] == ["T > A", "T > B", "T > A"]
    assert [p.text() for p in found] == [FILE[5]["text"], FILE[6]["text"], FILE[4]["text"]]


def test_wordless_chunks_never_stand_alone_and_files_can_be_limited() -> None:
    found = grow([hit(BORDER, 0.99), hit(OTHER[0], 0.5)], budget=0)
    assert [p.match for p in found] == [OTHER[0]]
    points = [hit(FILE[0], 0.9), hit(FILE[5], 0.8), hit(OTHER[1], 0.7)]
    assert [p.path for p in grow(points, budget=0, per_file=1)] == ["a.md", "b.md"]
    assert [p.path for p in grow(points, budget=0)] == ["a.md", "a.md", "b.md"]


def test_chunks_carry_their_heading_path(tiny_encoder: Encoder) -> None:
    text = (CORPUS / "using" / "cmdline.rst").read_text(encoding="utf-8")
    chunks = chunk_text(text, tokenizer=tiny_encoder, max_tokens=128)
    sections = [c.section for c in chunks]
    top = "Command line and environment"
    assert f"{top} > Command line > Interface options" in sections
    assert f"{top} > Environment variables" in sections
    assert all(s.startswith(top) for s in sections if s)
    markdown = "# Guide\n\nIntro.\n\n## Install\n\nSteps.\n\n### Linux\n\napt.\n\n## Use\n\nRun.\n"
    got = [
        c.section for c in chunk_text(markdown, tokenizer=tiny_encoder, max_tokens=8, min_tokens=1)
    ]
    assert got[-1] == "Guide > Use" and "Guide > Install > Linux" in got
