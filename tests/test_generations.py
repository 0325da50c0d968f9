"""Generations of a collection on both engines (`docsync.plugin.generations`): a reindex to
another model beside the live generation, which a searcher keeps answering from; the switch,
seen whole by a reader asking in a loop; switch back; a chunker-only change that embeds only
the chunks whose text changed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from docsync.plugin.backends import LocalBackend
from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import ModelLoadError
from docsync.plugin.following import ModelLoader
from docsync.plugin.generations import BUILT, PREVIOUS, GenerationError, live_profile
from docsync.plugin.profile import EmbeddingProfile
from docsync.plugin.request import SearchRequest
from docsync.plugin.store import Store
from docsync.plugin.stores import generations_of
from docsync.plugin.stores.edge import EdgeStore
from docsync.plugin.stores.qdrant import QdrantClientStore
from docsync.worker.pipeline import SyncOptions
from docsync.worker.reindex import reindex
from tests.conftest import FEW_FILES, HANG, QUERY_PREFIX, copy_files, run_sync

FILES = FEW_FILES


@pytest.fixture(scope="module")
def second_encoder(second_model_dir: Path) -> Encoder:
    """Another model: a tiny random BERT with other weights (another fingerprint)."""
    return Encoder.load(str(second_model_dir), device="cpu", query_prefix=QUERY_PREFIX)


@pytest.fixture
def small_docs(tmp_path: Path) -> Path:
    return copy_files(tmp_path / "docs", FILES)


@pytest.fixture(params=["edge", "memory"])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    store: Store
    if request.param == "edge":
        store = EdgeStore.connect(path=tmp_path / "store", collection="docs")
    else:
        store = QdrantClientStore(QdrantClient(location=":memory:"), "docs")
    yield store
    store.close()


def test_reindex_beside_the_live_generation_then_switch_and_back(
    live: Store, small_docs: Path, tiny_encoder: Encoder, second_encoder: Encoder
) -> None:
    assert run_sync(small_docs, live, tiny_encoder).ok
    gens = generations_of(live)
    # A server collection made by an earlier sync is the first generation under its own
    # name; the embedded store makes each collection a link to its first generation.
    assert gens.lineup().live in ("docs", "docs--g1") and gens.lineup().other is None
    done = reindex([small_docs], live=live, encoder=second_encoder, options=SyncOptions())
    assert done.built and not done.reused_live
    assert done.report.chunks_embedded > 0
    lineup = gens.lineup()
    assert lineup.other is not None and lineup.other.state == BUILT
    assert lineup.other.name == done.generation
    first = gens.switch(done.generation, keep=False) if lineup.live == "docs" else None
    if first is None:  # the embedded store made the old one a generation, so it can be kept
        gens.switch(done.generation, keep=True)
    assert gens.live_name() == done.generation
    # What the collection's name reads now (a store opened before the switch stays on the
    # generation it opened, in the embedded store: below).
    assert live_profile(gens) == second_encoder.profile()
    if first is None:
        other = gens.lineup().other
        assert other is not None and other.state == PREVIOUS
        assert live.read_profile() == tiny_encoder.profile()  # pinned to its generation
        gens.switch(other.name, keep=True)  # back
        assert live_profile(gens) == tiny_encoder.profile()


def test_a_reindex_with_other_settings_is_refused_while_one_is_built(
    live: Store, small_docs: Path, tiny_encoder: Encoder, second_encoder: Encoder
) -> None:
    assert run_sync(small_docs, live, tiny_encoder).ok
    reindex([small_docs], live=live, encoder=second_encoder, options=SyncOptions())
    again = reindex([small_docs], live=live, encoder=second_encoder, options=SyncOptions())
    assert again.built and again.report.chunks_embedded == 0  # goes on: nothing to do
    with pytest.raises(GenerationError, match="another generation"):
        reindex([small_docs], live=live, encoder=tiny_encoder, options=SyncOptions(chunk_tokens=64))


def test_a_chunker_only_change_embeds_only_the_chunks_whose_text_changed(
    live: Store, small_docs: Path, tiny_encoder: Encoder
) -> None:
    assert run_sync(small_docs, live, tiny_encoder, chunk_tokens=128).ok
    live_hashes = {p.payload["embed_hash"] for p in live.scroll({}, fields=["embed_hash"])}
    done = reindex(
        [small_docs], live=live, encoder=tiny_encoder, options=SyncOptions(chunk_tokens=96)
    )
    assert done.built and done.reused_live
    gens = generations_of(live)
    built = gens.store(done.generation)
    try:
        new_hashes = {p.payload["embed_hash"] for p in built.scroll({}, fields=["embed_hash"])}
    finally:
        built.close()
    changed = new_hashes - live_hashes
    assert 0 < done.report.chunks_embedded == len(changed)
    assert done.report.vectors_reused >= len(new_hashes & live_hashes) > 0


QUESTION = "How do I create a socket?"
Answer = tuple[tuple[str, int, int, float], ...]


def answer(backend: LocalBackend) -> Answer:
    hits = backend.search(SearchRequest.of(QUESTION, limit=5, mode="dense"))
    return tuple((h.path, h.start, h.end, round(h.score, 5)) for h in hits)


def by_model(*encoders: Encoder) -> ModelLoader:
    """A reader's model loader that knows these encoders (by their profile's fingerprint)."""
    known = {e.profile().fingerprint: e for e in encoders}
    return lambda profile: known[profile.fingerprint]


class Asking:
    """A reader asking the same question in a loop on a thread (`ask`), keeping every
    answer."""

    def __init__(self, ask: Callable[[], Answer]) -> None:
        self.ask, self.answers, self.errors = ask, list[Answer](), list[BaseException]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.answers.append(self.ask())
            except BaseException as exc:
                self.errors.append(exc)
                return

    def wait_for(self, count: int) -> None:
        """Until `count` more answers (or an error) came, within the hang deadline."""
        target = len(self.answers) + count
        deadline = time.monotonic() + HANG
        while len(self.answers) < target and not self.errors and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not self.errors, self.errors

    def stop(self) -> list[Answer]:
        self._stop.set()
        self._thread.join(HANG)
        assert not self.errors, self.errors
        return self.answers


def test_a_reader_keeps_answering_through_a_reindex_and_sees_each_switch_whole(
    live: Store, small_docs: Path, tiny_encoder: Encoder, second_encoder: Encoder
) -> None:
    assert run_sync(small_docs, live, tiny_encoder).ok
    backend = LocalBackend.open(live, tiny_encoder, load=by_model(tiny_encoder, second_encoder))
    before = answer(backend)
    reader = Asking(lambda: answer(backend))
    done = reindex([small_docs], live=live, encoder=second_encoder, options=SyncOptions())
    reader.wait_for(3)
    assert set(reader.answers) == {before}  # the live generation throughout the build
    gens = generations_of(live)
    gens.switch(done.generation, keep=gens.live_name() != "docs")
    reader.wait_for(3)
    after = answer(backend)
    assert after != before and backend.encoder is second_encoder
    if gens.live_name() != "docs" and (other := gens.lineup().other) is not None:
        gens.switch(other.name, keep=True)  # back: atomic on both engines
        reader.wait_for(3)
    answers = reader.stop()
    assert set(answers) <= {before, after}  # each from one generation, with its own model
    assert answers[-1] == (before if gens.lineup().other else after)


def test_later_switches_are_atomic_and_go_back_on_both_engines(
    live: Store, small_docs: Path, tiny_encoder: Encoder, second_encoder: Encoder
) -> None:
    """After the first switch (which, on a server, replaces a collection made before
    generations), each switch is one step, and a kept generation can be switched back to."""
    assert run_sync(small_docs, live, tiny_encoder).ok
    gens = generations_of(live)
    first = reindex([small_docs], live=live, encoder=second_encoder, options=SyncOptions())
    gens.switch(first.generation, keep=False)
    # An embedded store stays on the generation it opened, deleted now: a store on the
    # collection's name again, as the next process opens it.
    live = opened_again(live)
    gens = generations_of(live)
    backend = LocalBackend.open(live, tiny_encoder, load=by_model(tiny_encoder, second_encoder))
    on_second = answer(backend)
    reader = Asking(lambda: answer(backend))
    again = reindex([small_docs], live=live, encoder=tiny_encoder, options=SyncOptions())
    assert again.reused_live is False and again.generation != first.generation
    for target in (again.generation, first.generation, again.generation):
        gens.switch(target, keep=True)
        reader.wait_for(3)
    on_first = answer(backend)
    answers = reader.stop()
    assert on_first != on_second and set(answers) <= {on_first, on_second}
    assert {on_first, on_second} <= set(answers)


def opened_again(store: Store) -> Store:
    """A store on `store`'s collection by name, as a new process would open it."""
    return store.on(store.collection) if isinstance(store, EdgeStore) else store


def test_a_model_the_reader_cannot_load_is_one_error_naming_it(
    live: Store, small_docs: Path, tiny_encoder: Encoder, second_encoder: Encoder
) -> None:
    assert run_sync(small_docs, live, tiny_encoder).ok
    gens = generations_of(live)

    def cannot(profile: EmbeddingProfile) -> Encoder:
        raise ModelLoadError(f"model {profile.model!r} is not on this machine")

    backend = LocalBackend.open(live, tiny_encoder, load=cannot)
    done = reindex([small_docs], live=live, encoder=second_encoder, options=SyncOptions())
    answer(backend)  # the live generation still: its model is this one
    gens.switch(done.generation, keep=False)
    with pytest.raises(ModelLoadError, match=r"was written with model .* cannot be loaded here"):
        answer(backend)
