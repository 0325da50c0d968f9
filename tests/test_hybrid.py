"""Keyword (BM25) vectors beside the dense ones, and the search modes that use them: written by
every sync on both engines, searched dense, keyword or hybrid, added to a collection made
before them without re-embedding anything, and carried across export and import."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import StoreRequestError
from docsync.plugin.keyword import KEYWORD_PROFILE, KeywordEncoder
from docsync.plugin.profile import EmbeddingProfile
from docsync.plugin.search import Searcher, fusion
from docsync.plugin.settings import Settings
from docsync.plugin.store import Fusion, Point, Store
from docsync.plugin.stores.edge import EdgeStore
from docsync.plugin.stores.qdrant import QdrantClientStore
from docsync.worker.cli import cli
from docsync.worker.serve import Api
from docsync.worker.transfer import export_points, import_points
from tests.conftest import CORPUS, run_sync

ENGINES = ["edge", "memory"]
TARGET = "frobnicate_widget_v2"
# Twelve pages of one workshop manual, each naming a sibling of the target function.
CHORES = [
    ("spindle", "Sets how fast the widget spindle turns while it is being assembled."),
    ("gasket", "Presses the rubber gasket into the widget housing so no oil leaks."),
    ("paint", "Sprays two coats of lacquer on the widget shell and lets them dry."),
    ("ship", "Wraps a finished widget in foam and seals its shipping box."),
    ("inspect", "Checks every weld seam of the widget frame under ultraviolet light."),
    ("calibrate", "Zeroes the widget's pressure sensor against a reference weight."),
    ("firmware", "Writes the newest firmware image onto the widget controller board."),
    ("battery", "Charges the widget's battery pack to eighty percent for storage."),
    ("label", "Prints the serial number label and sticks it under the widget base."),
    ("test", "Runs the widget's built-in self test and records the result."),
    ("clean", "Rinses the widget's air filter and dries it before refitting."),
    ("recycle", "Takes an old widget apart and sorts its metal and plastic parts."),
]


def connect(kind: str, path: Path) -> Store:
    if kind == "edge":
        return EdgeStore.connect(path=path / "edge", collection="docsync")
    return QdrantClientStore.connect(url=":memory:", collection="docsync")


@pytest.fixture(params=ENGINES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = connect(request.param, tmp_path)
    yield s
    s.close()


def manual(root: Path) -> Path:
    """The workshop manual: the target function on one page, its siblings (`_v1`, `_v3`...)
    on twelve others that read alike."""
    root.mkdir()
    versions = [1, *range(3, 14)]
    for (name, what), version in zip(CHORES, versions, strict=True):
        (root / f"{name}.md").write_text(page(name, f"frobnicate_widget_v{version}", what))
    balance = "Balances the widget rotor after repair so it runs without vibration."
    (root / "rotor.md").write_text(page("rotor", TARGET, balance))
    return root


def page(name: str, function: str, what: str) -> str:
    return (
        f"Widget workshop: {name}\n{'=' * 30}\n\n"
        f"This step of the widget workshop manual is done by calling ``{function}()``. {what} "
        "Operators run it at their bench once the previous step has been signed off, and "
        "the foreman checks the log at the end of each shift.\n"
    )


def rank(searcher: Searcher, mode: str) -> int:
    paths = [hit.path for hit in searcher.search(TARGET, limit=20, mode=mode)]
    return paths.index("rotor.md") if "rotor.md" in paths else len(paths)


def test_every_point_gets_its_keyword_vector(store: Store, tiny_encoder: Encoder) -> None:
    run_sync(CORPUS / "using", store, tiny_encoder)
    profile = store.read_profile()
    assert profile is not None and profile.keyword == KEYWORD_PROFILE
    keyword = KeywordEncoder()
    points = list(store.scroll({}, with_vectors=True))
    assert points
    for point in points:
        assert point.vector is not None and point.keyword == keyword.embed_payload(point.payload)


def test_an_exact_identifier_is_found_by_hybrid_where_dense_misses_it(
    store: Store, minilm_encoder: Encoder, tmp_path: Path
) -> None:
    run_sync(manual(tmp_path / "manual"), store, minilm_encoder)
    searcher = Searcher(store, minilm_encoder)
    assert rank(searcher, "dense") >= 5  # the siblings look the same to the model
    assert rank(searcher, "keyword") == 0
    assert rank(searcher, "hybrid") < 3
    searcher = Searcher(store, minilm_encoder, fusion=Fusion("dbsf"))
    assert rank(searcher, "hybrid") < 3


def test_the_keyword_query_has_no_query_instruction(
    memory_store: Store, tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_sync(CORPUS / "using", memory_store, tiny_encoder)
    searcher = Searcher(memory_store, tiny_encoder, mode="hybrid")
    asked: list[dict[str, object]] = []
    real = memory_store.search
    monkeypatch.setattr(
        memory_store, "search", lambda vector, **kw: asked.append(kw) or real(vector, **kw)
    )
    question = "How do I set environment variables?"
    assert searcher.search(question, limit=3)
    assert tiny_encoder.query_prefix  # the dense query does get one
    assert asked[0]["keyword"] == KeywordEncoder().embed_query(question)
    assert asked[0]["keyword"] != KeywordEncoder().embed_query(tiny_encoder.query_input(question))


def dense_only(store: Store, encoder: Encoder, source: Path) -> dict[str, list[float]]:
    """A collection as docsync made it before keyword vectors: synced, then copied with its
    dense vectors only under a profile without a keyword configuration."""
    scratch = QdrantClientStore.connect(url=":memory:", collection="scratch")
    run_sync(source, scratch, encoder)
    points = [replace(p, keyword=None) for p in scratch.scroll({}, with_vectors=True)]
    store.open(replace(encoder.profile(), keyword=None), create=True)
    store.upsert(points)
    assert not store.has_keyword_vectors()
    return {p.id: p.vector or [] for p in points}


def test_a_dense_only_collection_is_upgraded_without_re_embedding(
    store: Store, tiny_encoder: Encoder, caplog: pytest.LogCaptureFixture
) -> None:
    source = CORPUS / "using"
    before = dense_only(store, tiny_encoder, source)
    searcher = Searcher(store, tiny_encoder)
    with caplog.at_level(logging.WARNING, logger="docsync.search"):
        hybrid = searcher.search("environment variables", mode="hybrid")
        keyword = searcher.search("environment variables", mode="keyword")
    dense = searcher.search("environment variables", mode="dense")
    # Both fell back to dense: dense's scores (cosine; BM25 and fusion scores are on other
    # scales) and its best hit. Near-equal scores of the random model may swap lower hits.
    for fallen in (hybrid, keyword):
        assert [h.score for h in fallen] == pytest.approx([h.score for h in dense], rel=1e-3)
        assert (fallen[0].path, fallen[0].match_start) == (dense[0].path, dense[0].match_start)
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "no keyword vectors" in caplog.records[0].message

    report = run_sync(source, store, tiny_encoder)
    assert report.chunks_embedded == 0 and report.points_upserted == 0
    assert report.keyword_vectors_added == len(before)
    after = {p.id: p for p in store.scroll({}, with_vectors=True)}
    assert after.keys() == before.keys()
    for pid, point in after.items():
        assert point.vector == pytest.approx(before[pid]) and point.keyword is not None
    profile = store.read_profile()
    assert profile is not None and profile.keyword == KEYWORD_PROFILE
    assert searcher.search("environment variables", mode="keyword") != dense  # now keyword
    assert run_sync(source, store, tiny_encoder).keyword_vectors_added == 0


def test_an_interrupted_upgrade_is_resumed_by_the_next_sync(
    store: Store, tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = CORPUS / "using"
    before = dense_only(store, tiny_encoder, source)
    monkeypatch.setattr("docsync.worker.upgrade.BATCH", 5)
    real = store.set_keyword_vectors
    calls: list[int] = []

    def fail_second(vectors: dict[str, object]) -> None:
        calls.append(len(vectors))
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a kill would, between two writes
        real(vectors)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "set_keyword_vectors", fail_second)
    with pytest.raises(KeyboardInterrupt):
        run_sync(source, store, tiny_encoder)
    profile = store.read_profile()
    assert profile is not None and profile.keyword is None  # not claimed before done
    monkeypatch.setattr(store, "set_keyword_vectors", real)
    report = run_sync(source, store, tiny_encoder)
    assert report.chunks_embedded == 0
    assert report.keyword_vectors_added == len(before) - 5  # only those still lacking one
    assert all(p.keyword is not None for p in store.scroll({}, with_vectors=True))


def test_another_bm25_configuration_is_rebuilt(store: Store, tiny_encoder: Encoder) -> None:
    source = CORPUS / "using"
    run_sync(source, store, tiny_encoder)
    profile = store.read_profile()
    assert profile is not None
    store.write_profile(replace(profile, keyword="docsync-bm25/0;k=2"))
    searcher = Searcher(store, tiny_encoder)
    assert not searcher.keyword_ready()
    report = run_sync(source, store, tiny_encoder)
    assert report.chunks_embedded == 0 and report.keyword_vectors_added == store.count()
    assert searcher.keyword_ready()


def test_import_computes_keyword_vectors_for_an_old_export(
    tiny_encoder: Encoder, tmp_path: Path
) -> None:
    old = QdrantClientStore.connect(url=":memory:", collection="old")
    dense_only(old, tiny_encoder, CORPUS / "using")
    out = io.StringIO()
    export_points(old, out, vectors=True)
    header = json.loads(out.getvalue().splitlines()[0])
    assert header["profile"]["keyword"] is None
    target = EdgeStore.connect(path=tmp_path / "edge", collection="docsync")
    try:
        count = import_points(target, out.getvalue().splitlines(keepends=True))
        assert count == old.count() == target.count()
        profile = target.read_profile()
        assert profile is not None and profile.keyword == KEYWORD_PROFILE
        keyword = KeywordEncoder()
        for point in target.scroll({}, with_vectors=True):
            assert point.keyword == keyword.embed_payload(point.payload)
        assert run_sync(CORPUS / "using", target, tiny_encoder).chunks_embedded == 0
    finally:
        target.close()


def test_keyword_configuration_is_in_the_profile_but_no_mismatch() -> None:
    ours = EmbeddingProfile("m", None, 4, "cosine", "", "", "c", keyword=KEYWORD_PROFILE)
    old = EmbeddingProfile.from_dict({k: v for k, v in ours.to_dict().items() if k != "keyword"})
    assert old.keyword is None and not ours.differences(old)
    assert not ours.keyword_ready(old) and ours.keyword_ready(ours)
    assert "avg_len=" in KEYWORD_PROFILE and "language=english" in KEYWORD_PROFILE


def test_search_mode_and_fusion_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCSYNC_SEARCH_MODE", "Hybrid")
    monkeypatch.setenv("DOCSYNC_FUSION", "dbsf")
    monkeypatch.setenv("DOCSYNC_RRF_K", "10")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.search_mode == "hybrid"
    assert fusion(settings) == Fusion("dbsf", 10)
    monkeypatch.setenv("DOCSYNC_FUSION_GUARD", "0")
    assert fusion(Settings(_env_file=None)) == Fusion("dbsf", 10, guard=0)  # type: ignore[call-arg]
    assert Settings(_env_file=None, search_mode="dense").search_mode == "dense"  # type: ignore[call-arg]


def test_a_bad_mode_is_one_clean_error(memory_store: Store, tiny_encoder: Encoder) -> None:
    run_sync(CORPUS / "using", memory_store, tiny_encoder)
    searcher = Searcher(memory_store, tiny_encoder)
    with pytest.raises(ValueError, match="must be dense, keyword or hybrid, not 'fuzzy'"):
        searcher.search("x", mode="fuzzy")
    with pytest.raises(ValueError, match="must be dense, keyword or hybrid"):
        Searcher(memory_store, tiny_encoder, mode="sparse")


def test_points_without_keyword_vectors_still_write(store: Store) -> None:
    """The store contract for callers that write dense vectors alone (the contract suite)."""
    profile = EmbeddingProfile("m", None, 2, "cosine", "", "", "c", keyword=KEYWORD_PROFILE)
    store.open(profile, create=True)
    point = Point("00000000-0000-0000-0000-000000000001", {"text": "t"}, [1.0, 0.0])
    store.upsert([point])
    assert store.retrieve([point.id], with_vectors=True)[0].keyword is None
    assert [p.id for p in store.scroll({}, lacking_keyword=True)] == [point.id]


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model_dir: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("DOCSYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCSYNC_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("DOCSYNC_QDRANT_PATH", str(tmp_path / "store"))
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(CORPUS / "howto" / "sockets.rst", docs / "sockets.rst")
    return docs


def one_error_line(err: str, *fragments: str) -> None:
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("docsync: error:")]
    assert len(errors) == 1, err
    assert all(fragment in errors[0] for fragment in fragments), errors[0]


def test_query_modes_on_the_command_line(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("sync", str(cli_env)) == 0
    for mode in ("dense", "keyword", "hybrid"):
        capsys.readouterr()
        assert cli("query", "socket", "--mode", mode, "--json") == 0
        assert json.loads(capsys.readouterr().out)
    assert cli("query", "socket", "--mode", "fuzzy") == 2
    one_error_line(capsys.readouterr().err, "must be dense, keyword or hybrid", "fuzzy")
    monkeypatch.setenv("DOCSYNC_SEARCH_MODE", "fuzzy")
    assert cli("query", "socket") == 2
    one_error_line(capsys.readouterr().err, "DOCSYNC_SEARCH_MODE", "dense, keyword or hybrid")


def test_http_search_mode(memory_store: Store, tiny_encoder: Encoder) -> None:
    run_sync(CORPUS / "using", memory_store, tiny_encoder)
    api = Api(
        searcher=Searcher(memory_store, tiny_encoder),
        healthy=lambda: True,
        ready=lambda: True,
        metrics=CollectorRegistry(),
        status=lambda: {},
    )
    status, _, body = api.answer("/search?q=environment+variables&mode=keyword&limit=3")
    assert status == 200 and len(json.loads(body)) == 3
    keyword = json.loads(body)
    status, _, body = api.answer("/search?q=environment+variables&limit=3")
    assert status == 200 and json.loads(body) != keyword  # the default: dense
    status, _, body = api.answer("/search?q=x&mode=fuzzy")
    assert status == 400 and "dense, keyword or hybrid" in json.loads(body)["error"]


def test_a_store_that_cannot_add_keyword_vectors_still_syncs_dense(
    memory_store: Store,
    tiny_encoder: Encoder,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    """A server without the API to add a vector to a collection: the sync says so once and
    writes dense vectors as before; searches stay dense."""
    source = tmp_path / "docs"
    shutil.copytree(CORPUS / "using", source)
    dense_only(memory_store, tiny_encoder, source)

    def refuse() -> None:
        raise StoreRequestError("Qdrant (server) refused the request (404): Not Found")

    monkeypatch.setattr(memory_store, "add_keyword_vectors", refuse)
    (source / "new.rst").write_text("A new page\n==========\n\nWith a paragraph of its own.\n")
    with caplog.at_level(logging.WARNING, logger="docsync.sync"):
        report = run_sync(source, memory_store, tiny_encoder)
    assert report.ok and report.files_changed == 1 and report.keyword_vectors_added == 0
    assert any("syncing without keyword vectors" in r.message for r in caplog.records)
    assert all(p.keyword is None for p in memory_store.scroll({}, with_vectors=True))
    assert Searcher(memory_store, tiny_encoder).search("new page", mode="hybrid")


def test_edge_counts_unindexed_dense_vectors_beside_keyword_vectors(tmp_path: Path) -> None:
    """The engine counts keyword vectors as indexed from the start: left in, a collection
    with them would never get its dense index built."""
    store = EdgeStore.connect(path=tmp_path / "edge", collection="docsync")
    profile = EmbeddingProfile("m", None, 2, "cosine", "", "", "c", keyword=KEYWORD_PROFILE)
    store.open(profile, create=True)
    keyword = KeywordEncoder()
    texts = [f"page {n} about widget number {n}" for n in range(40)] + ["the of and"]
    points = [
        Point(str(uuid.UUID(int=n + 1)), {"text": t}, [1.0, n], keyword.embed_payload({"text": t}))
        for n, t in enumerate(texts)
    ]
    assert points[-1].keyword is None  # nothing but stopwords: stored without one
    store.upsert(points)
    try:
        assert store.unindexed() == len(points)
    finally:
        store.close()


def test_edge_builds_the_dense_index_of_points_with_keyword_vectors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    monkeypatch.setattr("docsync.plugin.stores.edge.OPTIMIZE_MIN_UNINDEXED", 1200)
    # 2,000 vectors past the index threshold (the engine's own needs 8,000 and 4x the time)
    monkeypatch.setattr("docsync.plugin.stores.edge_shard.INDEXING_THRESHOLD_KB", 750)
    profile = EmbeddingProfile("m", None, 384, "cosine", "", "", "c", keyword=KEYWORD_PROFILE)
    vectors = np.random.default_rng(1).standard_normal((2000, 384)).tolist()
    keyword = KeywordEncoder()
    store = EdgeStore.connect(path=tmp_path / "edge", collection="docsync")
    try:
        store.open(profile, create=True)
        store.upsert(
            [
                Point(str(uuid.UUID(int=i + 1)), {}, v, keyword.embed_document(f"widget {i}"))
                for i, v in enumerate(vectors)
            ]
        )
        assert store.unindexed() == 2000
        assert store.optimize() is True
        assert store.unindexed() == 0 and store.optimize() is False
        hit = store.search(vectors[7], limit=1, keyword=keyword.embed_query("widget 7"))[0]
        assert hit.id == str(uuid.UUID(int=8))
    finally:
        store.close()
