"""OpenDocument spreadsheets (`.ods`): content.xml read as a stream of rows (lxml's
`iterparse`, each row freed once read), written as worker/formats/sheets.py writes every
sheet: one section a sheet, blocks of rows under their header row, cell ranges as labels.

A cell's text is what the sheet shows (`text:p`), so a formula gives its last computed
value. ODF compresses runs of equal rows and cells (`number-rows-repeated`,
`number-columns-repeated`): a run of empty ones is never expanded (a sheet's trailing
1,048,576 empty rows are one element), and a run of equal values counts each cell against
the sheet bound, so a repeated row is no bomb either.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from lxml import etree

from docsync.worker.formats import ODS, Extracted, Unreadable
from docsync.worker.formats.odf import open_odf_package, paragraphs, q
from docsync.worker.formats.package import member
from docsync.worker.formats.sheets import MAX_CELLS, NO_TEXT, Row, SheetWriter

_TABLE, _ROW = q("table:table"), q("table:table-row")
_CELLS = frozenset({q("table:table-cell"), q("table:covered-table-cell")})
_ROWS_REPEATED, _COLUMNS_REPEATED = (
    q("table:number-rows-repeated"),
    q("table:number-columns-repeated"),
)
_NAME = q("table:name")
Events = Iterator[tuple[str, etree._Element]]


def read_ods(raw: bytes, max_cells: int = MAX_CELLS) -> Extracted:
    package, (title, tags, meta) = open_odf_package(raw, ".ods")
    data = member(package, "content.xml", ".ods")
    writer = SheetWriter(max_cells)
    events: Events = etree.iterparse(
        io.BytesIO(data),
        events=("start", "end"),
        tag=(_TABLE, _ROW),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )
    try:
        for event, element in events:
            if event == "start" and element.tag == _TABLE:
                writer.sheet(element.get(_NAME, ""), _rows(events, writer))
    except etree.XMLSyntaxError as exc:
        raise Unreadable("corrupt", f"content.xml in the .ods package is not XML ({exc})") from None
    return writer.pages.extracted(ODS, NO_TEXT, title=title, tags=tags, meta=meta)


def _rows(events: Events, writer: SheetWriter) -> Iterator[Row]:
    """One sheet's rows, up to the end of its table."""
    number = 0
    for event, element in events:
        if element.tag == _TABLE:
            if event == "end":
                return
            continue  # a table inside a cell: its rows read as this sheet's
        if event != "end":
            continue
        repeat = _count(element.get(_ROWS_REPEATED))
        cells = _cells(element, writer)
        _free(element)
        if not any(cells):
            number += repeat
            continue
        for _ in range(repeat):
            number += 1
            writer.count(len(cells))
            yield number, cells


def _cells(row: etree._Element, writer: SheetWriter) -> list[str]:
    """A row's cells' text; runs of empty cells expanded only where a value follows them."""
    cells: list[str] = []
    empty = 0
    for cell in row:
        if cell.tag not in _CELLS:
            continue
        repeat = _count(cell.get(_COLUMNS_REPEATED))
        text = " ".join(" ".join(paragraphs(cell)).split())
        if not text:
            empty += repeat
            continue
        if len(cells) + empty + repeat > writer.max_cells:
            writer.count(writer.max_cells + 1)  # a row wider than the bound: too_large
        cells.extend([""] * empty)
        cells.extend([text] * repeat)
        empty = 0
    return cells


def _count(value: str | None) -> int:
    return int(value) if value and value.isdigit() and int(value) > 0 else 1


def _free(element: etree._Element) -> None:
    """Drop a row read, and the rows before it, from the tree being built."""
    element.clear()
    parent = element.getparent()
    while parent is not None and element.getprevious() is not None:
        del parent[0]
