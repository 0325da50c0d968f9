"""Question in, passages out: the retrieval helper applications use.

One query path for every client (`docsync query`, HTTP /search, MCP, the `Searcher`, the
framework retrievers): each builds a `SearchRequest` (`docsync.plugin.request`), checked
once, and a `Searcher` answers it through its backend (`docsync.plugin.backends`): the store
and model of this process, or, when a running `docsync run` holds the embedded store, that
daemon, which answers with this same code. `connect()` chooses.

Three modes: `dense` (the model's vectors, the question with the query instruction),
`keyword` (BM25 over the collection's keyword vectors, the question as typed) and `hybrid`
(both rankings, fused by reciprocal rank or by score distribution). A collection without
keyword vectors of this profile (made before them; the next sync adds them) is searched
dense, with one warning.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from docsync.plugin.backends import Backend, DaemonBackend, LocalBackend, read_profile
from docsync.plugin.choices import DEFAULT_CONTEXT_TOKENS, DEFAULT_SEARCH_MODE
from docsync.plugin.daemon_client import SOCKET_NAME, daemon_answers
from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import StoreLockedError
from docsync.plugin.filters import Filters
from docsync.plugin.following import ModelLoader
from docsync.plugin.hit import Hit as Hit
from docsync.plugin.request import DEFAULT_LIMIT, SearchOptions, SearchRequest
from docsync.plugin.request import MAX_CONTEXT_TOKENS as MAX_CONTEXT_TOKENS
from docsync.plugin.request import MAX_LIMIT as MAX_LIMIT
from docsync.plugin.store import Fusion, Store, collection_missing
from docsync.plugin.stores import open_store

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

    from docsync.plugin.profile import EmbeddingProfile
    from docsync.plugin.settings import Settings


class Searcher:
    """Embeds a question with the query instruction and searches the collection.

    Opening checks the collection's embedding profile against the encoder's and raises
    `ProfileMismatchError` when they differ, so vectors from two models never meet.
    `mode`: the search mode when a search names none; `fusion`: how hybrid merges;
    `context`, `per_file`: a search's defaults for those (see `search`).
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
        defaults = SearchOptions.checked(mode=mode, context=context, per_file=per_file)
        self._begin(LocalBackend.open(store, encoder, fusion=fusion), defaults)

    @classmethod
    def over(
        cls,
        backend: Backend,
        *,
        mode: str = DEFAULT_SEARCH_MODE,
        context: int = DEFAULT_CONTEXT_TOKENS,
        per_file: int | None = None,
    ) -> Searcher:
        """A searcher through `backend` (a `LocalBackend` or a `DaemonBackend`)."""
        defaults = SearchOptions.checked(mode=mode, context=context, per_file=per_file)
        searcher = cls.__new__(cls)
        searcher._begin(backend, defaults)
        return searcher

    def _begin(self, backend: Backend, defaults: SearchOptions) -> None:
        self.backend = backend
        self.defaults = defaults

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Searcher:
        """Build everything from `DOCSYNC_*` settings (read from the environment when omitted):
        see `connect`."""
        from docsync.plugin.settings import Settings

        return connect(settings or Settings())

    @classmethod
    def from_client(
        cls,
        client: QdrantClient,
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
        limit: int = DEFAULT_LIMIT,
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
        request = SearchRequest.of(
            question,
            limit=limit,
            path_prefix=path_prefix,
            mode=mode,
            context=context,
            per_file=per_file,
            filters=filters,
        )
        return self.find(request)

    def find(self, request: SearchRequest) -> list[Hit]:
        """The hits for a checked request, its options left out taken from this searcher's."""
        return self.backend.search(request.filled(self.defaults))

    @property
    def mode(self) -> str:
        return self.defaults.mode or DEFAULT_SEARCH_MODE

    @property
    def context(self) -> int:
        return DEFAULT_CONTEXT_TOKENS if self.defaults.context is None else self.defaults.context

    @property
    def per_file(self) -> int | None:
        return self.defaults.per_file

    @property
    def via_daemon(self) -> bool:
        """Whether a daemon answers this searcher's searches (it holds store and model)."""
        return self.backend.via_daemon

    @property
    def store(self) -> Store:
        """The store searched (`StoreError` through a daemon, which holds it)."""
        return self.backend.store

    @property
    def encoder(self) -> Encoder:
        """The model that embeds questions (`StoreError` through a daemon, which holds it)."""
        return self.backend.encoder

    def keyword_ready(self) -> bool:
        """Whether the collection holds keyword vectors made as this encoder makes them.
        Asked again until it does: a daemon's sync may add them while this searcher lives."""
        return self.backend.keyword_ready()

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
            return searcher_over(DaemonBackend(socket_path), settings)
        raise
    try:
        stored = read_profile(store)  # once for this searcher: its backend keeps it
        store.ping()  # a store that cannot be opened fails now, not after the model loaded
        loader = load_encoder or _lazy_encoder
        encoder = loader(settings)
        load = profile_loader(settings, loader)
        backend = LocalBackend(store, encoder, stored, fusion=fusion(settings), load=load)
        return searcher_over(backend, settings)
    except BaseException:
        store.close()
        raise


def holding(settings: Settings, store: Store, encoder: Encoder) -> Searcher:
    """The searcher of the process that holds `store` (a daemon, for its HTTP /search and
    MCP): the settings' defaults, as `connect` gives a reader."""
    load = profile_loader(settings, _lazy_encoder)
    return searcher_over(
        LocalBackend.open(store, encoder, fusion=fusion(settings), load=load), settings
    )


def searcher_over(backend: Backend, settings: Settings) -> Searcher:
    """A searcher through `backend` with the settings' defaults (mode, context, per file)."""
    return Searcher.over(
        backend,
        mode=settings.search_mode,
        context=settings.context_tokens,
        per_file=settings.hits_per_file,
    )


def profile_loader(
    settings: Settings, load_encoder: Callable[[Settings], Encoder] | None = None
) -> ModelLoader:
    """How a reader loads the model a collection's profile names (`docsync.plugin.following`):
    with the settings' device and the like, the profile's prefixes, and, for a local folder
    that is the settings' model by content (moved since), the settings' path."""
    from docsync.plugin.profile import model_fingerprint

    def load(profile: EmbeddingProfile) -> Encoder:
        model = profile.model
        local = Path(settings.model)
        if (
            profile.fingerprint
            and local.is_dir()
            and model_fingerprint(local) == profile.fingerprint
        ):
            model = settings.model
        update = {
            "model": model,
            "query_prefix": profile.query_prefix,
            "passage_prefix": profile.passage_prefix,
        }
        return (load_encoder or _lazy_encoder)(settings.model_copy(update=update))

    return load


def _lazy_encoder(settings: Settings) -> Encoder:
    return Encoder.from_settings(settings, lazy=True)


def fusion(settings: Settings) -> Fusion:
    """How hybrid searches fuse, as the settings say."""
    return Fusion(method=settings.fusion, k=settings.rrf_k, guard=settings.fusion_guard)
