"""A daemon's generations, wired from the settings (`docsync.worker.next_generation`): which
model writes the live generation, the next generation's builder, and the routes that
`docsync reindex`, `docsync switch` and `docsync eval --compare` reach it by.

A daemon whose model setting is not the live generation's keeps serving: it searches and
syncs the live generation with the model that generation was written with, builds the next
one with its own model beside it, and says so; `docsync switch` makes that one live once it
is built (`docsync eval --compare` first, to see whether it answers better).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import CollectionMissingError
from docsync.plugin.settings import Settings
from docsync.plugin.store import Store
from docsync.worker.generation_switch import GenerationSwitch
from docsync.worker.next_generation import Side
from docsync.worker.write_target import chunk_tokens_of

if TYPE_CHECKING:
    from docsync.plugin.search import Searcher
    from docsync.worker.daemon import Daemon
    from docsync.worker.generation_api import GenerationApi
    from docsync.worker.pipeline import SyncOptions
    from docsync.worker.web.views import WebViews

log = logging.getLogger("docsync.daemon")


def live_side(settings: Settings, store: Store, encoder: Encoder) -> tuple[Side, bool]:
    """The live generation of `store`'s collection as the daemon writes it, and whether the
    daemon's own model (`encoder`) is another one: then the live generation keeps the model
    it was written with (loaded here; one clear error where it cannot be), and its chunks."""
    from docsync.plugin.search import profile_loader
    from docsync.worker import wiring

    try:
        stored = store.read_profile()
    except CollectionMissingError:
        stored = None  # made by the first sync, with the daemon's model
    name = _live_name(store)
    if stored is None or not encoder.profile().differences(stored):
        return Side(name, store, encoder, settings.chunk_tokens), False
    # Warmed, as the daemon's own model is: questions take the same path (and the same
    # precision) as before the restart, so the answers are the same.
    live = profile_loader(settings, lambda given: wiring.load_encoder(given, warm=True))(stored)
    tokens = chunk_tokens_of(store) or settings.chunk_tokens
    log.warning(
        "collection %r was written with model %r; this daemon is set to %r: it keeps "
        "searching and syncing the live generation %r with %r, and builds the next "
        "generation with %r beside it (`docsync switch` makes it live once built)",
        store.collection,
        stored.model,
        encoder.name,
        name,
        live.name,
        encoder.name,
    )
    return Side(name, store, live, tokens), True


def named(side: Side) -> Side:
    """`side` under the name of its generation, now that the collection exists (a new one
    is made by the daemon's first open, as its first generation)."""
    return replace(side, name=_live_name(side.store))


def _live_name(store: Store) -> str:
    from docsync.plugin.stores import generations_of

    try:
        name = generations_of(store).live_name()
    except TypeError:  # a store without generations (a test's fake)
        return store.collection
    return name or store.collection


def builder(
    settings: Settings, roots: list[Path], daemon: Daemon, own: Encoder
) -> GenerationSwitch:
    """The daemon's next generation, on its stop; `own`: the model its settings name."""
    from docsync.plugin.search import profile_loader
    from docsync.worker import wiring
    from docsync.worker.generation_runs import compare_sides

    def options(given: Settings) -> SyncOptions:
        return wiring.sync_options(given, allow_empty=False, mass_delete=False)

    return GenerationSwitch(
        settings,
        roots,
        load=wiring.load_encoder,
        options=options,
        compare=lambda live, other, label, questions, modes: compare_sides(
            settings, live, other, label, questions, modes
        ),
        load_profile=profile_loader(settings, wiring.load_encoder),
        should_stop=daemon.stopping,
        own=own,
        working=daemon.working,
    )


def routes(
    daemon: Daemon, searcher: Searcher, web: WebViews | None, roots: list[Path]
) -> GenerationApi | None:
    """The `/generations` routes of `daemon`, its searcher told of each generation made
    live before it is (so it searches it with the store and model the daemon holds)."""
    from docsync.plugin.backends import LocalBackend
    from docsync.worker.generation_api import GenerationApi

    nxt = daemon.next
    if nxt is None:
        return None
    backend = searcher.backend
    if isinstance(backend, LocalBackend):
        nxt.adopt = lambda side: backend.adopt(side.name, side.store, side.encoder)

    def moved(side: Side) -> None:
        daemon.write_into(side)
        if web is not None:
            web.store = side.store

    return GenerationApi(nxt, daemon.calls, roots, moved)
