"""Generations in the embedded store (`docsync.plugin.generations`): the collection's folder,
`<DOCSYNC_QDRANT_PATH>/<name>`, is a relative link to the live generation's folder,
`<name>--g<n>`, replaced by one rename (durably), as the shard link inside each one is
(`docsync.plugin.stores.edge_folder.link`). A generation's state is in `generation.json` in
its folder.

A collection made before generations is a plain folder: the first process that opens it to
write renames it to `<name>--g1` and links the name to it (two renames, no copy;
`edge_folder.recover_generation` finishes them after a crash between the two); a new one is
made so. The store's lock covers every generation:
one process holds them all, as it holds the store.
"""

from __future__ import annotations

import glob
import json
import os
import shutil

from docsync.plugin.generations import (
    BUILDING,
    LIVE,
    PREVIOUS,
    SEPARATOR,
    GenerationError,
    Lineup,
    generation_name,
    generation_number,
)
from docsync.plugin.stores import edge_folder
from docsync.plugin.stores.edge import EdgeStore

STATE_FILE = "generation.json"
DELETING = ".deleting-"  # a generation being deleted: never one of the lineup


class EdgeGenerations:
    """The generations of `base.collection`, under `base`'s lock."""

    by_name = False

    def __init__(self, base: EdgeStore) -> None:
        self._base = base
        self._root = base.root
        self.collection = base.collection
        self._name = self._root / self.collection

    def live_name(self) -> str | None:
        if self._name.is_symlink():
            return os.readlink(self._name)
        return self.collection if self._name.is_dir() else None

    def lineup(self) -> Lineup:
        edge_folder.recover_generation(self._root, self.collection)
        live = self.live_name()
        others = [n for n in self._numbered() if n != live]
        return Lineup.of(self.collection, live, others, self._state, f" in {self._root}")

    def store(self, name: str) -> EdgeStore:
        return self._base.on(name)

    def key(self, name: str) -> str:
        """The folder's identity: the first generation keeps it when `begin` names it."""
        try:
            return str((self._root / name).stat().st_ino)
        except FileNotFoundError:
            return name

    def begin(self) -> str:
        self._sweep()
        edge_folder.first_generation(self._root, self.collection)
        return generation_name(self.collection, self.lineup().next_number(self.collection))

    def mark(self, name: str, state: str) -> None:
        edge_folder.write_atomically(self._root / name / STATE_FILE, json.dumps({"state": state}))

    def switch(self, target: str, *, keep: bool) -> str:
        live = self.live_name()
        if live is None or live == self.collection:
            raise GenerationError(f"collection {self.collection!r} has no generation to replace")
        self.mark(target, LIVE)  # before the link: a crash after it leaves target marked
        edge_folder.link_generation(self._root, self.collection, target)
        if keep:
            self.mark(live, PREVIOUS)
        else:
            self.discard(live)
        return live

    def discard(self, name: str) -> None:
        """Delete generation `name`: renamed out of the lineup first (durably), so that a
        process killed while the files go never leaves half a generation that looks like
        one being built (a later reindex would open its broken shard)."""
        self._base.let_go_of(self._root / name)
        trash = self._root / f"{DELETING}{name}"
        os.replace(self._root / name, trash)
        edge_folder.sync_folder(self._root)
        shutil.rmtree(trash)
        self._sweep()

    def _sweep(self) -> None:
        """The files of generations whose deletion a killed process left unfinished."""
        pattern = glob.escape(f"{DELETING}{self.collection}{SEPARATOR}") + "*"
        for found in self._root.glob(pattern):
            shutil.rmtree(found, ignore_errors=True)

    def _numbered(self) -> list[str]:
        return [
            p.name
            for p in self._root.iterdir()
            if p.is_dir() and not p.is_symlink() and generation_number(self.collection, p.name)
        ]

    def _state(self, name: str) -> str:
        try:
            state = json.loads((self._root / name / STATE_FILE).read_text("utf-8"))["state"]
        except FileNotFoundError:
            return BUILDING
        return PREVIOUS if state == LIVE else str(state)
