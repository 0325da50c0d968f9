"""An HTML element's content as Markdown, nothing left out: the converter behind
worker/formats/html.py.

    h1-h6           `#` to `######` headings, at the start of a line: the chunker's cuts
    pre             fenced code (an indented block when the code holds a fence line itself),
                    so a `# comment` in it never reads as a heading
    table           one line a row, cells joined by ` | `; a table whose cells hold code,
                    headings or tables (a layout table) gives its cells' blocks in order
    dl              `term: definition` a line when the definition is a sentence or one
                    paragraph; else the term as a paragraph and the definition's blocks after it
    ul, ol          `- ` and `1. ` items, nested ones indented
    code, kbd, ...  `code` (not inside a definition term: an API signature reads as written)

Every other element gives its text; whitespace is collapsed as a browser does, except in
`pre`. A line of running text that would read as a Markdown heading (`# x`, or `---` under a
line) gets a backslash before it, so that only the page's headings make sections.
Deterministic: the same tree gives the same text.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

from lxml.html import HtmlElement

HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCK = frozenset({
    *HEADINGS, "address", "article", "aside", "blockquote", "body", "caption", "center",
    "details", "dd", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form",
    "header", "hr", "html", "legend", "li", "main", "nav", "ol", "p", "pre", "section", "summary",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
})  # fmt: skip
_CODE = frozenset({"code", "kbd", "samp", "tt", "var"})
# What makes a table a layout table: its cells are laid out blocks, not values.
_LAYOUT = frozenset({"pre", "table", *HEADINGS})
_SPACE = re.compile(r"[ \t\n\r\f\v]+")
# Lines the chunker would take for a heading: ATX `#`, or an underline/overline adornment.
_HEADING_LIKE = re.compile(r"^(#{1,6}([ \t]|$)|([=\-~^*+#\"'`:._])\3{2,}[ \t]*$)")
_FENCE_LINE = re.compile(r"^[ \t]*(```|~~~)", re.M)
_BREAK = "\n"  # a `br` inside inline text


@dataclass(frozen=True)
class _Block:
    text: str
    heading: bool = False
    code: bool = False


def to_markdown(root: HtmlElement) -> str:
    """The Markdown of `root`'s content (blocks separated by a blank line)."""
    return "\n\n".join(b.text for b in _Writer().blocks(root))


def inline_text(element: HtmlElement) -> str:
    """`element`'s text on one line, whitespace collapsed, code marked, blocks as spaces."""
    runs: list[tuple[str, bool]] = []
    _inline(element, runs, code=False, plain=_in_term(element))
    return _join(runs).replace(_BREAK, " ").strip()


class _Writer:
    def __init__(self) -> None:
        self.out: list[_Block] = []
        self.runs: list[tuple[str, bool]] = []  # inline text not yet a paragraph

    def blocks(self, root: HtmlElement) -> list[_Block]:
        self._children(root, code=False)
        self._flush()
        return self.out

    def _flush(self) -> None:
        text = _join(self.runs)
        self.runs = []
        lines = [" ".join(line.split()) for line in text.split(_BREAK)]
        lines = [_escape(line) for line in lines if line]
        if lines:
            self.out.append(_Block("\n".join(lines)))

    def _children(self, element: HtmlElement, code: bool) -> None:
        if element.text:
            self.runs.append((element.text, code))
        for child in element:
            if isinstance(child.tag, str):
                self._element(child, code)
            if child.tail:
                self.runs.append((child.tail, code))

    def _element(self, el: HtmlElement, code: bool) -> None:
        tag = el.tag
        if tag == "br":
            self.runs.append((_BREAK, False))
        elif tag not in _BLOCK:
            self._children(el, code or (tag in _CODE and not _in_term(el)))
        else:
            self._flush()
            if tag in HEADINGS:
                self._heading(el)
            elif tag == "pre":
                self._code(el)
            elif tag == "table":
                self._table(el)
            elif tag in ("ul", "ol"):
                self._list(el)
            elif tag == "dl":
                self._definitions(el)
            else:
                self._children(el, code=False)
                self._flush()

    def _heading(self, el: HtmlElement) -> None:
        """A heading; one left open (`<h2>x<h2>`, parsed as holding what follows) is its
        text up to its first block, and the blocks after it are blocks again."""
        first = next((i for i, c in enumerate(el) if c.tag in _BLOCK), None)
        if first is None:
            text = inline_text(el)
        else:
            head = el.makeelement(el.tag)
            head.text = el.text
            head.extend(copy.deepcopy(c) for c in el[:first])
            text = inline_text(head)
        if text:
            self.out.append(_Block("#" * HEADINGS[el.tag] + " " + text, heading=True))
        if first is not None:
            for child in el[first:]:
                self._element(child, code=False)
                if child.tail:
                    self.runs.append((child.tail, False))
            self._flush()

    def _code(self, pre: HtmlElement) -> None:
        code = pre.text_content().rstrip()
        code = code[1:] if code.startswith("\n") else code  # HTML drops a first newline
        code = "\n".join(line.rstrip() for line in code.split("\n")).strip("\n")
        if not code.strip():
            return
        if _FENCE_LINE.search(code):  # it would end a fence: indent it instead
            indented = "\n".join("    " + line for line in code.split("\n"))
            self.out.append(_Block(indented, code=True))
        else:
            self.out.append(_Block(f"```\n{code}\n```", code=True))

    def _table(self, table: HtmlElement) -> None:
        # rows, and cells a page left outside any row (each then a row of its own)
        rows = [
            row
            for row in table.iter("tr", "td", "th")
            if _owner(row) is table and (row.tag == "tr" or row.getparent().tag != "tr")
        ]
        caption = table.find("caption")
        if caption is not None and (text := inline_text(caption)):
            self.out.append(_Block(_escape(text)))
        layout = any(d.tag in _LAYOUT for d in table.iterdescendants() if d is not table)
        if layout:
            for tr in rows:
                for cell in _cells(tr):
                    self.out.extend(_Writer().blocks(cell))
            return
        lines = []
        for tr in rows:
            cells = [inline_text(cell) for cell in _cells(tr)]
            if any(cells):
                lines.append(_escape(" | ".join(cells)))
        if lines:
            self.out.append(_Block("\n".join(lines)))

    def _list(self, parent: HtmlElement) -> None:
        items = [li for li in parent if li.tag == "li"]
        start = parent.get("start", "1")
        number = int(start) if parent.tag == "ol" and start.isdigit() else 1
        lines: list[str] = []
        for li in items:
            marker = f"{number}. " if parent.tag == "ol" else "- "
            number += 1
            blocks = _Writer().blocks(li) or [_Block("")]
            for block in blocks:
                if block.heading:  # a heading stays a heading: it ends the list there
                    if lines:
                        self.out.append(_Block("\n".join(lines)))
                    lines = []
                    self.out.append(block)
                    continue
                first, *rest = block.text.split("\n")
                lines.append((marker + first).rstrip())
                lines.extend(" " * len(marker) + line if line else "" for line in rest)
                marker = " " * len(marker)
        if lines:
            self.out.append(_Block("\n".join(lines)))

    def _definitions(self, dl: HtmlElement) -> None:
        terms: list[str] = []
        for child in dl:
            if child.tag == "dt":
                if text := inline_text(child):
                    terms.append(text)
            elif child.tag == "dd":
                term = ", ".join(terms)
                terms = []
                blocks = _Writer().blocks(child)
                if len(blocks) <= 1 and not any(b.heading or b.code for b in blocks):
                    definition = blocks[0].text.replace("\n", " ") if blocks else ""
                    line = f"{term}: {definition}" if term and definition else term + definition
                    if line:
                        self.out.append(_Block(_escape(line)))
                    continue
                if term:
                    self.out.append(_Block(_escape(term)))
                self.out.extend(blocks)
            elif isinstance(child.tag, str):  # a div grouping dt and dd (HTML allows it)
                self._element(child, code=False)
        if terms:
            self.out.append(_Block(_escape(", ".join(terms))))


def _inline(el: HtmlElement, runs: list[tuple[str, bool]], code: bool, plain: bool) -> None:
    if el.text:
        runs.append((el.text, code))
    for child in el:
        if isinstance(child.tag, str):
            if child.tag == "br" or child.tag in _BLOCK:
                runs.append((" ", False))
            is_code = code or (child.tag in _CODE and not plain)
            _inline(child, runs, is_code, plain)
            if child.tag in _BLOCK:
                runs.append((" ", False))
        if child.tail:
            runs.append((child.tail, code))


def _join(runs: list[tuple[str, bool]]) -> str:
    """Runs of text as one string: whitespace collapsed, code runs in backticks."""
    parts: list[str] = []
    merged: list[tuple[str, bool]] = []
    for text, code in runs:
        if merged and merged[-1][1] == code and text != _BREAK and merged[-1][0] != _BREAK:
            merged[-1] = (merged[-1][0] + text, code)
        else:
            merged.append((text, code))
    for text, code in merged:
        if text == _BREAK:
            parts.append(_BREAK)
            continue
        text = _SPACE.sub(" ", text)
        if code and text.strip():
            ticks = "`" * (max((len(m) for m in re.findall("`+", text)), default=0) + 1)
            pad = " " if "`" in text else ""
            lead = " " if text[0] == " " else ""
            trail = " " if text[-1] == " " else ""
            text = f"{lead}{ticks}{pad}{text.strip()}{pad}{ticks}{trail}"
        parts.append(text)
    return "".join(parts)


def _escape(line_block: str) -> str:
    """Each line that would read as a heading, with a backslash before it."""
    return "\n".join(
        "\\" + line if _HEADING_LIKE.match(line) else line for line in line_block.split("\n")
    )


def _in_term(el: HtmlElement) -> bool:
    return el.tag == "dt" or any(a.tag == "dt" for a in el.iterancestors())


def _owner(tr: HtmlElement) -> HtmlElement | None:
    return next((a for a in tr.iterancestors() if a.tag == "table"), None)


def _cells(row: HtmlElement) -> list[HtmlElement]:
    return [cell for cell in row if cell.tag in ("td", "th")] if row.tag == "tr" else [row]
