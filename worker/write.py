"""Stage 6: write one file's plan. New and changed points go in first, stale ones go out
after, so an interruption leaves extra points (repaired by the next sync), never a gap."""

from __future__ import annotations

from dataclasses import dataclass

from plugin.store import Point, Store
from worker.plan import FilePlan

UPSERT_BATCH = 256
DELETE_BATCH = 1024


@dataclass
class WriteResult:
    upserted: int = 0
    deleted: int = 0


def apply_plan(plan: FilePlan, store: Store) -> WriteResult:
    points = []
    for planned in plan.upserts:
        if planned.vector is None:
            raise ValueError(f"point {planned.id} of {plan.path} has no vector")
        points.append(Point(id=planned.id, payload=dict(planned.payload), vector=planned.vector))
    for i in range(0, len(points), UPSERT_BATCH):
        store.upsert(points[i : i + UPSERT_BATCH])
    for i in range(0, len(plan.deletes), DELETE_BATCH):
        store.delete(plan.deletes[i : i + DELETE_BATCH])
    return WriteResult(upserted=len(points), deleted=len(plan.deletes))
