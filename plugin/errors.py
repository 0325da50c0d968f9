"""The errors docsync raises on purpose.

    DocsyncError
    ├── ConfigError            bad settings or arguments: a missing directory, an unknown device
    ├── ModelLoadError         the embedding model could not be loaded
    └── StoreError             anything about the Qdrant store
        ├── StoreUnavailableError   unreachable, timed out, 5xx or 429: worth retrying
        │   ├── StoreFullError      the embedded store's disk is (nearly) full: retry once freed
        │   ├── ShardProcessError   the child process holding the embedded shard died twice
        │   └── DaemonUnavailableError  no daemon answers on the store's socket (it stopped)
        ├── IndexBuildError         the embedded index builder failed: searches stay exact
        ├── StoreLockedError        the embedded store's folder is held by another process
        ├── StoreRequestError       Qdrant refused the request (4xx): retrying cannot help
        ├── CollectionMissingError  the collection does not exist (and we may not create it)
        └── ProfileMismatchError    the collection was written with another embedding profile

Library code raises these; only the CLI turns them into one-line messages.
"""


class DocsyncError(Exception):
    """Base of every error docsync raises on purpose."""


class ConfigError(DocsyncError):
    """Settings or arguments that cannot work."""


class ModelLoadError(DocsyncError):
    """The embedding model could not be loaded."""


class StoreError(DocsyncError):
    """A failure talking to the Qdrant store."""


class StoreUnavailableError(StoreError):
    """The store did not answer, or answered with a transient failure."""


class StoreFullError(StoreUnavailableError):
    """Too little free space under the embedded store to write safely. An outage like any
    other to the daemon: its changes stay pending and are retried once space is back."""


class ShardProcessError(StoreUnavailableError):
    """The child process holding the embedded store's shard ended in the middle of a request
    (killed, out of memory, a bus error). The store starts another and asks again once; a
    second death is an outage like any other to the daemon: its changes stay pending."""


class DaemonUnavailableError(StoreUnavailableError):
    """The `docsync run` that holds the embedded store does not answer on its socket: it
    stopped (the socket is gone or left behind), or it is too busy to answer in time."""


class IndexBuildError(StoreError):
    """The child process building the embedded store's index failed (an error, or killed):
    nothing changed, searches stay exact, and a daemon tries again after a backoff."""


class StoreLockedError(StoreError):
    """Another process holds the embedded store's folder."""


class StoreRequestError(StoreError):
    """The store refused a request; repeating it would fail the same way."""


class CollectionMissingError(StoreError):
    """The collection does not exist."""


class ProfileMismatchError(StoreError):
    """The collection's embedding profile differs from ours."""
