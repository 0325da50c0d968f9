"""Reading benchmark: pages/s and chunks/s of docsync's PDF and HTML readers against pypdf
(PDF) and BeautifulSoup's `get_text()` (HTML) over the same files in one run, and each one's
peak memory.

Every reader runs in a fresh process of its own (this script with `--reader NAME`), so its
peak RSS is its own; each reads every file `--rounds` times. docsync's figures are its
readers as the sync runs them (`docsync.worker.formats.pdf.read_pdf`,
`docsync.worker.formats.html.read_html`,
the same code the child process runs), and `docsync+chunk` also cuts the text into chunks with
the model's tokenizer, as a sync does. `pages` counts PDF pages and HTML files.

    python bench/formats.py [--json] [--pdf DIR]... [--html DIR]... [--office DIR]...
        [--kinds pdf,html,office,ocr] [--rounds N] [--ocr-pages N]

Slides, sheets, OpenDocument text, e-books and mail against MarkItDown: the `office` rows,
bench/formats_office.py.

Defaults: the real documents in tests/documents (no one here wrote them). Point `--pdf`
and `--html` at larger folders for steadier figures, e.g. a Debian documentation package's.
Needs the test extra (pypdf, beautifulsoup4, the MiniLM tokenizer).

OCR (where Tesseract is installed): the first `--ocr-pages` pages of tests/documents'
born-digital PDFs, rendered at 150 dpi into a PDF of images (a scan of them), read once by
docsync's PDF reader with OCR and no page cache (`docsync`), read again through a warm page
cache (`docsync-cached`), and by the common alternative: each page rendered at the same
300 dpi and `pytesseract.image_to_string` with its defaults (`pytesseract`), and the same on
one thread (`pytesseract-1thread`, OMP_THREAD_LIMIT=1 as docsync runs it: what the threads
cost). Tesseract runs as a child: its CPU time and peak memory are its own figures
(`tesseract_*`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
from formats_office import (
    OFFICE_KINDS,
    measure_office,
    office_inputs,
    office_readers,
    units,
)
from output import emit

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ROOT / "tests" / "documents"
# Files of the test set that are broken on purpose: not a reading speed.
BROKEN = {"scanned.pdf", "encrypted.pdf", "truncated.pdf", "empty.pdf"}
READERS = {
    "pdf": ("docsync", "docsync+chunk", "pypdf"),
    "html": ("docsync", "docsync+chunk", "bs4"),
}


def files(folders: Sequence[Path], suffixes: tuple[str, ...]) -> list[Path]:
    found = [
        p
        for folder in folders
        for p in sorted(folder.rglob("*"))
        if p.suffix.lower() in suffixes and p.is_file() and p.name not in BROKEN
    ]
    return [p for p in found if p.stat().st_size > 0]


def readable(paths: list[Path], read: Callable[[bytes], tuple[str, int]]) -> list[Path]:
    """The files docsync reads text from: a scanned or broken file is not a reading speed."""
    from docsync.worker.formats import Unreadable

    kept = []
    for path in paths:
        try:
            read(path.read_bytes())
        except Unreadable:
            continue
        kept.append(path)
    return kept


def _docsync_pdf(raw: bytes) -> tuple[str, int]:
    from docsync.worker.formats.pdf import read_pdf

    extracted = read_pdf(raw)
    return extracted.text, len(extracted.pages)


def _docsync_html(raw: bytes) -> tuple[str, int]:
    from docsync.worker.formats.html import read_html

    return read_html(raw).text, 1


def _pypdf(raw: bytes) -> tuple[str, int]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(raw))
    return "\n\n".join(page.extract_text() for page in reader.pages), len(reader.pages)


def _bs4(raw: bytes) -> tuple[str, int]:
    from bs4 import BeautifulSoup

    return BeautifulSoup(raw, "lxml").get_text(), 1


def _chunker() -> Callable[[str], int]:
    from tokenizers import Tokenizer

    from docsync.worker.chunk import chunk_text
    from tests.conftest import minilm_dir

    tokenizer = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tokenizer.no_truncation()  # spans of the whole text, as the sync takes them

    class Spans:
        def token_spans(self, text: str) -> list[tuple[int, int]]:
            encoding = tokenizer.encode(text, add_special_tokens=False)
            return [tuple(o) for o in encoding.offsets]  # type: ignore[misc]

    spans = Spans()
    return lambda text: len(chunk_text(text, tokenizer=spans, max_tokens=256))


def measure(kind: str, reader: str, paths: list[Path], rounds: int) -> dict[str, float]:
    """Run in the reader's own process: time every file `rounds` times."""
    if kind in OFFICE_KINDS:
        seconds = measure_office(kind, reader, paths, rounds)
        return {"seconds": round(seconds, 3), "peak_rss_mb": round(_peak_mb(), 1)}
    read = {
        ("pdf", "docsync"): _docsync_pdf,
        ("pdf", "docsync+chunk"): _docsync_pdf,
        ("pdf", "pypdf"): _pypdf,
        ("html", "docsync"): _docsync_html,
        ("html", "docsync+chunk"): _docsync_html,
        ("html", "bs4"): _bs4,
    }[(kind, reader)]
    chunk = _chunker() if reader == "docsync+chunk" else None
    raws = [p.read_bytes() for p in paths]
    read(raws[0])  # imports and first-call set-up are not reading speed
    pages = chunks = 0
    started = time.perf_counter()
    for _ in range(rounds):
        for raw in raws:
            text, count = read(raw)
            pages += count
            if chunk is not None:
                chunks += chunk(text)
    seconds = time.perf_counter() - started
    peak = _peak_mb()
    result = {"pages_per_s": round(pages / seconds, 1), "seconds": round(seconds, 3)}
    if chunk is not None:
        result["chunks_per_s"] = round(chunks / seconds, 1)
    result["peak_rss_mb"] = round(peak, 1)
    return result


def _peak_mb() -> float:
    """This process's peak resident memory. Not `ru_maxrss`: Linux carries that over an
    exec from the process that forked, here the parent that listed the files."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_reader(kind: str, reader: str, paths: list[Path], rounds: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--reader", f"{kind}:{reader}", "--rounds", str(rounds)]
    out = subprocess.run(
        [*command, *map(str, paths)], check=True, capture_output=True, text=True, cwd=ROOT
    )
    return dict(json.loads(out.stdout))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--pdf", type=Path, action="append", help="a folder of PDFs")
    parser.add_argument("--html", type=Path, action="append", help="a folder of web pages")
    parser.add_argument("--office", type=Path, action="append", help="a folder of office files")
    parser.add_argument(
        "--kinds", default="pdf,html,office,ocr", help="which rows: pdf,html,office,ocr"
    )
    parser.add_argument("--rounds", type=int, default=20, help="reads of every file")
    parser.add_argument("--ocr-pages", type=int, default=8, help="scanned pages OCR'd")
    parser.add_argument("--reader", help=argparse.SUPPRESS)  # kind:name, in the child
    parser.add_argument("paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reader:
        kind, name = args.reader.split(":")
        measured = measure_ocr if kind == "ocr" else measure
        print(json.dumps(measured(kind, name, args.paths, args.rounds)))
        return 0
    kinds = set(args.kinds.split(","))
    inputs = {
        "pdf": readable(files(args.pdf or [DOCUMENTS], (".pdf",)), _docsync_pdf),
        "html": readable(files(args.html or [DOCUMENTS], (".html", ".htm")), _docsync_html),
    }
    inputs = {kind: paths for kind, paths in inputs.items() if kind in kinds}
    results: dict[str, object] = {}
    for kind, paths in inputs.items():
        if not paths:
            raise SystemExit(f"no {kind} files to read")
        row = {name: run_reader(kind, name, paths, args.rounds) for name in READERS[kind]}
        baseline = row[READERS[kind][2]]["pages_per_s"]
        results[kind] = {
            "files": len(paths),
            **row,
            "speedup": round(row["docsync"]["pages_per_s"] / baseline, 2),
        }
    if "office" in kinds:
        results.update(office_rows(args.office or [], args.rounds))
    if "ocr" in kinds:
        results["ocr"] = ocr_results(args.ocr_pages)
    emit(results, as_json=args.json)
    return 0


def office_rows(folders: list[Path], rounds: int) -> dict[str, object]:
    """Slides, sheets, OpenDocument text, e-books and mail (bench/formats_office.py): units
    a second for docsync and MarkItDown, each in its own process, and each one's peak."""
    results: dict[str, object] = {}
    for kind, paths in office_inputs(folders).items():
        count = units(kind, paths) * rounds
        row: dict[str, object] = {"files": len(paths), "units": count // rounds}
        for name in office_readers(kind):
            measured = run_reader(kind, name, paths, rounds)
            row[name] = {"units_per_s": round(count / measured["seconds"], 1), **measured}
        if "markitdown" in row:
            ours, theirs = row["docsync"], row["markitdown"]
            row["speedup"] = round(ours["units_per_s"] / theirs["units_per_s"], 2)  # type: ignore[index]
        results[kind] = row
    return results


# OCR ------------------------------------------------------------------------------------------

OCR_READERS = ("docsync", "docsync-cached", "pytesseract", "pytesseract-1thread")
SCAN_DPI = 150


def ocr_results(pages: int) -> dict[str, object]:
    """OCR's row: pages per second, CPU seconds a page and peak memory of each reader."""
    import shutil
    import tempfile

    if shutil.which("tesseract") is None:
        return {"skipped": "tesseract is not installed"}
    with tempfile.TemporaryDirectory() as folder:
        scan = Path(folder) / "scan.pdf"
        scan.write_bytes(scanned(pages))
        row = {name: run_reader("ocr", name, [scan], 1) for name in OCR_READERS}
    return {
        "pages": pages,
        **row,
        "speedup": round(row["docsync"]["pages_per_s"] / row["pytesseract"]["pages_per_s"], 2),
    }


def scanned(pages: int) -> bytes:
    """The first `pages` pages of the born-digital test PDFs as a scan: images only."""
    import pypdfium2 as pdfium

    images = []
    for path in files([DOCUMENTS], (".pdf",)):
        document = pdfium.PdfDocument(path)
        for index in range(len(document)):
            if len(images) < pages:
                bitmap = document[index].render(scale=SCAN_DPI / 72, grayscale=True)
                images.append(bitmap.to_pil())
    out = io.BytesIO()
    images[0].save(out, format="PDF", save_all=True, append_images=images[1:], resolution=SCAN_DPI)
    return out.getvalue()


def measure_ocr(kind: str, reader: str, paths: list[Path], rounds: int) -> dict[str, float]:
    """Run in the reader's own process: OCR every page of the scan once."""
    import shutil
    import tempfile

    from docsync.worker.formats.ocr import OcrOptions

    raw = paths[0].read_bytes()
    if reader == "pytesseract-1thread":
        os.environ["OMP_THREAD_LIMIT"] = "1"
    with tempfile.TemporaryDirectory() as cache:
        options = OcrOptions(command=shutil.which("tesseract") or "")
        if reader == "docsync-cached":
            options = OcrOptions(command=options.command, cache=cache)
            _docsync_ocr(raw, options)  # fills the cache: the timed read finds every page
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        baseline = reader.startswith("pytesseract")  # the defaults, or them on one thread
        count = _pytesseract_defaults(raw) if baseline else _docsync_ocr(raw, options)
        seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = max(0.0, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    mine = resource.getrusage(resource.RUSAGE_SELF)
    own_cpu = mine.ru_utime + mine.ru_stime - own.ru_utime - own.ru_stime
    return {
        "pages_per_s": round(count / seconds, 2),
        "seconds": round(seconds, 2),
        # all the CPU a page took, rendering and Tesseract: steadier than the wall clock on a
        # busy machine
        "cpu_s_per_page": round((cpu + own_cpu) / count, 2),
        "tesseract_cpu_s_per_page": round(cpu / count, 2),
        "peak_rss_mb": round(_peak_mb(), 1),
        "tesseract_peak_rss_mb": round(after.ru_maxrss / 1024, 1),
    }


def _docsync_ocr(raw: bytes, options: object) -> int:
    from docsync.worker.formats.ocr import OcrOptions
    from docsync.worker.formats.pdf import read_pdf

    assert isinstance(options, OcrOptions)
    return len(read_pdf(raw, options).pages)


def _pytesseract_defaults(raw: bytes) -> int:
    import pypdfium2 as pdfium
    import pytesseract

    document = pdfium.PdfDocument(raw)
    for index in range(len(document)):
        image = document[index].render(scale=300 / 72).to_pil()
        pytesseract.image_to_string(image)
    return len(document)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
