"""The plugin is the contract: it stands alone, and builds a Searcher from settings or parts."""

from __future__ import annotations

import ast
import os
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from qdrant_client import QdrantClient

from docsync import Searcher, Settings
from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import CollectionMissingError
from docsync.plugin.stores.edge import EdgeStore
from docsync.plugin.stores.qdrant import QdrantClientStore
from docsync.worker.progress import progress_bar
from tests.conftest import CORPUS, run_sync

ROOT = Path(__file__).resolve().parents[1]


def _imported(source: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_plugin_never_imports_worker() -> None:
    for source in (ROOT / "plugin").rglob("*.py"):
        assert not any(n.startswith("docsync.worker") for n in _imported(source)), source.name


def test_everything_imports_one_name() -> None:
    # `plugin` and `worker` are folders of the source tree, not names to import: installed,
    # they are `docsync.plugin` and `docsync.worker`.
    for top in ("plugin", "worker", "docsync", "tests", "bench"):
        for source in (ROOT / top).rglob("*.py"):
            tops = {n.split(".")[0] for n in _imported(source)}
            assert not tops & {"plugin", "worker"}, source


def test_searcher_from_settings(
    tmp_path: Path, tiny_model_dir: Path, tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("DOCSYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        f"DOCSYNC_MODEL={tiny_model_dir}\nDOCSYNC_QDRANT_PATH={tmp_path / 'store'}\n"
        # quoted: .env values lose trailing spaces otherwise, and the profile guard would
        # (rightly) refuse a prefix without its space
        'DOCSYNC_QUERY_PREFIX="Represent this sentence for searching relevant passages: "\n'
    )
    with pytest.raises(CollectionMissingError):
        Searcher.from_settings()
    store = EdgeStore.connect(path=tmp_path / "store", collection="docsync")
    run_sync(CORPUS / "using", store, tiny_encoder)
    store.close()
    with Searcher.from_settings(Settings()) as searcher:
        hits = searcher.search("How do I install Python on a Mac?", limit=4)
    assert len(hits) == 4 and all(h.path.endswith(".rst") for h in hits)


def test_searcher_from_client(tiny_encoder: Encoder) -> None:
    client = QdrantClient(location=":memory:")
    run_sync(CORPUS / "using", QdrantClientStore(client, "mine"), tiny_encoder)
    searcher = Searcher.from_client(client, "mine", tiny_encoder)
    hits = searcher.search("editors", limit=2, path_prefix="editors.rst")
    assert {h.path for h in hits} == {"editors.rst"}
    with pytest.raises(ValueError, match="limit"):
        searcher.search("x", limit=0)
    with pytest.raises(ValueError, match="question is empty"):
        searcher.search(" \n")


def test_progress_bar_on_a_terminal_only(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar(enabled=True) as bar:
        bar.set_total(2)
        bar.advance()
        bar.more(1)  # found later (a large tree, a folder at a time)
        bar.advance(2)
    out, err = capsys.readouterr()
    assert "3/3" in err and out == ""
    with progress_bar() as silent:  # stderr is not a terminal under pytest
        silent.set_total(3)
        silent.advance()
    assert capsys.readouterr() == ("", "")


def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("DOCSYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_searcher_asks_the_daemon_that_holds_the_store(
    tmp_path: Path, tiny_model_dir: Path, tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While `docsync run` holds the embedded store, `Searcher.from_settings()` goes through
    the daemon's socket, as `docsync query` does: same hits, same validation."""
    from docsync.plugin.daemon_client import SOCKET_NAME
    from docsync.plugin.search import MAX_LIMIT
    from docsync.worker.serve import Api, Endpoints

    _clean_env(monkeypatch, tmp_path)
    path = tmp_path / "store"
    held = EdgeStore.connect(path=path, collection="docsync")
    run_sync(CORPUS / "using", held, tiny_encoder)
    local = Searcher(held, tiny_encoder)
    api = Api(
        searcher=local,
        healthy=lambda: True,
        ready=lambda: True,
        metrics=CollectorRegistry(),
        status=lambda: {},
    )
    endpoints = Endpoints(api, socket_path=path / SOCKET_NAME, tcp=None)
    settings = Settings(
        model=str(tiny_model_dir), qdrant_path=path, query_prefix=tiny_encoder.query_prefix
    )
    try:
        with Searcher.from_settings(settings) as searcher:
            assert searcher.via_daemon
            question = "How do I install Python on a Mac?"
            expected = local.search(question, limit=4, path_prefix="mac.rst")
            assert searcher.search(question, limit=4, path_prefix="mac.rst") == expected
            assert expected and {h.path for h in expected} == {"mac.rst"}
            where = {"path": "*.rst", "format": "rst"}
            expected = local.search(question, limit=4, filters=where)
            assert searcher.search(question, limit=4, filters=where) == expected
            assert searcher.search(question, limit=4, filters={"format": "pdf"}) == []
            with pytest.raises(ValueError, match="unknown filter key"):
                searcher.search(question, filters={"colour": "red"})
            with pytest.raises(ValueError, match=f"between 1 and {MAX_LIMIT}"):
                searcher.search(question, limit=MAX_LIMIT + 1)
    finally:
        endpoints.close()
        held.close()


def test_searcher_in_an_empty_folder_fails_fast_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No model loaded, no `.docsync` folder or `.lock` left behind."""
    _clean_env(monkeypatch, tmp_path)

    def no_model(*_: object, **__: object) -> Encoder:
        raise AssertionError("the model must not be loaded for a missing collection")

    monkeypatch.setattr(Encoder, "from_settings", no_model)
    with pytest.raises(CollectionMissingError, match="docsync sync"):
        Searcher.from_settings()
    assert list(tmp_path.iterdir()) == []
    (tmp_path / ".docsync" / "qdrant").mkdir(parents=True)
    with pytest.raises(CollectionMissingError, match="docsync sync"):
        Searcher.from_settings()
    assert list((tmp_path / ".docsync" / "qdrant").iterdir()) == []  # no lock either


def test_loading_a_model_draws_no_progress_bar(
    tiny_model_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    Encoder.load(tiny_model_dir, device="cpu")
    out, err = capfd.readouterr()
    assert "Loading weights" not in err and "%|" not in err and out == ""


def test_offline_load_failure_does_not_suggest_going_offline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from docsync.plugin.errors import ModelLoadError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as caught:
        Encoder.load("srinivasanAI/bge-small-my-qna-model", device="cpu")
    message = str(caught.value)
    assert "HF_HUB_OFFLINE" not in message
    assert "DOCSYNC_MODEL" in message and "local directory" in message


def test_a_local_folder_that_holds_no_model_is_not_sent_to_the_hub(tmp_path: Path) -> None:
    from docsync.plugin.errors import ModelLoadError

    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(ModelLoadError) as caught:
        Encoder.load(str(empty), device="cpu")
    message = str(caught.value)
    assert "hf download" not in message and "HF_HUB_OFFLINE" not in message
    assert "local directory" in message and "sentence-transformers model" in message


def test_a_hit_is_cited_with_its_pages_the_same_way_by_every_client() -> None:
    from docsync.plugin.hit import Hit

    hit = Hit(score=1.0, text="t", path="guide.pdf", start=0, end=1)
    assert hit.where() == "guide.pdf"
    assert replace(hit, page_start=3, page_end=3).where() == "guide.pdf p. 3"
    assert replace(hit, page_start=3, page_end=5).where() == "guide.pdf pp. 3-5"
    # printed page labels first, the physical pages after them, only where they differ
    labelled = replace(hit, page_start=18, page_end=18, page_label="9", page_label_end="9")
    assert labelled.where() == "guide.pdf p. 9 (18)"
    assert replace(labelled, page_label="18", page_label_end="18").where() == "guide.pdf p. 18"
    spread = replace(hit, page_start=3, page_end=4, page_label="iii", page_label_end="iv")
    assert spread.where() == "guide.pdf pp. iii-iv (3-4)"
    assert Hit.from_dict(spread.to_dict()) == spread  # the daemon's socket carries them
    assert Hit.from_dict({k: v for k, v in hit.to_dict().items() if "label" not in k}) == hit
