"""Spreadsheets: Excel (`.xlsx`, openpyxl in read-only mode, MIT: each cell's last computed
value, never its formula) and comma-separated values (`.csv`, the standard library's `csv`
with its dialect sniffed); OpenDocument sheets (`.ods`) in worker/formats/sheets_odf.py.

A sheet is a section (`# Sales`), its rows one line each with cells joined by ` | `. The
rows are written in blocks of at most BLOCK_CHARS characters, and every block after a
sheet's first begins with the sheet's header row again, so a chunk of rows reads on its own
("Name | Age" over "Vera Rubin | 88"). Each block is a page (`Extracted.pages`) labelled by
its cell range (`Sales!A31:F60`, in `Extracted.labels`): a chunk's `page_label` and
`page_label_end` say which cells it holds, and a hit is cited `book.xlsx Sales!A31:F60`.
The header row is the first of a sheet's first rows that fills its widest row with text
(the notes people write above a table are not it); a sheet without one repeats nothing.

Bounds: a workbook of more than MAX_CELLS cells (empty ones within rows included, since
reading them costs time too) is skipped as `too_large`: at once where an `.xlsx` sheet
declares its size (its dimension), else as soon as reading passes the bound (about two
seconds of openpyxl), so a sheet of a million cells never runs into the read timeout.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
import zipfile
from collections.abc import Iterable, Iterator

from docsync.worker.formats import CSV, XLSX, Extracted, Unreadable
from docsync.worker.formats.package import open_zip
from docsync.worker.formats.pages import PageWriter, one_line
from docsync.worker.formats.text import metadata, read_text

MAX_CELLS = 200_000
BLOCK_CHARS = 500
HEADER_SEARCH_ROWS = 20
CELL_JOIN = " | "
NO_TEXT = "no sheet holds a value"
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
Row = tuple[int, list[str]]  # the row's number (1-based) and its cells' text


def column_name(number: int) -> str:
    """1 -> A, 27 -> AA."""
    name = ""
    while number > 0:
        number, rest = divmod(number - 1, 26)
        name = chr(65 + rest) + name
    return name


class SheetWriter:
    """Writes sheets into a `PageWriter`, counting cells against MAX_CELLS."""

    def __init__(self, max_cells: int = MAX_CELLS) -> None:
        self.pages = PageWriter()
        self.max_cells = max_cells
        self.cells = 0

    def count(self, cells: int) -> None:
        self.cells += cells
        if self.cells > self.max_cells:
            raise Unreadable(
                "too_large", f"more than {self.max_cells:,} cells (a sheet this large is data)"
            )

    def declared(self, rows: int | None, columns: int | None) -> None:
        """A sheet's size as its file declares it (an `.xlsx` sheet's dimension): one that
        says it is over the bound is skipped before any row is read."""
        cells = (rows or 0) * (columns or 0)
        if self.cells + cells > self.max_cells:
            raise Unreadable(
                "too_large",
                f"a sheet of {rows:,} rows by {columns:,} columns: more than "
                f"{self.max_cells:,} cells (a sheet this large is data)",
            )

    def sheet(self, name: str, rows: Iterable[Row]) -> None:
        """One sheet (`name` "" for a CSV file: no heading, ranges without a sheet)."""
        rows = iter(rows)
        head: list[Row] = []
        for row in rows:
            if any(row[1]):
                head.append(row)
            if len(head) >= HEADER_SEARCH_ROWS:
                break
        if not head:
            return
        header = _header(head)
        prefix = "" if not name else (name if _PLAIN_NAME.match(name) else f"'{name}'") + "!"
        heading = name
        block: list[Row] = []
        size = 0
        for row in _chain(head, rows):
            line = _line(row[1])
            if not line:
                continue
            if block and size + len(line) > BLOCK_CHARS:
                self._block(heading, prefix, header, block)
                heading, block, size = "", [], 0
            block.append(row)
            size += len(line) + 1
        if block:
            self._block(heading, prefix, header, block)

    def _block(self, heading: str, prefix: str, header: Row | None, block: list[Row]) -> None:
        lines = [_line(cells) for _, cells in block]
        if header is not None and block[0][0] > header[0]:
            lines.insert(0, _line(header[1]))  # the header again, over rows that follow it
        width = max(len(_trimmed(cells)) for _, cells in block)
        label = f"{prefix}A{block[0][0]}:{column_name(max(width, 1))}{block[-1][0]}"
        self.pages.page(heading, ["\n".join(lines)], label, own=True)


def _chain(head: list[Row], rest: Iterator[Row]) -> Iterator[Row]:
    yield from head
    yield from rest


def _header(head: list[Row]) -> Row | None:
    """The first row that fills the widest of the first rows, mostly with text (a year may
    head a column; a row of figures is data)."""
    widest = max(sum(1 for c in cells if c) for _, cells in head)
    for row in head:
        filled = [c for c in row[1] if c]
        words = sum(1 for c in filled if not _is_number(c))
        if len(filled) == widest and 2 * words > len(filled):
            return row
    return None


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def _trimmed(cells: list[str]) -> list[str]:
    end = len(cells)
    while end and not cells[end - 1]:
        end -= 1
    return cells[:end]


def _line(cells: list[str]) -> str:
    return CELL_JOIN.join(_trimmed(cells)).strip()


def cell_text(value: object) -> str:
    """A cell's value as a person reads it: 12 not 12.0, a date without a midnight time."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, datetime.datetime):
        return value.date().isoformat() if value.time() == datetime.time() else value.isoformat()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return one_line(str(value))


def read_xlsx(raw: bytes, max_cells: int = MAX_CELLS) -> Extracted:
    open_zip(raw, ".xlsx")  # bounds, encryption, a broken ZIP: before openpyxl sees it
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    writer = SheetWriter(max_cells)
    try:
        book = openpyxl.load_workbook(
            io.BytesIO(raw), read_only=True, data_only=True, keep_links=False
        )
        try:
            for sheet in book.worksheets:
                writer.declared(sheet.max_row, sheet.max_column)
                writer.sheet(sheet.title, _xlsx_rows(sheet, writer))
            props = book.properties
            fields = {"title": props.title, "author": props.creator, "subject": props.subject}
            fields["tags"] = props.keywords
        finally:
            book.close()
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, TypeError) as exc:
        raise Unreadable("corrupt", f"not a readable .xlsx ({type(exc).__name__}: {exc})") from None
    title, tags, meta = metadata({k: v for k, v in fields.items() if v})
    return writer.pages.extracted(XLSX, NO_TEXT, title=title, tags=tags, meta=meta)


def _xlsx_rows(sheet: object, writer: SheetWriter) -> Iterator[Row]:
    rows = sheet.iter_rows(min_row=1, values_only=True)  # type: ignore[attr-defined]
    for number, values in enumerate(rows, 1):
        writer.count(max(len(values), 1))
        yield number, [cell_text(v) for v in values]


CSV_SNIFF_CHARS = 16_384


def read_csv(raw: bytes, max_cells: int = MAX_CELLS) -> Extracted:
    try:
        decoded = read_text(raw, CSV)
    except Unreadable as exc:
        raise Unreadable("corrupt" if exc.reason != "empty" else "no_text", exc.detail) from None
    text = decoded.text
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            text[:CSV_SNIFF_CHARS], delimiters=",;\t|"
        )
    except csv.Error:
        dialect = csv.excel
    writer = SheetWriter(max_cells)
    try:
        writer.sheet("", _csv_rows(csv.reader(io.StringIO(text, newline=""), dialect), writer))
    except csv.Error as exc:
        raise Unreadable("corrupt", f"not readable as CSV ({exc})") from None
    return writer.pages.extracted(CSV, NO_TEXT)


def _csv_rows(reader: Iterator[list[str]], writer: SheetWriter) -> Iterator[Row]:
    for number, values in enumerate(reader, 1):  # records, not lines: a cell may hold a break
        writer.count(max(len(values), 1))
        yield number, [one_line(v) for v in values]
