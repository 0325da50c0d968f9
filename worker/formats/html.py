"""HTML: trafilatura (Apache-2.0), the page's main text without its menus, headers and
footers, as Markdown: `h1`-`h6` come out as `#` headings (the chunker's cuts), lists as `- `
items, tables as rows. The page's title, author and keywords come from its metadata.

Two clean-ups of trafilatura's Markdown, so that identifiers read as they do on the page:
its backslash escapes (`bisect\\_left`) are undone, and the `¶` anchors that documentation
generators put after each heading are dropped.
"""

from __future__ import annotations

import re

from docsync.worker.formats import HTML, Extracted, Unreadable
from docsync.worker.formats.text import has_text, metadata

_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>~])")
_PILCROW = re.compile(r"[ \t]*¶")


def read_html(raw: bytes) -> Extracted:
    import trafilatura

    try:
        markdown = trafilatura.extract(
            raw,
            output_format="markdown",
            include_tables=True,
            include_comments=False,
            favor_recall=True,
        )
        info = trafilatura.extract_metadata(raw)
    except (ValueError, TypeError, RecursionError) as exc:
        raise Unreadable("corrupt", f"not readable as HTML ({type(exc).__name__})") from None
    text = _PILCROW.sub("", _ESCAPE.sub(r"\1", markdown or "")).strip()
    if not has_text(text):
        raise Unreadable("no_text", "no main text found in the page")
    fields: dict[object, object] = {}
    if info is not None:
        title = _PILCROW.sub("", info.title or "")
        fields = {"title": title, "author": info.author, "tags": ", ".join(info.tags or [])}
    title, tags, meta = metadata({k: v for k, v in fields.items() if v})
    return Extracted(text, HTML, title=title, tags=tags, meta=meta)
