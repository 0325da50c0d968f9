"""A progress bar on a terminal (stderr), nothing otherwise."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm


class _Bar:
    def __init__(self, bar: tqdm) -> None:  # type: ignore[type-arg]
        self._bar = bar

    def set_total(self, total: int) -> None:
        self._bar.reset(total=total)

    def more(self, files: int) -> None:
        self._bar.total += files
        self._bar.refresh()

    def advance(self, files: int = 1) -> None:
        self._bar.update(files)


class _Silent:
    def set_total(self, total: int) -> None:
        pass

    def more(self, files: int) -> None:
        pass

    def advance(self, files: int = 1) -> None:
        pass


@contextmanager
def progress_bar(
    enabled: bool | None = None, *, desc: str = "sync", unit: str = "file"
) -> Iterator[_Bar | _Silent]:
    """Files done out of files found (or other `unit`s); shown only when stderr is a
    terminal."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield _Silent()
        return
    with tqdm(total=0, unit=unit, desc=desc, file=sys.stderr) as bar, logging_redirect_tqdm():
        yield _Bar(bar)
