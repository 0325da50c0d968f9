"""A local model is identified by its content, not its path: a copy of the folder elsewhere
opens the same collection, other weights do not, and old profiles (by path) still open."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

import docsync.plugin.profile
from docsync.plugin.encoder import Encoder
from docsync.plugin.errors import ProfileMismatchError
from docsync.plugin.profile import EmbeddingProfile, model_fingerprint
from docsync.plugin.stores.edge import EdgeStore
from tests.conftest import CORPUS, run_sync


def test_a_moved_model_folder_still_opens_the_collection(
    tmp_path: Path, tiny_model_dir: Path, tiny_encoder: Encoder
) -> None:
    store = EdgeStore.connect(path=tmp_path / "store", collection="docsync")
    run_sync(CORPUS / "using", store, tiny_encoder)
    store.close()
    moved = tmp_path / "elsewhere" / "model"
    shutil.copytree(tiny_model_dir, moved)
    copy = Encoder.load(moved, device="cpu", query_prefix=tiny_encoder.query_prefix)
    assert copy.profile().model != tiny_encoder.profile().model  # the path is information
    reopened = EdgeStore.connect(path=tmp_path / "store", collection="docsync")
    try:
        reopened.open(copy.profile(), create=False)  # not "another embedding profile"
    finally:
        reopened.close()


def test_other_weights_are_another_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    assert model_fingerprint(other) == model_fingerprint(tiny_model_dir)
    (other / "README.md").write_text("docs do not change vectors")
    assert model_fingerprint(other) == model_fingerprint(tiny_model_dir)
    weights = next(other.rglob("model.safetensors"))
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # the middle: a full hash sees it
    weights.write_bytes(bytes(data))
    ours = profile(model_fingerprint(other), str(other))
    theirs = profile(model_fingerprint(tiny_model_dir), str(tiny_model_dir))
    with pytest.raises(ProfileMismatchError, match="other files"):
        ours.ensure_matches(theirs, collection="c")


def test_huge_weights_are_known_by_size_and_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docsync.plugin.profile, "FULL_HASH_BYTES", 1000)
    monkeypatch.setattr(docsync.plugin.profile, "SAMPLE_BYTES", 100)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.bin").write_bytes(bytes(5000))
    before = model_fingerprint(tmp_path)
    (tmp_path / "model.bin").write_bytes(bytes(4999) + b"\x01")
    assert model_fingerprint(tmp_path) != before


def profile(fingerprint: str | None, model: str) -> EmbeddingProfile:
    return EmbeddingProfile(
        model=model,
        revision=None,
        dimension=32,
        distance="cosine",
        query_prefix="",
        passage_prefix="",
        chunker=docsync.plugin.profile.CHUNKER_VERSION,
        fingerprint=fingerprint,
    )


def test_profiles_written_before_fingerprints_still_open() -> None:
    ours = profile("sha256:abc", "/models/m")
    old = {k: v for k, v in ours.to_dict().items() if k != "fingerprint"}
    stored = EmbeddingProfile.from_dict(json.loads(json.dumps(old)))  # profile.json, export
    assert stored.fingerprint is None
    ours.ensure_matches(stored, collection="c")  # same path: the same model, as before
    with pytest.raises(ProfileMismatchError, match="model"):
        replace(ours, model="/models/other").ensure_matches(stored, collection="c")


def test_hub_models_stay_identified_by_name() -> None:
    hub = profile(None, "org/model")
    hub.ensure_matches(profile(None, "org/model"), collection="c")
    with pytest.raises(ProfileMismatchError, match="model"):
        hub.ensure_matches(profile(None, "org/other"), collection="c")
    with pytest.raises(ProfileMismatchError, match="revision"):
        replace(hub, revision="v2").ensure_matches(hub, collection="c")
