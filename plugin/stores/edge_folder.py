"""The embedded store's folder, apart from the engine: its locks, its generations of the
shard and the link to the one in use, recovery after a crash, durable writes and renames, and
the free space a write needs. `docsync.plugin.stores.edge.EdgeStore` is the adapter over it.

On disk, one folder per collection under the store folder:

    <DOCSYNC_QDRANT_PATH>/.lock               held while a process uses the store
    <DOCSYNC_QDRANT_PATH>/<collection>/profile.json   the embedding profile (the engine
                                                      has no collection metadata)
    <DOCSYNC_QDRANT_PATH>/<collection>/shard.<n>/     the Edge shard: segments, WAL, indexes
    <DOCSYNC_QDRANT_PATH>/<collection>/shard.<n>.lock held by the process that has shard.<n>
                                                      open, or builds its index
    <DOCSYNC_QDRANT_PATH>/<collection>/shard -> shard.<n>   the one in use (a relative link)

Stores made before the link had a plain `shard` folder: a writer renames it to `shard.0` and
links it the first time it opens the store.

The engine maps its files into memory, so a write into a full disk is a SIGBUS that kills
the process without a word: every write first checks the free space (`ensure_space`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from docsync.plugin.errors import (
    StoreError,
    StoreFullError,
    StoreLockedError,
    StoreUnavailableError,
)
from docsync.plugin.folders import private_dirs
from docsync.plugin.generations import generation_name

PROFILE_FILE = "profile.json"
SHARD_DIR = "shard"  # the link to the shard in use (a folder, in stores made before it)
GENERATION = re.compile(r"shard\.(\d+)")
LINK_TMP = "shard.link"  # the next link, before it is renamed over the first
# Left by a swap of an earlier docsync (renames, no link): finished or undone on open.
INDEXING_DIR = "shard.indexing"
READY_MARK = ".indexed"
REPLACED_DIR = "shard.replaced"
LOCK_FILE = ".lock"
# shard.<n>.lock beside the folder shard.<n>: held (flock) by the process that has the shard
# open, or by the index builder working on it.
LOCK_SUFFIX = ".lock"
# How long an open waits for another process to let go of the shard: a shard process whose
# daemon was killed ends its request, flushes and closes first (as long as a daemon gives
# its shard process to close, `edge_host.STOP_SECONDS`, and some more).
HOLD_SECONDS = 90.0
_HOLD_POLL = 0.05
# Free space kept before any write: the engine's WAL and metadata grow a page at a time, and
# a page it cannot get is a SIGBUS, not an error.
FREE_FLOOR = 32 << 20
# A point's bytes land in the WAL, its segment and the payload indexes: room for that, twice.
SPACE_FACTOR = 4
# Errors that mean "you may not write here": a read-only mount, or a folder not ours.
NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


# the store's lock -------------------------------------------------------------------------


def lock_store(root: Path, *, reading: bool) -> int | None:
    """Hold the store's lock file, exclusively: even a reader needs it alone, as the engine
    may write while it loads. A reader whose lock file cannot be opened for writing opens
    it read-only (flock works on any descriptor); None when a read-only store has none."""
    try:
        if not reading:
            private_dirs(root)
        fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        if exc.errno not in NOT_WRITABLE:
            raise StoreError(f"the embedded store {root}: {exc.strerror or exc}") from exc
        if not reading:
            raise StoreError(
                f"the embedded store {root} is not writable ({exc.strerror}); "
                "`docsync sync`, `run` and `import` write to it: give this user write access, "
                "or choose another DOCSYNC_QDRANT_PATH"
            ) from exc
        try:
            fd = os.open(root / LOCK_FILE, os.O_RDONLY)
        except FileNotFoundError:
            return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        if _lock_key(root) in _OPEN_HERE:
            raise StoreLockedError(
                f"the embedded store {root} is already open in this process: share one "
                "Searcher (or store) for it, or close the first before opening it again"
            ) from exc
        raise StoreLockedError(
            f"the embedded store {root} is in use by another process (an embedded store "
            "serves one process at a time); stop that process, or run a Qdrant server and "
            "set DOCSYNC_QDRANT_URL"
        ) from exc
    _OPEN_HERE.add(_lock_key(root))
    return fd


def unlock_store(root: Path, fd: int) -> None:
    os.close(fd)  # closing the file releases the lock
    _OPEN_HERE.discard(_lock_key(root))


# The stores this process holds (a second flock from the same process is refused too, and
# its message should not blame another process).
_OPEN_HERE: set[str] = set()


def _lock_key(root: Path) -> str:
    return os.path.realpath(root)


# a shard's lock ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Held:
    """The lock of a shard, held through the descriptor `fd` of the file `path`."""

    fd: int
    path: str
    removable: bool  # opened for writing: the holder removes it as it lets go


def hold_shard(path: str, timeout: float = HOLD_SECONDS) -> Held | None:
    """Take the lock of the shard at `path` (an flock on `path.lock`), waiting up to
    `timeout` seconds for the process that holds it to let go (`let_go`); None for a store
    this user may not write that has no lock file (nobody can have written there).

    Two engines on one shard corrupt it, and the process that last held a shard may outlive
    its daemon: a shard process whose daemon was killed with -9 finishes the request it is
    in, then flushes and closes the shard, while a restarted daemon opens the same shard.
    The kernel lets go of the lock when that process ends, however it ends. Polled, not a
    blocking flock: a blocked flock cannot be given a deadline."""
    lock = path + LOCK_SUFFIX
    deadline = time.monotonic() + timeout
    while True:
        removable = True
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            removable = False
            try:
                fd = os.open(lock, os.O_RDONLY)  # flock works on any descriptor
            except FileNotFoundError:
                return None
        try:
            if _flock_by(fd, deadline):
                # The holder removes the file as it lets go: one taken after that is not
                # the lock any more (the file at `lock` is): take that one.
                with contextlib.suppress(FileNotFoundError):
                    if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                        return Held(fd, lock, removable)
            else:
                raise StoreUnavailableError(
                    f"the embedded shard {path} is still held by another process after "
                    f"{timeout:.0f}s (the shard process of a daemon that ended, closing it?)"
                )
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _flock_by(fd: int, deadline: float) -> bool:
    """Lock `fd` exclusively; False when another holds it still at `deadline`."""
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_HOLD_POLL)


def let_go(held: Held | None) -> None:
    """Let go of a shard's lock (and remove its file: no lock file is left beside a shard
    nobody holds, but by a process that died)."""
    if held is not None:
        if held.removable:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(held.path)
        os.close(held.fd)  # closing the descriptor lets go of the lock


def _lock_path(shard: Path) -> Path:
    return shard.with_name(shard.name + LOCK_SUFFIX)


def hold(shard: Path) -> int:
    """Take the lock of the copy `shard` (an flock on `shard.<n>.lock` beside it)."""
    fd = os.open(_lock_path(shard), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def release(shard: Path, fd: int) -> None:
    _lock_path(shard).unlink(missing_ok=True)
    os.close(fd)


def held(shard: Path) -> bool:
    """Whether a live process (of this one or another) holds `shard`: an index builder, or
    a process that has it open (a shard process that outlived its daemon, say)."""
    try:
        fd = os.open(_lock_path(shard), os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


# generations and the link -----------------------------------------------------------------


def live(folder: Path) -> Path:
    """The folder of the shard in use."""
    return (folder / SHARD_DIR).resolve()


def generations(folder: Path) -> dict[int, Path]:
    found = (GENERATION.fullmatch(p.name) for p in folder.iterdir())
    return {int(m[1]): folder / m[0] for m in found if m}


def link(folder: Path, target: str) -> None:
    """Point `folder/shard` at `folder/target`, in one rename (and durably)."""
    tmp = folder / LINK_TMP
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, folder / SHARD_DIR)
    sync_folder(folder)


def recover(folder: Path) -> None:
    """Before anything opens the shard: finish or undo what a swap left (a crash between
    its steps), drop scratch copies, and give a store made before the link its link."""
    shard, copy, old = (folder / n for n in (SHARD_DIR, INDEXING_DIR, REPLACED_DIR))
    if not os.path.lexists(shard):  # an earlier docsync's swap, cut between its renames
        if (copy / READY_MARK).exists():
            os.rename(copy, shard)
            (shard / READY_MARK).unlink()
        elif old.is_dir():
            os.rename(old, shard)
    for leftover in (copy, old):
        shutil.rmtree(leftover, ignore_errors=True)
    if os.path.lexists(folder / LINK_TMP):
        os.unlink(folder / LINK_TMP)
    if shard.is_symlink() and not shard.exists():
        shard.unlink()
    found = generations(folder)
    if not os.path.lexists(shard):
        if not found:
            return  # no shard at all: `open` creates one
        # Cut between the two steps below, or in `_create`: the oldest is the whole one
        # (a newer one can be a copy whose index was never finished).
        link(folder, found[min(found)].name)
    elif not shard.is_symlink():
        first = folder / f"shard.{max(found, default=-1) + 1}"
        os.rename(shard, first)
        link(folder, first.name)
    drop_unused(folder)


def drop_unused(folder: Path) -> None:
    """Delete the shard folders not in use (copies a crash or a failed build left) and
    their locks; never one a live process holds (a daemon killed while it built: the
    builder is ending, and may still write there; or a shard process still closing)."""
    # By name: the store's folder may be given relative (the default `.docsync/qdrant`),
    # the link's target is resolved.
    used = live(folder).name
    for path in generations(folder).values():
        if path.name != used and not held(path):
            shutil.rmtree(path, ignore_errors=True)
    for lock in folder.glob(f"shard.*{LOCK_SUFFIX}"):
        shard = lock.with_name(lock.name.removesuffix(LOCK_SUFFIX))
        if not shard.exists() and not held(shard):
            lock.unlink(missing_ok=True)


# generations of the collection (docsync.plugin.stores.edge_generations) -------------------

GENERATION_LINK_SUFFIX = ".link"


def link_generation(root: Path, name: str, target: str) -> None:
    """Point `root/name` at `root/target`, in one rename, durably."""
    tmp = root / (name + GENERATION_LINK_SUFFIX)
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, root / name)
    sync_folder(root)


def first_generation(root: Path, collection: str) -> None:
    """Make a collection made before generations (a plain folder) the first one, with no
    copy: renamed to `<name>--g1`, and the name linked to it."""
    name = root / collection
    if name.is_dir() and not name.is_symlink():
        first = generation_name(collection, 1)
        os.rename(name, root / first)
        link_generation(root, collection, first)


def recover_generation(root: Path, collection: str) -> None:
    """Finish `first_generation`, cut between its renames by a crash: the name is missing
    and `<name>--g1` is there (the only generation: none is built before it)."""
    name = root / collection
    if os.path.lexists(root / (collection + GENERATION_LINK_SUFFIX)):
        os.unlink(root / (collection + GENERATION_LINK_SUFFIX))
    first = root / generation_name(collection, 1)
    if not os.path.lexists(name) and first.is_dir():
        link_generation(root, collection, first.name)


# durable writes and free space ------------------------------------------------------------


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable."""
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def ensure_space(root: Path, expected: int) -> None:
    """Refuse a write of `expected` bytes that could fill the disk of the store at `root`:
    the engine would die of it (SIGBUS)."""
    free = free_bytes(root)
    needed = FREE_FLOOR + SPACE_FACTOR * expected
    if free < needed:
        raise StoreFullError(
            f"the embedded store {root} is out of space: {mib(free)} free, and "
            f"docsync keeps {mib(needed)} free before it writes (the engine cannot survive "
            "a full disk); free some space or move DOCSYNC_QDRANT_PATH to a larger disk"
        )


def folder_bytes(folder: Path) -> int:
    """The disk space the files under `folder` take: their allocated blocks (`st_blocks` is
    in 512-byte units whatever the file system's block size), not their apparent size. The
    engine's files are sparse (a segment file of 32 MiB may hold a few pages): by apparent
    size a 160-point store asked for 238 MiB free before a build."""
    return sum(p.lstat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def free_bytes(folder: Path) -> int:
    """The space free for this user on the file system of `folder` (the tests' seam)."""
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def read_only(folder: Path) -> bool:
    return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)


def mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"
