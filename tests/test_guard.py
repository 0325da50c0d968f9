"""The fusion guard (`docsync.plugin.guard`): each ranker's first hits kept within the fused
list's first places, on fake rankings and through both engines' hybrid search."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from docsync.plugin.guard import guarded
from docsync.plugin.keyword import KEYWORD_PROFILE, SparseVector
from docsync.plugin.profile import EmbeddingProfile
from docsync.plugin.store import Fusion, Point, ScoredPoint, Store
from docsync.plugin.stores.edge import EdgeStore
from docsync.plugin.stores.qdrant import QdrantClientStore


def ranking(*ids: str) -> list[ScoredPoint]:
    return [ScoredPoint(pid, 1.0 - i / 100, {}) for i, pid in enumerate(ids)]


def ids(points: list[ScoredPoint]) -> list[str]:
    return [p.id for p in points]


def falling(points: list[ScoredPoint]) -> bool:
    return all(a.score >= b.score for a, b in itertools.pairwise(points))


FUSED = ranking("a", "b", "c", "d", "e", "f", "g", "h")
FETCHED: list[list[str]] = []


def fetch(wanted: list[str]) -> dict[str, dict[str, Any]]:
    """Every point's payload: its ID (and the neighbours `NAMES` gives it)."""
    FETCHED.append(wanted)
    return {pid: {"id": pid, **NAMES.get(pid, {})} for pid in wanted if pid != "gone"}


NAMES: dict[str, dict[str, Any]] = {}


def test_a_fused_list_that_holds_the_first_hits_is_left_as_it_was() -> None:
    kept = guarded(FUSED, [ranking("c", "x"), ranking("e", "y")], keep=1, within=5, fetch=fetch)
    assert kept == FUSED


def test_a_first_hit_fused_out_of_the_list_is_brought_within() -> None:
    kept = guarded(FUSED, [ranking("z", "a"), ranking("a")], keep=1, within=5, fetch=fetch)
    assert ids(kept) == ["a", "b", "c", "d", "z", "e", "f", "g"]
    assert len(kept) == len(FUSED) and falling(kept)


def test_a_first_hit_fused_low_moves_up_and_the_others_keep_their_order() -> None:
    kept = guarded(FUSED, [ranking("g"), ranking("a")], keep=1, within=3, fetch=fetch)
    assert ids(kept) == ["a", "b", "g", "c", "d", "e", "f", "h"] and falling(kept)


def test_both_rankings_late_and_one_at_the_edge_all_stay_within() -> None:
    """ "e" sits in the last place kept; bringing "z" in must not push it out."""
    kept = guarded(FUSED, [ranking("e"), ranking("z")], keep=1, within=5, fetch=fetch)
    assert ids(kept)[:5] == ["a", "b", "c", "e", "z"] and falling(kept)


def test_one_hit_first_in_both_rankings_takes_one_place() -> None:
    kept = guarded(FUSED, [ranking("z"), ranking("z")], keep=1, within=2, fetch=fetch)
    assert ids(kept)[:3] == ["a", "z", "b"]


def test_the_first_two_of_each_ranking() -> None:
    kept = guarded(FUSED, [ranking("h", "g"), ranking("a", "y")], keep=2, within=5, fetch=fetch)
    assert set(ids(kept)[:5]) == {"a", "b", "h", "g", "y"} and falling(kept)


def test_a_short_fused_list_grows_to_hold_them() -> None:
    kept = guarded(ranking("a"), [ranking("z"), ranking("a")], keep=1, within=5, fetch=fetch)
    assert ids(kept) == ["a", "z"]


def named(pid: str, after: list[str], before: list[str] = []) -> ScoredPoint:  # noqa: B006
    """A point whose passage may grow into `after` and `before` (`schema.NEXT`, `PREVIOUS`)."""
    payload = {"next": [[a, 10] for a in after], "previous": [[b, 10] for b in before]}
    return ScoredPoint(pid, 0.5, payload)


def test_a_first_hits_neighbours_in_its_ranking_come_right_after_the_kept_places() -> None:
    """Dense alone merges its third hit (the chunk after its first) into its first passage:
    the fused list gets it too, after the kept places, unless it is in them already."""
    NAMES["d1"] = named("d1", ["d2", "x"], ["d0"]).payload
    dense = [ranking("d1")[0], *ranking("far", "d2", "other")]
    kept = guarded(FUSED, [dense, FUSED], keep=1, within=3, fetch=fetch)
    assert ids(kept) == ["a", "b", "d1", "d2", "c", "d", "e", "f"] and falling(kept)
    assert kept[2].payload == {"id": "d1", **NAMES["d1"]}
    late = [named("d1", ["d2"]), *FUSED[:5], ScoredPoint("d2", 0.1, {})]
    assert ids(guarded(late, [dense, FUSED], keep=1, within=3, fetch=fetch)) == [
        "d1",
        "a",
        "b",
        "d2",
        "c",
        "d",
        "e",
    ]
    holding = [late[0], late[-1], *FUSED[:5]]
    assert guarded(holding, [dense, FUSED], keep=1, within=3, fetch=fetch) == holding


def test_payloads_are_fetched_only_for_hits_brought_in() -> None:
    FETCHED.clear()
    assert guarded(FUSED, [ranking("c"), ranking("a")], keep=1, within=5, fetch=fetch) == FUSED
    assert FETCHED == []
    kept = guarded(FUSED, [ranking("gone"), ranking("a")], keep=1, within=5, fetch=fetch)
    assert kept == FUSED  # deleted since the search: nothing to keep
    assert FETCHED == [["gone"]]


def test_more_hits_to_keep_than_places_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot keep 3 hits of 2 rankings in 5 places"):
        guarded(FUSED, [FUSED, FUSED], keep=3, within=5, fetch=fetch)


# Through a store: "lone" is dense's first (its vector is the question's) and has none of
# the question's words; eight "wordy" points are near in both rankings, so reciprocal rank
# fusion puts each above "lone", which only one ranking holds.
QUESTION_WORD = 7
WORDY = [f"00000000-0000-0000-0000-00000000000{i}" for i in range(1, 9)]
LONE = "00000000-0000-0000-0000-000000000009"


def points() -> list[Point]:
    found = [Point(LONE, {"text": "lone"}, [1.0, 0.0], SparseVector([3], [1.0]))]
    for i, pid in enumerate(WORDY):
        dense = [1.0, 0.3 + 0.1 * i]  # cosine with [1, 0] falling from 0.96
        found.append(
            Point(pid, {"text": "wordy"}, dense, SparseVector([QUESTION_WORD], [3.0 - 0.2 * i]))
        )
    return found


@pytest.fixture(params=["edge", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s: Store
    if request.param == "edge":
        s = EdgeStore.connect(path=tmp_path / "edge", collection="docsync")
    else:
        s = QdrantClientStore.connect(url=":memory:", collection="docsync")
    s.open(
        EmbeddingProfile("m", None, 2, "cosine", "", "", "c", keyword=KEYWORD_PROFILE), create=True
    )
    s.upsert(points())
    yield s
    s.close()


def test_the_guard_keeps_dense_first_hit_in_a_real_hybrid_search(store: Store) -> None:
    question = SparseVector([QUESTION_WORD], [1.0])
    dense = store.search([1.0, 0.0], limit=3)
    assert dense[0].id == LONE
    keyword = store.search(None, keyword=question, limit=3)
    bare = store.search([1.0, 0.0], keyword=question, limit=8, fusion=Fusion("rrf", 60, guard=0))
    assert LONE not in ids(bare)[:5]  # what fusion alone does to it
    kept = store.search(
        [1.0, 0.0], keyword=question, limit=8, fusion=Fusion("rrf", 60, guard=1, within=5)
    )
    assert LONE in ids(kept)[:5] and keyword[0].id in ids(kept)[:5]
    assert len(kept) == 8 and falling(kept)
    assert ids(kept)[:4] == ids(bare)[:4]
