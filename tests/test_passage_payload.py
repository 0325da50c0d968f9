"""What a point carries for its passage (`schema.TOKENS`, `schema.NEXT`, `schema.PREVIOUS`):
exact after a sync and after edits, added to points written before without re-embedding,
and passages grown from it, in one request for all of a search's hits, equal to passages
grown the way of points written before (a request per hit, tokens counted at the query)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from docsync.plugin import schema
from docsync.plugin.backends import PASSAGE_FIELDS, LocalBackend
from docsync.plugin.encoder import Encoder
from docsync.plugin.hit import Hit
from docsync.plugin.passages import passages
from docsync.plugin.request import MAX_LIMIT, SearchRequest
from docsync.plugin.store import Fusion, ScoredPoint, Store
from docsync.plugin.stores.edge import EdgeStore
from docsync.worker import plan, sync_options
from tests.conftest import run_sync

QUESTIONS = [
    json.loads(line)["question"]
    for line in (Path(__file__).resolve().parents[1] / "bench" / "questions.jsonl")
    .read_text(encoding="utf-8")
    .splitlines()[:40]
]
NAMED = (schema.TOKENS, schema.NEXT, schema.PREVIOUS)


def files(store: Store) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Each file's points' payloads (with their IDs as "_id"), in chunk order."""
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for point in store.scroll({}):
        key = (point.payload[schema.ROOT], point.payload[schema.PATH])
        found.setdefault(key, []).append({**point.payload, "_id": point.id})
    return {k: sorted(v, key=lambda p: p[schema.CHUNK_INDEX]) for k, v in found.items()}


def assert_named_exactly(store: Store, encoder: Encoder) -> None:
    """Every point's tokens are its text's, counted alone; its next and previous are the
    chunks of its file and section around it, nearest first, at most REACH each way."""
    for chunks in files(store).values():
        assert [c[schema.CHUNK_INDEX] for c in chunks] == list(range(len(chunks)))
        for i, chunk in enumerate(chunks):
            assert chunk[schema.TOKENS] == encoder.count_tokens(chunk[schema.TEXT])
            for key, step in ((schema.NEXT, 1), (schema.PREVIOUS, -1)):
                expected = []
                at = i + step
                while 0 <= at < len(chunks) and len(expected) < schema.REACH:
                    if chunks[at][schema.SECTION] != chunk[schema.SECTION]:
                        break
                    expected.append([chunks[at]["_id"], chunks[at][schema.TOKENS]])
                    at += step
                assert chunk[key] == expected


def unnamed(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in NAMED}


def the_old_way(backend: LocalBackend, request: SearchRequest) -> list[Hit]:
    """The hits as they were grown before points named their neighbours: the same points,
    one scroll per hit for its neighbours, every text's tokens counted."""
    store, encoder = backend.store, backend.encoder
    mode = request.mode or "hybrid"
    vector = encoder.embed_query(request.question).tolist() if mode != "keyword" else None
    keyword = encoder.keyword.embed_query(request.question) if mode != "dense" else None
    candidates = min(MAX_LIMIT, max(2 * request.limit, request.limit + 10))
    points = store.search(vector, limit=candidates, keyword=keyword, fusion=backend.fusion)

    def neighbours(root: str, path: str, indexes: Sequence[int]) -> list[dict[str, Any]]:
        match = {schema.ROOT: root, schema.PATH: path, schema.CHUNK_INDEX: list(indexes)}
        return [unnamed(p.payload) for p in store.scroll(match, fields=PASSAGE_FIELDS)]

    found = passages(
        [ScoredPoint(p.id, p.score, unnamed(p.payload)) for p in points],
        limit=request.limit,
        budget=request.context if request.context is not None else 256,
        neighbours=neighbours,
        count_tokens=encoder.count_tokens,
        per_file=request.per_file,
    )
    return [Hit.from_passage(p) for p in found]


class Near(float):
    """A score equal to any within a millionth of it: two searches' fusions differ in the
    last bits, and rounding both to a fixed place can still split them across a boundary."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, float) and abs(self - other) <= 1e-6 * max(1.0, abs(other))

    __hash__ = float.__hash__


def rounded(hits: list[Hit]) -> list[Hit]:
    """The hits, their scores compared to a millionth (see `Near`)."""
    return [replace(h, score=Near(h.score)) for h in hits]


# qdrant-client's `:memory:` store filters every point in Python: the old way's scroll per hit
# takes a tenth of a second there, so its tests ask the first questions only.
FEW = 12


def requests(questions: int = len(QUESTIONS)) -> Iterator[SearchRequest]:
    for i, question in enumerate(QUESTIONS[:questions]):
        mode = ("hybrid", "dense", "keyword")[i % 3]
        for context in (0, 64, 256, 1024):
            yield SearchRequest.of(question, limit=5, mode=mode, context=context)
    yield SearchRequest.of(QUESTIONS[0], limit=10, context=512, per_file=1)


def assert_same_passages(store: Store, encoder: Encoder, questions: int = len(QUESTIONS)) -> None:
    backend = LocalBackend.open(store, encoder)
    grown = 0
    for request in requests(questions):
        hits = backend.search(request)
        assert rounded(hits) == rounded(the_old_way(backend, request)), request
        grown += sum(h.start < h.match_start or h.end > h.match_end for h in hits)
    assert grown > 50  # most passages grew past their chunk: the growth was compared


def test_points_name_their_tokens_and_neighbours_exactly_through_edits(
    synced: tuple[Path, Store], tiny_encoder: Encoder
) -> None:
    docs, store = synced
    assert_named_exactly(store, tiny_encoder)
    regex = docs / "howto" / "regex.rst"
    text = regex.read_text(encoding="utf-8")
    middle = text.index("\n\n", len(text) // 2)
    edited = text[:middle] + "\n\nA new paragraph of words, inserted.\n\n" + text[middle:]
    regex.write_text(edited.replace("Introduction\n", "Introduction\n\nThe start.\n", 1))
    sockets = docs / "howto" / "sockets.rst"
    lines = sockets.read_text(encoding="utf-8").split("\n\n")
    sockets.write_text("\n\n".join(lines[:5] + lines[9:]), encoding="utf-8")  # cut some out
    report = run_sync(docs, store, tiny_encoder)
    assert report.files_changed == 2 and report.chunks_embedded < 10
    assert_named_exactly(store, tiny_encoder)


def test_passages_equal_the_old_way_on_the_embedded_store(
    synced: tuple[Path, Store], tiny_encoder: Encoder
) -> None:
    assert_same_passages(synced[1], tiny_encoder)


def test_passages_equal_the_old_way_through_qdrant_client(
    docs: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    run_sync(docs, memory_store, tiny_encoder)
    assert_named_exactly(memory_store, tiny_encoder)
    assert_same_passages(memory_store, tiny_encoder, FEW)


def test_points_written_before_gain_tokens_and_neighbours_without_reembedding(
    docs: Path, memory_store: Store, tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    desired = plan._desired_points

    def before(*args: Any) -> Iterator[plan.PlannedPoint]:
        for point in desired(*args):
            for key in NAMED:
                del point.payload[key]  # type: ignore[misc]
            yield point

    monkeypatch.setattr(plan, "_desired_points", before)
    monkeypatch.setattr(sync_options, "PAYLOAD_VERSION", 4)
    run_sync(docs, memory_store, tiny_encoder)
    assert not any(set(NAMED) & set(p.payload) for p in memory_store.scroll({}))
    # The fusion guard brings a ranker's first hit's company by the neighbours it names: off
    # here, where the points name none until the next sync (docsync.plugin.guard).
    backend = LocalBackend.open(memory_store, tiny_encoder, fusion=Fusion(guard=0))
    old = [backend.search(r) for r in requests(FEW)]  # grown a request per hit, counted
    monkeypatch.undo()
    report = run_sync(docs, memory_store, tiny_encoder)
    assert report.chunks_embedded == 0 and report.files_changed == 21
    assert_named_exactly(memory_store, tiny_encoder)
    assert [rounded(backend.search(r)) for r in requests(FEW)] == [rounded(h) for h in old]
    assert run_sync(docs, memory_store, tiny_encoder).files_changed == 0


def test_a_daemons_store_asks_its_shard_process_once_a_search(
    synced: tuple[Path, Store], tiny_encoder: Encoder, tmp_path: Path
) -> None:
    """A serving store (a daemon's: its shard held by a child process) answers a search and
    the chunks its hits name in one request to that process (`Store.search_around`), and
    the passages equal the local store's."""
    _, local = synced  # a copy of the synced store, in tmp_path / "store"
    expected = [rounded(LocalBackend.open(local, tiny_encoder).search(r)) for r in requests()]
    local.close()
    serving = EdgeStore.connect(path=tmp_path / "store", collection="docsync", serving=True)
    try:
        backend = LocalBackend.open(serving, tiny_encoder)
        assert serving.count() > 0  # the shard's process started
        asked: list[str] = []
        hosted = serving._shard  # type: ignore[attr-defined]
        ask_on = hosted._ask_on

        def counted(channel: Any, request: Any) -> Any:
            asked.append(type(request).__name__)
            return ask_on(channel, request)

        hosted._ask_on = counted
        found = [rounded(backend.search(r)) for r in requests()]
        hosted._ask_on = ask_on
    finally:
        serving.close()
    assert found == expected
    assert asked == ["SearchAround"] * len(expected)  # one request each, neighbours included
