"""The switch of a running daemon's collection to the generation it holds beside the live one
(`docsync.worker.next_generation` builds it): on the sync loop, between two syncs, the next
generation is brought up to date with the folders (what changed during the build: a sync,
which embeds only that), compared first where asked (`--if-not-worse`), made live in one
step, and the daemon's writes and searches moved onto it with its model; the one replaced is
kept or deleted. Also the comparison of the two, the deletion of the other one, and, on a
server, a switch made by another process to the generation this daemon built.
"""

from __future__ import annotations

from collections.abc import Sequence

from docsync.plugin.evaluate import Question, Scores
from docsync.plugin.generations import PREVIOUS, GenerationError, switch_target
from docsync.plugin.store import Store
from docsync.worker.generation_runs import hit_at_5
from docsync.worker.next_generation import IDLE, RUNNING, NextGeneration, Side


class GenerationSwitch(NextGeneration):
    """The daemon's next generation (`NextGeneration`), and the switch to it."""

    def compare(self, questions: list[Question], modes: Sequence[str]) -> dict[str, Scores]:
        """Both generations' scores on `questions`, each with its own model."""
        with self._exclusive("comparison"):
            return self._compared(questions, modes)

    def _compared(self, questions: list[Question], modes: Sequence[str]) -> dict[str, Scores]:
        live = self.live
        assert live is not None
        other = self.gens.lineup().other
        side = self.opened_other(other)
        label = "previous" if other is not None and other.state == PREVIOUS else "next"
        return self._compare(live, side, label, questions, modes)

    def switch(
        self,
        *,
        back: bool = False,
        keep: bool = False,
        questions: list[Question] | None = None,
        modes: Sequence[str] = (),
    ) -> tuple[Side, str, dict[str, Scores] | None]:
        """Make the other generation live, on the sync loop: brought up to date first (not
        when going back), compared first when `questions` are given (not switched if its
        Hit@5 is lower). Returns the new live side, the name of the one replaced, and the
        comparison."""
        with self._exclusive("switch"):
            return self._switched(back=back, keep=keep, questions=questions, modes=modes)

    def _switched(
        self,
        *,
        back: bool,
        keep: bool,
        questions: list[Question] | None,
        modes: Sequence[str],
    ) -> tuple[Side, str, dict[str, Scores] | None]:
        live = self.live
        assert live is not None
        side = self.opened_other(switch_target(self.gens, back=back))
        if not back:
            report = self._sync(side, should_stop=self._working)  # what changed meanwhile
            if not report.ok:
                raise GenerationError(
                    f"not switched: bringing {side.name} up to date met "
                    f"{len(report.failures)} failed file(s)"
                )
        rows = None
        if questions is not None:
            label = "previous" if back else "next"
            rows = self._compare(live, side, label, questions, modes)
            if hit_at_5(rows, label) < hit_at_5(rows, "live"):
                raise NotSwitched(f"not switched: {side.name}'s Hit@5 is lower than the live one's")
        self.adopt(side)  # searches use this store and model once it is live
        replaced = self.gens.switch(side.name, keep=True)  # deleted below, if not kept
        with self._lock:
            self.other = live if keep else None
            self.state, self.report = IDLE, None
        if not keep:
            _retire(live.store)
            self.gens.discard(replaced)
        self.attach(side)
        return side, replaced, rows

    def took_live(self, name: str) -> Side | None:
        """The side of generation `name` when it is the one this daemon built, made live by
        another process (a server's `docsync switch`): from now on the live one."""
        with self._lock:
            side, live = self.other, self.live
            if side is None or side.name != name or self.state == RUNNING:
                return None
            self.other, self.state, self.report = None, IDLE, None
        if live is not None:
            self._close(live.store)
        self.attach(side)
        return side

    def discard(self) -> str:
        with self._exclusive("discard"):
            return self._discarded()

    def _discarded(self) -> str:
        with self._lock:  # no build runs: `_exclusive` said so, and starts none meanwhile
            kept, self.other, self.state = self.other, None, IDLE
        other = self.gens.lineup().other
        if other is None:
            raise GenerationError(f"collection {self.gens.collection!r} has no other generation")
        if kept is not None:
            _retire(kept.store)
            self._close(kept.store)
        self.gens.discard(other.name)
        return other.name


class NotSwitched(GenerationError):
    """`--if-not-worse` found the other generation worse: not switched (exit 1)."""


def _retire(store: Store) -> None:
    """Before its generation is deleted: an embedded store's shard closed, never opened
    again (a search in flight on it meanwhile looks for the live generation)."""
    from docsync.plugin.stores.edge import EdgeStore

    if isinstance(store, EdgeStore):
        store.retire()
