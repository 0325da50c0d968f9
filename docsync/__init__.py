"""docsync: keep a Qdrant collection exactly in step with folders of documents, and answer
questions against it.

The public API is what `__all__` names; it loads on first use, so `import docsync` (and the
child processes that import one module of it) pays for nothing it does not touch. The rest
lives in two sub-packages: `docsync.plugin`, the query side and the contract both sides share
(settings, profile, encoder, payload schema, stores), and `docsync.worker`, the sync daemon
and the `docsync` command. `docsync.plugin` never imports `docsync.worker`.

The errors are one tree under `DocsyncError`, drawn in `docsync.plugin.errors`; library code
raises them and only the command line turns them into one-line messages.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docsync.plugin.encoder import Encoder
    from docsync.plugin.errors import (
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
    from docsync.plugin.profile import EmbeddingProfile
    from docsync.plugin.request import SearchRequest
    from docsync.plugin.search import Hit, Searcher
    from docsync.plugin.settings import Settings
    from docsync.plugin.store import Point, ScoredPoint, Store
    from docsync.plugin.stores import open_store

# name -> the module that defines it; imported on first access (PEP 562)
_HOME = {
    "Searcher": "docsync.plugin.search",
    "SearchRequest": "docsync.plugin.request",
    "Hit": "docsync.plugin.search",
    "Settings": "docsync.plugin.settings",
    "EmbeddingProfile": "docsync.plugin.profile",
    "Encoder": "docsync.plugin.encoder",
    "Store": "docsync.plugin.store",
    "Point": "docsync.plugin.store",
    "ScoredPoint": "docsync.plugin.store",
    "open_store": "docsync.plugin.stores",
    **{
        name: "docsync.plugin.errors"
        for name in (
            "DocsyncError",
            "ConfigError",
            "ModelLoadError",
            "ProfileMismatchError",
            "CollectionMissingError",
            "StoreError",
            "StoreUnavailableError",
            "StoreFullError",
            "StoreLockedError",
            "StoreRequestError",
        )
    },
}

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
    "SearchRequest",
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


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'docsync' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
