"""Question in, passages out: the retrieval helper applications use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plugin import schema
from plugin.encoder import Encoder
from plugin.store import Match, ScoredPoint, Store, open_store

if TYPE_CHECKING:
    from plugin.settings import Settings


@dataclass(frozen=True)
class Hit:
    """One passage: `text == source[start:end]` of the file at `path` under `root`."""

    score: float
    text: str
    path: str
    start: int
    end: int
    root: str = ""
    title: str = ""
    chunk_index: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "path": self.path,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "root": self.root,
            "title": self.title,
            "chunk_index": self.chunk_index,
        }


class Searcher:
    """Embeds a question with the query instruction and searches the collection.

    Opening checks the collection's embedding profile against the encoder's and raises
    `ProfileMismatchError` when they differ, so vectors from two models never meet.
    """

    def __init__(self, store: Store, encoder: Encoder) -> None:
        store.open(encoder.profile(), create=False)
        self.store = store
        self.encoder = encoder

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Searcher:
        """Build everything from `DOCSYNC_*` settings (read from the environment when omitted)."""
        from plugin.settings import Settings

        settings = settings or Settings()
        store = open_store(settings)
        try:
            return cls(store, Encoder.from_settings(settings))
        except BaseException:
            store.close()
            raise

    @classmethod
    def from_client(cls, client: Any, collection: str, encoder: Encoder) -> Searcher:
        """Use an existing `qdrant_client.QdrantClient`."""
        from plugin.qdrant_store import QdrantClientStore

        return cls(QdrantClientStore(client, collection), encoder)

    def search(self, question: str, limit: int = 5, path_prefix: str | None = None) -> list[Hit]:
        """The `limit` passages closest to `question`, best first. `path_prefix` keeps files
        under a folder (`"howto"`) or one file (`"howto/regex.rst"`), matched by whole path
        components."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if not question.strip():
            raise ValueError("the question is empty")
        vector = self.encoder.embed_query(question)
        match: Match | None = None
        if path_prefix and schema.normalize_prefix(path_prefix):
            match = {schema.PATH_PREFIXES: schema.normalize_prefix(path_prefix)}
        return [_hit(p) for p in self.store.search(vector.tolist(), limit=limit, match=match)]

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _hit(point: ScoredPoint) -> Hit:
    p = point.payload
    return Hit(
        score=point.score,
        text=str(p.get(schema.TEXT, "")),
        path=str(p.get(schema.PATH, "")),
        start=int(p.get(schema.START, 0)),
        end=int(p.get(schema.END, 0)),
        root=str(p.get(schema.ROOT, "")),
        title=str(p.get(schema.TITLE, "")),
        chunk_index=int(p.get(schema.CHUNK_INDEX, 0)),
    )
