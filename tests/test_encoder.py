"""The encoder's contract: the query instruction exactly once, passages as trained."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from docsync.plugin import device as device_module
from docsync.plugin.device import check_present
from docsync.plugin.embedding.batches import budget_groups
from docsync.plugin.embedding.machine import cpu_has_native_bf16, resolve_precision
from docsync.plugin.embedding.runner import StopRequested
from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import ConfigError, ModelLoadError
from tests.conftest import CORPUS, QUERY_PREFIX, minilm_dir


def test_query_embedding_is_the_model_embedding_of_prefix_plus_question(
    minilm_encoder: Encoder,
) -> None:
    question = "How do I open a socket?"
    model = SentenceTransformer(str(minilm_dir()), device="cpu")  # fp32, stock
    expected = model.encode([QUERY_PREFIX + question], convert_to_numpy=True)[0]
    bare = model.encode([question], convert_to_numpy=True)[0]
    encoder = Encoder(model, name="minilm", query_prefix=QUERY_PREFIX, precision="fp32")
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
    with pytest.raises(ModelLoadError, match="DOCSYNC_MODEL"):
        Encoder.load(tmp_path / "no-such-model", device="cpu")


def test_a_model_directory_may_be_given_as_a_path(tiny_model_dir: Path) -> None:
    encoder = Encoder.load(tiny_model_dir, device="cpu")
    assert encoder.name == str(tiny_model_dir.resolve())


# Records how OpenMP waits as torch is first imported (OpenMP reads it as torch loads it),
# and ends the process there.
_WAIT_POLICY_AT_TORCH_IMPORT = """
import os, sys
seen = []
def hook(event, args):
    if event == "import" and args[0] == "torch" and not seen:
        seen.append(os.environ.get("GOMP_SPINCOUNT", "-"))
        print(seen[0], flush=True)
        os._exit(0)  # what was asked is known; loading the model would only take time
sys.addaudithook(hook)
from docsync.plugin.encoder import Encoder
Encoder.load(sys.argv[1], device="cpu")
print("torch was never imported")
"""


@pytest.mark.parametrize(
    ("given", "spin"),
    [({}, "30000"), ({"OMP_WAIT_POLICY": "ACTIVE"}, "-"), ({"GOMP_SPINCOUNT": "5"}, "5")],
)
def test_openmp_threads_spin_briefly_unless_told_otherwise(
    tiny_model_dir: Path, given: dict[str, str], spin: str
) -> None:
    """On a shared CPU, spinning OpenMP threads were most of a sync's CPU time: a model
    loaded by docsync has them spin briefly, set before torch loads OpenMP; a user's own
    setting of how they wait wins."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(given)
    done = subprocess.run(
        [sys.executable, "-c", _WAIT_POLICY_AT_TORCH_IMPORT, str(tiny_model_dir)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == [spin]


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


@pytest.fixture
def gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for the NVIDIA driver's GPU list (empty: no GPU), a CUDA build of torch."""
    folder = tmp_path / "gpus"
    folder.mkdir()
    monkeypatch.setattr(device_module, "NVIDIA_GPUS", folder)
    monkeypatch.setattr(device_module, "version", lambda _: "2.13.0+cu128")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return folder


@pytest.mark.skipif(sys.platform != "linux", reason="the driver's GPU list is Linux's")
def test_a_device_that_is_not_there_is_refused_before_any_model_loads(
    gpus: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    for spec in ("auto", "cpu"):
        assert check_present(spec) == spec
    with pytest.raises(ConfigError, match="no CUDA device is available"):
        check_present("cuda")
    for card in ("0000:01:00.0", "0000:02:00.0"):
        (gpus / card).mkdir()
    assert check_present("CUDA") == "cuda" and check_present("cuda:1") == "cuda:1"
    with pytest.raises(ConfigError, match="only 2 CUDA device"):
        check_present("cuda:2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    with pytest.raises(ConfigError, match="only 1 CUDA device"):
        check_present("cuda:1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    with pytest.raises(ConfigError, match="CUDA_VISIBLE_DEVICES"):
        check_present("cuda")
    monkeypatch.setattr(device_module, "version", lambda _: "2.13.0+cpu")
    with pytest.raises(ConfigError, match="built without CUDA"):
        Encoder.load(str(tiny_model_dir), device="cuda:0", lazy=True)


def test_fast_path_matches_stock_encode_in_fp32() -> None:
    model = SentenceTransformer(str(minilm_dir()), device="cpu")
    texts = [p.read_text()[:3000] for p in sorted(CORPUS.rglob("*.rst"))[:12]] + ["short", "x"]
    stock = model.encode(texts, batch_size=4, convert_to_numpy=True)
    encoder = Encoder(model, name="minilm", query_prefix="", precision="fp32", token_budget=600)
    np.testing.assert_allclose(encoder.embed_passages(texts), stock, atol=2e-5)


def test_bf16_stays_within_the_cosine_bound(minilm_encoder: Encoder) -> None:
    stock = SentenceTransformer(str(minilm_dir()), device="cpu")
    texts = [p.read_text()[:2000] for p in sorted(CORPUS.rglob("*.rst"))]
    bf16 = Encoder(
        SentenceTransformer(str(minilm_dir()), device="cpu"),
        name="m",
        query_prefix="",
        precision="bf16",
    )
    a, b = bf16.embed_passages(texts), stock.encode(texts, convert_to_numpy=True)
    cosines = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosines.min() >= 0.999


def test_stop_between_batches(tiny_encoder: Encoder) -> None:
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 2

    with pytest.raises(StopRequested):
        tiny_encoder.embed_passages(["some text " * 50] * 200, should_stop=stop)
    assert len(asked) == 3


def test_precision_follows_the_device(tmp_path: Path) -> None:
    native = tmp_path / "native"
    native.write_text("processor : 0\nflags : fpu avx2 avx512f avx512_bf16\n")
    plain = tmp_path / "plain"
    plain.write_text("processor : 0\nflags : fpu avx2\n")
    assert cpu_has_native_bf16(native) and not cpu_has_native_bf16(plain)
    assert resolve_precision("auto", "cuda:0") == "fp16"
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("auto", "mps") == "fp32"
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        resolve_precision("fp16", "cpu")


def test_batches_follow_a_token_budget() -> None:
    lengths = np.array([300, 250, 100, 100, 90, 10, 10, 10, 5])
    groups = list(budget_groups(lengths, budget=600, max_batch=4))
    shapes = [(width, len(lengths[g])) for g, width in groups]
    assert all(w * n <= 600 for w, n in shapes) and all(n <= 4 for _, n in shapes)
    assert all(w % 16 == 0 and w >= lengths[g][0] for g, w in groups)
    assert [(g.start, w) for g, w in groups] == [(0, 304), (1, 256), (3, 112), (7, 16)]
    assert sum(n for _, n in shapes) == len(lengths)


def test_batch_shapes_are_few() -> None:
    """Widths round up to a multiple of 16 and a short last batch splits into powers of two,
    so a long run meets a few dozen shapes (each costs oneDNN memory), not hundreds."""
    lengths = np.sort(np.random.default_rng(0).integers(1, 257, 20_000))[::-1]
    shapes = set()
    for start in range(0, len(lengths), 512):  # windows of 512 texts, as on a CPU
        window = lengths[start : start + 512]
        shapes |= {(w, len(window[g])) for g, w in budget_groups(window, 2048, 4096)}
    assert len(shapes) <= 16 * 4 + 16  # each width's full batch, and a few short last ones
    counts = {n for w, n in shapes if n < 2048 // w}
    assert all(n & (n - 1) == 0 for n in counts)


def prefetching(model_dir: Path, prefetch: bool = True) -> Encoder:
    """An encoder that tokenizes prepared windows on a thread, as it does on a GPU (fp32, so
    that batch shapes change nothing)."""
    model = SentenceTransformer(str(model_dir), device="cpu")
    name, prefix = str(model_dir), QUERY_PREFIX
    return Encoder(model, name=name, query_prefix=prefix, precision="fp32", prefetch=prefetch)


def test_prepared_windows_embed_as_given(tiny_model_dir: Path) -> None:
    encoder, plain = prefetching(tiny_model_dir), prefetching(tiny_model_dir, prefetch=False)
    texts = [p.read_text()[:1500] for p in sorted(CORPUS.rglob("*.rst"))]
    first, second = encoder.prepare_passages(texts[:10]), encoder.prepare_passages(texts[10:])
    assert any(t.name.startswith("docsync-tokenize") for t in threading.enumerate())
    late, early = encoder.embed_passages(second), encoder.embed_passages(first)
    np.testing.assert_allclose(np.vstack([early, late]), plain.embed_passages(texts), atol=1e-5)
    assert encoder.embed_passages(encoder.prepare_passages([])).shape == (0, encoder.dimension)


def test_windows_start_small_where_the_next_is_prepared(
    tiny_model_dir: Path, tiny_encoder: Encoder
) -> None:
    encoder = prefetching(tiny_model_dir)
    sizes = [encoder.window_at(i) for i in range(7)]
    assert sizes == [encoder.window // 16 * 2**i for i in range(5)] + [encoder.window] * 2
    assert {tiny_encoder.window_at(i) for i in range(7)} == {tiny_encoder.window}


def test_the_gpu_feed_gives_the_same_vectors(tiny_model_dir: Path) -> None:
    """The GPU's way of feeding (batches padded on a feeder thread, results collected at the
    end), run on the CPU: same vectors in the same order, and a stop still stops it."""
    encoder, plain = prefetching(tiny_model_dir), prefetching(tiny_model_dir, prefetch=False)
    encoder._runner.feed_ahead, encoder._runner.budget = True, 512  # many small batches
    texts = [p.read_text()[:1500] for p in sorted(CORPUS.rglob("*.rst"))]
    np.testing.assert_allclose(
        encoder.embed_passages(encoder.prepare_passages(texts)),
        plain.embed_passages(texts),
        atol=1e-5,
    )
    with pytest.raises(StopRequested):
        encoder.embed_passages(texts, should_stop=lambda: True)
