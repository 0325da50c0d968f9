"""`DOCSYNC_PRECISION=auto` on a CPU picks by measurement (docsync.plugin.embedding.precisions):
timed once when the model's card is made, kept in the card with the CPU it was measured on,
and used by later processes without timing again. No assertion here is about speed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from docsync.plugin.embedding import precisions, runner
from docsync.plugin.embedding.card import read_card
from docsync.plugin.embedding.machine import this_cpu
from docsync.plugin.embedding.precisions import CANDIDATES, PrecisionTiming
from docsync.plugin.encoder import Encoder
from tests.test_card import key_of


def card_json(cache: Path, model_dir: Path) -> Path:
    return cache / "models" / key_of(model_dir) / "card.json"


def refuse_timing(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Timing from here on is recorded (and answered with bf16 as fastest)."""
    calls: list[int] = []

    def timed(model: Any) -> PrecisionTiming:
        calls.append(1)
        return PrecisionTiming(this_cpu(), "bf16", {"fp32": 1, "bf16": 2})

    monkeypatch.setattr(runner, "time_precisions", timed)
    return calls


def test_the_card_keeps_the_timing_of_each_precision(tiny_model_dir: Path, tmp_path: Path) -> None:
    encoder = Encoder.load(tiny_model_dir, cache=tmp_path, lazy=True)
    card = read_card(tmp_path, key_of(tiny_model_dir))
    assert card is not None and card.timing is not None
    assert card.timing.cpu == this_cpu() and card.cpu_precision == card.timing.fastest
    assert set(card.timing.tokens_per_s) <= set(CANDIDATES) and "fp32" in card.timing.tokens_per_s
    assert card.timing.fastest in card.timing.tokens_per_s
    # The process that made the card runs in the precision it measured, without timing again.
    assert encoder.precision == card.timing.fastest
    assert encoder.precision_timing == dict(card.timing.tokens_per_s)


@pytest.mark.parametrize("chosen", ["fp32", "bf16"])
def test_later_processes_use_the_cards_choice_without_timing(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chosen: str
) -> None:
    Encoder.load(tiny_model_dir, cache=tmp_path, lazy=True)
    path = card_json(tmp_path, tiny_model_dir)
    data = json.loads(path.read_text())
    data["timing"]["fastest"] = chosen  # as if this CPU had measured `chosen` fastest
    path.write_text(json.dumps(data))
    calls = refuse_timing(monkeypatch)

    lazy = Encoder.load(tiny_model_dir, cache=tmp_path, lazy=True)
    assert lazy.precision == chosen and not lazy.loaded  # said before the model loads
    lazy.embed_passages(["Sockets are endpoints."])
    assert lazy.loaded and lazy.precision == chosen
    assert lazy._runner is not None and next(lazy._runner.model.parameters()).dtype == _dtype(
        chosen
    )

    loaded = Encoder.load(tiny_model_dir, cache=tmp_path)  # not lazy: reads the card too
    assert loaded.precision == chosen
    assert calls == []


def test_a_card_timed_on_another_cpu_is_timed_again_at_load(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Encoder.load(tiny_model_dir, cache=tmp_path, lazy=True)
    path = card_json(tmp_path, tiny_model_dir)
    data = json.loads(path.read_text())
    data["timing"]["cpu"]["cpu"] = "Another CPU"
    data["timing"]["fastest"] = "fp32"
    path.write_text(json.dumps(data))
    calls = refuse_timing(monkeypatch)

    encoder = Encoder.load(tiny_model_dir, cache=tmp_path)
    assert encoder.precision == "bf16" and calls == [1]  # this CPU's own measurement


def test_an_explicit_precision_is_never_timed(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = refuse_timing(monkeypatch)
    encoder = Encoder.load(tiny_model_dir, cache=tmp_path, precision="fp32")
    assert encoder.precision == "fp32" and encoder.precision_timing == {} and calls == []


def test_a_precision_that_changes_the_vectors_is_not_chosen(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A candidate whose vectors move past `QUALITY` is left out however fast it is."""
    from sentence_transformers import SentenceTransformer

    monkeypatch.setattr(precisions, "QUALITY", 1.01)  # nothing but fp32 itself can pass
    timing = precisions.time_precisions(SentenceTransformer(str(tiny_model_dir), device="cpu"))
    assert timing is not None and timing.fastest == "fp32" and list(timing.tokens_per_s) == ["fp32"]


def _dtype(name: str) -> Any:
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16}[name]


def test_the_cpu_is_named_with_the_flags_that_decide_its_speed(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC 9R14\n"
        "flags\t\t: fpu sse avx2 avx512f avx512_vnni avx512_bf16 sha_ni\n"
    )
    cpu = this_cpu(cpuinfo)
    assert cpu.name == "AMD EPYC 9R14"
    assert cpu.flags == ("avx2", "avx512f", "avx512_vnni", "avx512_bf16")
    described = cpu.as_dict()
    assert described["cpu_flags"] == list(cpu.flags) and int(str(described["cpus"])) >= 1
    assert this_cpu(tmp_path / "absent").as_dict()["cpu"] == "unknown"
