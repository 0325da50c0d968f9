"""The encoder's contract: the query instruction exactly once, passages as trained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plugin.encoder import Encoder
from plugin.errors import ConfigError, ModelLoadError
from tests.conftest import QUERY_PREFIX


def test_query_embedding_is_the_model_embedding_of_prefix_plus_question(
    minilm_encoder: Encoder,
) -> None:
    question = "How do I open a socket?"
    model = minilm_encoder._model
    encoder = Encoder(model, name="minilm", query_prefix=QUERY_PREFIX)
    expected = model.encode([QUERY_PREFIX + question], convert_to_numpy=True)[0]
    bare = model.encode([question], convert_to_numpy=True)[0]
    got = encoder.embed_query(question)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert not np.allclose(got, bare, atol=1e-3)  # the prefix made a difference


def test_prefix_is_applied_once(tiny_encoder: Encoder) -> None:
    question = "How do I open a socket?"
    assert tiny_encoder.query_input(question) == QUERY_PREFIX + question
    assert tiny_encoder.query_input(QUERY_PREFIX + question) == QUERY_PREFIX + question
    np.testing.assert_allclose(
        tiny_encoder.embed_query(QUERY_PREFIX + question),
        tiny_encoder.embed_query(question),
        atol=1e-6,
    )


def test_passages_get_title_and_no_query_prefix(tiny_encoder: Encoder) -> None:
    assert tiny_encoder.passage_input("Body.", "Title") == "Title\n\nBody."
    assert tiny_encoder.passage_input("Body.") == "Body."
    vectors = tiny_encoder.embed_passages(["Title\n\nBody.", "Other."])
    assert vectors.shape == (2, tiny_encoder.dimension)
    assert tiny_encoder.embed_passages([]).shape == (0, tiny_encoder.dimension)


def test_passage_budget_leaves_room_for_title_and_specials(tiny_encoder: Encoder) -> None:
    title = "Socket Programming HOWTO"
    budget = tiny_encoder.passage_budget(title)
    assert budget == tiny_encoder.max_tokens - 2 - tiny_encoder.count_tokens(title)


def test_profile_carries_prefixes_and_dimension(tiny_encoder: Encoder) -> None:
    profile = tiny_encoder.profile()
    assert profile.query_prefix == QUERY_PREFIX
    assert profile.dimension == 32 and profile.distance == "cosine"
    assert Path(profile.model).is_absolute()


def test_missing_model_directory_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="DOCSYNC_MODEL"):
        Encoder.load(str(tmp_path / "no-such-model"), device="cpu")


def test_unloadable_model_says_how_to_fix(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="DOCSYNC_MODEL"):
        Encoder.load(str(tmp_path / "broken"), device="cpu")


def test_absent_hub_model_fails_fast_offline() -> None:
    # HF_HUB_OFFLINE=1 (conftest): the hub is not tried, the message says what to do.
    with pytest.raises(ModelLoadError, match=r"DOCSYNC_MODEL to a local directory"):
        Encoder.load("example-org/model-that-is-not-cached", device="cpu")


def test_missing_device_is_an_error_not_a_fallback(tiny_model_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="no CUDA device"):
        Encoder.load(str(tiny_model_dir), device="cuda")
