"""A running daemon's next generation of its collection (`docsync.plugin.generations`): what
`docsync reindex`, `docsync switch` and `docsync eval --compare` do through a daemon that holds
the embedded store, and what a daemon does when its own model setting is not the one the live
generation was written with.

The build runs on a thread of its own (`docsync-reindex`) while the sync loop keeps writing
the live generation and the endpoints keep answering from it; it is a sync into the next
generation, so it goes on where it stopped after any kill. The switch to it is
`docsync.worker.generation_switch`. Each generation's shard is opened once in the daemon:
the build's store is kept, and after the switch it is the one that searches and writes use.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from docsync.plugin.embedding.loading import model_named
from docsync.plugin.embedding.runner import StopRequested
from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import DocsyncError
from docsync.plugin.evaluate import Question, Scores
from docsync.plugin.generations import (
    BUILDING,
    BUILT,
    GenerationError,
    Generations,
    Other,
    resumable,
)
from docsync.plugin.profile import EmbeddingProfile
from docsync.plugin.settings import Settings
from docsync.plugin.store import Store
from docsync.plugin.stores import generations_of
from docsync.worker.pipeline import Syncer, SyncOptions
from docsync.worker.report import SyncReport
from docsync.worker.write_target import chunk_tokens_of

log = logging.getLogger("docsync.reindex")
IDLE, RUNNING, DONE, FAILED, STOPPED = "idle", "building", "built", "failed", "stopped"


@dataclass(frozen=True)
class Side:
    """One generation as the daemon holds it: its store (opened once), its model, and the
    size of its chunks."""

    name: str
    store: Store
    encoder: Encoder
    chunk_tokens: int


class Counted:
    """A build's progress, as `GET /generations` shows it (`docsync.worker.progress.Progress`)."""

    def __init__(self) -> None:
        self.files_total = self.files_done = self.chunks_embedded = 0

    def set_total(self, total: int) -> None:
        self.files_total, self.files_done = total, 0

    def more(self, files: int) -> None:
        self.files_total += files

    def advance(self, files: int = 1) -> None:
        self.files_done += files

    def embedded(self, chunks: int) -> None:
        self.chunks_embedded += chunks


class NextGeneration:
    """The generation a daemon builds beside its live one, and the switch to it.

    `load`: a model by settings; `options`: the sync options for settings; `compare`: the
    scores of two generations on questions (`docsync.worker.generation_runs.compare_sides`);
    `load_profile`: the model a generation's profile names."""

    def __init__(
        self,
        settings: Settings,
        roots: Sequence[Path],
        *,
        load: Callable[[Settings], Encoder],
        options: Callable[[Settings], SyncOptions],
        compare: Callable[[Side, Side, str, list[Question], Sequence[str]], dict[str, Scores]],
        load_profile: Callable[[EmbeddingProfile], Encoder],
        should_stop: Callable[[], bool],
        own: Encoder | None = None,
        working: Callable[[], bool] | None = None,
    ) -> None:
        self._settings, self.roots = settings, list(roots)
        self._own = own  # the daemon's model, loaded: a build with the same one uses it
        self._load_profile = load_profile
        self._load, self._options, self._compare = load, options, compare
        self._should_stop = should_stop
        # What work on the sync loop asks (a switch's catch-up): the daemon's stop, and its
        # heartbeat going on (`Daemon.working`).
        self._working = working or should_stop
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._building: Settings | None = None  # the settings of the build under way
        # A switch, comparison or discard under way (on the loop): no build starts meanwhile,
        # as it would write the very generation being switched or deleted.
        self._busy: str | None = None
        self.state = IDLE
        self.error: str | None = None
        self.progress = Counted()
        self.report: SyncReport | None = None
        self.other: Side | None = None  # the generation beside the live one, opened
        self.live: Side | None = None  # set by the daemon (`attach`)
        self._gens: Generations | None = None
        self._anchor: Store | None = None
        # The daemon's searcher, told of a generation before it is made live.
        self.adopt: Callable[[Side], None] = lambda side: None

    def attach(self, live: Side) -> None:
        """The live generation, as the daemon writes it (at its start, and at each switch)."""
        self.live = live
        if self._gens is None:  # by the collection's name, not a generation's
            self._anchor = live.store  # holds the store's lock: never closed here
            try:
                self._gens = generations_of(live.store)
            except TypeError:  # a store without generations (a test's fake)
                self._gens = None

    @property
    def gens(self) -> Generations:
        if self._gens is None:
            raise GenerationError("the daemon has not opened its collection yet")
        return self._gens

    # the build ---------------------------------------------------------------------------

    def start(
        self,
        *,
        model: str | None = None,
        chunk_tokens: int | None = None,
        query_prefix: str | None = None,
        passage_prefix: str | None = None,
    ) -> None:
        """Build (or go on building) the next generation with the daemon's settings, those
        given replaced, on a thread of its own."""
        given = {
            "model": model,
            "chunk_tokens": chunk_tokens,
            "query_prefix": query_prefix,
            "passage_prefix": passage_prefix,
        }
        update = {name: value for name, value in given.items() if value is not None}
        settings = self._settings.model_copy(update=update)
        with self._lock:
            if self._busy is not None:
                raise GenerationError(
                    f"a {self._busy} is under way in the daemon: ask again once it is done"
                )
            if self.state == RUNNING:
                if self._building is not None and _same_build(self._building, settings):
                    return  # the same build, asked again: it goes on
                raise GenerationError(
                    f"a build of the next generation with other settings is under way "
                    f"({_settings_of(self._building)}; {self._done()}): "
                    "wait for it, then `docsync switch --discard` deletes it"
                )
            self.state, self.error, self.report = RUNNING, None, None
            self._building = settings
            self.progress = Counted()
            self._thread = threading.Thread(
                target=self._build, args=(settings,), name="docsync-reindex", daemon=True
            )
            self._thread.start()

    @contextmanager
    def _exclusive(self, what: str) -> Iterator[None]:
        """`what` (a switch, a comparison, a discard) with no build under way and none
        started meanwhile."""
        with self._lock:
            if self.state == RUNNING:
                raise GenerationError(f"the next generation is being built ({self._done()})")
            if self._busy is not None:
                raise GenerationError(f"a {self._busy} is under way in the daemon")
            self._busy = what
        try:
            yield
        finally:
            with self._lock:
                self._busy = None

    def _done(self) -> str:
        return f"{self.progress.files_done} of {self.progress.files_total} files"

    def _build(self, settings: Settings) -> None:
        try:
            built = self._build_side(settings)
        except StopRequested:
            self._end(STOPPED, "the daemon stopped; `docsync reindex` goes on where it stopped")
        except DocsyncError as exc:
            log.error("the next generation was not built: %s", exc)
            self._end(FAILED, str(exc))
        except Exception as exc:  # a bug must not end the daemon's thread unsaid
            log.exception("the next generation's build failed")
            self._end(FAILED, f"{type(exc).__name__}: {exc}")
        else:
            self._end(DONE if built else FAILED, None if built else self._incomplete())

    def _incomplete(self) -> str:
        report = self.report
        errors = report.failures if report is not None else []
        return f"the build was not complete ({len(errors)} file(s) failed); ask again to go on"

    def _end(self, state: str, error: str | None) -> None:
        with self._lock:
            self.state, self.error = state, error

    def _build_side(self, settings: Settings) -> bool:
        live = self.live
        if live is None:
            raise GenerationError("the daemon has not opened its collection yet")
        encoder = self._encoder(settings)
        profile = encoder.profile()
        target = resumable(self.gens, profile)
        side = self._side(target, encoder, settings.chunk_tokens)
        side.store.open(profile, create=True)
        self.gens.mark(target, BUILDING)
        stored = live.store.read_profile()
        donor = live.store if stored is not None and profile.same_passage_vectors(stored) else None
        log.info(
            "building generation %r of collection %r with %s in chunks of %d tokens (live: %r)%s",
            target,
            self.gens.collection,
            encoder.name,
            settings.chunk_tokens,
            live.name,
            "; reusing the live generation's vectors" if donor is not None else "",
        )
        report = self._sync(side, donor=donor)
        if report.ok:
            self.gens.mark(target, BUILT)
            side.store.optimize(serving=True, should_stop=self._should_stop)
            log.info(
                "generation %r built: `docsync eval QUESTIONS --compare` compares it, "
                "`docsync switch` makes it live",
                target,
            )
        return report.ok

    def _encoder(self, settings: Settings) -> Encoder:
        fields = ("query_prefix", "passage_prefix", "device")
        same = all(getattr(settings, f) == getattr(self._settings, f) for f in fields)
        same = same and same_model(settings.model, self._settings.model)
        return self._own if same and self._own is not None else self._load(settings)

    def _side(self, name: str, encoder: Encoder, chunk_tokens: int) -> Side:
        """Generation `name` with `encoder`: its store, opened once (the one opened before,
        if any: a shard is never opened twice in one process)."""
        with self._lock:
            kept = self.other
            if kept is not None and kept.name == name:
                side = Side(name, kept.store, encoder, chunk_tokens)
            else:
                if kept is not None:
                    self._close(kept.store)
                side = Side(name, self.gens.store(name), encoder, chunk_tokens)
            self.other = side
        return side

    def _sync(
        self,
        side: Side,
        *,
        donor: Store | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> SyncReport:
        """A sync of every root into `side`; `should_stop`: asked before each batch (the
        build's stop, or, on the sync loop, the daemon's own: its heartbeat goes on)."""
        options = self._options(
            self._settings.model_copy(update={"chunk_tokens": side.chunk_tokens})
        )
        asked = should_stop or self._should_stop
        syncer = Syncer(side.store, side.encoder, options, should_stop=asked, donor=donor)
        self.report = syncer.sync_scopes(
            [(root, "") for root in self.roots], progress=self.progress
        )
        return self.report

    # what a client asks ------------------------------------------------------------------

    def describe(self) -> dict[str, object]:
        lineup = self.gens.lineup()
        with self._lock:
            build: dict[str, object] = {
                "state": self.state,
                "files_done": self.progress.files_done,
                "files_total": self.progress.files_total,
                "chunks_embedded": self.progress.chunks_embedded,
            }
            if self.error:
                build["error"] = self.error
            if self.report is not None and self.state != RUNNING:
                build["report"] = self.report.to_dict()
        other = lineup.other
        return {
            "collection": self.gens.collection,
            "live": lineup.live,
            "other": None if other is None else {"name": other.name, "state": other.state},
            "build": build,
        }

    def opened_other(self, other: Other | None) -> Side:
        """The generation beside the live one (`other`, as the lineup says), opened (with the
        model its profile names) when this daemon did not build it (it was restarted since).
        Asked under `_exclusive`: no build runs."""
        if other is None:
            raise GenerationError(
                f"collection {self.gens.collection!r} has no generation beside the live one: "
                "`docsync reindex DIR` builds one"
            )
        with self._lock:
            kept = self.other
        if kept is not None and kept.name == other.name:
            return kept
        store = self.gens.store(other.name)
        try:
            stored = store.read_profile()
            if stored is None:
                raise GenerationError(f"generation {other.name!r} has no embedding profile")
            encoder = self._load_profile(stored)
            tokens = chunk_tokens_of(store) or self._settings.chunk_tokens
        except BaseException:
            store.close()
            raise
        side = Side(other.name, store, encoder, tokens)
        with self._lock:
            self.other = side
        return side

    def close(self) -> None:
        """After the daemon's stop was asked: the build ends at its next batch."""
        thread = self._thread
        if thread is not None:
            thread.join()
        with self._lock:
            kept, self.other = self.other, None
        if kept is not None and (self.live is None or kept.store is not self.live.store):
            self._close(kept.store)

    def _close(self, store: Store) -> None:
        """Close a generation's store, never the one that holds the store's lock (the
        daemon's, closed by its owner when the daemon ends)."""
        if store is not self._anchor:
            store.close()


def _same_build(running: Settings, asked: Settings) -> bool:
    fields = ("chunk_tokens", "query_prefix", "passage_prefix")
    same = all(getattr(running, f) == getattr(asked, f) for f in fields)
    return same and same_model(running.model, asked.model)


def same_model(ours: str, theirs: str) -> bool:
    """Whether two model settings name the same model: a local folder by its real path (the
    daemon's own setting may be relative to its folder; a client sends an absolute one)."""
    return model_named(ours) == model_named(theirs)


def _settings_of(settings: Settings | None) -> str:
    if settings is None:
        return "settings unknown"
    return f"model {settings.model}, chunks of {settings.chunk_tokens} tokens"
