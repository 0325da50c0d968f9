"""Where a `Searcher`'s searches run, chosen when it is built (`docsync.plugin.search.connect`):

- `LocalBackend`: this process holds the store and the model: the question is embedded
  here (dense with the query instruction, keyword as typed), the store searched, each hit
  grown into a passage;
- `DaemonBackend`: a running `docsync run` holds the embedded store, which no other process
  may open: the request goes to the daemon over its Unix socket, whose own `LocalBackend`
  answers it.

Both take a checked `SearchRequest` with every option filled, and give the same hits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from docsync.plugin import schema
from docsync.plugin.choices import DEFAULT_CONTEXT_TOKENS, DEFAULT_SEARCH_MODE
from docsync.plugin.daemon_client import DaemonClient
from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import CollectionMissingError, StoreError
from docsync.plugin.filters import to_match
from docsync.plugin.following import Fixed, Following, Live, ModelLoader, View, matching
from docsync.plugin.hit import Hit
from docsync.plugin.passages import passages
from docsync.plugin.profile import EmbeddingProfile
from docsync.plugin.request import MAX_LIMIT, SearchRequest
from docsync.plugin.store import Fusion, Match, Store, collection_missing
from docsync.plugin.stores import generations_of

log = logging.getLogger("docsync.search")

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
    schema.PAGE_LABEL,
    schema.PAGE_LABEL_END,
    schema.TOKENS,
)

# What a hit reads of the chunk that matched: its passage's fields and its own. The rest of
# a payload (path prefixes, hashes, the listing's fields, tags, metadata) is never decoded.
HIT_FIELDS = (
    *PASSAGE_FIELDS,
    schema.TITLE,
    schema.FORMAT,
    schema.NEXT,
    schema.PREVIOUS,
)


class Backend(Protocol):
    """What a `Searcher` searches through."""

    via_daemon: bool  # whether a daemon answers (then it holds the store and the model)

    @property
    def store(self) -> Store: ...

    @property
    def encoder(self) -> Encoder: ...

    def keyword_ready(self) -> bool: ...

    def search(self, request: SearchRequest) -> list[Hit]: ...

    def close(self) -> None: ...


def read_profile(store: Store) -> EmbeddingProfile | None:
    """The collection's profile, read for a searcher: `CollectionMissingError` (saying how
    to make it) when the collection is not there."""
    try:
        return store.read_profile()
    except CollectionMissingError:
        raise collection_missing(store.collection, store.description) from None


# How many switches one search follows before it gives up.
SWITCHES_SEEN = 4


class LocalBackend:
    """Searches `store` with `encoder`. `stored`: the collection's profile, read once for
    this backend (`read_profile`) and refused (`ProfileMismatchError`) unless it is the
    encoder's, so vectors from two models never meet. Read again only while the collection
    lacks keyword vectors of this profile: a daemon's sync may add them meanwhile.

    `load`: how to load the model a profile names. With it, a collection written with
    another model is searched with that model. Each search follows the switch of the
    collection's generations (`docsync.plugin.following`)."""

    via_daemon = False

    def __init__(
        self,
        store: Store,
        encoder: Encoder,
        stored: EmbeddingProfile | None,
        *,
        fusion: Fusion | None = None,
        load: ModelLoader | None = None,
    ) -> None:
        encoder = matching(encoder, stored, load, store.collection)
        self._anchor = store
        self.fusion = fusion or Fusion()
        self._fallback_said = False
        self._following = _following(store, encoder, stored, load)

    @classmethod
    def open(
        cls,
        store: Store,
        encoder: Encoder,
        *,
        fusion: Fusion | None = None,
        load: ModelLoader | None = None,
    ) -> LocalBackend:
        """A backend on the collection of `store`, its profile read now."""
        return cls(store, encoder, read_profile(store), fusion=fusion, load=load)

    @property
    def store(self) -> Store:
        return self._following.current().store

    @property
    def encoder(self) -> Encoder:
        return self._following.current().encoder

    def search(self, request: SearchRequest) -> list[Hit]:
        view = self._following.current()
        for _ in range(SWITCHES_SEEN):
            try:
                hits = self._search(view, request)
            except CollectionMissingError:
                # A switch deleted the generation between the look and the search.
                again = self._following.refresh(view)
                if again.key == view.key:
                    raise
                view = again
                continue
            if self._following.pinned(view):
                return hits
            # Searched by a name that a switch may have moved meanwhile: kept only if not.
            again = self._following.current()
            if again.key == view.key:
                return hits
            view = again
        raise StoreError(f"collection {self._anchor.collection!r} switched too often to answer")

    def _search(self, view: View, request: SearchRequest) -> list[Hit]:
        store, encoder = view.store, view.encoder
        mode = self._usable(view, request.mode or DEFAULT_SEARCH_MODE)
        match: dict[str, Any] = {}
        if request.filters:
            conditions = to_match(request.filters, lambda: _paths(store))
            if conditions is None:
                return []  # a path glob that selects no file
            match.update(conditions)
        prefix = schema.normalize_prefix(request.path_prefix) if request.path_prefix else None
        if prefix:
            match[schema.PATH_PREFIXES] = prefix
        question = request.question
        vector = encoder.embed_query(question).tolist() if mode != "keyword" else None
        keyword = encoder.keyword.embed_query(question) if mode != "dense" else None
        # More candidates than hits: merged passages, chunks without words and the per-file
        # limit each take some away.
        candidates = min(MAX_LIMIT, max(2 * request.limit, request.limit + 10))
        budget = DEFAULT_CONTEXT_TOKENS if request.context is None else request.context
        points, named = store.search_around(
            vector,
            limit=candidates,
            match=match or None,
            keyword=keyword,
            fusion=self.fusion,
            fields=HIT_FIELDS,
            budget=budget,
            around_fields=PASSAGE_FIELDS,
        )
        found = passages(
            points,
            limit=request.limit,
            budget=budget,
            neighbours=lambda root, path, indexes: _neighbours(store, root, path, indexes),
            count_tokens=encoder.count_tokens,
            fetch=lambda ids: _fetch(store, ids, named),
            per_file=request.per_file,
        )
        return [Hit.from_passage(p) for p in found]

    def keyword_ready(self) -> bool:
        """Whether the collection holds keyword vectors made as this encoder makes them."""
        return self._keyword_ready(self._following.current())

    def adopt(self, name: str, store: Store, encoder: Encoder) -> None:
        """Search generation `name`, once live, with this store and model (`Following.adopt`)."""
        self._following.adopt(name, store, encoder)

    def _keyword_ready(self, view: View) -> bool:
        return _ready(view) or _ready(self._following.reread(view))

    def _usable(self, view: View, mode: str) -> str:
        """`mode`, or dense when the collection cannot answer a keyword query yet."""
        if mode == "dense" or self._keyword_ready(view):
            return mode
        if not self._fallback_said:
            log.warning(
                "collection %r has no keyword vectors yet (made before them, or with another "
                "BM25 configuration): searching %s by dense vectors only; the next "
                "`docsync sync` adds them",
                self._anchor.collection,
                mode,
            )
            self._fallback_said = True
        return "dense"

    def close(self) -> None:
        self._following.close()
        self._anchor.close()


class ViewBackend(LocalBackend):
    """Searches one generation's `store` with `encoder`: it follows no switch and closes
    nothing, the store being another's (a daemon comparing its two generations)."""

    def __init__(self, store: Store, encoder: Encoder, *, fusion: Fusion | None = None) -> None:
        stored = read_profile(store)
        self._anchor = store
        self.fusion = fusion or Fusion()
        self._fallback_said = False
        view = View(store.collection, store.collection, store, encoder, stored)
        self._following = Following(Fixed(store), store, view, None)

    def close(self) -> None:
        pass


def _ready(view: View) -> bool:
    stored = view.stored
    return stored is not None and view.encoder.profile().keyword_ready(stored)


def _paths(store: Store) -> Iterator[str]:
    """Every indexed file's path (from its first chunk), for a path glob."""
    for point in store.scroll({schema.CHUNK_INDEX: [0]}, fields=(schema.PATH,)):
        yield str(point.payload.get(schema.PATH, ""))


def _neighbours(store: Store, root: str, path: str, indexes: Sequence[int]) -> list[dict[str, Any]]:
    match: Match = {schema.ROOT: root, schema.PATH: path, schema.CHUNK_INDEX: list(indexes)}
    return [p.payload for p in store.scroll(match, fields=PASSAGE_FIELDS)]


def _fetch(
    store: Store, ids: Sequence[str], named: Mapping[str, dict[str, Any]]
) -> Mapping[str, dict[str, Any]]:
    """The chunks `ids` that passages grow with: those the search's hits named, fetched
    with the search (`Store.search_around`: a daemon's store asks the process that holds
    its shard once, not twice), the rest in one request, by ID. Chosen by measurement,
    the embedded store at 100k points (bench/query.py's), the neighbours of a hybrid
    search's first 6 hits (48 chunks), p50 on 2 busy cores: one scroll per hit 1.8 ms,
    one scroll for all (per-file conditions joined by `should`) 1.4 ms, one `retrieve`
    by ID 0.54 ms; and by ID only the chunks that fit the budget are fetched, decided
    from the hits' payloads before the request."""
    missing = [pid for pid in ids if pid not in named]
    if not missing:
        return named
    found = store.retrieve(missing, fields=PASSAGE_FIELDS)
    return {**named, **{p.id: p.payload for p in found}}


def _following(
    store: Store, encoder: Encoder, stored: EmbeddingProfile | None, load: ModelLoader | None
) -> Following:
    try:
        gens: Live = generations_of(store)
    except TypeError:
        gens = Fixed(store)
    name = gens.live_name()
    first = store if not gens.by_name or name in (None, store.collection) else gens.store(name)
    key = None if name is None else gens.key(name)
    return Following(gens, store, View(name, key, first, encoder, stored), load)


class DaemonBackend:
    """Asks the `docsync run` that holds the embedded store, over its Unix socket at
    `socket_path`, to search with its own store and model: each search is one request, on
    a connection kept for the next (one per thread); nothing else is held here."""

    via_daemon = True

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self._client = DaemonClient(socket_path)

    @property
    def store(self) -> Store:
        raise StoreError(self._elsewhere("store"))

    @property
    def encoder(self) -> Encoder:
        raise StoreError(self._elsewhere("model"))

    def _elsewhere(self, what: str) -> str:
        return f"the docsync daemon on {self.socket_path} holds the {what}: this searcher asks it"

    def keyword_ready(self) -> bool:
        """True: the daemon searches dense by itself while its collection is not ready."""
        return True

    def search(self, request: SearchRequest) -> list[Hit]:
        answer = self._client.ask("/search", request.to_params())
        return [Hit.from_dict(hit) for hit in answer]

    def close(self) -> None:
        """Close the kept connections."""
        self._client.close()
