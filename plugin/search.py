"""Question in, passages out: the retrieval helper applications use.

One query path for every client (`docsync query`, HTTP /search, the `Searcher`): `connect()`
opens the collection and loads the model, or, when a running `docsync run` holds the
embedded store, returns a searcher that asks that daemon, which answers with this same code.

Three modes: `dense` (the model's vectors, the question with the query instruction),
`keyword` (BM25 over the collection's keyword vectors, the question as typed) and `hybrid`
(both rankings, fused by reciprocal rank or by score distribution). A collection without
keyword vectors of this profile (made before them; the next sync adds them) is searched
dense, with one warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docsync.plugin import schema
from docsync.plugin.choices import DEFAULT_CONTEXT_TOKENS, DEFAULT_SEARCH_MODE, SEARCH_MODES, one_of
from docsync.plugin.daemon_client import SOCKET_NAME, ask_daemon, daemon_answers
from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import CollectionMissingError, StoreLockedError
from docsync.plugin.filters import Filters, check_filters, to_match
from docsync.plugin.passages import Passage, passages
from docsync.plugin.store import Fusion, Match, Store, collection_missing
from docsync.plugin.stores import open_store

if TYPE_CHECKING:
    from docsync.plugin.settings import Settings

log = logging.getLogger("docsync.search")

# The most hits one search returns, whoever asks: `Searcher.search`, `docsync query -k`
# and HTTP /search all refuse more.
MAX_LIMIT = 100
MAX_CONTEXT_TOKENS = 4096
# What growing a hit into a passage reads of its neighbours.
PASSAGE_FIELDS = (
    schema.ROOT,
    schema.PATH,
    schema.TEXT,
    schema.SECTION,
    schema.GAP,
    schema.START,
    schema.END,
    schema.CHUNK_INDEX,
    schema.PAGE_START,
    schema.PAGE_END,
)


@dataclass(frozen=True)
class Hit:
    """One passage of the file at `path` under `root`: `text` is exactly `source[start:end]`,
    grown around the chunk that matched, `source[match_start:match_end]`."""

    score: float
    text: str
    path: str
    start: int
    end: int
    root: str = ""
    title: str = ""
    chunk_index: int = 0
    match_start: int = -1  # the chunk that matched, inside [start, end); -1: all of it
    match_end: int = -1
    section: str = ""  # the heading path: "Title > Section > Subsection"
    format: str = ""  # what the file was read as: markdown, rst, text, pdf, html, docx
    page_start: int | None = None  # the pages the passage spans, 1-based (PDF only)
    page_end: int | None = None

    def __post_init__(self) -> None:
        if self.match_start < 0:
            object.__setattr__(self, "match_start", self.start)
        if self.match_end < 0:
            object.__setattr__(self, "match_end", self.end)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hit:
        """A hit as `to_dict` (or the daemon's /search) gives it; unknown keys are ignored."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

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
            "match_start": self.match_start,
            "match_end": self.match_end,
            "section": self.section,
            "format": self.format,
            "page_start": self.page_start,
            "page_end": self.page_end,
        }


class Searcher:
    """Embeds a question with the query instruction and searches the collection.

    Opening checks the collection's embedding profile against the encoder's and raises
    `ProfileMismatchError` when they differ, so vectors from two models never meet.
    `mode`: the search mode when a search names none; `fusion`: how hybrid merges.
    """

    def __init__(
        self,
        store: Store,
        encoder: Encoder,
        *,
        mode: str = DEFAULT_SEARCH_MODE,
        fusion: Fusion | None = None,
        context: int = DEFAULT_CONTEXT_TOKENS,
        per_file: int | None = None,
    ) -> None:
        check_mode(mode)
        check_context(context, per_file)
        store.open(encoder.profile(), create=False)
        self.store = store
        self.encoder = encoder
        self.mode = mode
        self.fusion = fusion or Fusion()
        self.context = context
        self.per_file = per_file
        self._keyword_ready = False
        self._fallback_said = False

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Searcher:
        """Build everything from `DOCSYNC_*` settings (read from the environment when omitted):
        see `connect`."""
        from docsync.plugin.settings import Settings

        return connect(settings or Settings())

    @classmethod
    def from_client(
        cls,
        client: Any,
        collection: str,
        encoder: Encoder,
        *,
        mode: str = DEFAULT_SEARCH_MODE,
        fusion: Fusion | None = None,
    ) -> Searcher:
        """Use an existing `qdrant_client.QdrantClient`."""
        from docsync.plugin.stores.qdrant import QdrantClientStore

        return cls(QdrantClientStore(client, collection), encoder, mode=mode, fusion=fusion)

    def search(
        self,
        question: str,
        limit: int = 5,
        path_prefix: str | None = None,
        mode: str | None = None,
        context: int | None = None,
        per_file: int | None = None,
        filters: Filters | None = None,
    ) -> list[Hit]:
        """The `limit` passages closest to `question`, best first. `path_prefix` keeps files
        under a folder (`"howto"`) or one file (`"howto/regex.rst"`), matched by whole path
        components. `mode`: dense, keyword or hybrid. `context`: the tokens a passage grows
        to around the chunk that matched, within its section (0: the chunk alone).
        `per_file`: at most this many hits from one file. Each defaults to this searcher's.
        `filters`: metadata conditions, `{"format": "pdf", "tags": ["a", "b"]}` (see
        plugin/filters.py; `ValueError` for an unknown key). At most `MAX_LIMIT` hits."""
        check_query(question, limit, path_prefix, mode)
        check_context(context, per_file)
        return self._search(
            question,
            limit,
            path_prefix,
            mode or self.mode,
            self.context if context is None else context,
            per_file or self.per_file,
            check_filters(filters or {}),
        )

    def _search(
        self,
        question: str,
        limit: int,
        path_prefix: str | None,
        mode: str,
        context: int,
        per_file: int | None,
        filters: dict[str, list[str]],
    ) -> list[Hit]:
        mode = self._usable(mode)
        match: dict[str, Any] = {}
        if filters:
            conditions = to_match(filters, self._paths)
            if conditions is None:
                return []  # a path glob that selects no file
            match.update(conditions)
        if path_prefix and schema.normalize_prefix(path_prefix):
            match[schema.PATH_PREFIXES] = schema.normalize_prefix(path_prefix)
        vector = self.encoder.embed_query(question).tolist() if mode != "keyword" else None
        keyword = self.encoder.keyword.embed_query(question) if mode != "dense" else None
        # More candidates than hits: merged passages, chunks without words and the per-file
        # limit each take some away.
        candidates = min(MAX_LIMIT, max(2 * limit, limit + 10))
        points = self.store.search(
            vector, limit=candidates, match=match or None, keyword=keyword, fusion=self.fusion
        )
        found = passages(
            points,
            limit=limit,
            budget=context,
            neighbours=self._neighbours,
            count_tokens=self.encoder.count_tokens,
            per_file=per_file,
        )
        return [_passage_hit(p) for p in found]

    def _paths(self) -> Iterator[str]:
        """Every indexed file's path (from its first chunk), for a path glob."""
        for point in self.store.scroll({schema.CHUNK_INDEX: [0]}, fields=(schema.PATH,)):
            yield str(point.payload.get(schema.PATH, ""))

    def _neighbours(self, root: str, path: str, indexes: Sequence[int]) -> list[dict[str, Any]]:
        match: Match = {schema.ROOT: root, schema.PATH: path, schema.CHUNK_INDEX: list(indexes)}
        return [p.payload for p in self.store.scroll(match, fields=PASSAGE_FIELDS)]

    def keyword_ready(self) -> bool:
        """Whether the collection holds keyword vectors made as this encoder makes them.
        Asked again until it does: a daemon's sync may add them while this searcher lives."""
        if not self._keyword_ready:
            stored = self.store.read_profile()
            profile = self.encoder.profile()
            self._keyword_ready = stored is not None and profile.keyword_ready(stored)
        return self._keyword_ready

    def _usable(self, mode: str) -> str:
        """`mode`, or dense when the collection cannot answer a keyword query yet."""
        if mode == "dense" or self.keyword_ready():
            return mode
        if not self._fallback_said:
            log.warning(
                "collection %r has no keyword vectors yet (made before them, or with another "
                "BM25 configuration): searching %s by dense vectors only; the next "
                "`docsync sync` adds them",
                self.store.collection,
                mode,
            )
            self._fallback_said = True
        return "dense"

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DaemonSearcher(Searcher):
    """A `Searcher` that asks the `docsync run` holding the embedded store (over its Unix
    socket) to search with its own store and model. It has no `store` or `encoder` here."""

    def __init__(
        self,
        socket_path: Path,
        *,
        mode: str = DEFAULT_SEARCH_MODE,
        context: int = DEFAULT_CONTEXT_TOKENS,
        per_file: int | None = None,
    ) -> None:
        self.socket_path = socket_path  # no store to open: the daemon holds it
        self.mode = check_mode(mode)
        check_context(context, per_file)
        self.context, self.per_file = context, per_file

    def _search(
        self,
        question: str,
        limit: int,
        path_prefix: str | None,
        mode: str,
        context: int,
        per_file: int | None,
        filters: dict[str, list[str]],
    ) -> list[Hit]:
        params: dict[str, str | list[str]] = {
            "q": question,
            "limit": str(limit),
            "path_prefix": path_prefix or "",
        }
        params["mode"] = mode
        params["context"] = str(context)
        if per_file is not None:
            params["per_file"] = str(per_file)
        if filters:
            params["where"] = [f"{key}={v}" for key, values in filters.items() for v in values]
        return [Hit.from_dict(hit) for hit in ask_daemon(self.socket_path, "/search", params)]

    def close(self) -> None:
        """Nothing held: each search is one request."""


def check_query(
    question: str, limit: int, path_prefix: str | None = None, mode: str | None = None
) -> None:
    """The rules for a search, the same for every client: `ValueError` when broken."""
    check_options(limit, path_prefix, mode)
    if not question.strip():
        raise ValueError("the question is empty")


def check_options(limit: int, path_prefix: str | None = None, mode: str | None = None) -> None:
    """`check_query`'s rules but the question's, for a client that takes them before its
    questions (a framework's retriever)."""
    if mode is not None:
        check_mode(mode)
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    if path_prefix and path_prefix.strip().startswith("/"):
        raise ValueError(
            f"the path prefix {path_prefix!r} is absolute; it is a path relative to a synced "
            "folder, as hits show it (e.g. 'howto' or 'howto/sockets.rst')"
        )


def check_context(context: int | None, per_file: int | None) -> None:
    """The rules for `context` and `per_file`: `ValueError` when broken."""
    if context is not None and not 0 <= context <= MAX_CONTEXT_TOKENS:
        raise ValueError(f"context must be between 0 and {MAX_CONTEXT_TOKENS} tokens")
    if per_file is not None and per_file < 1:
        raise ValueError("per_file must be at least 1")


def check_mode(mode: str) -> str:
    """`mode` when it is a search mode, else `ValueError`."""
    if mode not in SEARCH_MODES:
        raise ValueError(f"the search mode must be {one_of(SEARCH_MODES)}, not {mode!r}")
    return mode


def connect(
    settings: Settings, *, load_encoder: Callable[[Settings], Encoder] | None = None
) -> Searcher:
    """A searcher for the collection the settings name. The collection is found (or found
    missing) before the model's seconds of loading, and a reader creates no store folder or
    lock. When another process holds the embedded store and it is a daemon answering on
    its socket, the searcher asks the daemon. `load_encoder`: how to load the model
    (default: `Encoder.from_settings`, lazy: from the model's card where it has one, so a
    question is embedded without torch; see `docsync.plugin.embedding.card`)."""
    if not settings.qdrant_url and not settings.qdrant_path.is_dir():
        raise collection_missing(settings.collection, settings.store_description())
    try:
        store = open_store(settings, reading=True)
    except StoreLockedError:
        socket_path = settings.qdrant_path / SOCKET_NAME
        if daemon_answers(socket_path):
            return DaemonSearcher(
                socket_path,
                mode=settings.search_mode,
                context=settings.context_tokens,
                per_file=settings.hits_per_file,
            )
        raise
    try:
        try:
            store.read_profile()
        except CollectionMissingError:
            raise collection_missing(store.collection, store.description) from None
        store.ping()  # a store that cannot be opened fails now, not after the model loaded
        encoder = (load_encoder or _lazy_encoder)(settings)
        return Searcher(
            store,
            encoder,
            mode=settings.search_mode,
            fusion=fusion(settings),
            context=settings.context_tokens,
            per_file=settings.hits_per_file,
        )
    except BaseException:
        store.close()
        raise


def _lazy_encoder(settings: Settings) -> Encoder:
    return Encoder.from_settings(settings, lazy=True)


def fusion(settings: Settings) -> Fusion:
    """How hybrid searches fuse, as the settings say."""
    return Fusion(method=settings.fusion, k=settings.rrf_k)


def _passage_hit(passage: Passage) -> Hit:
    first = passage.chunks[passage.first]
    last = passage.chunks[passage.last]
    return Hit(
        score=passage.score,
        text=passage.text(),
        path=passage.path,
        start=int(first.get(schema.START, 0)),
        end=int(last.get(schema.END, 0)),
        root=passage.root,
        title=passage.title,
        chunk_index=int(passage.match.get(schema.CHUNK_INDEX, 0)),
        match_start=int(passage.match.get(schema.START, 0)),
        match_end=int(passage.match.get(schema.END, 0)),
        section=passage.section,
        format=str(passage.match.get(schema.FORMAT, "")),
        page_start=_page(first.get(schema.PAGE_START)),
        page_end=_page(last.get(schema.PAGE_END)),
    )


def _page(value: Any) -> int | None:
    return int(value) if isinstance(value, int) else None
