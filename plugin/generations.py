"""Generations of a collection: the name users configure (`DOCSYNC_COLLECTION`) is what
searches read; behind it, one live generation and at most one other, either being built
(`docsync reindex`), built and waiting for `docsync switch`, or the previous live one kept
for `docsync switch --back`.

A generation is a collection named `<name>--g<n>`. A collection made before generations is
the first one as it is, under its own name, with no copy. Each engine switches with its
own means, in one step a reader cannot see half of:

- a Qdrant server: the name is an alias, moved by one `update_collection_aliases` call
  (delete and create, applied atomically); `docsync.plugin.stores.qdrant_generations`;
- the embedded store: the name is a link to the generation's folder, replaced by one
  rename; `docsync.plugin.stores.edge_generations`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from docsync.plugin.errors import StoreError
from docsync.plugin.profile import EmbeddingProfile
from docsync.plugin.store import Store

SEPARATOR = "--g"
STATE_KEY = "docsync_generation"
# The other generation's state: being written, complete (`reindex` finished), or the
# previous live one kept by a switch.
BUILDING, BUILT, PREVIOUS, LIVE = "building", "built", "previous", "live"


class GenerationError(StoreError):
    """A generation step asked at the wrong time (nothing built to switch to, say)."""


def generation_name(collection: str, number: int) -> str:
    return f"{collection}{SEPARATOR}{number}"


def generation_number(collection: str, name: str) -> int | None:
    """The number of generation `name` of `collection`; 0 for the collection itself (one
    made before generations), None for a name that is neither."""
    if name == collection:
        return 0
    found = re.fullmatch(re.escape(collection + SEPARATOR) + r"(\d+)", name)
    return int(found[1]) if found else None


@dataclass(frozen=True)
class Other:
    """The generation beside the live one."""

    name: str
    state: str  # BUILDING, BUILT or PREVIOUS


@dataclass(frozen=True)
class Lineup:
    live: str | None  # None: the collection does not exist yet
    other: Other | None

    @classmethod
    def of(
        cls,
        collection: str,
        live: str | None,
        others: list[str],
        state: Callable[[str], str],
        where: str = "",
    ) -> Lineup:
        """The lineup of `live` and the generations beside it (`others`, live excluded),
        `state` read for the one; GenerationError for more than one (`where`: the store's
        folder, for the message)."""
        if len(others) > 1:
            raise GenerationError(
                f"collection {collection!r} has more than one generation beside the live "
                f"one ({', '.join(sorted(others))}){where}; delete all but one"
            )
        return cls(live, Other(others[0], state(others[0])) if others else None)

    def next_number(self, collection: str) -> int:
        names = [n for n in (self.live, self.other.name if self.other else None) if n]
        numbers = [generation_number(collection, n) or 0 for n in names]
        return max(numbers, default=0) + 1


class Generations(Protocol):
    """One collection's generations on one engine."""

    collection: str
    # Whether a store opened on the configured name follows each switch at once (a server's
    # alias: a reader then pins its generation by the generation's own name), rather than
    # keeping the generation it opened (the embedded store's link, resolved at open).
    by_name: bool

    def lineup(self) -> Lineup: ...

    def live_name(self) -> str | None:
        """The generation searches read now (cheap: a reader asks before each search)."""

    def key(self, name: str) -> str:
        """What generation `name` is, whatever its name."""

    def store(self, name: str) -> Store:
        """A store on the one generation `name` (sharing this engine's connection)."""

    def begin(self) -> str:
        """The name of the generation to build next: the one being built (to resume), or a
        new name. Makes a collection made before generations the first one, if the engine
        needs that."""

    def mark(self, name: str, state: str) -> None: ...

    def switch(self, target: str, *, keep: bool) -> str:
        """Make `target` live in one atomic step; the generation it replaces is deleted, or
        kept as PREVIOUS. Returns the name of the one replaced."""

    def discard(self, name: str) -> None: ...


def resumable(gens: Generations, profile: EmbeddingProfile) -> str:
    """The generation `docsync reindex` writes with `profile`: the one being built with the
    same profile (it goes on from where it stopped), or a new one; refused while another
    generation (built with other settings, or kept) is there."""
    lineup = gens.lineup()
    if lineup.live is None:
        raise GenerationError(
            f"collection {gens.collection!r} does not exist yet: `docsync sync DIR` makes it"
        )
    other = lineup.other
    if other is not None:
        stored = read_profile(gens, other.name)
        if (
            other.state in (BUILDING, BUILT)
            and stored is not None
            and not profile.differences(stored)
        ):
            return other.name
        raise GenerationError(
            f"collection {gens.collection!r} already has another generation, {other.name!r} "
            f"({other.state}{', other settings' if other.state != PREVIOUS else ''}); "
            "`docsync switch --discard` deletes it"
        )
    return gens.begin()


def switch_target(gens: Generations, *, back: bool) -> Other:
    """The generation `docsync switch` makes live: the built one, or with `back` the kept
    previous one; GenerationError saying how to get one when there is none."""
    other = gens.lineup().other
    if other is None or other.state != (PREVIOUS if back else BUILT):
        what = (
            "kept previous generation (switch --keep keeps one)"
            if back
            else "built generation (`docsync reindex DIR` builds one)"
        )
        found = f"; {other.name} is {other.state}" if other else ""
        raise GenerationError(f"collection {gens.collection!r} has no {what}{found}")
    return other


def live_profile(gens: Generations) -> EmbeddingProfile | None:
    live = gens.live_name()
    return None if live is None else read_profile(gens, live)


def read_profile(gens: Generations, name: str) -> EmbeddingProfile | None:
    store = gens.store(name)
    try:
        return store.read_profile()
    finally:
        store.close()
