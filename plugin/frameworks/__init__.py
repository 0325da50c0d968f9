"""docsync's collection inside application frameworks, each in an optional extra that is
imported only by the module that needs it:

- `langchain`: `DocsyncRetriever`, a LangChain `BaseRetriever` (`pip install
  'docsync[langchain]'`);
- `llamaindex`: `DocsyncRetriever`, a LlamaIndex `BaseRetriever` (`pip install
  'docsync[llamaindex]'`).

Both search through a `plugin.search.Searcher` (built from settings, or one you have), so the
model's query instruction is applied as docsync applies it, and both give a hit's fields
(path, title, section, pages, span, score) as the framework's metadata.
"""

from __future__ import annotations

from typing import Any

from plugin.search import Hit

# What a language model reading a passage is shown besides its text: where it comes from.
CITED = ("path", "title", "section", "page_start", "page_end")


def hit_metadata(hit: Hit) -> dict[str, Any]:
    """A hit's fields but its text (JSON values only), for a framework's document metadata."""
    data = hit.to_dict()
    data.pop("text")
    return data


def hit_id(hit: Hit) -> str:
    """A passage's stable identity: its file and span (the same passage, the same ID)."""
    return f"{hit.root}/{hit.path}:{hit.start}-{hit.end}"
