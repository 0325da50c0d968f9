"""Word (.docx): python-docx (MIT). Paragraphs and tables in document order; a paragraph in
a Heading style (or Title) becomes a Markdown heading of its level, so the chunker cuts
before it as before any heading; list items keep a `- `; a table is one line per row, cells
joined by ` | `. The core properties give the title, author and keywords.

A legacy `.doc` and a password-protected `.docx` are both OLE compound files, not ZIPs: the
second holds an `EncryptedPackage` stream, which tells them apart.
"""

from __future__ import annotations

import io
import re
import zipfile

from docsync.worker.formats import DOCX, Extracted, Unreadable
from docsync.worker.formats.text import has_text, metadata

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
_HEADING = re.compile(r"^Heading ([1-9])$")
PARAGRAPH_JOIN = "\n\n"


def read_docx(raw: bytes) -> Extracted:
    if raw.startswith(_OLE_MAGIC):
        if _ENCRYPTED_STREAM in raw:
            raise Unreadable("encrypted", "the Word file needs a password")
        raise Unreadable("corrupt", "a legacy Word (.doc) file, not .docx: save it as .docx")
    import docx
    from docx.opc.exceptions import OpcError

    try:
        document = docx.Document(io.BytesIO(raw))
        blocks = [block for block in _blocks(document) if block]
        core = document.core_properties
        properties: dict[object, object] = {
            "title": core.title,
            "author": core.author,
            "subject": core.subject,
            "tags": core.keywords,
        }
    except (OpcError, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise Unreadable("corrupt", f"not a readable .docx ({type(exc).__name__}: {exc})") from None
    text = PARAGRAPH_JOIN.join(blocks)
    if not has_text(text):
        raise Unreadable("no_text", "the document holds no text")
    title, tags, meta = metadata({k: v for k, v in properties.items() if v})
    return Extracted(text, DOCX, title=title, tags=tags, meta=meta)


def _blocks(document: object) -> list[str]:
    from docx.table import Table

    blocks: list[str] = []
    for item in document.iter_inner_content():  # type: ignore[attr-defined]
        if isinstance(item, Table):
            rows = []
            for row in item.rows:
                cells = [" ".join(cell.text.split()) for cell in row.cells]
                if any(cells):
                    rows.append(" | ".join(cells))
            blocks.append("\n".join(rows))
        else:
            blocks.append(_paragraph(item))
    return blocks


def _paragraph(paragraph: object) -> str:
    text = str(paragraph.text).strip()  # type: ignore[attr-defined]
    if not text:
        return ""
    style = paragraph.style  # type: ignore[attr-defined]
    name = str(style.name or "") if style is not None else ""
    heading = _HEADING.match(name or "")
    if heading:
        return "#" * int(heading.group(1)) + " " + " ".join(text.split())
    if name == "Title":
        return "# " + " ".join(text.split())
    if name and name.startswith("List"):
        return "- " + text
    return text
