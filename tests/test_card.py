"""Model cards: a model's first load leaves what later processes need (dimension, tokenizer,
a checked ONNX export for questions), so that they need not load it, nor import torch."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from docsync.plugin.embedding import card as card_module
from docsync.plugin.embedding.card import AGREEMENT, card_key, read_card
from docsync.plugin.encoder import Encoder
from docsync.plugin.profile import model_fingerprint
from tests.conftest import CORPUS, HANG, QUERY_PREFIX, minilm_dir

QUESTIONS = (
    "How do I create a socket and connect to a web server?",
    "what does enum.auto do",
    "Why are my type annotations strings at runtime?",
)


def cosine(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def key_of(model_dir: Path) -> str:
    key = card_key(str(model_dir), model_fingerprint(model_dir))
    assert key is not None
    return key


def test_the_first_load_writes_a_card_and_the_next_answers_from_it(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    first = Encoder.load(tiny_model_dir, cache=tmp_path, lazy=True)
    assert first.loaded
    card = read_card(tmp_path, key_of(tiny_model_dir))
    assert card is not None and card.questions
    assert (card.dimension, card.max_tokens) == (first.dimension, first.max_tokens)

    second = Encoder.load(tiny_model_dir, cache=tmp_path, lazy=True)
    text = (CORPUS / "howto" / "sockets.rst").read_text()
    assert not second.loaded
    assert second.profile() == first.profile()
    assert second.token_spans_many([text]) == first.token_spans_many([text])
    assert second.passage_budget("A title") == first.passage_budget("A title")
    assert second.query_forward == "onnx"
    assert cosine(second.embed_query(QUESTIONS[0]), first.embed_query(QUESTIONS[0])) > 0.999
    assert not second.loaded  # questions, tokens and the profile came from the card

    passages = second.embed_passages([second.passage_input("Sockets are endpoints.")])
    assert second.loaded and passages.shape == (1, first.dimension)


def test_questions_from_the_card_are_the_module_chains_vectors(tmp_path: Path) -> None:
    """The real MiniLM, fp32 module chain (sentence-transformers' own encode) against the
    card's export, with the query instruction the encoder applies."""
    Encoder.load(minilm_dir(), cache=tmp_path, lazy=True, query_prefix=QUERY_PREFIX)
    lazy = Encoder.load(minilm_dir(), cache=tmp_path, lazy=True, query_prefix=QUERY_PREFIX)
    chain = SentenceTransformer(str(minilm_dir()), device="cpu")
    long_question = " ".join(QUESTIONS * 40)  # past the token limit: truncated alike
    for question in (*QUESTIONS, long_question):
        expected = chain.encode([QUERY_PREFIX + question], convert_to_numpy=True)[0]
        assert cosine(lazy.embed_query(question), expected) >= AGREEMENT
    assert not lazy.loaded


def test_a_changed_model_gets_a_card_of_its_own(tiny_model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    assert key_of(copy) == key_of(tiny_model_dir)  # the same files, wherever they are
    config = json.loads((copy / "sentence_bert_config.json").read_text())
    config["max_seq_length"] = 64
    (copy / "sentence_bert_config.json").write_text(json.dumps(config))
    assert key_of(copy) != key_of(tiny_model_dir)

    Encoder.load(tiny_model_dir, cache=tmp_path / "cache", lazy=True)
    edited = Encoder.load(copy, cache=tmp_path / "cache", lazy=True)
    assert edited.loaded  # no card for these files yet: loaded, and its own card written
    assert Encoder.load(copy, cache=tmp_path / "cache", lazy=True).max_tokens == 64


def test_a_damaged_card_is_replaced(
    tiny_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    Encoder.load(tiny_model_dir, cache=tmp_path, lazy=True)
    card_json = tmp_path / "models" / key_of(tiny_model_dir) / "card.json"
    card_json.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="docsync.encoder"):
        encoder = Encoder.load(tiny_model_dir, cache=tmp_path, lazy=True)
    assert encoder.loaded  # the damaged card was not trusted
    assert "cannot be read" in caplog.text
    assert not Encoder.load(tiny_model_dir, cache=tmp_path, lazy=True).loaded  # rewritten


def test_a_cache_that_cannot_be_written_only_costs_speed(
    tiny_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING, logger="docsync.encoder"):
        encoder = Encoder.load(tiny_model_dir, cache=blocked, lazy=True)
    assert encoder.loaded and encoder.embed_query("still answers").shape == (encoder.dimension,)
    assert "could not write the model's card" in caplog.text


def test_a_model_the_exporter_cannot_serve_answers_questions_through_the_model(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: Any) -> None:
        raise RuntimeError("Exporting the operator 'aten::mystery' is not supported")

    monkeypatch.setattr(card_module, "export_chain", refuse)
    Encoder.load(tiny_model_dir, cache=tmp_path, lazy=True)
    card = read_card(tmp_path, key_of(tiny_model_dir))
    assert card is not None and not card.questions

    lazy = Encoder.load(tiny_model_dir, cache=tmp_path, lazy=True)
    assert not lazy.loaded  # the card still gives the profile and the tokenizer
    lazy.embed_query("a question")
    assert lazy.loaded and lazy.query_forward in ("lean", "model")


def test_an_export_that_disagrees_with_the_model_is_not_kept(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(card_module, "_agreement", lambda *_: 0.98)
    Encoder.load(tiny_model_dir, cache=tmp_path, lazy=True)
    card = read_card(tmp_path, key_of(tiny_model_dir))
    assert card is not None and not card.questions
    assert not card.question_model.exists()


# A command run as a user runs it, in a fresh interpreter; it reports the heavy modules it
# ended up importing.
PROBE = (
    "import json, sys\n"
    "from docsync.worker.cli import cli\n"
    "code = cli(*sys.argv[1:])\n"
    "heavy = sorted(m for m in ('torch', 'transformers', 'sentence_transformers') "
    "if m in sys.modules)\n"
    "print('HEAVY', json.dumps([heavy, code]), file=sys.stderr)\n"
)


def run_fresh(tmp_path: Path, model: Path, *args: str) -> tuple[str, list[str], int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSYNC_")}
    env.update(
        DOCSYNC_MODEL=str(model),
        DOCSYNC_QUERY_PREFIX="",
        DOCSYNC_QDRANT_PATH=str(tmp_path / "store"),
        DOCSYNC_CACHE=str(tmp_path / "cache"),
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=HANG,
    )
    line = next(x for x in result.stderr.splitlines() if x.startswith("HEAVY "))
    heavy, code = json.loads(line.removeprefix("HEAVY "))
    return result.stdout, heavy, code


def test_commands_with_nothing_to_embed_never_import_torch(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """Which modules a command imports does not depend on the model: the tiny one (its card
    and ONNX export, as MiniLM's, in a cache of the test's own) keeps the first sync fast."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("sockets.rst", "enum.rst", "annotations.rst"):
        shutil.copy(CORPUS / "howto" / name, docs / name)
    out, heavy, code = run_fresh(tmp_path, tiny_model_dir, "sync", "--json", str(docs))
    assert code == 0 and "torch" in heavy  # the first sync embeds, and writes the card
    first = json.loads(out)
    assert first["chunks_embedded"] > 0

    out, heavy, code = run_fresh(tmp_path, tiny_model_dir, "sync", "--json", str(docs))
    assert (code, heavy, json.loads(out)["chunks_embedded"]) == (0, [], 0)

    out, heavy, code = run_fresh(
        tmp_path, tiny_model_dir, "query", "--json", "-k", "3", QUESTIONS[0]
    )
    assert (code, heavy) == (0, [])
    cold = json.loads(out)

    out, heavy, code = run_fresh(tmp_path, tiny_model_dir, "query", "--mode", "keyword", "socket")
    assert (code, heavy) == (0, []) and "sockets.rst" in out
    out, heavy, code = run_fresh(tmp_path, tiny_model_dir, "status", "--json")
    assert (code, heavy) == (0, [])
    out, heavy, code = run_fresh(tmp_path, tiny_model_dir, "show", str(docs / "enum.rst"))
    assert (code, heavy) == (0, []) and "Enum" in out
    out, heavy, code = run_fresh(tmp_path, tiny_model_dir, "export", "--vectors")
    assert (code, heavy) == (0, [])
    (tmp_path / "export.jsonl").write_text(out)
    _, heavy, code = run_fresh(
        tmp_path, tiny_model_dir, "import", "--collection", "copy", str(tmp_path / "export.jsonl")
    )
    assert (code, heavy) == (0, [])

    # The cold query's hits are those of a process that loads the model.
    from docsync.plugin.search import Searcher
    from docsync.plugin.settings import Settings
    from docsync.plugin.stores import open_store

    settings = Settings(model=str(tiny_model_dir), query_prefix="", qdrant_path=tmp_path / "store")
    store = open_store(settings, reading=True)
    try:
        searcher = Searcher(store, Encoder.from_settings(settings))
        warm = [hit.to_dict() for hit in searcher.search(QUESTIONS[0], limit=3)]
    finally:
        store.close()
    assert [(h["path"], h["start"]) for h in cold] == [(h["path"], h["start"]) for h in warm]


def test_a_model_on_a_gpu_is_exported_from_the_cpu_and_put_back() -> None:
    class Model:
        def __init__(self) -> None:
            self.device, self.moves = "cuda:0", []

        def to(self, device: str) -> Model:
            self.moves.append(device)
            self.device = device
            return self

    model = Model()
    seen: list[str] = []

    def export() -> bool:
        seen.append(model.device)
        return True

    assert card_module._on_cpu(model, export) is True
    assert seen == ["cpu"] and model.moves == ["cpu", "cuda:0"] and model.device == "cuda:0"


def test_a_sync_of_renames_and_metadata_edits_never_imports_torch(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """Renamed files reuse their stored vectors and a front-matter edit only changes payload:
    with no chunk to embed, the model is not loaded (deciding the window size used to load
    it, and import torch, for nothing)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(CORPUS / "howto" / "sockets.rst", docs / "sockets.rst")
    body = (CORPUS / "howto" / "enum.rst").read_text()
    note = docs / "enum.md"
    note.write_text(f"---\ntags: [python]\nowner: ann\n---\n{body}")
    out, heavy, code = run_fresh(tmp_path, tiny_model_dir, "sync", "--json", str(docs))
    assert code == 0 and "torch" in heavy and json.loads(out)["chunks_embedded"] > 0

    (docs / "sockets.rst").rename(docs / "networking.rst")
    out, heavy, code = run_fresh(tmp_path, tiny_model_dir, "sync", "--json", str(docs))
    report = json.loads(out)
    assert (code, report["chunks_embedded"], report["files_changed"]) == (0, 0, 1)
    assert heavy == []

    note.write_text(f"---\ntags: [python, enum]\nowner: bob\n---\n{body}")
    out, heavy, code = run_fresh(tmp_path, tiny_model_dir, "sync", "--json", str(docs))
    report = json.loads(out)
    assert (code, report["chunks_embedded"], report["files_changed"]) == (0, 0, 1)
    assert heavy == []
