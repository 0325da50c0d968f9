"""What of an HTML manual page's main content survives extraction: its headings (as Markdown
headings of the same level), the text of its table cells, and its `pre` blocks (as fenced or
indented code). The main content is found by the manual's own markup, not the reader's rules:
Sphinx's `role="main"` block, or the body without SQLite's `nosearch` menus.

    python tests/html_coverage.py DIR...     counts over every .html file under DIR
"""

from __future__ import annotations

import re
import sys
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree
from lxml.html import HtmlElement, document_fromstring

_FENCED = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n(.*?)\n[ \t]*\1[ \t]*$", re.M | re.S)
_INDENTED = re.compile(r"(?:^    [^\n]*\n?)+", re.M)
_MARKER = re.compile(r"^[ \t]*(- |\d+\. )", re.M)  # list items' markers are not text
_ATX = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t]*$", re.M)


_BLOCKS = ("p", "div", "dl", "dt", "dd", "ul", "ol", "li", "pre", "table", "tr", "td", "th")
_NESTED = ("p", "div", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6")


@dataclass
class Coverage:
    headings: int = 0
    headings_kept: int = 0
    cells: int = 0
    cells_kept: int = 0
    pres: int = 0
    pres_kept: int = 0
    missing: list[str] = field(default_factory=list)

    def add(self, other: Coverage) -> None:
        for name in ("headings", "headings_kept", "cells", "cells_kept", "pres", "pres_kept"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.missing.extend(other.missing)

    def __str__(self) -> str:
        return (
            f"headings {self.headings_kept}/{self.headings}, cells {self.cells_kept}/"
            f"{self.cells}, pre {self.pres_kept}/{self.pres}"
        )


def normal(text: str) -> str:
    """Text as compared: whitespace collapsed; backticks, `¶` and escapes left out."""
    text = text.replace("`", "").replace("¶", "").replace("\\", "")
    return " ".join(text.split())


def main_of(raw: bytes) -> HtmlElement:
    root = document_fromstring(raw)
    etree.strip_elements(root, "script", "style", with_tail=False)
    for element in root.xpath("//*[contains(concat(' ', @class, ' '), ' headerlink ')]"):
        element.drop_tree()
    for br in root.iter("br"):  # a line break reads as a space
        br.tail = " " + (br.tail or "")
    main = root.xpath("//*[@role='main']")
    if main:
        return main[0]
    body = root.find("body")
    for element in body.xpath(".//div[@class='nosearch']"):
        element.drop_tree()
    return body


def _spaced_text(element: HtmlElement) -> str:
    """The element's text with a space where a block starts or ends (as a browser shows it)."""
    copy = deepcopy(element)
    for inner in copy.iterdescendants(*_BLOCKS):
        inner.text = " " + (inner.text or "")
        inner.tail = " " + (inner.tail or "")
    return str(copy.text_content())


def coverage(raw: bytes, extracted: str, name: str = "") -> Coverage:
    main = main_of(raw)
    found = Coverage()
    text = normal(_MARKER.sub("", extracted))
    plain = normal(extracted)
    headings = {(len(m.group(1)), normal(m.group(2))) for m in _ATX.finditer(extracted)}
    code = [normal(m.group(2)) for m in _FENCED.finditer(extracted)]
    code += [normal(m.group(0)) for m in _INDENTED.finditer(extracted)]
    for element in main.iter("h1", "h2", "h3", "h4", "h5", "h6"):
        wanted = (int(element.tag[1]), normal(element.text_content()))
        if not wanted[1] or next(element.iterdescendants(*_NESTED), None) is not None:  # left open
            continue
        found.headings += 1
        if wanted in headings:
            found.headings_kept += 1
        else:
            found.missing.append(f"{name}: heading {wanted}")
    for element in main.iter("td", "th"):
        wanted_text = normal(_spaced_text(element))
        if not wanted_text:
            continue
        found.cells += 1
        if wanted_text in text or wanted_text in plain:
            found.cells_kept += 1
        else:
            found.missing.append(f"{name}: cell {wanted_text[:80]!r}")
    for element in main.iter("pre"):
        wanted_text = normal(element.text_content())
        if not wanted_text:
            continue
        found.pres += 1
        if any(wanted_text in block for block in code):
            found.pres_kept += 1
        else:
            found.missing.append(f"{name}: pre {wanted_text[:80]!r}")
    return found


def main(folders: list[str]) -> None:
    from docsync.worker.formats.html import read_html

    for folder in folders:
        total = Coverage()
        for path in sorted(Path(folder).rglob("*.html")):
            raw = path.read_bytes()
            try:
                extracted = read_html(raw).text
            except Exception as exc:  # a page with no text counts as lost
                print(f"{path}: {exc}")
                extracted = ""
            total.add(coverage(raw, extracted, str(path.relative_to(folder))))
        print(f"{folder}: {total}")
        for line in total.missing[:15]:
            print("  missing", line[:160])


if __name__ == "__main__":
    main(sys.argv[1:])
