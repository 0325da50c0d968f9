"""The index builder of the embedded store: a child process that builds the HNSW index of a
copy of the shard (`python -P -m docsync.plugin.stores.edge_index COPY PARENT_PID`), while the
daemon that started it keeps serving from the shard in use; and the sparse copy it works on.
`docsync.plugin.stores.edge.EdgeStore.optimize(serving=True)` makes the copy, runs the
builder and swaps the copy in.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from docsync.plugin.errors import IndexBuildError
from docsync.plugin.stores.edge_folder import hold, release
from docsync.plugin.stores.edge_shard import LocalShard


def copy_shard(live: Path, copy: Path) -> None:
    """Copy the shard folder `live` to `copy`, its files' holes left holes."""
    shutil.copytree(live, copy, copy_function=_copy_sparse)


def _copy_sparse(source: str, target: str) -> str:
    """Copy the file `source` to `target` leaving its holes holes (for `shutil.copytree`).

    The engine's files are sparse: it sizes a segment's memory-mapped files ahead and
    fills them a page at a time. `shutil.copy2` writes every byte it reads, zeros of the
    holes included, so one swap made a 916 KB store take 207 MB. No installed library
    copies holes, and `cp --sparse=always` would tie the store to GNU coreutils: this walks
    the data extents with SEEK_DATA / SEEK_HOLE (a file system without them reports one
    extent, the whole file) and copies each in the kernel (`os.copy_file_range`, which may
    even share the blocks), then sets the size, so a hole at the end stays one too."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        size = os.fstat(src.fileno()).st_size
        offset = 0
        while offset < size:
            try:
                start = os.lseek(src.fileno(), offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: only a hole is left
                    raise
                break
            offset = os.lseek(src.fileno(), start, os.SEEK_HOLE)
            _copy_range(src.fileno(), dst.fileno(), start, offset)
        os.ftruncate(dst.fileno(), size)
    shutil.copymode(source, target)
    return target


def _copy_range(src: int, dst: int, start: int, end: int) -> None:
    """Bytes `start` to `end` of `src` into the same place in `dst`."""
    while start < end:
        try:
            done = os.copy_file_range(src, dst, end - start, start, start)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            data = os.pread(src, min(end - start, 1 << 20), start)  # a kernel without it
            done = os.pwrite(dst, data, start) if data else 0
        if done == 0:
            return  # the file got shorter meanwhile: nothing more to copy
        start += done


def run_indexer(copy: Path, should_stop: Callable[[], bool]) -> bool:
    """Build the index of the shard in `copy` in a child process (`python -m
    docsync.plugin.stores.edge_index`); True once it is done, False when `should_stop` stopped it. A
    child that fails (an error, or killed by a signal) is `IndexBuildError`: not a quiet
    False, or an idle daemon would copy the whole shard again at each turn of its loop,
    where it backs off from an error."""
    # The child holds the copy's lock as long as it lives (it inherits the descriptor), so
    # a daemon restarted meanwhile leaves that folder alone; and it dies with this thread,
    # which waits for it throughout (`die_with_parent`).
    held = hold(copy)
    try:
        child = subprocess.Popen(
            # -P: the current directory is never on the child's path, so a user's own
            # `docsync/`, `plugin/` or `worker/` folder where docsync runs is not imported there.
            [
                sys.executable,
                "-P",
                "-m",
                "docsync.plugin.stores.edge_index",
                str(copy),
                str(os.getpid()),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            pass_fds=(held,),
        )
        errors = _wait(child, should_stop)
    finally:
        release(copy, held)
    if errors is None:
        return False
    if child.returncode != 0:
        status = child.returncode
        how = f"signal {-status}" if status < 0 else f"exit status {status}"
        last = errors.strip().splitlines()[-1:]
        raise IndexBuildError(
            f"the process building the index of {copy.name} ended ({how}"
            + (f": {last[0]})" if last else ")")
        )
    return True


def _wait(child: subprocess.Popen[str], should_stop: Callable[[], bool]) -> str | None:
    """Wait for `child` to end, its stderr; None when `should_stop` stopped it first."""
    while True:
        try:
            return child.communicate(timeout=0.5)[1] or ""
        except subprocess.TimeoutExpired:
            if should_stop():
                child.kill()
                child.communicate()
                return None


def build_index(path: str, parent: int | None = None) -> None:
    """Load the shard at `path`, build its index, close it (the child `EdgeStore` runs to
    index a copy while a daemon keeps serving). At the lowest CPU priority: the searches
    the daemon answers meanwhile (from the shard's own process) go first. It ends with
    `parent` (the pid of the process that started it), whose copy it is building."""
    if parent is not None:
        die_with_parent(parent)
    os.nice(19)
    shard = LocalShard.load(path)
    try:
        shard.optimize()
        shard.flush()
    finally:
        shard.close()


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this process (SIGKILL) when `parent` ends: a builder that
    outlived a daemon killed with -9 went on writing for 15-18 s in a folder the restarted
    daemon deletes and copies into. Linux only (`prctl(PR_SET_PDEATHSIG)`), elsewhere a
    no-op. The signal comes when the *thread* that started this process ends, so only a
    parent thread that waits for the child throughout may rely on it (`run_indexer` does);
    and a parent that ended before the call is seen by `getppid`."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        os._exit(1)  # the parent is already gone: its copy is nobody's


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# <linux/prctl.h>


if __name__ == "__main__":  # python -m docsync.plugin.stores.edge_index SHARD_COPY [PARENT_PID]
    build_index(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
