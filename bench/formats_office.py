"""bench/formats.py's rows for slides, sheets, OpenDocument text, e-books and mail: docsync's
readers against MarkItDown (MIT; `pip install 'markitdown[pptx,xlsx]'`) where it reads the
format (`.pptx`, `.xlsx`, `.csv`, `.epub`; it has no converter for `.odp`, `.ods`, `.odt` or
`.eml`: those rows are docsync's alone).

Units: slides (`.pptx`, `.odp`), sheets (`.xlsx`, `.ods`, `.csv`: a CSV file is one sheet),
documents (`.odt`, `.epub`, `.eml`), counted once by docsync's readers, so both readers of a
format are divided by the same count. Inputs: the real files in tests/documents, and
generated ones made here (deterministic) so that each format has some bulk: a 300-slide
deck of each kind, a 6-sheet workbook of 60,000 cells of each kind and a CSV of 20,000
rows, 200 mails (`--office DIR` adds folders).
"""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ROOT / "tests" / "documents"
OFFICE_KINDS = ("pptx", "odp", "xlsx", "ods", "csv", "odt", "epub", "eml")
MARKITDOWN_KINDS = frozenset({"pptx", "xlsx", "csv", "epub"})
UNITS = {"pptx": "slides", "odp": "slides", "xlsx": "sheets", "ods": "sheets", "csv": "sheets"}
Read = Callable[[bytes], object]


def office_readers(kind: str) -> tuple[str, ...]:
    return ("docsync", "markitdown") if kind in MARKITDOWN_KINDS else ("docsync",)


def office_inputs(folders: Sequence[Path]) -> dict[str, list[Path]]:
    """The files of each kind: tests/documents and `folders`, and the generated ones."""
    generated = Path(tempfile.mkdtemp(prefix="docsync-bench-office-"))
    _generate(generated)
    found: dict[str, list[Path]] = {kind: [] for kind in OFFICE_KINDS}
    for folder in (DOCUMENTS, generated, *folders):
        for path in sorted(folder.rglob("*")):
            kind = path.suffix.lower().lstrip(".")
            if kind in found and path.is_file() and _readable(kind, path):
                found[kind].append(path)
    return {kind: paths for kind, paths in found.items() if paths}


def units(kind: str, paths: Sequence[Path]) -> int:
    """Slides, sheets or documents in `paths`, as docsync reads them."""
    if kind not in UNITS:
        return len(paths)
    total = 0
    for path in paths:
        extracted = _docsync(kind)(path.read_bytes())
        if UNITS[kind] == "slides":
            total += len(extracted.pages)  # type: ignore[attr-defined]
        else:
            labels = extracted.labels  # type: ignore[attr-defined]
            total += len({label.rpartition("!")[0] for label in labels}) or 1
    return total


def measure_office(kind: str, reader: str, paths: Sequence[Path], rounds: int) -> float:
    """Seconds to read every file `rounds` times (in the reader's own process)."""
    read = _docsync(kind) if reader == "docsync" else _markitdown(kind)
    raws = [p.read_bytes() for p in paths]
    read(raws[0])  # imports and first-call set-up are not reading speed
    started = time.perf_counter()
    for _ in range(rounds):
        for raw in raws:
            read(raw)
    return time.perf_counter() - started


def _docsync(kind: str) -> Read:
    from docsync.worker.formats.isolated import extract

    return lambda raw: extract(kind, raw)


def _markitdown(kind: str) -> Read:
    from markitdown import MarkItDown, StreamInfo

    converter = MarkItDown()
    info = StreamInfo(extension=f".{kind}")
    return lambda raw: converter.convert_stream(io.BytesIO(raw), stream_info=info).text_content


def _readable(kind: str, path: Path) -> bool:
    from docsync.worker.formats import Unreadable

    try:
        _docsync(kind)(path.read_bytes())
    except Unreadable:
        return False
    return True


def _generate(folder: Path) -> None:
    import openpyxl
    import pptx

    from tests import office_files as make

    deck = pptx.Presentation()
    for number in range(1, 301):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Quarter {number} review"
        slide.placeholders[1].text = f"Sales rose in region {number}.\nCosts held.\nHiring paused."
        slide.notes_slide.notes_text_frame.text = f"Remind the board about item {number}."
    deck.save(str(folder / "bench.pptx"))
    pages = "".join(
        make.odp_slide(f"Quarter {n} review", f"Sales rose in region {n}.", f"Item {n}.")
        for n in range(1, 301)
    )
    (folder / "bench.odp").write_bytes(
        make.odf(make.ODP_MIME, f"<office:presentation>{pages}</office:presentation>")
    )
    book = openpyxl.Workbook(write_only=True)
    for sheet_number in range(6):
        sheet = book.create_sheet(f"Region {sheet_number}")
        sheet.append([f"Column {c}" for c in range(10)])
        for row in range(1_000):
            sheet.append([f"r{row}c{c}" if c % 2 else row * c for c in range(10)])
    book.save(str(folder / "bench.xlsx"))
    row = "".join(f"<table:table-cell><text:p>v{c}</text:p></table:table-cell>" for c in range(10))
    table = f"<table:table-row>{row}</table:table-row>" * 1_000
    sheets = "".join(f'<table:table table:name="R{n}">{table}</table:table>' for n in range(6))
    (folder / "bench.ods").write_bytes(
        make.odf(make.ODS_MIME, f"<office:spreadsheet>{sheets}</office:spreadsheet>")
    )
    lines = ["id,name,city,amount"] + [f"{n},Name {n},City {n % 97},{n * 7}" for n in range(20_000)]
    (folder / "bench.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for number in range(200):
        make.make_eml(folder / f"mail-{number:03}.eml")
