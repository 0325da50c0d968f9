"""E-books (`.epub`, EPUB 2 and 3): the ZIP's container names the package document (OPF),
whose spine gives the chapters in reading order; each chapter (XHTML) is read by the HTML
reader (worker/formats/html.py), so its headings become Markdown headings and its tables,
lists and code are kept. Chapters are joined by a blank line, each file once (a spine may
list fragments of one file). The title, author and language come from the OPF's Dublin
Core metadata. Written with the standard library and lxml: EbookLib is AGPL.

An e-book under DRM lists its encrypted parts in META-INF/encryption.xml: `encrypted`
(the font obfuscation of EPUB 3 and Adobe hides fonts only, and is no reason to skip).
"""

from __future__ import annotations

import posixpath
import zipfile
from urllib.parse import unquote

from trafilatura.utils import decode_file

from docsync.worker.formats import EPUB, Extracted, Unreadable
from docsync.worker.formats.html import page_markdown
from docsync.worker.formats.package import member, open_zip, parse_xml
from docsync.worker.formats.pages import MAX_TEXT_CHARS
from docsync.worker.formats.text import has_text, metadata

MAX_CHAPTERS = 10_000
_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"
_OPF = "{http://www.idpf.org/2007/opf}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_ENC = "{http://www.w3.org/2001/04/xmlenc#}"
_FONT_OBFUSCATION = frozenset({
    "http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC",
})  # fmt: skip
_HTML_TYPES = frozenset({"application/xhtml+xml", "text/html"})
KIND = ".epub"


def read_epub(raw: bytes) -> Extracted:
    package = open_zip(raw, KIND)
    names = set(package.namelist())
    if "META-INF/encryption.xml" in names and _drm(package):
        raise Unreadable("encrypted", "the e-book is encrypted (DRM)")
    container = parse_xml(member(package, "META-INF/container.xml", KIND), "container.xml", KIND)
    rootfile = container.find(f".//{_CONTAINER}rootfile")
    opf_path = rootfile.get("full-path", "") if rootfile is not None else ""
    if not opf_path:
        raise Unreadable("corrupt", "META-INF/container.xml names no package document")
    opf = parse_xml(member(package, opf_path, KIND), opf_path, KIND)
    chapters = _spine(opf, posixpath.dirname(opf_path))
    if len(chapters) > MAX_CHAPTERS:
        raise Unreadable("too_large", f"{len(chapters):,} chapters: more than {MAX_CHAPTERS:,}")
    texts: list[str] = []
    size = 0
    for name in chapters:
        if name not in names:
            continue  # a spine entry whose file is missing: the rest of the book still reads
        text = page_markdown(decode_file(member(package, name, KIND)))
        if has_text(text):
            texts.append(text)
            size += len(text) + 2
        if size > MAX_TEXT_CHARS:
            raise Unreadable("too_large", f"its text runs past {MAX_TEXT_CHARS:,} characters")
    text = "\n\n".join(texts)
    if not has_text(text):
        raise Unreadable("no_text", "no chapter holds text")
    title, tags, meta = metadata(_properties(opf))
    return Extracted(text, EPUB, title=title, tags=tags, meta=meta)


def _spine(opf: object, base: str) -> list[str]:
    """The package's chapter files in reading order, each once."""
    manifest: dict[str, tuple[str, str]] = {}
    for item in opf.iter(f"{_OPF}item"):  # type: ignore[attr-defined]
        href = unquote(item.get("href", "")).partition("#")[0]
        manifest[item.get("id", "")] = (href, item.get("media-type", ""))
    chapters: list[str] = []
    for ref in opf.iter(f"{_OPF}itemref"):  # type: ignore[attr-defined]
        href, media_type = manifest.get(ref.get("idref", ""), ("", ""))
        if not href or media_type not in _HTML_TYPES:
            continue
        name = posixpath.normpath(posixpath.join(base, href))
        if name not in chapters:
            chapters.append(name)
    return chapters


def _drm(package: zipfile.ZipFile) -> bool:
    root = parse_xml(member(package, "META-INF/encryption.xml", KIND), "encryption.xml", KIND)
    for data in root.iter(f"{_ENC}EncryptedData"):
        method = data.find(f"{_ENC}EncryptionMethod")
        if method is None or method.get("Algorithm") not in _FONT_OBFUSCATION:
            return True
    return False


def _properties(opf: object) -> dict[object, object]:
    fields: dict[object, object] = {}
    for name, key in (("title", "title"), ("creator", "author"), ("language", "language")):
        found = opf.find(f".//{_DC}{name}")  # type: ignore[attr-defined]
        if found is not None and (found.text or "").strip():
            fields[key] = found.text
    subjects = [s.text for s in opf.iter(f"{_DC}subject") if s.text]  # type: ignore[attr-defined]
    if subjects:
        fields["tags"] = ", ".join(subjects)
    return fields
