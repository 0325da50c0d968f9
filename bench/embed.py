"""Embedding benchmark: stock sentence-transformers `encode` against docsync's embedding
stage, on the same chunks, in one process.

Figures (tokens the model reads per second, padding not counted):
- stock_per_file: `encode` called the way a naive worker calls it: per file, batch 32;
- stock_whole: `encode` given the whole corpus at once (it sorts by characters), batch 32
  (on a GPU: fp16, batch 512, the strongest stock setting);
- docsync: `Encoder.embed_passages` window by window, as the sync pipeline calls it.
`min_cosine` compares docsync's vectors with stock fp32 ones, chunk by chunk.

    DOCSYNC_MODEL=/path/to/model python bench/embed.py [--json] [--chunks N] [--synthetic]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import DEFAULT_CORPUS, real_chunks, synthetic_chunks, take
from output import emit

from docsync.plugin.embedding.teams import passing
from docsync.plugin.encoder import Encoder
from docsync.plugin.settings import Settings


def stock_model(settings: Settings, device: str, half: bool) -> Any:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(Encoder.source(settings.model), device=device)
    return model.half() if half else model


def timed(fn: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--chunks", type=int, help="use whole files until this many chunks")
    parser.add_argument("--synthetic", type=int, metavar="N", help="N generated chunks instead")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="docsync only, split into tokenizing, the model and the feed alone (no stock runs)",
    )
    args = parser.parse_args(argv)
    settings = Settings()
    encoder = Encoder.from_settings(settings)
    cuda = encoder.device.startswith("cuda")
    if args.synthetic:
        files = synthetic_chunks(max(1, args.synthetic // 40), 40)
    else:
        files = take(real_chunks(encoder, args.corpus), args.chunks or (None if cuda else 700))
    inputs = [text for f in files for text in f.inputs]
    tokens = encoder.tokens(inputs)
    if args.profile:
        emit(profile(encoder, inputs, tokens), as_json=True, cpu=True)
        return 0
    batch = 512 if cuda else 32
    stock = stock_model(settings, encoder.device, half=cuda)
    reference = stock if not cuda else stock_model(settings, encoder.device, half=False)

    def stock_encode(texts: list[str], model: Any = stock) -> Any:
        # On a thread that ends with the call, as docsync's own passes run: a team of OpenMP
        # threads left behind by either would slow the other (docsync.plugin.embedding.teams).
        return passing(
            lambda: model.encode(
                texts, batch_size=batch, convert_to_numpy=True, show_progress_bar=False
            )
        )

    warm = inputs[:64]
    stock_encode(warm), encoder.embed_passages(warm)  # lazy initialisation out of the clock
    _, per_file_s = timed(lambda: [stock_encode(f.inputs) for f in files])
    stock_vectors, whole_s = timed(lambda: stock_encode(inputs))
    ours, docsync_s = timed(lambda: embed_in_windows(encoder, inputs))
    fp32 = stock_vectors if not cuda else stock_encode(inputs, reference)
    cosines = np.sum(_unit(ours) * _unit(np.asarray(fp32, dtype=np.float32)), axis=1)
    result = {
        "model": encoder.name,
        "device": encoder.device,
        "precision": encoder.precision,
        "precision_timing": encoder.precision_timing,  # what `auto` measured on this CPU
        "chunks": len(inputs),
        "tokens": tokens,
        "docsync_tokens_per_s": round(tokens / docsync_s),
        "stock_per_file_tokens_per_s": round(tokens / per_file_s),
        "stock_whole_tokens_per_s": round(tokens / whole_s),
        "docsync_chunks_per_s": round(len(inputs) / docsync_s, 1),
        "stock_per_file_chunks_per_s": round(len(inputs) / per_file_s, 1),
        "stock_whole_chunks_per_s": round(len(inputs) / whole_s, 1),
        "ratio_vs_per_file": round(per_file_s / docsync_s, 2),
        "ratio_vs_whole": round(whole_s / docsync_s, 2),
        "min_cosine": round(float(cosines.min()), 6),
        "mean_cosine": round(float(cosines.mean()), 6),
    }
    emit(result, as_json=args.json, cpu=True)
    return 0


def profile(encoder: Encoder, inputs: list[str], tokens: int) -> dict[str, Any]:
    """Where docsync's time goes: the whole stage, tokenizing alone, the model alone, the
    feed alone (everything but the model), and how much of each batch is padding."""
    import torch

    runner = encoder._runner
    encoder.embed_passages(inputs[:64])
    _, whole_s = timed(lambda: embed_in_windows(encoder, inputs))
    prepared, tokenize_s = timed(lambda: [runner._tokenize(w) for w in windows(encoder, inputs)])
    batches = [b for tokenized in prepared for b in runner._batches(tokenized)]
    padded = sum(b.features["input_ids"].numel() for b in batches)

    def forward_all() -> None:
        for batch in batches:
            runner._forward(batch.features)
        if encoder.device.startswith("cuda"):
            torch.cuda.synchronize()

    _, forward_s = timed(forward_all)
    _, feed_s = timed(lambda: feed_only(encoder, inputs))
    return {
        "device": encoder.device,
        "precision": encoder.precision,
        "budget": runner.budget,
        "chunks": len(inputs),
        "batches": len(batches),
        "padding_efficiency": round(tokens / padded, 3),
        "docsync_tokens_per_s": round(tokens / whole_s),
        "tokenizer_only_tokens_per_s": round(tokens / tokenize_s),
        "model_only_tokens_per_s": round(tokens / forward_s),
        "feed_only_tokens_per_s": round(tokens / feed_s),
    }


def feed_only(encoder: Encoder, inputs: list[str]) -> None:
    """The whole stage with the model's forward pass left out: tokenizing ahead, padding on
    the feeder, pinned memory and the copies to the device. If this is not well above the
    model-alone figure, the host cannot keep the device busy."""
    import torch

    runner = encoder._runner
    dimension = runner.dimension

    def copy_only(features: dict[str, Any]) -> Any:
        moved = {k: v.to(runner.device, non_blocking=True) for k, v in features.items()}
        rows = len(moved["input_ids"])
        return torch.zeros((rows, dimension), device=runner.device)

    runner._forward = copy_only  # type: ignore[method-assign]
    try:
        embed_in_windows(encoder, inputs)
    finally:
        del runner._forward  # the class's method again


def windows(encoder: Encoder, inputs: list[str]) -> list[list[str]]:
    """The inputs cut into windows as the sync pipeline cuts them (`Encoder.window_at`)."""
    out: list[list[str]] = []
    start = 0
    while start < len(inputs):
        size = encoder.window_at(len(out))
        out.append(inputs[start : start + size])
        start += size
    return out


def embed_in_windows(encoder: Encoder, inputs: list[str]) -> np.ndarray[Any, Any]:
    """As the sync pipeline embeds: each window is handed to the encoder (prepared) before
    the previous one is embedded."""
    parts, previous = [], None
    for window in windows(encoder, inputs):
        prepared = encoder.prepare_passages(window)
        if previous is not None:
            parts.append(encoder.embed_passages(previous))
        previous = prepared
    if previous is not None:
        parts.append(encoder.embed_passages(previous))
    return np.concatenate(parts)


def _unit(v: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.asarray(v / np.linalg.norm(v, axis=1, keepdims=True))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
