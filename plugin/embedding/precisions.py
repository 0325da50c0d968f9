"""Which precision embeds passages fastest on this CPU: measured, not read from its flags.

A CPU's flags do not say which precision is fastest: with AVX512-BF16 but no AMX, docsync's
bf16 stage measured 1.03x stock fp32 `encode` on one 2-core Xeon (issue 27) and 2.4x on a
2-core Zen 4 EPYC. So `DOCSYNC_PRECISION=auto` on a CPU times each candidate (`CANDIDATES`)
on one batch of passages shaped like the runner's (packed, unequal lengths, the CPU token
budget's size), the way the runner will run it (the lean pass where the model is a plain BERT,
else the module chain), and takes the fastest whose vectors keep the model's (cosine to fp32 at
least `QUALITY`). No timed round starts after `TIME_LIMIT` seconds (on a quiet 2-core machine
the whole timing takes well under it; a loaded one still times each candidate once). Once:
the model card keeps the result (`card.ModelCard.timing`) with the CPU it was measured on,
so later processes on that CPU do not time again; on another CPU (a cache copied elsewhere)
the runner times afresh.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from docsync.plugin.embedding.lean import LeanForward
from docsync.plugin.embedding.machine import Cpu, this_cpu

log = logging.getLogger("docsync.encoder")
CANDIDATES = ("fp32", "bf16")
QUALITY = 0.9995  # bf16 rounding moves the cosine by about 1e-4 at most; a broken path, far more
TIME_LIMIT = 1.5  # seconds: no timed round starts past it, once each candidate had one
ROUNDS = 3  # timed calls of each candidate, interleaved, where the time limit allows
# The sample batch: six passages of 108 to 128 tokens, about 700 (a real chunk averages some
# 145; the runner's CPU batches hold up to 4,096 padded tokens). On a quiet 2-core Zen 4 a
# call takes under 0.1 s, so the whole timing well under a second.
LENGTHS = tuple(range(128, 107, -4))
SAMPLE = (
    "The socket module gives access to the BSD socket interface. Sockets are created with "
    "socket(), bound to an address with bind(), and connected with connect(); a server calls "
    "listen() and accept() to take connections, and both sides exchange bytes with send() and "
    "recv() until one of them closes its end. "
)
Forward = Callable[[], Any]


@dataclass(frozen=True)
class PrecisionTiming:
    """What one CPU measured: the fastest precision that keeps the model's vectors, and each
    candidate's tokens a second (a candidate that failed or lost quality is left out)."""

    cpu: Cpu
    fastest: str
    tokens_per_s: Mapping[str, int]

    def as_json(self) -> dict[str, object]:
        return {
            "cpu": self.cpu.as_dict(),
            "fastest": self.fastest,
            "tokens_per_s": dict(self.tokens_per_s),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PrecisionTiming:
        cpu = data["cpu"]
        return cls(
            Cpu(str(cpu["cpu"]), tuple(str(f) for f in cpu["cpu_flags"]), int(cpu["cpus"])),
            str(data["fastest"]),
            {str(k): int(v) for k, v in data["tokens_per_s"].items()},
        )

    def here(self) -> bool:
        """Whether it was measured on this machine's kind of CPU (and as many CPUs)."""
        return self.cpu == this_cpu()


def time_precisions(model: Any) -> PrecisionTiming | None:
    """Time each candidate precision of `model` (a SentenceTransformer on the CPU, left as it
    is: every candidate works on copies of its weights); None where none could run, or the
    model is not one this timing knows how to feed (the caller keeps the flags' guess)."""
    try:
        return _timed(model)
    except (AttributeError, IndexError, KeyError, RuntimeError, TypeError, ValueError) as exc:
        log.info("could not time this model's precisions: %s", exc)
        return None


def _timed(model: Any) -> PrecisionTiming | None:
    import torch

    started = time.perf_counter()
    tokenize = getattr(model, "preprocess", None) or model.tokenize
    ids = [int(i) for i in tokenize([SAMPLE * 4])["input_ids"][0]][: max(LENGTHS)]
    lengths = [min(n, len(ids)) for n in LENGTHS]
    flat = torch.tensor([i for n in lengths for i in ids[:n]], dtype=torch.int64)
    forwards: dict[str, Forward] = {}
    vectors: dict[str, Any] = {}
    for name in CANDIDATES:
        try:
            forward = _forward(model, name, flat, lengths)
            vectors[name] = forward()  # the first call builds oneDNN's kernels: not timed
        except (RuntimeError, NotImplementedError, TypeError) as exc:
            log.debug("precision %s does not run on this CPU: %s", name, exc)
            continue
        forwards[name] = forward
    reference = vectors.get("fp32")
    if reference is None:
        return None
    for name in [name for name in forwards if name != "fp32"]:  # fp32: the reference
        cosine = float(torch.nn.functional.cosine_similarity(vectors[name], reference).min())
        if not cosine >= QUALITY:
            log.info("precision %s changes this model's vectors (cosine %.6f)", name, cosine)
            del forwards[name]
    best = dict.fromkeys(forwards, math.inf)
    deadline = started + TIME_LIMIT
    for done in range(ROUNDS):
        if done and time.perf_counter() > deadline:
            break
        for name, forward in forwards.items():
            begun = time.perf_counter()
            forward()
            best[name] = min(best[name], time.perf_counter() - begun)
    tokens = sum(lengths)
    speeds = {name: round(tokens / seconds) for name, seconds in best.items()}
    fastest = max(speeds, key=lambda name: speeds[name])
    log.info(
        "precision for passages on this CPU: %s (tokens/s: %s; timed in %.1f s)",
        fastest,
        ", ".join(f"{name} {speed}" for name, speed in speeds.items()),
        time.perf_counter() - started,
    )
    return PrecisionTiming(this_cpu(), fastest, speeds)


def _forward(model: Any, name: str, flat: Any, lengths: list[int]) -> Forward:
    """One batch of `flat` ids through `model` in precision `name`, as the runner would run
    it: the lean pass where it builds (packed), else the module chain of a copy (padded)."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[name]
    lean = LeanForward.build(model, dtype)
    if lean is not None:
        return lambda: lean.batch(flat, lengths)
    chain = copy.deepcopy(model).to(dtype).eval()
    mask = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
    ids = torch.zeros(mask.shape, dtype=torch.int64)
    ids[mask] = flat
    every = {
        "input_ids": ids,
        "attention_mask": mask.to(torch.int64),
        "token_type_ids": torch.zeros_like(ids),
    }
    tokenize = getattr(model, "preprocess", None) or model.tokenize
    features = {k: v for k, v in every.items() if k in tokenize(["x"])}

    def run() -> Any:
        with torch.inference_mode():
            return chain(dict(features))["sentence_embedding"].float()

    return run
