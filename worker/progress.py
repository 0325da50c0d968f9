"""Progress of a long command: a bar on a terminal (stderr); elsewhere (docker, systemd, a
pipe) a log line every `interval` seconds, since a bar there is either nothing or noise and a
30-minute first sync must not look hung. `Progress` is what the pipeline reports to;
`NoProgress` hears nothing. tqdm is imported only for a bar."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tqdm import tqdm

log = logging.getLogger("docsync.progress")
# Seconds between two progress lines where stderr is no terminal (DOCSYNC_PROGRESS_SECONDS).
LOG_INTERVAL = 30.0


class Progress(Protocol):
    def set_total(self, total: int) -> None:
        """Start again at 0 of `total`."""

    def more(self, files: int) -> None:
        """`files` more to do (a large tree is found a folder at a time)."""

    def advance(self, files: int = 1) -> None: ...

    def embedded(self, chunks: int) -> None:
        """`chunks` more passages embedded (vectors computed, not reused)."""


class NoProgress:
    def set_total(self, total: int) -> None:
        pass

    def more(self, files: int) -> None:
        pass

    def advance(self, files: int = 1) -> None:
        pass

    def embedded(self, chunks: int) -> None:
        pass


class _Bar:
    def __init__(self, bar: tqdm) -> None:  # type: ignore[type-arg]
        self._bar = bar
        self._chunks = 0

    def set_total(self, total: int) -> None:
        self._bar.reset(total=total)

    def more(self, files: int) -> None:
        self._bar.total += files
        self._bar.refresh()

    def advance(self, files: int = 1) -> None:
        self._bar.update(files)

    def embedded(self, chunks: int) -> None:
        self._chunks += chunks
        self._bar.set_postfix(chunks=self._chunks)


class LogLines:
    """Progress as log lines: done/total, chunks embedded, rate and time left, at most one
    line every `interval` seconds (written when the count moves, so a finished or idle
    command writes none)."""

    def __init__(
        self,
        *,
        interval: float = LOG_INTERVAL,
        desc: str = "sync",
        unit: str = "file",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.desc, self.unit = desc, unit
        self._clock = clock
        self._started = self._last = clock()
        self.done = self.total = self.chunks = 0

    def set_total(self, total: int) -> None:
        self.done, self.total = 0, total
        self._tick()

    def more(self, files: int) -> None:
        self.total += files
        self._tick()

    def advance(self, files: int = 1) -> None:
        self.done += files
        self._tick()

    def embedded(self, chunks: int) -> None:
        self.chunks += chunks
        self._tick()

    def _tick(self) -> None:
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            log.info("%s", self.line(now - self._started))

    def line(self, elapsed: float) -> str:
        """'sync: 120/400 files (30%), 2,048 chunks embedded, 4.0 files/s, about 1m10s left'"""
        units = f"{self.unit}s"
        parts = [f"{self.done:,} {units}"]  # no total: an import counts as it reads
        if self.total:
            parts = [f"{self.done:,}/{self.total:,} {units} ({100 * self.done // self.total}%)"]
        if self.chunks:
            parts.append(f"{self.chunks:,} chunks embedded")
        rate = self.done / elapsed if elapsed > 0 else 0.0
        parts.append(f"{rate:.1f} {units}/s")
        if rate > 0 and self.total > self.done:
            parts.append(f"about {_duration((self.total - self.done) / rate)} left")
        return f"{self.desc}: " + ", ".join(parts)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@contextmanager
def progress_bar(
    enabled: bool | None = None,
    *,
    desc: str = "sync",
    unit: str = "file",
    interval: float = LOG_INTERVAL,
) -> Iterator[Progress]:
    """Files done out of files found (or other `unit`s): a bar when stderr is a terminal,
    else a log line every `interval` seconds; nothing when `enabled` is False."""
    if enabled is False:
        yield NoProgress()
        return
    if enabled is None and not sys.stderr.isatty():
        yield LogLines(interval=interval, desc=desc, unit=unit)
        return
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with tqdm(total=0, unit=unit, desc=desc, file=sys.stderr) as bar, logging_redirect_tqdm():
        yield _Bar(bar)
