"""LlamaIndex: docsync's collection as a retriever (`pip install 'docsync-qdrant[llamaindex]'`).

    from docsync.plugin.frameworks.llamaindex import DocsyncRetriever

    retriever = DocsyncRetriever.from_settings(k=5)  # DOCSYNC_* settings, as the CLI reads
    nodes = retriever.retrieve("How do I create a socket?")
    nodes[0].score, nodes[0].node.get_content(), nodes[0].node.metadata["path"]

Use it in a query engine: `RetrieverQueryEngine.from_args(retriever, llm=...)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from docsync.plugin.frameworks import (
    CITED,
    check_retriever,
    filters_of,
    hit_id,
    hit_metadata,
    over_settings,
)
from docsync.plugin.hit import Hit
from docsync.plugin.search import Searcher
from docsync.plugin.settings import Settings


class DocsyncRetriever(BaseRetriever):
    """The passages docsync finds for a question, as `NodeWithScore`s: the passage as the
    node's text, the hit's fields as its metadata; a language model is shown the path,
    title, section and pages (`CITED`), the rest (span, root, score) stays out of its text."""

    def __init__(
        self,
        searcher: Searcher,
        *,
        k: int = 5,
        mode: str | None = None,
        filters: Mapping[str, str | Sequence[str]] | None = None,
        path_prefix: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.options = check_retriever(k, mode, filters, path_prefix)  # checked once
        self.filters = filters_of(self.options)
        self.searcher = searcher
        self.k, self.mode, self.path_prefix = k, mode, path_prefix
        super().__init__(**kwargs)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **options: Any) -> DocsyncRetriever:
        """A retriever over the collection the settings name (read from the environment and
        `.env` when omitted); through a running daemon when one holds the embedded store.
        Its searcher is the retriever's (`retriever.searcher.close()` lets the store go);
        closed at once when an option is refused."""
        return over_settings(settings, lambda searcher: cls(searcher, **options))

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.searcher.find(self.options.ask(query_bundle.query_str))
        return [_node(hit) for hit in hits]


def _node(hit: Hit) -> NodeWithScore:
    metadata = hit_metadata(hit)
    hidden = [key for key in metadata if key not in CITED]
    node = TextNode(
        text=hit.text,
        id_=hit_id(hit),
        metadata=metadata,
        excluded_embed_metadata_keys=hidden,
        excluded_llm_metadata_keys=hidden,
    )
    return NodeWithScore(node=node, score=hit.score)
