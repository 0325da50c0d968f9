"""A shard's files read once when a long-lived process opens it, so that the kernel's page
cache holds them before searches need them.

The embedded store maps its files "cold" (`docsync.plugin.stores.edge_shard.LocalShard.create`):
nothing is loaded when a shard opens, and a search reads the pages it touches. Where those
pages are not in the page cache (after a reboot, or once the kernel has reclaimed them), each
is a read from disk: at a million points, with the cache dropped, the first hybrid search of
each question took 18-20 ms (about 60 major page faults each) against 2.4 ms once the files
were read (bench/NOTES.md, issue 27). Reading the shard's 3 GB took 3.7 s, most of it the
kernel's copying; asking the kernel to read ahead (`posix_fadvise(WILLNEED)`) cached nothing
measurable here, so the files are read, through one small buffer.

Only what fits: files are read while their total stays under half the memory the kernel says
is available, so a shard larger than memory never pushes everything else out of the cache.
Hand-written: the one library that does this (vmtouch) is a command-line program in C.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

log = logging.getLogger("docsync.store")
CHUNK = 1 << 20  # bytes read at a time: the one buffer this holds
MEMINFO = Path("/proc/meminfo")
SHARE = 0.5  # of the memory available, at most this much is read


def available_memory(meminfo: Path = MEMINFO) -> int | None:
    """What the kernel says could be used without swapping (`MemAvailable`), in bytes; None
    where it does not say (not Linux)."""
    try:
        for line in meminfo.read_text(encoding="ascii").splitlines():
            name, _, value = line.partition(":")
            if name == "MemAvailable":
                return int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def preread(folder: Path, *, budget: int | None = None) -> int:
    """Read every file under `folder` once (smallest first, so that the indexes come before
    the bulk of the vectors and payloads), while their total stays within `budget` bytes
    (default: `SHARE` of the memory available; nothing where that is unknown). Answers the
    bytes read. A file that vanishes or cannot be read (a swap in progress) is passed over."""
    if budget is None:
        available = available_memory()
        budget = int(available * SHARE) if available is not None else 0
    files: list[tuple[int, Path]] = []
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                files.append((path.stat().st_size, path))
        except OSError:
            continue
    files.sort()
    buffer = memoryview(bytearray(CHUNK))
    read = 0
    for size, path in files:
        if read + size > budget:
            break
        try:
            with path.open("rb", buffering=0) as handle:
                while count := handle.readinto(buffer):
                    read += count
        except OSError:
            continue
    return read


def preread_behind(folder: Path) -> threading.Thread:
    """`preread` on a thread of its own, for a process that answers searches meanwhile."""

    def run() -> None:
        log.debug("read %d bytes of %s ahead of searches", preread(folder), folder)

    thread = threading.Thread(target=run, name="docsync-preread", daemon=True)
    thread.start()
    return thread
