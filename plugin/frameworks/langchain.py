"""LangChain: docsync's collection as a retriever (`pip install 'docsync-qdrant[langchain]'`).

from docsync.plugin.frameworks.langchain import DocsyncRetriever

retriever = DocsyncRetriever.from_settings(k=5)  # DOCSYNC_* settings, as the CLI reads
docs = retriever.invoke("How do I create a socket?")
docs[0].page_content, docs[0].metadata["path"], docs[0].metadata["section"]
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field, PrivateAttr, model_validator

from docsync.plugin.frameworks import (
    check_retriever,
    filters_of,
    hit_id,
    hit_metadata,
    over_settings,
)
from docsync.plugin.hit import Hit
from docsync.plugin.request import SearchOptions
from docsync.plugin.search import Searcher
from docsync.plugin.settings import Settings


class DocsyncRetriever(BaseRetriever):
    """The passages docsync finds for a question, as `Document`s: the passage as
    `page_content`, the hit's fields as metadata (`path`, `title`, `section`, `page_start`,
    `page_end`, `start`, `end`, `score`, `root`, `format`, ...)."""

    searcher: Searcher
    k: int = 5
    mode: str | None = None  # dense, keyword or hybrid; None: the searcher's
    # {"format": "pdf"}, or several values of a key: {"format": ["pdf", "html"]}
    filters: dict[str, str | list[str]] = Field(default_factory=dict)
    path_prefix: str | None = None
    _options: SearchOptions = PrivateAttr()  # the fields above, checked once

    @model_validator(mode="after")
    def _check_options(self) -> DocsyncRetriever:
        self._options = check_retriever(self.k, self.mode, self.filters, self.path_prefix)
        self.filters = dict(filters_of(self._options))
        return self

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **options: Any) -> DocsyncRetriever:
        """A retriever over the collection the settings name (read from the environment and
        `.env` when omitted); through a running daemon when one holds the embedded store.
        Its searcher is the retriever's (`retriever.searcher.close()` lets the store go);
        closed at once when an option is refused."""
        return over_settings(settings, lambda searcher: cls(searcher=searcher, **options))

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        hits = self.searcher.find(self._options.ask(query))
        return [_document(hit) for hit in hits]


def _document(hit: Hit) -> Document:
    return Document(page_content=hit.text, metadata=hit_metadata(hit), id=hit_id(hit))
