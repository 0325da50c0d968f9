"""The store adapters behind `docsync.plugin.store.Store`, and `open_store`, which picks one.

`edge`: Qdrant Edge in-process (with `edge_shard`, the engine's calls, and `edge_host`,
the child process that holds a daemon's shard). `qdrant`: a Qdrant server or
cluster through qdrant-client. Each adapter is imported only when it is opened: a process
that uses one never loads the other's library.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from docsync.plugin.errors import StoreRequestError
from docsync.plugin.keyword import KEYWORD_VECTOR, SparseVector
from docsync.plugin.store import Point, Store

if TYPE_CHECKING:
    from docsync.plugin.generations import Generations
    from docsync.plugin.settings import Settings

__all__ = ["generations_of", "open_store", "point_from_record"]
log = logging.getLogger("docsync.store")


def open_store(settings: Settings, *, reading: bool = False, serving: bool = False) -> Store:
    """The store the settings name: a Qdrant server by URL, else the embedded engine
    (Qdrant Edge) in the folder `qdrant_path`. `reading`: for a command that only reads
    (an embedded store is then opened without creating anything, and refuses writes).
    `serving`: for a process that answers searches while it syncs (a daemon): an embedded
    store's shard is then held by a child process, so that opening a rebuilt index never
    stops the searches."""
    if settings.qdrant_url:
        from docsync.plugin.stores.qdrant import QdrantClientStore

        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return QdrantClientStore.connect(
            url=settings.qdrant_url,
            api_key=key,
            collection=settings.collection,
            attempts=settings.qdrant_retries,
            cluster=settings.cluster_settings(),
            ordering=settings.write_ordering,
            quantization=settings.quantization,
        )
    if settings.cluster_settings():
        log.warning(
            "DOCSYNC_SHARD_NUMBER, DOCSYNC_REPLICATION_FACTOR and "
            "DOCSYNC_WRITE_CONSISTENCY_FACTOR apply to a Qdrant server (DOCSYNC_QDRANT_URL); "
            "the embedded store has one shard and ignores them"
        )
    from docsync.plugin.stores.edge import EdgeStore

    return EdgeStore.connect(
        path=settings.qdrant_path,
        collection=settings.collection,
        reading=reading,
        quantization=settings.quantization,
        serving=serving,
    )


class EngineRecord(Protocol):
    """A point as either Qdrant library returns it (`qdrant_client.models.Record` or
    `ScoredPoint`, `qdrant_edge`'s records): what `point_from_record` reads of it."""

    @property
    def id(self) -> object: ...
    @property
    def vector(self) -> object: ...
    @property
    def payload(self) -> dict[str, Any] | None: ...


def point_from_record(record: EngineRecord) -> Point:
    """A `Point` from either engine's record (`id`, `payload`, and `vector`: a list, or a
    mapping of names to vectors where the dense one is "" and sparse ones have `indices`
    and `values`), as both Qdrant libraries return them."""
    vector, keyword = record.vector, None
    if isinstance(vector, dict):
        sparse = vector.get(KEYWORD_VECTOR)
        if sparse is not None:
            keyword = SparseVector(list(sparse.indices), [float(v) for v in sparse.values])
        vector = vector.get("")
    if vector is not None and not isinstance(vector, list):
        raise StoreRequestError(f"point {record.id} has a vector docsync does not know")
    payload = dict(record.payload or {})
    return Point(id=str(record.id), payload=payload, vector=vector, keyword=keyword)


def generations_of(store: Store) -> Generations:
    """The generations of the collection `store` was opened on, through its connection (a
    server's client, or the embedded store's lock)."""
    from docsync.plugin.stores.edge import EdgeStore
    from docsync.plugin.stores.qdrant import QdrantClientStore

    if isinstance(store, EdgeStore):
        from docsync.plugin.stores.edge_generations import EdgeGenerations

        return EdgeGenerations(store)
    if isinstance(store, QdrantClientStore):
        from docsync.plugin.stores.qdrant_generations import ServerGenerations

        return ServerGenerations(store)
    raise TypeError(f"no generations for {type(store).__name__}")
