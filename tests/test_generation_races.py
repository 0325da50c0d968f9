"""Races between the requests that reach a daemon's next generation at once (`docsync
reindex`, `docsync switch`, `docsync eval --compare`, `switch --discard` from several
clients): a build never starts while a switch, a comparison or a discard is under way (it
would write the very generation being made live or deleted), and a reindex asked with other
settings than the build under way is refused, never followed as if it were its own. In
process, on the embedded store, with the daemon's loop turned by hand."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import ConfigError
from docsync.plugin.generations import GenerationError
from docsync.plugin.settings import Settings
from docsync.plugin.stores.edge import EdgeStore
from docsync.worker.daemon import Daemon
from docsync.worker.daemon_generations import builder, live_side, named
from docsync.worker.generation_switch import GenerationSwitch
from docsync.worker.next_generation import Side
from docsync.worker.pipeline import SyncOptions
from tests.conftest import CORPUS, HANG, run_sync
from tests.test_daemon_process import poll
from tests.test_generations_daemon import OPTIONS, Clock, Silent

FILES = ("howto/sockets.rst", "howto/enum.rst")


@pytest.fixture
def built(
    tmp_path: Path, tiny_model_dir: Path, tiny_encoder: Encoder
) -> Iterator[GenerationSwitch]:
    """A daemon's next generation over an embedded collection, with generation g2 built
    (the same model, other chunks) beside the live g1."""
    docs = tmp_path / "docs"
    for name in FILES:
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CORPUS / name, docs / name)
    store = EdgeStore(tmp_path / "store", "docs")
    assert run_sync(docs, store, tiny_encoder).ok
    settings = Settings(model=str(tiny_model_dir), qdrant_path=tmp_path / "store")
    daemon = Daemon(
        [docs],
        store=store,
        encoder=tiny_encoder,
        sync_options=SyncOptions(),
        options=OPTIONS,
        watcher_factory=Silent,
        clock=Clock(),
    )
    live, _ = live_side(settings, store, tiny_encoder)
    nxt = builder(settings, [docs], daemon, tiny_encoder)
    nxt.attach(named(live))
    nxt.start(chunk_tokens=128)
    poll(lambda: nxt.state != "building", what="built")
    assert nxt.state == "built", nxt.error
    try:
        yield nxt
    finally:
        daemon.stop()
        nxt.close()
        if nxt.live is not None and nxt.live.store is not store:
            nxt.live.store.close()
        store.close()


def test_no_build_starts_while_a_switch_is_under_way(built: GenerationSwitch) -> None:
    refused: list[str] = []

    def reindex_asked_meanwhile(side: Side) -> None:  # after the catch-up, before the switch
        with pytest.raises(GenerationError) as caught:
            built.start(chunk_tokens=128)
        refused.append(str(caught.value))

    built.adopt = reindex_asked_meanwhile
    side, replaced, _ = built.switch()
    assert (side.name, replaced) == ("docs--g2", "docs--g1")
    assert refused and "switch is under way" in refused[0]
    assert built.state == "idle"  # no build went on in the generation just made live
    gens = built.gens
    lineup = gens.lineup()
    assert lineup.live == "docs--g2" and lineup.other is None
    built.start(chunk_tokens=256)  # once the switch is done, a build starts again
    poll(lambda: built.state != "building", what="built again")
    assert built.state == "built", built.error
    other = gens.lineup().other
    assert other is not None and (other.name, other.state) == ("docs--g3", "built")


def test_a_reindex_with_other_settings_than_the_build_under_way_is_refused(
    built: GenerationSwitch,
) -> None:
    built.discard()
    loading = threading.Event()
    release = threading.Event()

    def load(settings: Settings) -> Encoder:  # the build holds here until the test is done
        loading.set()
        release.wait(HANG)
        raise ConfigError(f"model {settings.model!r} not loaded: the test's")

    built._load = load
    built.start(model="another-model")
    try:
        assert loading.wait(HANG)
        built.start(model="another-model")  # the same build, asked again: it goes on
        with pytest.raises(GenerationError, match="other settings is under way"):
            built.start(model="a-third-model")
        with pytest.raises(GenerationError, match="being built"):
            built.compare([], ("dense",))
    finally:
        release.set()
        poll(lambda: built.state != "building", what="the build's end")
    assert built.state == "failed" and "the test's" in (built.error or "")


def test_a_model_folder_is_the_same_by_its_relative_or_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon set with a relative DOCSYNC_MODEL and a client that sends the absolute path
    (as `docsync reindex` does) ask for the same build."""
    from docsync.worker.next_generation import same_model

    (tmp_path / "models" / "v2").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert same_model("models/v2", str(tmp_path / "models" / "v2"))
    assert same_model("./models/v2/", str(tmp_path / "models" / "v2"))
    assert not same_model("models/v2", str(tmp_path / "models" / "v3"))
    assert same_model("org/name", "org/name") and not same_model("org/name", "org/other")
