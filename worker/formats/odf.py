"""OpenDocument (ODF 1.2/1.3: LibreOffice, OpenOffice, Calligra): the package and its text,
read with lxml (already a dependency; no ODF library needed, and odfpy's GPL/LGPL/Apache
triple licence is avoided). `.odt` text is read here; slides (`.odp`) in
worker/formats/slides.py and sheets (`.ods`) in worker/formats/sheets_odf.py.

A text document's body in order: `text:h` headings become Markdown headings of their outline
level (offsets kept in `Extracted.headings`, so a `# comment` in a paragraph stays text),
paragraphs, list items (`- `, nested ones indented), tables one line a row with cells joined
by ` | `; a table of contents is left out (it repeats the headings). The title, author and
keywords come from meta.xml. A password-protected document says so in its manifest (its
parts are ciphertext): `encrypted`.
"""

from __future__ import annotations

import zipfile

from lxml import etree

from docsync.worker.formats import ODT, Extracted, Unreadable
from docsync.worker.formats.package import member, open_zip, parse_xml
from docsync.worker.formats.text import has_text, metadata

NS = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
    "presentation": "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0",
    "dc": "http://purl.org/dc/elements/1.1/",
    "meta": "urn:oasis:names:tc:opendocument:xmlns:meta:1.0",
    "manifest": "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0",
}
MAX_SPACES = 64  # `text:s` repeats a space; more than this is not text


def q(name: str) -> str:
    """`text:p` as lxml's `{namespace}p`."""
    prefix, _, local = name.partition(":")
    return f"{{{NS[prefix]}}}{local}"


_SPACE, _TAB, _BREAK = q("text:s"), q("text:tab"), q("text:line-break")
_ANNOTATION, _NOTE_CITATION = q("office:annotation"), q("text:note-citation")


def open_odf(raw: bytes, kind: str) -> tuple[etree._Element, Metadata]:
    """The root of content.xml, and the title, keywords and other fields of meta.xml."""
    package, meta = open_odf_package(raw, kind)
    return parse_xml(member(package, "content.xml", kind), "content.xml", kind), meta


def open_odf_package(raw: bytes, kind: str) -> tuple[zipfile.ZipFile, Metadata]:
    """The package, checked (bounds, encryption), and the fields of its meta.xml."""
    package = open_zip(raw, kind)
    if _encrypted(package, kind):
        raise Unreadable("encrypted", f"the {kind} document needs a password")
    return package, _meta(package, kind)


Metadata = tuple[str, tuple[str, ...], dict[str, str]]


def _encrypted(package: zipfile.ZipFile, kind: str) -> bool:
    if "META-INF/manifest.xml" not in package.namelist():
        return False
    manifest = parse_xml(member(package, "META-INF/manifest.xml", kind), "manifest.xml", kind)
    return manifest.find(f".//{q('manifest:encryption-data')}") is not None


def _meta(package: zipfile.ZipFile, kind: str) -> Metadata:
    if "meta.xml" not in package.namelist():
        return "", (), {}
    root = parse_xml(member(package, "meta.xml", kind), "meta.xml", kind)
    fields: dict[object, object] = {}
    for name, key in (("dc:title", "title"), ("dc:creator", "author"), ("dc:subject", "subject")):
        found = root.find(f".//{q(name)}")
        if found is not None and (found.text or "").strip():
            fields[key] = found.text
    keywords = [k.text for k in root.iter(q("meta:keyword")) if k.text and k.text.strip()]
    if keywords:
        fields["tags"] = ", ".join(keywords)
    return metadata(fields)


def text_of(element: etree._Element) -> str:
    """An element's text as ODF means it: `text:s` spaces, tabs and line breaks kept;
    annotations (comments) and footnote marks left out."""
    parts: list[str] = []
    _text_into(element, parts)
    return "".join(parts)


def _text_into(element: etree._Element, parts: list[str]) -> None:
    if element.text:
        parts.append(element.text)
    for child in element:
        tag = child.tag
        if tag == _SPACE:
            count = child.get(q("text:c"), "1")
            parts.append(" " * min(int(count) if count.isdigit() else 1, MAX_SPACES))
        elif tag == _TAB:
            parts.append("\t")
        elif tag == _BREAK:
            parts.append("\n")
        elif tag not in (_ANNOTATION, _NOTE_CITATION) and isinstance(tag, str):
            _text_into(child, parts)
        if child.tail:
            parts.append(child.tail)


def paragraphs(element: etree._Element) -> list[str]:
    """The text of every paragraph and heading inside `element`, in order, one each;
    comments (annotations) and deleted text of tracked changes left out."""
    texts: list[str] = []
    _paragraphs_into(element, texts)
    return texts


def _paragraphs_into(element: etree._Element, texts: list[str]) -> None:
    for child in element:
        if child.tag in _PARAGRAPHS:
            text = text_of(child).strip()
            if has_text(text):
                texts.append(text)
        elif child.tag not in _SKIPPED and isinstance(child.tag, str):
            _paragraphs_into(child, texts)


_H, _P, _LIST, _TABLE = q("text:h"), q("text:p"), q("text:list"), q("table:table")
_CELL = q("table:table-cell")
_PARAGRAPHS = frozenset({_P, _H})
# Never the document's running text: generated indexes (they repeat the headings), comments,
# the deleted text that tracked changes keep.
_SKIPPED = frozenset({
    q("text:table-of-content"), q("text:alphabetical-index"), _ANNOTATION,
    q("text:tracked-changes"),
})  # fmt: skip


def read_odt(raw: bytes) -> Extracted:
    content, (title, tags, meta) = open_odf(raw, ".odt")
    body = content.find(f"{q('office:body')}/{q('office:text')}")
    if body is None:
        raise Unreadable("corrupt", "content.xml holds no office:text body")
    blocks: list[tuple[str, bool]] = []
    _blocks(body, blocks)
    text, headings = _join(blocks)
    if not has_text(text):
        raise Unreadable("no_text", "the document holds no text")
    return Extracted(text, ODT, headings=headings, title=title, tags=tags, meta=meta)


def _blocks(element: etree._Element, out: list[tuple[str, bool]]) -> None:
    """(text, is heading) of each block under `element`, in document order."""
    for child in element:
        tag = child.tag
        if tag == _H:
            level = child.get(q("text:outline-level"), "1")
            heading = " ".join(text_of(child).split())
            depth_of = min(max(int(level), 1), 6) if level.isdigit() else 1
            if heading:
                out.append(("#" * depth_of + " " + heading, True))
        elif tag == _P:
            out.append((text_of(child).strip(), False))
        elif tag == _LIST:
            lines: list[str] = []
            for item in child:
                items = [" ".join(p.split()) for p in paragraphs(item)]
                if items:
                    lines.append("- " + items[0])
                    lines.extend("  " + i for i in items[1:])
            out.append(("\n".join(lines), False))
        elif tag == _TABLE:
            out.append(("\n".join(table_rows(child)), False))
        elif tag not in _SKIPPED and isinstance(tag, str):
            _blocks(child, out)


def table_rows(table: etree._Element) -> list[str]:
    """A table one line a row, its cells' text joined by ` | `."""
    rows: list[str] = []
    for row in table.iter(q("table:table-row")):
        cells = [" ".join(" ".join(paragraphs(c)).split()) for c in row if c.tag == _CELL]
        if any(cells):
            rows.append(" | ".join(cells).strip(" |"))
    return rows


def _join(blocks: list[tuple[str, bool]]) -> tuple[str, tuple[int, ...]]:
    parts: list[str] = []
    headings: list[int] = []
    offset = 0
    for text, heading in blocks:
        if not has_text(text):
            continue
        if parts:
            offset += 2
        if heading:
            headings.append(offset)
        parts.append(text)
        offset += len(text)
    return "\n\n".join(parts), tuple(headings)
