"""A daemon writing to a server collection that another process switches (`docsync switch`):
it writes only into the live generation, and only while that generation is written with its
own model (`docsync.worker.write_target`); after a switch to another model it writes
nothing, says so once and keeps answering searches; after a switch back it syncs again. A
server is played by qdrant-client's `:memory:`, shared by the daemon and the switch. The
loop is turned by hand on a clock of the test's own: no thread, no wait."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from qdrant_client import QdrantClient

from docsync.plugin.backends import LocalBackend
from docsync.plugin.encoder import Encoder
from docsync.plugin.generations import Generations
from docsync.plugin.search import Searcher
from docsync.plugin.settings import Settings
from docsync.plugin.store import Store
from docsync.plugin.stores import generations_of
from docsync.plugin.stores.edge import EdgeStore
from docsync.plugin.stores.qdrant import QdrantClientStore
from docsync.worker.cli import cli
from docsync.worker.daemon import LOOK_SECONDS, Daemon, DaemonOptions
from docsync.worker.daemon_generations import builder, live_side, named
from docsync.worker.pipeline import SyncOptions
from docsync.worker.reindex import reindex
from docsync.worker.serve import Api
from docsync.worker.web.health import errors_by_kind
from tests.conftest import FEW_FILES, copy_files, held_elsewhere, run_sync, state
from tests.test_daemon_process import poll
from tests.test_generations import by_model
from tests.test_sync import fresh_state

FILES = FEW_FILES
CHANGED = FILES[1]
OPTIONS = DaemonOptions(rescan_seconds=3600, debounce_seconds=0.05, max_wait_seconds=1)


@pytest.fixture(scope="module")
def second_encoder(second_model_dir: Path) -> Encoder:
    """Another model: a tiny random BERT with other weights (another fingerprint)."""
    return Encoder.load(str(second_model_dir), device="cpu", query_prefix="query: ")


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    return copy_files(tmp_path / "docs", FILES).resolve()


@pytest.fixture
def server(docs: Path, tiny_encoder: Encoder) -> Iterator[QdrantClientStore]:
    """The collection on a "server", live generation `docs--g1` written with the tiny
    model (a collection made by a sync, rebuilt once as a generation and switched to)."""
    store = QdrantClientStore(QdrantClient(location=":memory:"), "docs")
    assert run_sync(docs, store, tiny_encoder).ok
    first = reindex([docs], live=store, encoder=tiny_encoder, options=SyncOptions())
    generations_of(store).switch(first.generation, keep=False)
    assert first.generation == "docs--g1"
    yield store
    store.close()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Silent:
    def __init__(self, *_: Any) -> None:
        pass

    def start(self) -> None:
        pass

    def ensure_alive(self) -> bool:
        return False

    def stop(self) -> None:
        pass


def daemon_on(store: Store, docs: Path, encoder: Encoder, clock: Clock) -> Daemon:
    return Daemon(
        [docs],
        store=store,
        encoder=encoder,
        sync_options=SyncOptions(),
        options=OPTIONS,
        watcher_factory=Silent,
        clock=clock,
    )


def turn(daemon: Daemon, clock: Clock, *paths: str) -> None:
    """The files `paths` changed (a watcher's events), then one turn of the loop once their
    debounce and the daemon's next look at the generations are due."""
    for path in paths:
        daemon.debouncer.touch(daemon.roots[0], path)
    clock.now += LOOK_SECONDS + 1
    daemon.step()


def generation_state(gens: Generations, name: str) -> set[tuple[str, tuple[float, ...]]]:
    store = gens.store(name)
    try:
        return {(p.id, tuple(p.vector or ())) for p in store.scroll({}, with_vectors=True)}
    finally:
        store.close()


def exact_in(gens: Generations, name: str, docs: Path, encoder: Encoder) -> bool:
    store = gens.store(name)
    try:
        return state(store) == fresh_state(docs, encoder)
    finally:
        store.close()


def api_on(daemon: Daemon, searcher: Searcher) -> Api:
    return Api(
        searcher=searcher,
        healthy=daemon.healthy,
        ready=daemon.ready.is_set,
        metrics=CollectorRegistry(),
        status=daemon.state,
        refused=daemon.refused,
    )


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR and "writes nothing more" in r.getMessage()
    ]


def test_a_switch_to_another_model_stops_the_writes_and_a_switch_back_resumes_them(
    server: QdrantClientStore,
    docs: Path,
    tiny_encoder: Encoder,
    second_encoder: Encoder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gens = generations_of(server)
    clock = Clock()
    daemon = daemon_on(server, docs, tiny_encoder, clock)
    turn(daemon, clock, "")
    assert daemon.target.generation == "docs--g1" and daemon.refused() is None
    built = reindex([docs], live=server, encoder=second_encoder, options=SyncOptions())
    gens.switch(built.generation, keep=True)  # by "another process": the daemon is not told
    second = generation_state(gens, built.generation)

    (docs / CHANGED).write_text("Enumerations\n============\n\nRewritten after the switch.\n")
    with caplog.at_level(logging.INFO, logger="docsync.daemon"):
        for _ in range(3):
            turn(daemon, clock, CHANGED)
    assert generation_state(gens, built.generation) == second  # nothing written into it
    said = refusals(caplog)
    assert len(said) == 1, said
    assert "'docs--g2'" in said[0] and f"DOCSYNC_MODEL={second_encoder.name}" in said[0]
    assert daemon.state()["refused"] == said[0] and daemon.state()["pending_changes"] >= 1
    assert errors_by_kind(daemon.metrics)["generation_refused"] == 1  # the web page's Health
    load = by_model(tiny_encoder, second_encoder)
    reader = Searcher.over(LocalBackend.open(server.on("docs"), tiny_encoder, load=load))
    api = api_on(daemon, reader)
    code, _, body = api.answer("/healthz")
    assert code == 200 and json.loads(body)["status"] == "refused"  # a restart would not help
    code, _, body = api.answer("/search?q=socket&mode=dense")
    assert code == 200 and json.loads(body)  # searches go on, with the live model

    gens.switch("docs--g1", keep=True)  # back: the daemon's own model again
    with caplog.at_level(logging.INFO, logger="docsync.daemon"):
        turn(daemon, clock)
    assert daemon.refused() is None and daemon.target.generation == "docs--g1"
    assert exact_in(gens, "docs--g1", docs, tiny_encoder)  # the change made meanwhile too
    assert len(refusals(caplog)) == 1
    assert api.answer("/healthz")[0] == 200
    daemon.target.close()


def test_a_switch_between_the_look_and_a_write_never_lands_a_batch_in_the_other_generation(
    server: QdrantClientStore,
    docs: Path,
    tiny_encoder: Encoder,
    second_encoder: Encoder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gens = generations_of(server)
    clock = Clock()
    daemon = daemon_on(server, docs, tiny_encoder, clock)
    turn(daemon, clock, "")
    built = reindex([docs], live=server, encoder=second_encoder, options=SyncOptions())
    second = generation_state(gens, built.generation)
    checks: list[str] = []
    still_live: Callable[[str], None] = daemon.target._still_live

    def then_switch(name: str) -> None:
        """The check before a write passes; then another process switches, before the
        write is sent."""
        still_live(name)
        checks.append(name)
        if len(checks) == 1:
            gens.switch(built.generation, keep=True)

    monkeypatch.setattr(daemon.target, "_still_live", then_switch)
    for name in FILES:
        (docs / name).write_text(f"{name}\n=====\n\nRewritten while the collection switched.\n")
    turn(daemon, clock, *FILES)
    assert checks == ["docs--g1"]  # the second write saw the switch and stopped the sync
    assert gens.live_name() == built.generation
    assert generation_state(gens, built.generation) == second  # not one point of this model
    turn(daemon, clock)
    assert daemon.refused() is not None
    assert generation_state(gens, built.generation) == second
    daemon.target.close()


def test_switch_is_refused_while_a_process_holds_the_embedded_store(
    env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A daemon holds the embedded store's lock: no other process can switch it under it."""
    EdgeStore.connect(path=tmp_path / "store", collection="docsync").close()
    with held_elsewhere(tmp_path / "store"):
        code = cli("switch")
    err = capsys.readouterr().err
    assert code == 2 and "in use by another process" in err


def test_a_collection_made_before_generations_is_refused_after_its_first_switch(
    docs: Path, tiny_encoder: Encoder, second_encoder: Encoder, caplog: pytest.LogCaptureFixture
) -> None:
    """Written by its own name until its first switch turns the name into an alias."""
    store = QdrantClientStore(QdrantClient(location=":memory:"), "docs")
    gens = generations_of(store)
    clock = Clock()
    daemon = daemon_on(store, docs, tiny_encoder, clock)
    assert daemon.wait_for_store(tiny_encoder.profile())  # `docsync run` makes it so
    turn(daemon, clock, "")
    assert daemon.target.generation == "docs" and gens.live_name() == "docs"
    built = reindex([docs], live=store, encoder=second_encoder, options=SyncOptions())
    gens.switch(built.generation, keep=False)
    second = generation_state(gens, built.generation)
    (docs / CHANGED).write_text("Enumerations\n============\n\nRewritten after the switch.\n")
    with caplog.at_level(logging.ERROR, logger="docsync.daemon"):
        turn(daemon, clock, CHANGED)
    assert generation_state(gens, built.generation) == second
    assert len(refusals(caplog)) == 1 and daemon.refused() is not None
    daemon.target.close()
    store.close()


def test_a_switch_to_other_chunks_of_the_same_model_is_refused_naming_the_chunk_size(
    server: QdrantClientStore, docs: Path, tiny_encoder: Encoder, caplog: pytest.LogCaptureFixture
) -> None:
    gens = generations_of(server)
    clock = Clock()
    daemon = daemon_on(server, docs, tiny_encoder, clock)
    turn(daemon, clock, "")
    built = reindex([docs], live=server, encoder=tiny_encoder, options=SyncOptions(chunk_tokens=96))
    gens.switch(built.generation, keep=True)
    with caplog.at_level(logging.ERROR, logger="docsync.daemon"):
        turn(daemon, clock, CHANGED)
    said = refusals(caplog)
    assert len(said) == 1 and "DOCSYNC_CHUNK_TOKENS=96" in said[0], said
    daemon.target.close()


def test_a_daemon_set_to_another_model_keeps_serving_and_writes_what_it_built_once_live(
    server: QdrantClientStore,
    docs: Path,
    tiny_encoder: Encoder,
    second_encoder: Encoder,
) -> None:
    """Started with the second model on a collection written with the tiny one: the live
    generation is searched and synced with the tiny model, the next is built with the
    second; once another process switches to it, the daemon writes it, with that model."""
    gens = generations_of(server)
    settings = Settings(model=second_encoder.name, query_prefix="query: ")
    clock = Clock()
    daemon = daemon_on(server, docs, second_encoder, clock)
    live, other_model = live_side(settings, server, second_encoder)
    assert other_model and live.encoder.profile() == tiny_encoder.profile()
    daemon.write_into(live)
    daemon.next = builder(settings, [docs], daemon, second_encoder)
    daemon.next.attach(named(live))
    daemon.next.start()
    reader = Searcher.over(LocalBackend.open(server.on("docs"), live.encoder))
    api = api_on(daemon, reader)
    before = api.answer("/search?q=socket&mode=dense")
    assert before[0] == 200 and json.loads(before[2])
    turn(daemon, clock, CHANGED)  # the live generation, with its own model
    assert exact_in(gens, "docs--g1", docs, tiny_encoder)
    poll(lambda: daemon.next is not None and daemon.next.state != "building", what="built")
    assert daemon.next.state == "built", daemon.next.error
    assert api.answer("/search?q=socket&mode=dense") == before  # only a switch makes it live

    gens.switch("docs--g2", keep=True)  # by "another process"
    (docs / CHANGED).write_text("Enumerations\n============\n\nRewritten after the switch.\n")
    turn(daemon, clock, CHANGED)
    assert daemon.target.generation == "docs--g2" and daemon.refused() is None
    assert exact_in(gens, "docs--g2", docs, second_encoder)  # the change, with its model
    assert exact_in(gens, "docs--g1", docs, tiny_encoder) is False  # not written there
    daemon.target.close()
