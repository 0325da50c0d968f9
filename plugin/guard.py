"""The fusion guard: each ranker's best hits kept near the top of a hybrid search's fused list.

Fusion (RRF or DBSF) can push a passage that one ranker ranks first far down when the other
ranker fills the list with passages it likes (a question about `WHERE col = NULL` lost its
answer, dense's first, to keyword's tables full of "null"). The guard takes the fused list
and each ranker's first hits and moves those that fell below `within` (or out of the list)
into its first `within` places, after the fused hits kept there: every ranker's first
`keep` hits are then among the fused first `within`. A list that already holds them is
returned as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from docsync.plugin.store import ScoredPoint


def guarded(
    fused: Sequence[ScoredPoint],
    rankings: Sequence[Sequence[ScoredPoint]],
    *,
    keep: int,
    within: int,
) -> list[ScoredPoint]:
    """`fused` with the first `keep` of each of `rankings` within its first `within` places
    (`keep` times the rankings at most `within`), as long as `fused` was (or as the hits
    it must hold). A hit brought up takes the score of the one before it, and one moved
    down no more than that, so scores still never rise down the list."""
    if keep * len(rankings) > within:
        raise ValueError(f"cannot keep {keep} hits of {len(rankings)} rankings in {within} places")
    protected: dict[str, ScoredPoint] = {}
    for rank in range(keep):  # each ranking's first, then each one's second, ...
        for ranking in rankings:
            if rank < len(ranking):
                protected.setdefault(ranking[rank].id, ranking[rank])
    position = {p.id: i for i, p in enumerate(fused)}
    late = [pid for pid in protected if position.get(pid, within) >= within]
    if not late or not fused:
        return list(fused)
    # The window: the protected hits already in it and the best unprotected ones, in fused
    # order, then the late ones; the rest of the fused list after it.
    room = within - len(protected)
    window: list[ScoredPoint] = []
    rest: list[ScoredPoint] = []
    for point in fused:
        if point.id in protected:
            if point.id not in late:
                window.append(point)
        elif room > 0:
            window.append(point)
            room -= 1
        else:
            rest.append(point)
    window += [fused[position[pid]] if pid in position else protected[pid] for pid in late]
    kept: list[ScoredPoint] = []
    for point in (window + rest)[: max(len(fused), len(window))]:
        if kept and (point.id in late or point.score > kept[-1].score):
            point = replace(point, score=kept[-1].score)
        kept.append(point)
    return kept
