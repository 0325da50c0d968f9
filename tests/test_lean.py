"""Questions and passages on a CPU take the lean forward pass (docsync.plugin.embedding.lean):
the model's vectors, less overhead, and the module chain wherever the lean pass does not fit
the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from docsync.plugin.embedding import lean
from docsync.plugin.encoder import Encoder
from tests.conftest import QUERY_PREFIX, minilm_dir, save_tiny_bert

QUESTIONS = [
    "socket",
    "How do I create a socket and connect to a web server?",
    "What does the -X dev option do, and when should a developer turn it on? " * 3,
    "A question far longer than the model reads: " + "tokens and more tokens " * 200,
]


def chain_vector(encoder: Encoder, text: str) -> np.ndarray:
    """The same text through the model's own module chain."""
    runner = encoder._runner
    return runner._chain_one(runner._tokenizer.encode(text).ids).numpy()[0]


def test_questions_match_stock_encode_in_fp32() -> None:
    model = SentenceTransformer(str(minilm_dir()), device="cpu")
    expected = model.encode([QUERY_PREFIX + q for q in QUESTIONS], batch_size=1)
    encoder = Encoder(model, name="minilm", query_prefix=QUERY_PREFIX, precision="fp32")
    assert encoder.query_forward == "lean"
    got = np.stack([encoder.embed_query(q) for q in QUESTIONS])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_bf16_questions_stay_within_the_cosine_bound() -> None:
    model = SentenceTransformer(str(minilm_dir()), device="cpu")
    expected = model.encode(QUESTIONS, batch_size=1, normalize_embeddings=True)
    encoder = Encoder(model, name="minilm", query_prefix="", precision="bf16")
    assert encoder.query_forward == "lean"
    got = np.stack([encoder.embed_query(q) for q in QUESTIONS])
    cosines = (got * expected).sum(axis=1) / np.linalg.norm(got, axis=1)
    assert cosines.min() >= 0.9999


def test_the_model_pooling_is_kept(tiny_model_dir: Path) -> None:
    """The tiny model pools the CLS token (MiniLM pools the mean): the lean pass hands its
    token vectors to the model's own pooling and normalisation modules."""
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    encoder = Encoder(model, name="tiny", query_prefix="", precision="fp32")
    assert encoder.query_forward == "lean"
    for question in QUESTIONS:
        np.testing.assert_allclose(
            encoder.embed_query(question), chain_vector(encoder, question), atol=1e-5
        )


def test_other_architectures_keep_the_module_chain(tmp_path: Path) -> None:
    model = SentenceTransformer(str(save_tiny_bert(tmp_path, hidden_act="relu")), device="cpu")
    encoder = Encoder(model, name="relu", query_prefix="", precision="fp32")
    assert encoder.query_forward == "model"
    vector = encoder.embed_query("socket")
    np.testing.assert_allclose(vector, chain_vector(encoder, "socket"), atol=1e-6)


def test_a_lean_pass_that_disagrees_is_not_used(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were the lean pass to compute something else for a model (here: its feed-forward
    blocks skipped), the check at first use keeps the module chain instead."""
    monkeypatch.setattr(lean._Layer, "feed_forward", lambda self, hidden, eps: hidden)
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    encoder = Encoder(model, name="tiny", query_prefix="", precision="fp32")
    assert encoder.query_forward == "model"
    np.testing.assert_allclose(
        encoder.embed_query("socket"), chain_vector(encoder, "socket"), atol=1e-6
    )


def test_a_lean_pass_that_fails_here_is_not_used(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator the machine's CPU lacks surfaces as an error at the first call: the
    module chain answers instead."""

    def unsupported(self: object, x: object) -> object:
        raise RuntimeError("could not create a primitive")

    monkeypatch.setattr(lean._Linear, "__call__", unsupported)
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    encoder = Encoder(model, name="tiny", query_prefix="", precision="fp32")
    assert encoder.query_forward == "model"
    np.testing.assert_allclose(
        encoder.embed_query("socket"), chain_vector(encoder, "socket"), atol=1e-6
    )


PASSAGES = [
    "socket",
    "The socket module gives access to the BSD socket interface.",
    "Sockets are created with socket(), bound with bind() and connected with connect(). " * 4,
    "A passage far longer than the model reads: " + "tokens and more tokens " * 200,
    "Ça coûte 3,50 € — naïve CAFÉ 東京 résumé",
]


def test_passages_go_through_the_packed_lean_pass_as_the_model_embeds_them() -> None:
    """Passages of unequal lengths in one batch, packed: stock `encode`'s vectors in fp32."""
    model = SentenceTransformer(str(minilm_dir()), device="cpu")
    expected = model.encode(PASSAGES, batch_size=len(PASSAGES))
    encoder = Encoder(model, name="minilm", query_prefix="", precision="fp32")
    assert encoder.query_forward == "lean"  # built, and checked, for passages too
    np.testing.assert_allclose(encoder.embed_passages(PASSAGES), expected, atol=1e-5)


def test_packed_passages_keep_the_model_pooling(tiny_model_dir: Path) -> None:
    encoder = Encoder(
        SentenceTransformer(str(tiny_model_dir), device="cpu"),
        name="tiny",
        query_prefix="",
        precision="fp32",
    )
    assert encoder.query_forward == "lean"
    got = encoder.embed_passages(PASSAGES)
    for text, vector in zip(PASSAGES, got, strict=True):
        np.testing.assert_allclose(vector, chain_vector(encoder, text), atol=1e-5)


def test_a_batch_the_lean_pass_gets_wrong_keeps_the_module_chain(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lean pass right for one text but wrong for a padded batch (here: every batch's
    vectors zeroed) is not used for either."""
    wrong = lean.LeanForward.batch

    def zeroed(self: lean.LeanForward, flat: object, lengths: list[int]) -> object:
        return wrong(self, flat, lengths) * 0

    monkeypatch.setattr(lean.LeanForward, "batch", zeroed)
    encoder = Encoder(
        SentenceTransformer(str(tiny_model_dir), device="cpu"),
        name="tiny",
        query_prefix="",
        precision="fp32",
    )
    assert encoder.query_forward == "model"
    got = encoder.embed_passages(PASSAGES[:2])
    np.testing.assert_allclose(got[1], chain_vector(encoder, PASSAGES[1]), atol=1e-5)
