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


def test_a_hit_grows_with_the_rest_of_its_section_first_where_it_fits() -> None:
    (one,) = grow([hit(FILE[3], 0.9)], budget=8 * 3)  # room for three chunks of 8 words
    assert sorted(one.chunks) == [3, 4, 5]  # the section's rest, before what precedes
    (long,) = grow([hit(FILE[1], 0.9)], budget=8 * 3)  # its rest (2 to 5) does not fit
    assert sorted(long.chunks) == [0, 1, 2]  # the next one and the one before in turn
    assert one.match is FILE[3]
    (edge,) = grow([hit(FILE[5], 0.9)], budget=8 * 3)
    assert sorted(edge.chunks) == [3, 4, 5]  # chunk 6 is another section: the rest goes back
    (more,) = grow([hit(FILE[3], 0.9)], budget=8 * 5)
    assert sorted(more.chunks) == [1, 2, 3, 4, 5]
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


def named(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chunks with what a sync stores for their passages: tokens, and the [id, tokens]
    of the chunks after and before them in their section."""

    def side(i: int, step: int) -> list[list[str | int]]:
        found: list[list[str | int]] = []
        at = i + step
        while 0 <= at < len(chunks) and len(found) < 4:
            if chunks[at]["section"] != chunks[i]["section"]:
                break
            found.append([f"{chunks[at]['path']}-{at}", words(chunks[at]["text"])])
            at += step
        return found

    return [
        {**c, "tokens": words(c["text"]), "next": side(i, 1), "previous": side(i, -1)}
        for i, c in enumerate(chunks)
    ]


NAMED = {f"{c['path']}-{c['chunk_index']}": c for c in named(FILE) + named([*OTHER, BORDER])}
PLAIN = {f"{c['path']}-{c['chunk_index']}": c for c in [*FILE, *OTHER, BORDER]}


def test_named_neighbours_are_fetched_in_one_request_and_grow_alike() -> None:
    asked: list[list[str]] = []

    def fetch(ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        asked.append(list(ids))
        return {pid: NAMED[pid] for pid in ids if pid in NAMED}

    def refused(*args: object) -> list[dict[str, Any]]:
        raise AssertionError("a request per hit, or tokens counted")

    cases: list[tuple[list[str], int]] = [
        (["a.md-3"], 24),
        (["a.md-5"], 24),
        (["a.md-2", "a.md-4", "b.md-0"], 16),
        (["b.md-3", "b.md-1", "a.md-0"], 40),
        (["a.md-6", "a.md-7"], 100),
    ]
    for ids, budget in cases:
        points = [hit(NAMED[pid], 1.0 - n / 10) for n, pid in enumerate(ids)]
        asked.clear()
        found = passages(
            points, limit=5, budget=budget, neighbours=refused, count_tokens=refused, fetch=fetch
        )
        assert len(asked) <= 1
        old = grow([hit(PLAIN[pid], 1.0 - n / 10) for n, pid in enumerate(ids)], budget)
        assert [(p.path, sorted(p.chunks), p.text()) for p in found] == [
            (p.path, sorted(p.chunks), p.text()) for p in old
        ]


def test_a_named_neighbour_gone_meanwhile_grows_the_old_way() -> None:
    gone = "a.md-4"

    def fetch(ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {pid: NAMED[pid] for pid in ids if pid != gone}

    (one,) = passages(
        [hit(NAMED["a.md-3"], 0.9)],
        limit=5,
        budget=24,
        neighbours=neighbours,
        count_tokens=words,
        fetch=fetch,
    )
    assert sorted(one.chunks) == [3, 4, 5]  # from the per-file request, which finds chunk 4
