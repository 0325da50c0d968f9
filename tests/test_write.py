"""The writer thread: plans written in order, and the embedding held back when planned points
pile up faster than the store takes them."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from docsync.plugin.store import Point
from docsync.worker.plan import FilePlan, PlannedPoint
from docsync.worker.write import Writer
from tests.conftest import HANG


class GatedStore:
    """Takes upserts only while its gate is open, and remembers their order."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.paths: list[str] = []

    def upsert(self, points: Sequence[Point]) -> None:
        assert self.gate.wait(timeout=HANG)
        self.paths.extend(p.payload["path"] for p in points)

    def delete(self, ids: Sequence[str]) -> None:
        pass


def plan(path: str, points: int) -> FilePlan:
    upserts = [
        PlannedPoint(f"{path}-{i}", {"path": path}, "text", np.zeros(4, dtype=np.float32))  # type: ignore[typeddict-item]
        for i in range(points)
    ]
    return FilePlan(root="/r", path=path, upserts=upserts)


def test_submissions_wait_while_too_many_points_are_pending() -> None:
    store = GatedStore()
    written: list[str] = []
    writer = Writer(store, lambda p, _d, _r: written.append(p.path), max_points=10)  # type: ignore[arg-type]
    submitted: list[str] = []
    plans = [plan(f"f{i}.md", 4) for i in range(5)]  # 5 points each, with the file itself

    def submit_all() -> None:
        for item in plans:
            writer.submit(item, deleted_file=False)
            submitted.append(item.path)

    feeder = threading.Thread(target=submit_all)
    feeder.start()
    feeder.join(timeout=0.5)  # fixed: the feeder must still be held back after it
    assert feeder.is_alive() and submitted == ["f0.md", "f1.md"]
    store.gate.set()
    feeder.join(timeout=HANG)
    writer.drain()
    writer.close()
    assert written == [p.path for p in plans]
    assert store.paths == [p.path for p in plans for _ in range(4)]


def test_a_plan_larger_than_the_bound_still_goes_through() -> None:
    store = GatedStore()
    store.gate.set()
    done: list[Any] = []
    writer = Writer(store, lambda p, _d, r: done.append(r), max_points=3)  # type: ignore[arg-type]
    writer.submit(plan("big.md", 50), deleted_file=False)
    writer.submit(plan("small.md", 1), deleted_file=False)
    writer.drain()
    writer.close()
    assert [r.upserted for r in done] == [50, 1]
