"""The readers of binary formats, run in a child process.

PDF, HTML and Word parsers are large native libraries fed with files from anywhere: a
hostile or merely broken file can make one loop for ever, take gigabytes, or crash the
interpreter. Each such file is handed to one long-lived child process; the worker waits at
most `timeout` seconds for its text, and a child that overruns or dies is killed and
replaced for the next file. So a bad file costs that file (skip reason `timeout` or
`reader_crashed`, both failures that keep its points and are tried again next sync), and the
parser's memory is the child's, never held by the sync that embeds.

Hand-written rather than a `concurrent.futures` pool: a pool cannot kill the one task that
overran and goes broken when its worker dies; this needs both.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection

from docsync.worker.formats import DOCX, HTML, PDF, Extracted, Unreadable

# The reader's address space in MiB: the interpreter and the three parsers take about 250 MiB
# of it before the first file (most of that mapped, not resident); normal documents of up to
# DOCSYNC_MAX_FILE_BYTES read in a few hundred more.
DEFAULT_MEMORY_MB = 2048
# A child that dies while its resident peak plus its unresident mappings reach this share of
# the cap died for want of memory (the last allocation that failed is never counted in it).
_MEMORY_DEATH_SHARE = 0.8
_MIB = 1024 * 1024


def too_large(memory_mb: int) -> Unreadable:
    """The skip of a file whose reading needed more memory than the reader may take."""
    return Unreadable(
        "too_large", f"reading it needed more than {memory_mb} MB (DOCSYNC_READER_MEMORY_MB)"
    )


def extract(format: str, raw: bytes) -> Extracted:
    """Run the reader of `format` over `raw` in this process."""
    if format == PDF:
        from docsync.worker.formats.pdf import read_pdf

        return read_pdf(raw)
    if format == HTML:
        from docsync.worker.formats.html import read_html

        return read_html(raw)
    if format == DOCX:
        from docsync.worker.formats.docx import read_docx

        return read_docx(raw)
    raise ValueError(f"no binary reader for {format!r}")


def _serve(connection: Connection, memory_mb: int) -> None:
    """The child's loop: (format, bytes) in, `Extracted` or `Unreadable` out. It first says
    how much of its address space is mapped but not resident once its parsers are loaded."""
    _cap_memory(memory_mb)
    _load_readers()
    connection.send(_unresident())
    while True:
        try:
            format, raw = connection.recv()
        except EOFError:
            return
        try:
            result: Extracted | Unreadable = extract(format, raw)
        except Unreadable as exc:
            result = exc
        except MemoryError:
            result = too_large(memory_mb)
        except Exception as exc:  # a parser's own bug on a bad file: that file's problem
            result = Unreadable("corrupt", f"{type(exc).__name__}: {exc}")
        del raw
        connection.send(result)


def _cap_memory(memory_mb: int) -> None:
    """Cap this process's address space. Where the platform has no such limit (RLIMIT_AS is
    not enforced on macOS), the reader runs uncapped: the time limit still holds."""
    limit = memory_mb * _MIB
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _load_readers() -> None:
    """Import every parser now, so that the mappings they add are in the count `_serve`
    sends (and the first file does not wait for them)."""
    import docx  # noqa: F401
    import pypdfium2  # noqa: F401
    import trafilatura  # noqa: F401


def _unresident() -> int:
    """Bytes of this process's address space that are mapped but not resident (libraries,
    reserved arenas): they count against its cap but not in its resident peak. 0 where
    /proc cannot tell."""
    fields: dict[str, int] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmSize", "VmRSS"):
                    fields[name] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, fields.get("VmSize", 0) - fields.get("VmRSS", 0))


class ReaderProcess:
    """One child process that reads files, replaced whenever it overruns or dies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None
        self._memory_mb = 0  # the cap the running child was started with
        self._unresident: int | None = None  # what it said once ready (None: not yet)

    def extract(
        self, format: str, raw: bytes, *, timeout: float, memory_mb: int = DEFAULT_MEMORY_MB
    ) -> Extracted:
        with self._lock:
            try:
                connection = self._start(memory_mb, timeout)
                result = None
                if connection is not None:
                    connection.send((format, raw))
                    result = connection.recv() if connection.poll(timeout) else None
            except (EOFError, OSError):
                raise self._died(format) from None
            if result is None:
                self._stop()
                raise Unreadable(
                    "timeout",
                    f"the {format} reader took over {timeout:g}s (DOCSYNC_READ_TIMEOUT)",
                )
            if isinstance(result, Unreadable) and result.reason == "too_large":
                self._stop()  # a fresh child for the next file, not one with a bloated heap
        if isinstance(result, Unreadable):
            raise result
        assert isinstance(result, Extracted)
        return result

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _start(self, memory_mb: int, timeout: float) -> Connection | None:
        """The ready child's connection (started, and waited for up to `timeout` seconds,
        when there is none with this cap); None when it was not ready in time."""
        process = self._process
        alive = process is not None and process.poll() is None
        if alive and self._connection and memory_mb == self._memory_mb:
            return self._connection
        self._stop()
        # A fresh interpreter running this module: forking a process that runs torch's
        # threads is unsafe, and the child needs none of the parent's memory.
        child_reads, parent_writes = os.pipe()
        parent_reads, child_writes = os.pipe()
        # -P: the current directory is never on the child's path, so a user's own
        # `docsync/`, `plugin/` or `worker/` folder where docsync runs is not imported there.
        command = [sys.executable, "-P", "-m", "docsync.worker.formats.isolated"]
        try:
            process = subprocess.Popen(
                [*command, str(child_reads), str(child_writes), str(memory_mb)],
                pass_fds=(child_reads, child_writes),
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(child_reads)
            os.close(child_writes)
        self._process = process
        self._connection = _Duplex(parent_reads, parent_writes)
        self._memory_mb = memory_mb
        if not self._connection.poll(timeout):
            return None
        self._unresident = int(self._connection.recv())
        return self._connection

    def _died(self, format: str) -> Unreadable:
        """Reap the child that died on a file, and say why: for want of memory when its
        resident peak and unresident mappings came near its cap (PDFium aborts where an
        allocation fails, so the death itself tells no more), else a crash. A SIGKILL came
        from outside (the OOM killer, a person): a crash, which may not happen again."""
        process, memory_mb, unresident = self._process, self._memory_mb, self._unresident
        peak = _reap(process) if process is not None else 0
        killed = process is not None and process.returncode == -signal.SIGKILL
        self._stop()
        if unresident is None:
            return Unreadable(
                "reader_crashed",
                f"the {format} reader died as it started (DOCSYNC_READER_MEMORY_MB={memory_mb})",
            )
        if not killed and peak + unresident >= _MEMORY_DEATH_SHARE * memory_mb * _MIB:
            return too_large(memory_mb)
        return Unreadable("reader_crashed", f"the {format} reader died on this file")

    def _stop(self) -> None:
        process, connection = self._process, self._connection
        self._process = self._connection = None
        self._unresident = None
        if connection is not None:
            connection.close()
        if process is not None:
            process.kill()
            process.wait(5)


def _reap(process: subprocess.Popen[bytes]) -> int:
    """Wait for `process` (killed when it is still running after a few seconds) and answer
    its peak resident memory in bytes (`wait4`'s rusage; 0 where it cannot be had)."""
    for _ in range(50):
        try:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        except ChildProcessError:
            return 0  # reaped already
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return int(usage.ru_maxrss) * 1024  # KiB on Linux
        time.sleep(0.1)  # a child whose pipes closed is exiting: give it a moment
    process.kill()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return int(usage.ru_maxrss) * 1024


class _Duplex(Connection):
    """One `Connection` over two pipes: reads from one descriptor, writes to the other."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        super().__init__(read_fd)
        self._writer = Connection(write_fd)

    def send(self, obj: object) -> None:
        self._writer.send(obj)

    def close(self) -> None:
        try:
            self._writer.close()
        finally:
            super().close()


_READER = ReaderProcess()
atexit.register(_READER.close)


def extract_isolated(
    format: str, raw: bytes, *, timeout: float, memory_mb: int = DEFAULT_MEMORY_MB
) -> Extracted:
    """`extract` in the shared child process, bounded by `timeout` seconds and `memory_mb`
    MiB of address space."""
    return _READER.extract(format, raw, timeout=timeout, memory_mb=memory_mb)


if __name__ == "__main__":
    # The child: argv holds the descriptors it reads requests from and writes results to,
    # and its memory cap in MiB.
    _serve(_Duplex(int(sys.argv[1]), int(sys.argv[2])), int(sys.argv[3]))
