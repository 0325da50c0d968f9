"""docsync's query side, and the contract the worker writes to: settings, embedding profile,
encoder, payload schema, store interface and the `Searcher`."""

from plugin.choices import DEFAULT_SEARCH_MODE, SEARCH_MODES
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
from plugin.keyword import KeywordEncoder, SparseVector
from plugin.profile import EmbeddingProfile
from plugin.search import Hit, Searcher
from plugin.settings import Settings
from plugin.store import Fusion, Point, ScoredPoint, Store, open_store

__all__ = [
    "DEFAULT_SEARCH_MODE",
    "SEARCH_MODES",
    "CollectionMissingError",
    "ConfigError",
    "DocsyncError",
    "EmbeddingProfile",
    "Encoder",
    "Fusion",
    "Hit",
    "KeywordEncoder",
    "ModelLoadError",
    "Point",
    "ProfileMismatchError",
    "ScoredPoint",
    "Searcher",
    "Settings",
    "SparseVector",
    "Store",
    "StoreError",
    "StoreFullError",
    "StoreLockedError",
    "StoreRequestError",
    "StoreUnavailableError",
    "open_store",
]
