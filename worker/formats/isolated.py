"""The readers of binary formats, run in a child process.

PDF, HTML and Word parsers are large native libraries fed with files from anywhere: a
hostile or merely broken file can make one loop for ever, take gigabytes, or crash the
interpreter. Each such file is handed to one long-lived child process; the worker waits at
most `timeout` seconds for its text, and a child that overruns or dies is killed and
replaced for the next file. So a bad file costs that file (skip reason `timeout` or
`reader_crashed`, both failures that keep its points and are tried again next sync), and the
parser's memory is the child's, never held by the sync that embeds.

Not a `concurrent.futures` pool: a pool cannot kill the one task that overran and goes
broken when its worker dies; this needs both. The child and its channel are
`docsync.plugin.child`'s, as the shard host's are.

OCR (worker/formats/ocr.py) runs Tesseract as the child's own child: the reader leads a
process group of its own, and a reader killed for overrunning is killed with its group.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from docsync.plugin.child import Channel, Child, ChildGone, ChildTimeout
from docsync.worker.formats import (
    CSV,
    DOCX,
    EML,
    EPUB,
    HTML,
    IMAGE,
    ODP,
    ODS,
    ODT,
    PDF,
    PPTX,
    XLSX,
    Extracted,
    Unreadable,
)
from docsync.worker.formats.ocr import OCR_OFF, OcrOptions

# The reader's address space in MiB: the interpreter and the three parsers take about 250 MiB
# of it before the first file (most of that mapped, not resident); normal documents of up to
# DOCSYNC_MAX_FILE_BYTES read in a few hundred more.
DEFAULT_MEMORY_MB = 2048
# A child that dies while its resident peak plus its unresident mappings reach this share of
# the cap died for want of memory (the last allocation that failed is never counted in it).
_MEMORY_DEATH_SHARE = 0.8
_MIB = 1024 * 1024
Request = tuple[str, bytes, OcrOptions]  # the format, the file's bytes, and how to OCR
# What the child sends: first the bytes it has mapped but not resident once ready (an int),
# then one `Extracted` or `Unreadable` per request.
Answer = Extracted | Unreadable | int


def too_large(memory_mb: int) -> Unreadable:
    """The skip of a file whose reading needed more memory than the reader may take."""
    return Unreadable(
        "too_large", f"reading it needed more than {memory_mb} MB (DOCSYNC_READER_MEMORY_MB)"
    )


# The reader of each format besides PDF, HTML and Word: (module, function), imported when used.
_READERS = {
    PPTX: ("slides", "read_pptx"),
    ODP: ("slides", "read_odp"),
    XLSX: ("sheets", "read_xlsx"),
    ODS: ("sheets_odf", "read_ods"),
    CSV: ("sheets", "read_csv"),
    ODT: ("odf", "read_odt"),
    EPUB: ("epub", "read_epub"),
    EML: ("mail", "read_eml"),
}


def extract(format: str, raw: bytes, ocr: OcrOptions = OCR_OFF) -> Extracted:
    """Run the reader of `format` over `raw` in this process."""
    if format == PDF:
        from docsync.worker.formats.pdf import read_pdf

        return read_pdf(raw, ocr)
    if format == IMAGE:
        from docsync.worker.formats.image import read_image

        return read_image(raw, ocr)
    if format == HTML:
        from docsync.worker.formats.html import read_html

        return read_html(raw)
    if format == DOCX:
        from docsync.worker.formats.docx import read_docx

        return read_docx(raw)
    if format in _READERS:
        module, function = _READERS[format]
        reader: Callable[[bytes], Extracted] = getattr(
            importlib.import_module(f"docsync.worker.formats.{module}"), function
        )
        return reader(raw)
    raise ValueError(f"no binary reader for {format!r}")


def _serve(channel: Channel[Answer, Request], memory_mb: int) -> None:
    """The child's loop: (format, bytes) in, `Extracted` or `Unreadable` out. It first says
    how much of its address space is mapped but not resident once its parsers are loaded."""
    _cap_memory(memory_mb)
    _load_readers()
    channel.send(_unresident())
    while True:
        try:
            format, raw, ocr = channel.receive()
        except ChildGone:
            return
        peak_before = _vm_peak()
        try:
            result: Extracted | Unreadable = extract(format, raw, ocr)
        except Unreadable as exc:
            result = exc
        except MemoryError:
            result = too_large(memory_mb)
        except Exception as exc:  # a parser's own bug on a bad file: that file's problem
            result = _failed(exc, memory_mb, peak_before)
        del raw
        channel.send(result)


def _failed(exc: Exception, memory_mb: int, peak_before: int) -> Unreadable:
    """A parser that failed as this read took the address space to a new peak near its cap
    ran out of memory, whatever it calls the failure: libxml2 reports an allocation that
    failed as `XMLSyntaxError: unknown error`. Otherwise the file is corrupt."""
    peak = _vm_peak()
    if peak > peak_before and peak >= _MEMORY_DEATH_SHARE * memory_mb * _MIB:
        return too_large(memory_mb)
    return Unreadable("corrupt", f"{type(exc).__name__}: {exc}")


def _vm_peak() -> int:
    """The most address space this process has had mapped, in bytes (0 where /proc cannot
    tell)."""
    return _status_fields("VmPeak").get("VmPeak", 0)


def _cap_memory(memory_mb: int) -> None:
    """Cap this process's address space. Where the platform has no such limit (RLIMIT_AS is
    not enforced on macOS), the reader runs uncapped: the time limit still holds."""
    limit = memory_mb * _MIB
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _load_readers() -> None:
    """Import the common parsers now, so that the mappings they add are in the count
    `_serve` sends (and the first file does not wait for them). python-pptx (with Pillow)
    and openpyxl are imported by the first deck or workbook instead: together they add
    0.4 s and 26 MB to every start of a child that may never see one."""
    import docx  # noqa: F401
    import lxml.html  # noqa: F401
    import pypdfium2  # noqa: F401
    import trafilatura  # noqa: F401


def _unresident() -> int:
    """Bytes of this process's address space that are mapped but not resident (libraries,
    reserved arenas): they count against its cap but not in its resident peak. 0 where
    /proc cannot tell."""
    fields = _status_fields("VmSize", "VmRSS")
    return max(0, fields.get("VmSize", 0) - fields.get("VmRSS", 0))


def _status_fields(*names: str) -> dict[str, int]:
    """These sizes from /proc/self/status, in bytes; none where it cannot be read."""
    fields: dict[str, int] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in names:
                    fields[name] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return {}
    return fields


class ReaderProcess:
    """One child process that reads files, replaced whenever it overruns or dies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._child: Child[Request, Answer] | None = None
        self._memory_mb = 0  # the cap the running child was started with
        self._unresident: int | None = None  # what it said once ready (None: not yet)

    def extract(
        self,
        format: str,
        raw: bytes,
        *,
        timeout: float,
        memory_mb: int = DEFAULT_MEMORY_MB,
        ocr: OcrOptions = OCR_OFF,
    ) -> Extracted:
        with self._lock:
            try:
                child = self._start(memory_mb, timeout)
                result = None
                if child is not None:
                    child.send((format, raw, ocr))
                    result = child.receive(timeout)
            except ChildTimeout:
                result = None
            except ChildGone:
                raise self._died(format) from None
            if result is None:
                self._stop()
                raise Unreadable(
                    "timeout",
                    f"the {format} reader took over {timeout:g}s (DOCSYNC_READ_TIMEOUT)",
                )
            if isinstance(result, Unreadable) and result.detail == too_large(memory_mb).detail:
                self._stop()  # a fresh child for the next file, not one with a bloated heap
        if isinstance(result, Unreadable):
            raise result
        if not isinstance(result, Extracted):
            self._stop()  # out of step with its child: a fresh one for the next file
            raise Unreadable("reader_crashed", f"the {format} reader answered out of turn")
        return result

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _start(self, memory_mb: int, timeout: float) -> Child[Request, Answer] | None:
        """The ready child (started, and waited for up to `timeout` seconds, when there is
        none with this cap); None when it was not ready in time."""
        child = self._child
        if child is not None and child.alive and memory_mb == self._memory_mb:
            return child
        self._stop()
        child = self._child = Child(
            "docsync.worker.formats.isolated", [str(memory_mb)], new_session=True
        )
        self._memory_mb = memory_mb
        try:
            ready = child.receive(timeout)
        except ChildTimeout:
            return None
        self._unresident = int(ready) if isinstance(ready, int) else 0
        return child

    def _died(self, format: str) -> Unreadable:
        """Reap the child that died on a file, and say why: for want of memory when its
        resident peak and unresident mappings came near its cap (PDFium aborts where an
        allocation fails, so the death itself tells no more), else a crash. A SIGKILL came
        from outside (the OOM killer, a person): a crash, which may not happen again."""
        child, memory_mb, unresident = self._child, self._memory_mb, self._unresident
        process = child.process if child is not None else None
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
        child, self._child = self._child, None
        self._unresident = None
        if child is not None:
            child.close()
            with contextlib.suppress(OSError):  # its Tesseract, if one is running
                os.killpg(child.pid, signal.SIGKILL)
            child.kill()
            child.wait(5)


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


_READER = ReaderProcess()
atexit.register(_READER.close)


def extract_isolated(
    format: str,
    raw: bytes,
    *,
    timeout: float,
    memory_mb: int = DEFAULT_MEMORY_MB,
    ocr: OcrOptions = OCR_OFF,
) -> Extracted:
    """`extract` in the shared child process, bounded by `timeout` seconds and `memory_mb`
    MiB of address space."""
    return _READER.extract(format, raw, timeout=timeout, memory_mb=memory_mb, ocr=ocr)


if __name__ == "__main__":
    # The child: argv holds its memory cap in MiB, then the descriptor of its channel.
    _serve(Channel(int(sys.argv[-1])), int(sys.argv[1]))
