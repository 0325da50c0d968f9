"""Stage 6: write the plans. Within a file, new and changed points go in first and stale ones
go out after, so an interruption leaves extra points (repaired by the next sync), never a gap.
Files are written in the order they were planned, on a thread of their own, so writing one
window overlaps embedding the next."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from docsync.plugin.background import Budget
from docsync.plugin.keyword import KeywordEncoder
from docsync.plugin.store import Point, Store
from docsync.worker.plan import FilePlan, PlannedPoint

log = logging.getLogger("docsync.write")
UPSERT_BATCH = 256
DELETE_BATCH = 1024


@dataclass
class WriteResult:
    upserted: int = 0
    deleted: int = 0


def apply_plan(
    plan: FilePlan, store: Store, *, keyword: KeywordEncoder | None = None
) -> WriteResult:
    """Write one plan (or part of a file's plan); nothing when an earlier part of the same
    file failed, and a failure here stops the file's later parts. `keyword`: give each
    point its keyword vector too (computed here: a tenth of a millisecond a chunk, cheaper
    to redo than to look up)."""
    if plan.write.failed:
        return WriteResult()
    try:
        for planned in plan.upserts:  # all checked before anything is written
            if planned.vector is None:
                raise ValueError(f"point {planned.id} of {plan.path} has no vector")
        for i in range(0, len(plan.upserts), UPSERT_BATCH):
            batch = plan.upserts[i : i + UPSERT_BATCH]
            store.upsert([_point(planned, keyword) for planned in batch])
        for i in range(0, len(plan.deletes), DELETE_BATCH):
            store.delete(plan.deletes[i : i + DELETE_BATCH])
    except BaseException:
        plan.write.failed = True
        raise
    return WriteResult(upserted=len(plan.upserts), deleted=len(plan.deletes))


def _point(planned: PlannedPoint, keyword: KeywordEncoder | None) -> Point:
    # The vector becomes a list of floats (12 KB for 384 dimensions) as late as possible, a
    # batch at a time: all of a 20,000-chunk file's at once took 250 MB. See PlannedVector.
    vector = [] if planned.vector is None else planned.vector.tolist()
    payload = dict(planned.payload)
    sparse = keyword.embed_payload(payload) if keyword is not None else None
    return Point(id=planned.id, payload=payload, vector=vector, keyword=sparse)


Written = Callable[[FilePlan, bool, WriteResult | Exception], None]


class Writer:
    """Applies plans one after another on a background thread, in submission order.

    `done(plan, deleted_file, result)` is called on that thread with the `WriteResult`, or
    with the exception a plan raised; an exception `done` does not absorb stops the writer,
    and `submit`/`drain` raise it in the caller's thread.

    At most about `max_points` planned points wait (one plan is always let in, whatever its
    size): enough for the writer never to run dry, few enough that memory stays flat and the
    garbage collector has little to walk when the embedding outruns the store."""

    def __init__(
        self,
        store: Store,
        done: Written,
        *,
        max_points: int = 4096,
        keyword: KeywordEncoder | None = None,
    ) -> None:
        self._store = store
        self._keyword = keyword
        self._done = done
        self._queue: queue.Queue[tuple[FilePlan, bool] | None] = queue.Queue()
        self._room = Budget(max_points)  # planned points submitted and not yet written
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="docsync-writer")
        self._thread.start()

    def submit(self, plan: FilePlan, *, deleted_file: bool) -> None:
        self._raise()
        if not self._room.acquire(plan.weight, give_up=lambda: self._error is not None):
            self._raise()
        self._queue.put((plan, deleted_file))

    def drain(self) -> None:
        """Wait until every submitted plan is written; raise the writer's failure, if any."""
        self._queue.join()
        self._raise()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                if self._error is None:
                    plan, deleted_file = item
                    try:
                        result: WriteResult | Exception = apply_plan(
                            plan, self._store, keyword=self._keyword
                        )
                    except Exception as exc:  # handed to done(), which reports or re-raises
                        result = exc
                    self._done(plan, deleted_file, result)
            except BaseException as exc:  # raised in the caller's thread by submit/drain
                self._error = exc
            finally:
                self._room.release(item[0].weight)
                self._queue.task_done()
        self._queue.task_done()
