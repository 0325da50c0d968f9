"""DESIGN invariant 12, the embedded store's children: the process holding a daemon's shard
(`plugin.stores.edge_host`) and the index builder (`python -m plugin.stores.edge_shard`) may
die at any moment (kill -9, out of memory, a bus error on a full disk); the store starts
another, asks again, and nothing is lost; what it cannot survive is an outage the daemon
retries, never an error that ends it."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from plugin.errors import ShardProcessError, StoreUnavailableError
from plugin.profile import EmbeddingProfile
from plugin.store import Point
from plugin.stores.edge import EdgeStore
from plugin.stores.edge_host import HostedShard

DIMENSION = 8
PROFILE = EmbeddingProfile("m", None, DIMENSION, "cosine", "", "", "c")


def poll(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.05)


def points(first: int, n: int) -> list[Point]:
    rng = np.random.default_rng(first)
    vectors = rng.standard_normal((n, DIMENSION)).tolist()
    return [
        Point(str(uuid.UUID(int=first + i + 1)), {"n": first + i}, v, None)
        for i, v in enumerate(vectors)
    ]


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[EdgeStore]:
    store = EdgeStore.connect(path=tmp_path / "store", collection="docsync", serving=True)
    store.open(PROFILE, create=True)
    yield store
    store.close()


def child_of(store: EdgeStore) -> int:
    shard = store._shard
    assert isinstance(shard, HostedShard) and shard.alive
    return shard._child.pid


def test_writes_land_when_the_shard_process_is_killed_between_them(serving: EdgeStore) -> None:
    serving.upsert(points(0, 100))
    os.kill(child_of(serving), signal.SIGKILL)
    serving.upsert(points(100, 100))
    os.kill(child_of(serving), signal.SIGKILL)
    serving.delete([p.id for p in points(0, 10)])
    os.kill(child_of(serving), signal.SIGKILL)
    serving.set_payload([p.id for p in points(10, 10)], {"tag": "x"})
    assert serving.count() == 190
    assert serving.count({"tag": "x"}) == 10


def test_writes_land_when_the_shard_process_is_killed_during_them(
    serving: EdgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child is killed after a request was sent, before it answered (whether it applied
    it or not: the request is asked again)."""
    real_answer = HostedShard._answer
    asked = [0]

    def killed_while_answering(self: HostedShard) -> Any:
        asked[0] += 1
        if asked[0] % 7 == 0:
            os.kill(self._child.pid, signal.SIGKILL)
        return real_answer(self)

    monkeypatch.setattr(HostedShard, "_answer", killed_while_answering)
    serving.upsert(points(0, 1000))  # 16 batches: two of them meet a dead child
    serving.delete([p.id for p in points(0, 100)])
    assert asked[0] > 14
    assert serving.count() == 900
    assert {p.id for p in serving.retrieve([p.id for p in points(900, 100)])} == {
        p.id for p in points(900, 100)
    }


def test_a_child_that_dies_again_is_an_outage_to_retry(
    serving: EdgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_answer = HostedShard._answer

    def always_killed(self: HostedShard) -> Any:
        os.kill(self._child.pid, signal.SIGKILL)
        return real_answer(self)

    serving.upsert(points(0, 10))
    monkeypatch.setattr(HostedShard, "_answer", always_killed)
    with pytest.raises(StoreUnavailableError) as raised:
        serving.upsert(points(10, 10))
    assert isinstance(raised.value, ShardProcessError)
    assert "signal 9" in str(raised.value)
    monkeypatch.setattr(HostedShard, "_answer", real_answer)
    serving.upsert(points(10, 10))
    assert serving.count() == 20
