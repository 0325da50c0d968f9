"""The ONNX Runtime backends: the model's own module chain exported once, fp32 equal to
torch, int8 close to it, the export cached."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from docsync.plugin.encoder import Encoder
from tests.conftest import CORPUS, minilm_dir

TEXTS = [p.read_text()[:1500] for p in sorted(CORPUS.rglob("*.rst"))[:10]] + ["short", "x y"]


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default cache folder, moved into the test's folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "docsync"


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_onnx_fp32_equals_torch_fp32(cache: Path) -> None:
    torch_fp32 = Encoder.load(str(minilm_dir()), device="cpu", precision="fp32")
    onnx = Encoder.load(str(minilm_dir()), device="cpu", backend="onnx")
    assert onnx.precision == "fp32"
    assert onnx.query_forward == "model"  # questions run through the ONNX session too
    assert cosines(onnx.embed_passages(TEXTS), torch_fp32.embed_passages(TEXTS)).min() > 0.99999
    np.testing.assert_allclose(
        onnx.embed_query("how do sockets work"),
        torch_fp32.embed_query("how do sockets work"),
        atol=1e-4,
    )
    (exported,) = cache.rglob("model.onnx")
    stamp = exported.stat().st_mtime_ns
    Encoder.load(str(minilm_dir()), device="cpu", backend="onnx")
    assert exported.stat().st_mtime_ns == stamp  # loaded from the cache, not exported again


def test_onnx_int8_stays_close(cache: Path) -> None:
    reference = Encoder.load(str(minilm_dir()), device="cpu", precision="fp32")
    int8 = Encoder.load(str(minilm_dir()), device="cpu", backend="onnx-int8")
    assert int8.precision == "int8"
    c = cosines(int8.embed_passages(TEXTS), reference.embed_passages(TEXTS))
    assert c.mean() > 0.99 and c.min() > 0.97
    assert list(cache.rglob("model-int8.onnx"))


def test_exports_racing_for_one_cache_entry_both_succeed(cache: Path, tiny_model_dir: Path) -> None:
    """Two loads exporting the same model at once (two workers started together) each write
    their own scratch file; the cache ends with one whole model and no leftovers."""
    results: list[object] = []

    def load() -> None:
        try:
            results.append(Encoder.load(str(tiny_model_dir), device="cpu", backend="onnx-int8"))
        except Exception as exc:  # reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(r, Encoder) for r in results), results
    assert not list(cache.rglob("*.tmp"))
    a, b = (r.embed_passages(TEXTS) for r in results if isinstance(r, Encoder))
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_the_cache_setting_holds_the_export(
    cache: Path, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DOCSYNC_CACHE (from the environment or a .env file, like every setting) moves the
    export out of the default folder."""
    from docsync.plugin.settings import Settings

    monkeypatch.setenv("DOCSYNC_CACHE", str(tmp_path / "mine"))
    settings = Settings(model=str(tiny_model_dir), device="cpu", backend="onnx")
    assert settings.cache == tmp_path / "mine"
    Encoder.from_settings(settings)
    assert len(list((tmp_path / "mine" / "onnx").rglob("model.onnx"))) == 1
    assert not cache.exists()
