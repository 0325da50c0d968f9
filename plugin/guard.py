"""The fusion guard: each ranker's best hits kept near the top of a hybrid search's fused list.

Fusion (RRF or DBSF) can push a passage that one ranker ranks first far down when the other
ranker fills the list with passages it likes (a question about `WHERE col = NULL` lost its
answer, dense's first, to keyword's tables full of "null"). The guard takes the fused list
and each ranker's first hits and moves those that fell below `within` (or out of the list)
into its first `within` places, after the fused hits kept there: every ranker's first
`keep` hits are then among the fused first `within`. The ranker's other hits near those in
their file come right after (`company`): in the ranker's own search they merge into its
first passage, and may hold the answer. A list that already holds them all is returned as
it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from docsync.plugin import schema
from docsync.plugin.store import ScoredPoint

# How many chunks apart two hits of one file may be and their passages still touch: each
# grows at most `schema.REACH` chunks each way.
NEAR = 2 * schema.REACH + 1


def guarded(
    fused: Sequence[ScoredPoint],
    rankings: Sequence[Sequence[ScoredPoint]],
    *,
    keep: int,
    within: int,
) -> list[ScoredPoint]:
    """`fused` with the first `keep` of each of `rankings` within its first `within` places
    (`keep` times the rankings at most `within`), and their company (`company`) right after
    those places unless it is in them; as long as `fused` was (or as the hits it must
    hold). A hit brought up takes the score of the one before it, and one moved down no
    more than that, so scores still never rise down the list."""
    if keep * len(rankings) > within:
        raise ValueError(f"cannot keep {keep} hits of {len(rankings)} rankings in {within} places")
    protected: dict[str, ScoredPoint] = {}
    for rank in range(keep):  # each ranking's first, then each one's second, ...
        for ranking in rankings:
            if rank < len(ranking):
                protected.setdefault(ranking[rank].id, ranking[rank])
    position = {p.id: i for i, p in enumerate(fused)}
    late = [pid for pid in protected if position.get(pid, within) >= within]
    joining = {
        p.id: p
        for ranking in rankings
        for p in company(ranking, ranking[:keep])
        if position.get(p.id, within) >= within and p.id not in protected
    }
    if not fused or (not late and not joining):
        return list(fused)
    # The window: the protected hits already in it and the best unprotected ones, in fused
    # order, then the late ones; the company; the rest of the fused list.
    room = within - len(protected)
    window: list[ScoredPoint] = []
    rest: list[ScoredPoint] = []
    for point in fused:
        if point.id in protected:
            if point.id not in late:
                window.append(point)
        elif point.id in joining:
            continue
        elif room > 0:
            window.append(point)
            room -= 1
        else:
            rest.append(point)
    window += [fused[position[pid]] if pid in position else protected[pid] for pid in late]
    window += [fused[position[pid]] if pid in position else p for pid, p in joining.items()]
    moved = {*late, *joining}
    kept: list[ScoredPoint] = []
    for point in (window + rest)[: max(len(fused), len(window))]:
        if kept and (point.id in moved or point.score > kept[-1].score):
            point = replace(point, score=kept[-1].score)
        kept.append(point)
    return kept


def company(ranking: Sequence[ScoredPoint], firsts: Sequence[ScoredPoint]) -> list[ScoredPoint]:
    """The hits of `ranking` near one of `firsts` in its file: close enough (`NEAR` chunks)
    that their passages may touch and merge into its passage, as they do when that ranker
    searches alone (a dense search's first passage can hold its third hit, the chunk after
    its first). Hits whose payload lacks where they are have none."""
    places = [place for p in firsts if (place := _place(p)) is not None]
    firsts_ids = {p.id for p in firsts}
    found = []
    for point in ranking:
        here = _place(point)
        if here is None or point.id in firsts_ids:
            continue
        root, path, index = here
        if any((root, path) == (r, f) and abs(index - i) <= NEAR for r, f, i in places):
            found.append(point)
    return found


def _place(point: ScoredPoint) -> tuple[str, str, int] | None:
    payload = point.payload
    root, path, index = (payload.get(k) for k in (schema.ROOT, schema.PATH, schema.CHUNK_INDEX))
    if not isinstance(root, str) or not isinstance(path, str) or not isinstance(index, int):
        return None
    return root, path, index
