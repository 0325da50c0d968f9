"""`ahead`: items computed on a thread ahead of their consumer, bounded by count or weight."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from docsync.plugin.background import ahead
from tests.conftest import HANG


def test_items_arrive_in_order_and_errors_are_raised_here() -> None:
    def items() -> Iterator[int]:
        yield from range(5)
        raise ValueError("broken source")

    got = []
    with pytest.raises(ValueError, match="broken source"):
        for item in ahead(items(), depth=2):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]


def test_weight_bounds_how_far_the_producer_runs_ahead() -> None:
    produced: list[int] = []

    def items() -> Iterator[int]:
        for size in (3, 3, 3, 50, 1):
            produced.append(size)
            yield size

    stream = ahead(items(), depth=7, weight=lambda size: size)
    assert next(stream) == 3
    # Two items of 3 wait (6 <= 7); the 50 is made but held back, so the 1 is never asked for.
    deadline = time.monotonic() + HANG
    while len(produced) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert produced == [3, 3, 3, 50]
    time.sleep(0.2)  # bounded: the producer must still be held back after it
    assert produced == [3, 3, 3, 50]
    assert list(stream) == [3, 3, 50, 1]  # a heavy item still passes, alone
