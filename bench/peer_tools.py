"""The peers of `bench/peers.py`, each run as a user of that library writes it: one step (a
first sync, or a re-sync after changes) in a process of its own.

    python bench/peer_tools.py langchain|llamaindex FOLDER WORK MODEL

prints one JSON object: {"embedded": chunks embedded by this step, "chunks": chunks in the
store after it}. WORK keeps the tool's store and its bookkeeping between steps.

- langchain: `index()` with a `SQLRecordManager` (SQLite) and `cleanup="full"` (the folder's
  every document is given each time, as its docs advise for that case; "incremental" also
  re-embeds, on a no-op, the chunks of each file that spans two of its batches of 100),
  `RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)`,
  `HuggingFaceEmbeddings`, `QdrantVectorStore` on a local qdrant-client path;
- llamaindex: `IngestionPipeline` with its default splitter (`SentenceSplitter()`),
  `HuggingFaceEmbedding`, a `SimpleDocumentStore` persisted beside a `QdrantVectorStore` on a
  local path, `DocstoreStrategy.UPSERTS_AND_DELETE` (a file gone is deleted, as a sync does).

Packages (not docsync's dependencies): langchain-classic, langchain-qdrant,
langchain-text-splitters, langchain-huggingface; llama-index-core,
llama-index-vector-stores-qdrant, llama-index-embeddings-huggingface.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SUFFIXES = {".md", ".markdown", ".rst", ".txt"}
COLLECTION = "peers"
# The modules each peer imports: `bench/peers.py` skips a peer that lacks one.
MODULES = {
    "langchain": (
        "langchain_classic",
        "langchain_qdrant",
        "langchain_text_splitters",
        "langchain_huggingface",
    ),
    "llamaindex": (
        "llama_index.core",
        "llama_index.vector_stores.qdrant",
        "llama_index.embeddings.huggingface",
    ),
}


def files(folder: Path) -> list[tuple[str, str]]:
    """(path relative to `folder`, text) of each document, in path order."""
    found = sorted(p for p in folder.rglob("*") if p.suffix in SUFFIXES and p.is_file())
    return [(str(p.relative_to(folder)), p.read_text(encoding="utf-8")) for p in found]


def _qdrant(work: Path, dimension: int) -> Any:
    from qdrant_client import QdrantClient
    from qdrant_client.models import Distance, VectorParams

    client = QdrantClient(path=str(work / "qdrant"))
    if not client.collection_exists(COLLECTION):
        client.create_collection(COLLECTION, VectorParams(size=dimension, distance=Distance.COSINE))
    return client


def _count(client: Any) -> int:
    return int(client.count(COLLECTION, exact=True).count)


def langchain(folder: Path, work: Path, model: str) -> dict[str, int]:
    from langchain_classic.indexes import SQLRecordManager, index
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_qdrant import QdrantVectorStore
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    embeddings = HuggingFaceEmbeddings(model_name=model, model_kwargs={"device": "cpu"})
    client = _qdrant(work, len(embeddings.embed_query("dimension")))
    store = QdrantVectorStore(client=client, collection_name=COLLECTION, embedding=embeddings)
    records = SQLRecordManager("qdrant/peers", db_url=f"sqlite:///{work / 'records.sqlite'}")
    records.create_schema()
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    documents = [Document(page_content=text, metadata={"source": p}) for p, text in files(folder)]
    result = index(
        splitter.split_documents(documents),
        records,
        store,
        cleanup="full",
        source_id_key="source",
    )
    embedded = int(result["num_added"]) + int(result["num_updated"])
    count = _count(client)
    client.close()
    return {"embedded": embedded, "chunks": count}


def llamaindex(folder: Path, work: Path, model: str) -> dict[str, int]:
    from llama_index.core import Document
    from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.storage.docstore import SimpleDocumentStore
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    embedding = HuggingFaceEmbedding(model_name=model, device="cpu")
    client = _qdrant(work, len(embedding.get_text_embedding("dimension")))
    saved = work / "docstore.json"
    docstore = SimpleDocumentStore.from_persist_path(str(saved)) if saved.exists() else None
    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(), embedding],
        vector_store=QdrantVectorStore(client=client, collection_name=COLLECTION),
        docstore=docstore or SimpleDocumentStore(),
        docstore_strategy=DocstoreStrategy.UPSERTS_AND_DELETE,
    )
    documents = [Document(text=text, id_=p, metadata={"source": p}) for p, text in files(folder)]
    nodes = pipeline.run(documents=documents)
    pipeline.docstore.persist(str(saved))
    count = _count(client)
    client.close()
    return {"embedded": len(nodes), "chunks": count}


def main(argv: list[str]) -> int:
    tool, folder, work, model = argv
    run = {"langchain": langchain, "llamaindex": llamaindex}[tool]
    print(json.dumps(run(Path(folder), Path(work), model)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
