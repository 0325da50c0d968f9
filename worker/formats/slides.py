"""Slides: PowerPoint (`.pptx`, python-pptx, MIT) and OpenDocument presentations (`.odp`,
lxml on content.xml).

One page a slide: its title as a heading (`# Slide 7` where it has none), the text of its
shapes in order (tables one line a row, cells joined by ` | `, groups looked into), then its
speaker notes after `Notes:`. Each slide's start is a page start (`Extracted.pages`), so a
chunk knows its slide (`page_start`, cited `deck.pptx slide 7`), and a chunk never spans two
slides unless one is tiny. The slides are counted from the package's parts before any is
parsed: a deck of more than MAX_SLIDES is skipped as `too_large` at once.
"""

from __future__ import annotations

import io
import re
import zipfile

from lxml import etree

from docsync.worker.formats import ODP, PPTX, Extracted, Unreadable
from docsync.worker.formats.odf import open_odf, paragraphs, q, table_rows, text_of
from docsync.worker.formats.package import open_zip
from docsync.worker.formats.pages import PageWriter
from docsync.worker.formats.text import metadata

MAX_SLIDES = 5_000
NOTES = "Notes: "
_SLIDE_PART = re.compile(r"^ppt/slides/slide\d+\.xml$")
NO_TEXT = "no slide holds text"


def read_pptx(raw: bytes) -> Extracted:
    package = open_zip(raw, ".pptx")
    _count(sum(1 for n in package.namelist() if _SLIDE_PART.match(n)))
    import pptx
    from pptx.exc import PackageNotFoundError

    try:
        deck = pptx.Presentation(io.BytesIO(raw))
        writer = PageWriter()
        for number, slide in enumerate(deck.slides, 1):
            title, blocks = _pptx_slide(slide)
            writer.page(title or f"Slide {number}", blocks, own=bool(title))
        core = deck.core_properties
        fields = {"title": core.title, "author": core.author, "subject": core.subject}
        fields["tags"] = core.keywords
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, etree.Error) as exc:
        raise Unreadable("corrupt", f"not a readable .pptx ({type(exc).__name__}: {exc})") from None
    title, tags, meta = metadata({k: v for k, v in fields.items() if v})
    return writer.extracted(PPTX, NO_TEXT, title=title, tags=tags, meta=meta)


def _count(slides: int) -> None:
    if slides > MAX_SLIDES:
        raise Unreadable("too_large", f"{slides:,} slides: more than {MAX_SLIDES:,}")


def _pptx_slide(slide: object) -> tuple[str, list[str]]:
    """A slide's title and its blocks: shapes' text, then the notes."""
    shapes = slide.shapes  # type: ignore[attr-defined]
    title_shape = shapes.title
    title = " ".join(title_shape.text_frame.text.split()) if title_shape is not None else ""
    blocks: list[str] = []
    for shape in shapes:
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue
        blocks.extend(_shape_blocks(shape))
    if slide.has_notes_slide:  # type: ignore[attr-defined]
        frame = slide.notes_slide.notes_text_frame  # type: ignore[attr-defined]
        notes = frame.text.strip() if frame is not None else ""
        if notes:
            blocks.append(NOTES + notes)
    return title, blocks


def _shape_blocks(shape: object) -> list[str]:
    from pptx.shapes.group import GroupShape

    if isinstance(shape, GroupShape):
        return [b for child in shape.shapes for b in _shape_blocks(child)]
    if getattr(shape, "has_table", False):
        rows = []
        for row in shape.table.rows:  # type: ignore[attr-defined]
            cells = [" ".join(cell.text.split()) for cell in row.cells]
            if any(cells):
                rows.append(" | ".join(cells))
        return ["\n".join(rows)] if rows else []
    if getattr(shape, "has_text_frame", False):
        lines = [p.text.strip() for p in shape.text_frame.paragraphs]  # type: ignore[attr-defined]
        text = "\n".join(line for line in lines if line)
        return [text] if text else []
    return []


_PAGE, _FRAME, _NOTES = q("draw:page"), q("draw:frame"), q("presentation:notes")
_CLASS = q("presentation:class")
_TABLE = q("table:table")


def read_odp(raw: bytes) -> Extracted:
    content, (title, tags, meta) = open_odf(raw, ".odp")
    body = content.find(f"{q('office:body')}/{q('office:presentation')}")
    if body is None:
        raise Unreadable("corrupt", "content.xml holds no office:presentation body")
    pages = body.findall(_PAGE)
    _count(len(pages))
    writer = PageWriter()
    for number, page in enumerate(pages, 1):
        heading, blocks = _odp_slide(page)
        writer.page(heading or f"Slide {number}", blocks, own=bool(heading))
    return writer.extracted(ODP, NO_TEXT, title=title, tags=tags, meta=meta)


def _odp_slide(page: etree._Element) -> tuple[str, list[str]]:
    title = ""
    blocks: list[str] = []
    for frame in page.iter(_FRAME):
        if any(a.tag == _NOTES for a in frame.iterancestors()):
            continue
        role = frame.get(_CLASS, "")
        if role == "title" and not title:
            title = " ".join(text_of(frame).split())
            continue
        if role in ("page-number", "footer", "header", "date-time"):
            continue
        table = frame.find(f".//{_TABLE}")
        text = "\n".join(table_rows(table)) if table is not None else "\n".join(paragraphs(frame))
        if text:
            blocks.append(text)
    notes = page.find(_NOTES)
    if notes is not None:
        said = "\n".join(
            t
            for frame in notes.iter(_FRAME)
            if frame.get(_CLASS) == "notes"
            for t in paragraphs(frame)
        )
        if said:
            blocks.append(NOTES + said)
    return title, blocks
