"""Keyword vectors: BM25 term weights as sparse vectors, beside each point's dense vector.

They are computed here, on the client, by the BM25 model built into qdrant-edge-py, for
both engines alike: the embedded store and a server get the same tokenizer and the same
vocabulary (token hashes), so a collection moves between them without recomputing, and a
query's keyword vector matches whichever engine holds the points. The engine applies the
IDF part itself (the collection's sparse vector has the IDF modifier), from the collection's
own statistics.

What a keyword vector is made of: the document's title and the chunk's text (the dense
model's input without the passage prefix). The title is there for the same reason the dense
model reads it, a chunk deep in a file still belongs to its subject; the passage prefix is
left out, as it is the same instruction on every passage and says nothing about any of
them. Both come from the point's payload, so the keyword vector of any stored point can be
recomputed without its file (an upgrade, an import).

The configuration is part of the embedding profile (`KEYWORD_PROFILE`): a collection whose
keyword vectors were made otherwise has them rebuilt by the next sync, and is searched by
its dense vectors alone until then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import qdrant_edge as edge

from docsync.plugin import schema

# The name of the sparse vector in the collection (the dense one keeps the unnamed slot, as
# in collections made before keyword vectors).
KEYWORD_VECTOR = "keyword"
# Bump when the words of a keyword vector change (what text, how it is tokenized): the
# next sync then rebuilds every keyword vector (no dense vector is recomputed).
KEYWORD_VERSION = "docsync-bm25/1"
# Put between title and text, as the dense model sees them.
_TITLE_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class KeywordConfig:
    """BM25's parameters. `avg_len` is in BM25 tokens (words left after stopwords): a chunk
    of the default 256 model tokens holds about 100 of them."""

    k: float = 1.2
    b: float = 0.75
    avg_len: float = 100.0
    tokenizer: str = "word"
    language: str = "english"  # its stopwords and stemmer
    lowercase: bool = True
    ascii_folding: bool = True  # "café" finds "cafe"

    def signature(self) -> str:
        """How the profile records it: compared as a whole, readable in a message."""
        fields = ";".join(
            f"{name}={_text(value)}"
            for name, value in (
                ("k", self.k),
                ("b", self.b),
                ("avg_len", self.avg_len),
                ("tokenizer", self.tokenizer),
                ("language", self.language),
                ("lowercase", self.lowercase),
                ("ascii_folding", self.ascii_folding),
                ("text", "title+passage"),
            )
        )
        return f"{KEYWORD_VERSION};{fields}"


def _text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


DEFAULT_KEYWORD = KeywordConfig()
KEYWORD_PROFILE = DEFAULT_KEYWORD.signature()


@dataclass(frozen=True)
class SparseVector:
    """Term hashes and their weights, in the engine's order."""

    indices: list[int]
    values: list[float]

    def to_dict(self) -> dict[str, Any]:
        return {"indices": self.indices, "values": self.values}


class KeywordEncoder:
    """BM25 for documents (term frequencies, length-normalised) and queries (each term 1)."""

    def __init__(self, config: KeywordConfig = DEFAULT_KEYWORD) -> None:
        self.config = config
        self.profile = config.signature()
        self._bm25 = edge.Bm25(
            edge.Bm25Config(
                k=config.k,
                b=config.b,
                avg_len=config.avg_len,
                tokenizer=_tokenizer(config.tokenizer),
                language=config.language,
                lowercase=config.lowercase,
                ascii_folding=config.ascii_folding,
            )
        )

    def embed_document(self, text: str, title: str = "") -> SparseVector:
        return _sparse(self._bm25.embed_document(document_text(text, title)))

    def embed_payload(self, payload: Mapping[str, Any]) -> SparseVector | None:
        """The keyword vector of a point, from its payload; None when no word of it counts
        (only stopwords and punctuation): such a point is stored without one, so that every
        keyword vector the engine holds is one it indexes (see `EdgeStore.optimize`)."""
        text, title = payload.get(schema.TEXT, ""), payload.get(schema.TITLE, "")
        vector = self.embed_document(str(text), str(title))
        return vector if vector.indices else None

    def embed_query(self, question: str) -> SparseVector:
        """The question as it is: the query instruction is for the dense model only."""
        return _sparse(self._bm25.embed_query(question))


def document_text(text: str, title: str = "") -> str:
    return title + _TITLE_SEPARATOR + text if title else text


def _sparse(vector: Any) -> SparseVector:
    return SparseVector(indices=list(vector.indices), values=[float(v) for v in vector.values])


def _tokenizer(name: str) -> Any:
    return getattr(edge.TokenizerType, name.capitalize())
