"""Generations on a Qdrant server (`docsync.plugin.generations`): the configured name is an
alias of the live generation's collection, `<name>--g<n>`, moved from one to the next by one
`update_collection_aliases` call (Qdrant applies its delete and create atomically: a search
by the name finds the one or the other, never neither). The other generation's state is in
its collection's metadata.

A collection made before generations is a real collection under the name, and Qdrant
refuses an alias that has a collection's name. Its first switch therefore deletes it and
creates the alias in two calls: between them (milliseconds) the name is missing, which
docsync's readers ride out (they look again: `docsync.plugin.backends`); other
applications may see one "not found". Nor can it be kept by that switch. Every later switch
is atomic, and can keep the one it replaces.
"""

from __future__ import annotations

from typing import Any

from qdrant_client import models

from docsync.plugin.generations import (
    BUILDING,
    LIVE,
    PREVIOUS,
    STATE_KEY,
    GenerationError,
    Lineup,
    generation_name,
    generation_number,
)
from docsync.plugin.stores.qdrant import QdrantClientStore


class ServerGenerations:
    """The generations of `base.collection`, through `base`'s client."""

    by_name = True

    def __init__(self, base: QdrantClientStore) -> None:
        self._base = base
        self._client = base.client
        self.collection = base.collection

    def live_name(self) -> str | None:
        aliases = self._base._call(self._client.get_aliases).aliases
        for alias in aliases:
            if alias.alias_name == self.collection:
                return alias.collection_name
        exists = self._base._call(self._client.collection_exists, self.collection)
        return self.collection if exists else None

    def lineup(self) -> Lineup:
        live = self.live_name()
        names = [c.name for c in self._base._call(self._client.get_collections).collections]
        others = [
            n for n in names if n != live and (generation_number(self.collection, n) or 0) > 0
        ]
        return Lineup.of(self.collection, live, others, self._state)

    def store(self, name: str) -> QdrantClientStore:
        return self._base.on(name)

    def key(self, name: str) -> str:
        return name

    def begin(self) -> str:
        return generation_name(self.collection, self.lineup().next_number(self.collection))

    def mark(self, name: str, state: str) -> None:
        self._base._call(self._client.update_collection, name, metadata={STATE_KEY: state})

    def switch(self, target: str, *, keep: bool) -> str:
        live = self.live_name()
        if live is None:
            raise GenerationError(f"collection {self.collection!r} does not exist")
        create = models.CreateAliasOperation(
            create_alias=models.CreateAlias(collection_name=target, alias_name=self.collection)
        )
        if live == self.collection:  # made before generations: see the module's docstring
            if keep:
                raise GenerationError(
                    f"collection {self.collection!r} was made before generations: its first "
                    "switch replaces it, and cannot keep it (drop --keep; later switches can)"
                )
            self._base._call(self._client.delete_collection, live)
            self._aliases([create])
            self.mark(target, LIVE)
            return live
        drop = models.DeleteAliasOperation(
            delete_alias=models.DeleteAlias(alias_name=self.collection)
        )
        self._aliases([drop, create])  # one call: Qdrant applies both, atomically
        self.mark(target, LIVE)
        if keep:
            self.mark(live, PREVIOUS)
        else:
            self.discard(live)
        return live

    def discard(self, name: str) -> None:
        self._base._call(self._client.delete_collection, name)

    def _aliases(self, operations: list[Any]) -> None:
        self._base._call(
            self._client.update_collection_aliases, change_aliases_operations=operations
        )

    def _state(self, name: str) -> str:
        info = self._base._call(self._client.get_collection, name)
        state = (info.config.metadata or {}).get(STATE_KEY)
        if state == LIVE:  # live until a switch that stopped before marking it PREVIOUS
            return PREVIOUS
        return state if isinstance(state, str) else BUILDING
