"""A reader follows the switch (`docsync.plugin.generations`): before each search it asks
which generation is live (a link read, or one alias request), and when a switch changed it,
opens that generation and embeds questions with the model its profile names, loaded then.
A search runs on one generation with that generation's model from start to end: it never
mixes two, and never sees one that is being built (only a switch makes one live).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import DocsyncError, ModelLoadError
from docsync.plugin.profile import EmbeddingProfile
from docsync.plugin.store import Store, check_profile

log = logging.getLogger("docsync.search")

# How long a reader whose generation vanished looks for the next one, and how often.
SWITCH_SECONDS = 2.0
SWITCH_POLL = 0.01
# How a reader loads the model a profile names (None: it has only the model it was given).
ModelLoader = Callable[[EmbeddingProfile], Encoder]


class Live(Protocol):
    """What a reader needs of `docsync.plugin.generations.Generations`."""

    collection: str
    by_name: bool

    def live_name(self) -> str | None: ...

    def store(self, name: str) -> Store: ...

    def key(self, name: str) -> str:
        """What generation `name` is, whatever its name (the embedded store names the first
        generation anew when it makes it one)."""


@dataclass(frozen=True)
class View:
    """One generation as a search sees it: its store, its model, its stored profile."""

    name: str | None
    key: str | None  # `Live.key` of `name`
    store: Store
    encoder: Encoder
    stored: EmbeddingProfile | None


def matching(
    encoder: Encoder, stored: EmbeddingProfile | None, load: ModelLoader | None, collection: str
) -> Encoder:
    """`encoder` when `stored` (a generation's profile) is its own, else the model `stored`
    names, loaded by `load`; `ProfileMismatchError` when neither fits."""
    if stored is None or load is None or not encoder.profile().differences(stored):
        check_profile(encoder.profile(), stored, collection=collection)
        return encoder
    try:
        loaded = load(stored)
    except DocsyncError as exc:
        raise ModelLoadError(
            f"collection {collection!r} was written with model {stored.model!r}, which cannot "
            f"be loaded here: {exc}"
        ) from exc
    check_profile(loaded.profile(), stored, collection=collection)
    return loaded


class Following:
    """The view of the live generation of `anchor`'s collection, kept current."""

    def __init__(self, gens: Live, anchor: Store, first: View, load: ModelLoader | None) -> None:
        self._gens, self._anchor, self._load = gens, anchor, load
        self._view = first
        # Every generation this reader has opened, by key: one it returns to (a switch back)
        # is opened once (the embedded engine has a shard open once per process). Closed
        # once gone, one switch later (a search may still be in it).
        self._opened: dict[str | None, View] = {first.key: first}
        self._lock = threading.Lock()

    def current(self) -> View:
        name = self._gens.live_name()
        view = self._view
        if name == view.name or name is None:
            return view
        with self._lock:
            if name != self._view.name:
                self._switch_to(name)
            return self._view

    def adopt(self, name: str, store: Store, encoder: Encoder) -> None:
        """Generation `name` as another part of this process holds it open (a daemon's next
        generation, built there): searched with that store and model once it is live, not
        opened a second time (the embedded engine opens a shard once per process)."""
        key = self._gens.key(name)
        view = View(name, key, store, encoder, store.read_profile())
        with self._lock:
            self._opened[key] = view

    def _key(self, name: str | None) -> str | None:
        return None if name is None else self._gens.key(name)

    def refresh(self, gone: View) -> View:
        """After a search found the generation of `gone` missing (deleted by a switch): the
        live one, looked for again until `SWITCH_SECONDS` (the first switch of a server
        collection made before generations has the name missing for milliseconds)."""
        deadline = time.monotonic() + SWITCH_SECONDS
        with self._lock:
            while True:
                name = self._gens.live_name()
                if name is not None and name != gone.name:
                    if name != self._view.name:
                        self._switch_to(name)
                    return self._view
                if time.monotonic() >= deadline:
                    return self._view
                time.sleep(SWITCH_POLL)

    def pinned(self, view: View) -> bool:
        """Whether a search of `view` searched that generation whatever a switch did: not so
        for a server collection made before generations, searched by the name that its
        first switch makes an alias of the next one."""
        return not self._gens.by_name or view.name != self._gens.collection

    def reread(self, view: View) -> View:
        """`view` with its profile read again (a daemon's sync may add keyword vectors)."""
        with self._lock:
            if self._view is view:
                self._view = View(
                    view.name, view.key, view.store, view.encoder, view.store.read_profile()
                )
            return self._view

    def _switch_to(self, name: str) -> None:
        key = self._key(name)
        old = self._view
        if key == old.key:  # the same generation, named anew
            self._view = self._opened[key] = View(name, key, old.store, old.encoder, old.stored)
            return
        self._close_gone(keep=old)
        view = self._opened.get(key) or self._open(name, key)
        log.info("collection %r: now searching generation %r", self._gens.collection, name)
        self._view = self._opened[key] = view

    def _open(self, name: str, key: str | None) -> View:
        store = self._gens.store(name)
        try:
            stored = store.read_profile()
            encoder = matching(self._view.encoder, stored, self._load, self._gens.collection)
        except BaseException:
            store.close()
            raise
        return View(name, key, store, encoder, stored)

    def _close_gone(self, keep: View) -> None:
        for key, view in list(self._opened.items()):
            if view is not keep and view.name is not None and self._gone(view):
                del self._opened[key]
                if view.store is not self._anchor:
                    view.store.close()

    def _gone(self, view: View) -> bool:
        assert view.name is not None
        try:
            return self._gens.key(view.name) != view.key
        except DocsyncError:
            return True

    def close(self) -> None:
        for view in self._opened.values():
            if view.store is not self._anchor:
                view.store.close()
        self._opened = {}


class Fixed:
    """The generations of a store that has none of its own (a test's fake): the one."""

    by_name = False

    def __init__(self, store: Store) -> None:
        self._store = store
        self.collection = store.collection

    def live_name(self) -> str | None:
        return self.collection

    def store(self, name: str) -> Store:
        return self._store

    def key(self, name: str) -> str:
        return name
