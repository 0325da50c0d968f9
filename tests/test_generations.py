"""Generations of a collection on both engines (`docsync.plugin.generations`): a reindex to
another model beside the live generation, which a searcher keeps answering from; the switch,
seen whole by a reader asking in a loop; switch back; a chunker-only change that embeds only
the chunks whose text changed."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from docsync.plugin.encoder import Encoder
from docsync.plugin.generations import BUILT, PREVIOUS, GenerationError
from docsync.plugin.store import Store
from docsync.plugin.stores import generations_of
from docsync.plugin.stores.edge import EdgeStore
from docsync.plugin.stores.qdrant import QdrantClientStore
from docsync.worker.pipeline import SyncOptions
from docsync.worker.reindex import reindex
from tests.conftest import CORPUS, QUERY_PREFIX, run_sync, save_tiny_bert

FILES = ("howto/sockets.rst", "howto/enum.rst", "howto/annotations.rst")


@pytest.fixture(scope="module")
def second_encoder(tmp_path_factory: pytest.TempPathFactory) -> Encoder:
    """Another model: a tiny random BERT with other weights (another fingerprint)."""
    folder = save_tiny_bert(tmp_path_factory.mktemp("second-bert"), initializer_range=0.3)
    return Encoder.load(str(folder), device="cpu", query_prefix=QUERY_PREFIX)


@pytest.fixture
def small_docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    for name in FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CORPUS / name, root / name)
    return root


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
    assert gens.lineup().live == "docs" and gens.lineup().other is None  # as it was made
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
    assert live.read_profile() == second_encoder.profile()
    if first is None:
        other = gens.lineup().other
        assert other is not None and other.state == PREVIOUS
        gens.switch(other.name, keep=True)  # back
        assert live.read_profile() == tiny_encoder.profile()


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
