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
import os
import subprocess
import sys
import threading
from multiprocessing.connection import Connection

from worker.formats import DOCX, HTML, PDF, Extracted, Unreadable


def extract(format: str, raw: bytes) -> Extracted:
    """Run the reader of `format` over `raw` in this process."""
    if format == PDF:
        from worker.formats.pdf import read_pdf

        return read_pdf(raw)
    if format == HTML:
        from worker.formats.html import read_html

        return read_html(raw)
    if format == DOCX:
        from worker.formats.docx import read_docx

        return read_docx(raw)
    raise ValueError(f"no binary reader for {format!r}")


def _serve(connection: Connection) -> None:
    """The child's loop: (format, bytes) in, `Extracted` or `Unreadable` out."""
    while True:
        try:
            format, raw = connection.recv()
        except EOFError:
            return
        try:
            result: Extracted | Unreadable = extract(format, raw)
        except Unreadable as exc:
            result = exc
        except Exception as exc:  # a parser's own bug on a bad file: that file's problem
            result = Unreadable("corrupt", f"{type(exc).__name__}: {exc}")
        del raw
        connection.send(result)


class ReaderProcess:
    """One child process that reads files, replaced whenever it overruns or dies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None

    def extract(self, format: str, raw: bytes, *, timeout: float) -> Extracted:
        with self._lock:
            connection = self._start()
            try:
                connection.send((format, raw))
                ready = connection.poll(timeout)
                result = connection.recv() if ready else None
            except (EOFError, OSError):
                self._stop()
                raise Unreadable(
                    "reader_crashed", f"the {format} reader died on this file"
                ) from None
            if result is None:
                self._stop()
                raise Unreadable(
                    "timeout",
                    f"the {format} reader took over {timeout:g}s (DOCSYNC_READ_TIMEOUT)",
                )
        if isinstance(result, Unreadable):
            raise result
        assert isinstance(result, Extracted)
        return result

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _start(self) -> Connection:
        if self._process is not None and self._process.poll() is None and self._connection:
            return self._connection
        self._stop()
        # A fresh interpreter running this module: forking a process that runs torch's
        # threads is unsafe, and the child needs none of the parent's memory.
        child_reads, parent_writes = os.pipe()
        parent_reads, child_writes = os.pipe()
        command = [sys.executable, "-m", "worker.formats.isolated"]
        try:
            process = subprocess.Popen(
                [*command, str(child_reads), str(child_writes)],
                pass_fds=(child_reads, child_writes),
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(child_reads)
            os.close(child_writes)
        self._process = process
        self._connection = _Duplex(parent_reads, parent_writes)
        return self._connection

    def _stop(self) -> None:
        process, connection = self._process, self._connection
        self._process = self._connection = None
        if connection is not None:
            connection.close()
        if process is not None:
            process.kill()
            process.wait(5)


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


def extract_isolated(format: str, raw: bytes, *, timeout: float) -> Extracted:
    """`extract` in the shared child process, bounded by `timeout` seconds."""
    return _READER.extract(format, raw, timeout=timeout)


if __name__ == "__main__":
    # The child: argv holds the descriptors it reads requests from and writes results to.
    _serve(_Duplex(int(sys.argv[1]), int(sys.argv[2])))
