"""The fusion guard: each ranker's best hits kept near the top of a hybrid search's fused list.

Fusion (RRF or DBSF) can push a passage that one ranker ranks first far down when the other
ranker fills the list with passages it likes (a question about `WHERE col = NULL` lost its
answer, dense's first, to keyword's tables full of "null"). The guard takes the fused list
and each ranker's ranking and moves the rankers' first hits that fell below `within` (or out
of the list) into its first `within` places, after the fused hits kept there: every
ranker's first `keep` hits are then among the fused first `within`. The ranker's other hits
that its first names as neighbours (`schema.NEXT`, `schema.PREVIOUS`: the chunks its passage
may grow into) come right after those places (`company`): in the ranker's own search they
merge into its first passage, and may hold the answer. A list that already holds them all
is returned as it was.

Points written before they named their neighbours have no company until the next sync adds
the names (without re-embedding). The rankings need no payloads (their IDs and order are
enough): the payloads of the few hits the guard brings in are fetched (`Fetch`), and only
when it brings some.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from docsync.plugin import schema
from docsync.plugin.store import ScoredPoint

# The payloads of points by ID, as the fused hits have them (IDs not found are left out).
Fetch = Callable[[list[str]], Mapping[str, dict[str, Any]]]


def guarded(
    fused: Sequence[ScoredPoint],
    rankings: Sequence[Sequence[ScoredPoint]],
    *,
    keep: int,
    within: int,
    fetch: Fetch,
) -> list[ScoredPoint]:
    """`fused` with the first `keep` of each of `rankings` within its first `within` places
    (`keep` times the rankings at most `within`), and their company right after those
    places unless it is in them; as long as `fused` was (or as the hits it must hold). A
    hit brought up takes the score of the one before it, and one moved down no more than
    that, so scores still never rise down the list; a hit deleted meanwhile is left out."""
    if keep * len(rankings) > within:
        raise ValueError(f"cannot keep {keep} hits of {len(rankings)} rankings in {within} places")
    if not fused:
        return []
    position = {p.id: i for i, p in enumerate(fused)}
    payloads = {p.id: p.payload for p in fused}
    firsts = [[p.id for p in ranking[:keep]] for ranking in rankings]
    protected = list(
        dict.fromkeys(pid for rank in range(keep) for ids in firsts for pid in ids[rank : rank + 1])
    )
    payloads.update(
        fetch(unknown) if (unknown := [i for i in protected if i not in payloads]) else {}
    )
    protected = [pid for pid in protected if pid in payloads]
    late = [pid for pid in protected if position.get(pid, within) >= within]
    joining = [
        pid
        for ranking, ids in zip(rankings, firsts, strict=True)
        for pid in company(ranking, [payloads[i] for i in ids if i in payloads])
        if position.get(pid, within) >= within and pid not in protected
    ]
    joining = list(dict.fromkeys(joining))
    if not late and not joining:
        return list(fused)
    payloads.update(
        fetch(unknown) if (unknown := [i for i in joining if i not in payloads]) else {}
    )
    joining = [pid for pid in joining if pid in payloads]
    # The window: the protected hits already in it and the best unprotected ones, in fused
    # order, then the late ones and the company; the rest of the fused list after them.
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
    moved = [*late, *joining]
    window += [fused[position[pid]] if pid in position else _found(pid, payloads) for pid in moved]
    kept: list[ScoredPoint] = []
    for point in (window + rest)[: max(len(fused), len(window))]:
        if kept and (point.id in moved or point.score > kept[-1].score):
            point = replace(point, score=kept[-1].score)
        kept.append(point)
    return kept


def company(ranking: Sequence[ScoredPoint], firsts: Sequence[Mapping[str, Any]]) -> list[str]:
    """The IDs of the hits of `ranking` that one of `firsts` (payloads) names as a neighbour
    its passage may grow into, in ranking order."""
    named = {
        str(entry[0])
        for payload in firsts
        for key in (schema.NEXT, schema.PREVIOUS)
        for entry in payload.get(key) or ()
        if isinstance(entry, list | tuple) and entry
    }
    return [p.id for p in ranking if p.id in named]


def _found(pid: str, payloads: Mapping[str, dict[str, Any]]) -> ScoredPoint:
    return ScoredPoint(pid, 0.0, payloads[pid])  # its score: the one before it's
