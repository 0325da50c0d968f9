"""docsync's collection inside application frameworks, each in an optional extra that is
imported only by the module that needs it:

- `langchain`: `DocsyncRetriever`, a LangChain `BaseRetriever` (`pip install
  'docsync-qdrant[langchain]'`);
- `llamaindex`: `DocsyncRetriever`, a LlamaIndex `BaseRetriever` (`pip install
  'docsync-qdrant[llamaindex]'`).

Both search through a `docsync.plugin.search.Searcher` (built from settings, or one you have),
with their options checked once, when they are made, as a `SearchOptions`
(`docsync.plugin.request`); so the model's query instruction is applied as docsync applies it,
and both give a hit's fields (path, title, section, pages, span, score) as the framework's
metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from docsync.plugin.filters import Filters
from docsync.plugin.hit import Hit
from docsync.plugin.request import SearchOptions
from docsync.plugin.search import Searcher

if TYPE_CHECKING:
    from docsync.plugin.settings import Settings

Retriever = TypeVar("Retriever")

# What a language model reading a passage is shown besides its text: where it comes from.
CITED = ("path", "title", "section", "page_start", "page_end", "page_label", "page_label_end")


def hit_metadata(hit: Hit) -> dict[str, Any]:
    """A hit's fields but its text (JSON values only), for a framework's document metadata."""
    data = hit.to_dict()
    data.pop("text")
    return data


def hit_id(hit: Hit) -> str:
    """A passage's stable identity: its file and span (the same passage, the same ID)."""
    return f"{hit.root}/{hit.path}:{hit.start}-{hit.end}"


def check_retriever(
    k: int, mode: str | None, filters: Filters | None, path_prefix: str | None
) -> SearchOptions:
    """A retriever's options checked when it is made, not at its first question
    (`ValueError`); its filters as `Searcher.search` takes them (`{"format": "pdf"}` as
    well as `{"format": ["pdf"]}`)."""
    return SearchOptions.checked(limit=k, mode=mode, filters=filters, path_prefix=path_prefix)


def filters_of(options: SearchOptions) -> dict[str, list[str]]:
    """The checked filters of `options`, each key's values as a list (a retriever's field)."""
    return {key: list(values) for key, values in options.filters.items()}


def over_settings(settings: Settings | None, build: Callable[[Searcher], Retriever]) -> Retriever:
    """`build(searcher)` with a searcher opened from the settings, closed again when `build`
    fails: it holds the embedded store, and left open it would lock out the next try."""
    searcher = Searcher.from_settings(settings)
    try:
        return build(searcher)
    except BaseException:
        searcher.close()
        raise
