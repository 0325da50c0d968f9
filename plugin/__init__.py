"""docsync's query side, and the contract the worker writes to: settings, embedding profile,
encoder, payload schema, store interface and the `Searcher`."""

from plugin.encoder import Encoder
from plugin.errors import (
    CollectionMissingError,
    ConfigError,
    DocsyncError,
    ModelLoadError,
    ProfileMismatchError,
    StoreError,
    StoreFullError,
    StoreLockedError,
    StoreRequestError,
    StoreUnavailableError,
)
from plugin.profile import EmbeddingProfile
from plugin.search import Hit, Searcher
from plugin.settings import Settings
from plugin.store import Point, ScoredPoint, Store, open_store

__all__ = [
    "CollectionMissingError",
    "ConfigError",
    "DocsyncError",
    "EmbeddingProfile",
    "Encoder",
    "Hit",
    "ModelLoadError",
    "Point",
    "ProfileMismatchError",
    "ScoredPoint",
    "Searcher",
    "Settings",
    "Store",
    "StoreError",
    "StoreFullError",
    "StoreLockedError",
    "StoreRequestError",
    "StoreUnavailableError",
    "open_store",
]
