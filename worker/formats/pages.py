"""The text of a document made of pages that a reader writes itself (slides, blocks of a
sheet's rows): each page's start and each heading line's start recorded as it is written,
so `Extracted.pages` and `Extracted.headings` index the joined text exactly. The headings
are given, so a `# comment` on a slide stays text (the chunker takes only these lines as
headings)."""

from __future__ import annotations

from collections.abc import Mapping

from docsync.worker.formats import Extracted, Unreadable
from docsync.worker.formats.text import has_text

PAGE_JOIN = "\n\n"
# The most text one document may give (characters): past it the reader stops with too_large
# rather than hand the chunker and the embedder a sheet of millions of cells.
MAX_TEXT_CHARS = 20_000_000


def one_line(text: str) -> str:
    """`text` with its whitespace runs collapsed to single spaces."""
    return " ".join(text.split())


class PageWriter:
    """Appends pages (a heading line, then blocks) and keeps where each starts."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = 0
        self.starts: list[int] = []
        self.headings: list[int] = []
        self.labels: list[str] = []
        self._content = False  # whether any page holds text of the document's own

    def page(self, heading: str, blocks: list[str], label: str = "", *, own: bool = True) -> None:
        """One page: `heading` (a Markdown heading, none when empty; `own`: the document's
        text, not one the reader made up, such as `Slide 3`) and `blocks` separated by blank
        lines."""
        if self._parts:
            self._append(PAGE_JOIN)
        self.starts.append(self._size)
        self.labels.append(label)
        body = [b for b in blocks if has_text(b)]
        self._content = self._content or bool(body) or (own and has_text(heading))
        if heading:
            self.headings.append(self._size)
            self._append("# " + one_line(heading))
            if body:
                self._append(PAGE_JOIN)
        self._append(PAGE_JOIN.join(body))

    @property
    def size(self) -> int:
        return self._size

    def _append(self, text: str) -> None:
        self._size += len(text)
        if self._size > MAX_TEXT_CHARS:
            raise Unreadable("too_large", f"its text runs past {MAX_TEXT_CHARS:,} characters")
        self._parts.append(text)

    def extracted(
        self,
        format: str,
        empty: str,
        title: str = "",
        tags: tuple[str, ...] = (),
        meta: Mapping[str, str] | None = None,
    ) -> Extracted:
        """The document; `no_text` with `empty` as its detail when no page holds text."""
        if not self._content:
            raise Unreadable("no_text", empty)
        text = "".join(self._parts)
        labels = tuple(self.labels) if any(self.labels) else ()
        return Extracted(
            text,
            format,
            pages=tuple(self.starts),
            headings=tuple(self.headings),
            labels=labels,
            title=title,
            tags=tags,
            meta=dict(meta or {}),
        )
