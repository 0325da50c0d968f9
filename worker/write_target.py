"""Which generation a daemon writes into (`docsync.plugin.generations`).

On a Qdrant server another process may switch the collection (`docsync switch`) while
`docsync run` syncs it: the alias then names another generation, perhaps written with
another model. So before each sync the daemon asks which generation is live (one alias
request) and writes into that generation by its own name, never through the alias: a
switch after the look cannot carry a write into the other generation. Each write asks
again (one alias request a batch of up to 256 points) and stops the sync at a switch.

When the live generation is written with the daemon's own model and chunk size (a switch
back, say), the daemon follows it and syncs every root again (changes made meanwhile went
elsewhere). Otherwise it stops writing, says why in one ERROR line, and keeps answering
searches (readers follow the switch on their own) until a generation of its own is live
again; unless the live generation is the one this daemon built beside it with its own model
(`docsync.worker.next_generation`): then it writes that one from now on, with that model.
The embedded store needs none of this: the daemon holds its lock, so only the daemon itself
switches it (`docsync switch` asks it to: `docsync.worker.generation_api`).

One gap is left: a server collection made before generations is written by its own name,
which its first switch turns into the alias of the next generation. A write sent in the
milliseconds between the look and that switch lands in the next generation.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from docsync.plugin import schema
from docsync.plugin.errors import CollectionMissingError, StoreError, StoreRequestError
from docsync.plugin.generations import Generations
from docsync.plugin.profile import EmbeddingProfile
from docsync.plugin.store import Store

if TYPE_CHECKING:
    from docsync.worker.next_generation import Side

log = logging.getLogger("docsync.daemon")
_MAX_TOKENS = re.compile(r"max_tokens=(\d+)")


class SwitchedError(StoreError):
    """The generation a sync writes is no longer the live one: the sync stops before its
    next write, and the daemon looks again."""


@dataclass(frozen=True)
class Look:
    """What the daemon may write now: `store` (None: nothing, refused), and whether it
    moved to another generation since the last look (then every root is synced again)."""

    store: Store | None
    moved: bool = False
    # A generation of another model that this daemon built and holds (its next one, made
    # live by another process): the daemon writes it from now on, with that model.
    taken: Side | None = None


class WriteTarget:
    """The live generation of `store`'s collection, while it is written as `profile` and
    `chunk_tokens` say; pinned by its own name."""

    def __init__(
        self,
        store: Store,
        profile: EmbeddingProfile,
        chunk_tokens: int,
        *,
        on_refusal: Callable[[], None] = lambda: None,
        take: Callable[[str], Side | None] = lambda name: None,
    ) -> None:
        self._anchor, self._profile, self._chunk_tokens = store, profile, chunk_tokens
        self._on_refusal = on_refusal  # each time it starts refusing (a metric)
        self._take = take  # the daemon's own next generation, when it is the one made live
        self._gens = _switchable(store)
        self.generation: str | None = None  # the one looked at last
        self._store: Store | None = store
        self.refused: str | None = None  # why nothing is written, while so

    def look(self) -> Look:
        """Before a sync: where it writes. Cheap when nothing switched (one alias request)."""
        if self._gens is None:
            return Look(self._anchor)
        name = self._gens.live_name()
        if name is None or name == self.generation:
            # None: not made yet (the sync makes it), or the first switch's gap (the pinned
            # store's next write says so).
            return Look(self._store)
        first = self.generation is None
        taken = None if first else self._take(name)
        if taken is not None:
            self.generation, self.refused = name, None
            self._release()
            log.info(
                "collection %r: generation %r, which this daemon built, is live: writing "
                "into it with %s, every root synced again",
                self._gens.collection,
                name,
                taken.encoder.name,
            )
            return Look(taken.store, moved=True, taken=taken)
        # The chunk size is compared at a switch only: a daemon started with another one
        # chunks its generation anew, as a sync does.
        try:
            why = self._unlike(name, chunks=not first)
        except (CollectionMissingError, StoreRequestError):  # switched again: look again
            return Look(self._store)
        self.generation = name
        self._release()
        if why:
            if why != self.refused:  # once a switch, not once a look
                log.error("%s", why)
                self._on_refusal()
            self.refused = why
            return Look(None)
        self._store = self._pinned(name)
        if not first:
            log.info(
                "collection %r: generation %r is live and written as this daemon writes: "
                "writing into it, every root synced again",
                self._gens.collection,
                name,
            )
        self.refused = None
        return Look(self._store, moved=not first)

    @property
    def switchable(self) -> bool:
        """Whether another process may switch the collection (a server's)."""
        return self._gens is not None

    def _release(self) -> None:
        if self._store is not None and self._store is not self._anchor:
            self._store.close()
        self._store = None

    def close(self) -> None:
        self._release()

    def _pinned(self, name: str) -> Store:
        from docsync.plugin.stores.qdrant import QdrantClientStore

        assert self._gens is not None
        store = self._gens.store(name)
        if isinstance(store, QdrantClientStore):  # the one engine with `by_name` generations
            store.before_write = lambda: self._still_live(name)
        return store

    def _still_live(self, name: str) -> None:
        assert self._gens is not None
        live = self._gens.live_name()
        if live != name:
            raise SwitchedError(
                f"collection {self._gens.collection!r}: generation {name!r} is no longer "
                f"live ({live!r} is): this sync stops before its next write"
            )

    def _unlike(self, name: str, *, chunks: bool) -> str:
        """Why this daemon must not write generation `name`; "" when it may."""
        assert self._gens is not None
        store = self._gens.store(name)
        try:
            stored = store.read_profile()
            tokens = chunk_tokens_of(store) if chunks else None
        finally:
            store.close()
        if stored is None:
            return (
                f"collection {self._gens.collection!r} was switched to generation {name!r}, "
                "which has no embedding profile (not made by docsync): this daemon writes "
                "nothing more and keeps answering searches; switch back (`docsync switch "
                "--back`) or restart `docsync run`"
            )
        if not self._profile.differences(stored) and tokens in (None, self._chunk_tokens):
            return ""
        model = stored.model
        settings = f"DOCSYNC_MODEL={model}"
        if tokens is not None:
            settings += f" DOCSYNC_CHUNK_TOKENS={tokens}"
        return (
            f"collection {self._gens.collection!r} was switched to generation {name!r}, "
            f"written with model {model!r}"
            f"{f' in chunks of {tokens} tokens' if tokens is not None else ''}; this daemon "
            f"embeds with {self._profile.model!r} in chunks of {self._chunk_tokens}: it writes "
            f"nothing more (two models never mix in one collection) and keeps answering "
            f"searches. Restart `docsync run` with {settings} (or `docsync switch --back`)"
        )


def chunk_tokens_of(store: Store) -> int | None:
    """The chunk size a generation was written with, from one of its points (None: empty)."""
    for point in store.scroll({}, fields=[schema.CHUNKER]):
        found = _MAX_TOKENS.search(str(point.payload.get(schema.CHUNKER, "")))
        return int(found[1]) if found else None
    return None


def _switchable(store: Store) -> Generations | None:
    """The generations of a server collection (another process can switch them); None for
    the embedded store (the daemon holds its lock) and for stores without generations."""
    from docsync.plugin.stores import generations_of

    try:
        gens = generations_of(store)
    except TypeError:
        return None
    return gens if gens.by_name else None
