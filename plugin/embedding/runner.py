"""Fast inference with a sentence-transformers model.

sentence-transformers' `encode` tokenizes through the slow Python wrapper, sorts inputs by
*characters*, pads every batch of a fixed count to its longest member, and synchronises
with the device after each batch. Here instead:

- inputs are tokenized by the Rust tokenizer directly (`encode_batch_fast`, which releases
  the GIL), sorted by *token* count, and cut into batches by a padded-token budget (batch
  size times its longest input), so little compute goes to padding;
- the model runs in the precision that suits the device: fp16 on CUDA, bf16 on CPUs that
  compute it natively (AVX512-BF16 or AMX), fp32 elsewhere;
- a whole window of texts is sorted together (sorting pieces of a thousand texts left a
  third of a GPU's batches as padding), and on CUDA its tokenizing starts on a thread of its
  own as soon as the caller knows the texts (`prepare`), while the previous window embeds;
- on CUDA, a feeder thread pads the next batches into pinned memory while the GPU works,
  copies are asynchronous, results stay on the GPU until the end, and running out of memory
  halves the budget and carries on.

The forward pass is the model's own module chain (`model(features)`), so pooling and
normalisation come from the model's configuration, never from here. One exception: a single
question on a CPU runs through `docsync.plugin.embedding.lean` (same weights, same pooling modules,
a
fraction of the per-call overhead) once its vectors have been checked against the chain's.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from docsync.plugin.background import ahead
from docsync.plugin.choices import BACKENDS, PRECISIONS
from docsync.plugin.embedding.lean import LeanForward
from docsync.plugin.errors import ConfigError

log = logging.getLogger("docsync.encoder")
# Padded tokens per batch. On a CPU small batches of similar length win (cache-friendly, no
# padding); a GPU needs large ones to fill its units. Tuned by bench/embed.py.
CPU_TOKEN_BUDGET = 2048
CUDA_TOKEN_BUDGET = 131072
MAX_BATCH = 4096
WIDTH_STEP = 16  # batch widths are padded up to a multiple of this (see _budget_groups)
TOKENIZE_PIECE = 4096  # texts per tokenizer call (each call runs without the GIL)
Vectors = np.ndarray[Any, np.dtype[np.float32]]
_UNBUILT = object()
# Texts the lean forward pass must embed as the model does before it is trusted: a question
# and a passage of some length.
LEAN_SAMPLES = (
    "How do I create a socket and connect to a web server?",
    "The socket module gives access to the BSD socket interface. Sockets are created with "
    "socket(), bound to an address with bind(), and connected with connect(); a server calls "
    "listen() and accept() to take connections, and both sides exchange bytes with send() and "
    "recv() until one of them closes its end.",
)


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU computes bf16 in hardware (AVX512-BF16 or AMX); on other CPUs bf16 is
    emulated and slower than fp32."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def resolve_precision(spec: str, device: str) -> str:
    """`auto`: fp16 on CUDA, bf16 on a CPU with native bf16, else fp32. An explicit
    precision the device cannot run is an error, not a silent change."""
    spec = check_precision(spec)
    kind = device.split(":")[0]
    if spec == "auto":
        if kind == "cuda":
            return "fp16"
        return "bf16" if kind == "cpu" and cpu_has_native_bf16() else "fp32"
    if spec == "fp16" and kind == "cpu":
        raise ConfigError("DOCSYNC_PRECISION=fp16 needs a GPU; on a CPU use bf16 or fp32")
    return spec


def check_precision(spec: str) -> str:
    """`spec` normalised, or a `ConfigError` for a name that is no precision."""
    spec = spec.strip().lower()
    if spec not in PRECISIONS:
        raise ConfigError(f"unknown precision {spec!r}: use {', '.join(PRECISIONS)}")
    return spec


def model_inputs(model: Any) -> list[str]:
    """The input tensors `model` (a SentenceTransformer) takes, of the three BERT-like
    encoders know."""
    sample = model.preprocess(["x"]) if hasattr(model, "preprocess") else model.tokenize(["x"])
    return [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in sample]


def model_dimension(model: Any) -> int:
    """The length of `model`'s sentence embeddings."""
    get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(get())


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    count = count or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return count


def configure_cpu_threads() -> int:
    """One torch thread per usable CPU (torch's default counts the host's cores, which
    oversubscribes a container)."""
    import torch

    threads = available_cpus()
    torch.set_num_threads(threads)
    return threads


@dataclass
class _Batch:
    rows: np.ndarray[Any, np.dtype[np.int64]]  # positions of these inputs in the caller's list
    features: dict[str, Any]


@dataclass(frozen=True)
class _Tokens:
    """The token ids of a list of texts, row after row in one array."""

    flat: np.ndarray[Any, np.dtype[np.int64]]
    starts: np.ndarray[Any, np.dtype[np.int64]]
    lengths: np.ndarray[Any, np.dtype[np.int64]]


class Prepared:
    """Texts handed to the runner ahead of their embedding; on CUDA their tokenizing is
    already under way on a thread (see `Runner.prepare`)."""

    def __init__(self, texts: list[str], tokens: Future[_Tokens] | None) -> None:
        self.texts = texts
        self._tokens = tokens

    def __len__(self) -> int:
        return len(self.texts)


class Runner:
    """Embeds texts with a loaded SentenceTransformer, fast (see the module docstring)."""

    def __init__(
        self,
        model: Any,
        *,
        precision: str = "auto",
        token_budget: int | None = None,
        max_batch: int | None = None,
        backend: str = "torch",
        prefetch: bool | None = None,
        cache: Path | None = None,
    ) -> None:
        import torch

        self._torch = torch
        self.device = str(model.device)
        self._cuda = self.device.startswith("cuda")
        # Tokenizing the next window on a thread pays where the device is not the CPU; on a
        # CPU the model already keeps every core busy.
        self.prefetch = self._cuda if prefetch is None else prefetch
        # The GPU feed: batches padded on a feeder thread, results left on the device until
        # the end of the call (a CPU computes each batch as it is called: nothing to overlap).
        self.feed_ahead = self._cuda
        self._tokenizing: ThreadPoolExecutor | None = None
        self.budget = token_budget or (CUDA_TOKEN_BUDGET if self._cuda else CPU_TOKEN_BUDGET)
        self.max_batch = max_batch or MAX_BATCH
        self._tokenizer = _truncating(model.tokenizer, model.max_seq_length)
        self._max_width = int(model.max_seq_length)  # padding never goes past the model's limit
        self._pad = int(model.tokenizer.pad_token_id or 0)
        self._keys = model_inputs(model)
        self._session: Any = None
        self._lean: object = _UNBUILT
        self._lean_lock = threading.Lock()
        if backend == "torch":
            self.precision = resolve_precision(precision, self.device)
            dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
            self.model = model.to(dtype[self.precision]).eval()
            return
        from docsync.plugin.embedding.onnx_runtime import onnx_session
        from docsync.plugin.settings import default_cache

        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}: use {', '.join(BACKENDS)}")
        if self._cuda or self.device == "mps":
            raise ConfigError(f"DOCSYNC_BACKEND={backend} runs on the CPU; use torch on a GPU")
        self.model = model.eval()
        self.precision = "int8" if backend == "onnx-int8" else "fp32"
        self._session = onnx_session(
            self.model, self._keys, int8=backend == "onnx-int8", cache=cache or default_cache()
        )

    def prepare(self, texts: Sequence[str]) -> Prepared:
        """Texts to embed soon: with `prefetch` (on CUDA by default) their tokenizing starts
        now on a thread, so it overlaps the embedding of what was prepared before."""
        texts = list(texts)
        if not self.prefetch or not texts:
            return Prepared(texts, None)
        if self._tokenizing is None:
            self._tokenizing = ThreadPoolExecutor(1, thread_name_prefix="docsync-tokenize")
        return Prepared(texts, self._tokenizing.submit(self._tokenize, texts))

    def embed(
        self, texts: Sequence[str] | Prepared, should_stop: Callable[[], bool] | None = None
    ) -> Vectors:
        """Vectors for `texts` (or for what `prepare` was given), in their order; `should_stop`
        is asked between batches, and `StopRequested` raised when it answers True."""
        prepared = texts if isinstance(texts, Prepared) else Prepared(list(texts), None)
        out = np.empty((len(prepared), self.dimension), dtype=np.float32)
        if not len(prepared):
            return out
        future = prepared._tokens
        tokens = future.result() if future is not None else self._tokenize(prepared.texts)
        batches = self._batches(tokens)
        if self.feed_ahead:
            batches = ahead(batches, depth=4, name="docsync-feeder")
        pending: list[tuple[Any, Any]] = []
        for batch in batches:
            if should_stop is not None and should_stop():
                raise StopRequested
            pending.append((batch.rows, self._forward(batch.features)))
            if not self.feed_ahead:  # CPU results are ready at once; GPU ones stay queued
                self._collect(pending, out)
        self._collect(pending, out)
        return out

    def embed_one(self, text: str) -> Vectors:
        """One text, the short way: no sorting, no padding, no feeder; what a question takes.
        On a CPU a BERT model runs through `LeanForward` (checked against the model first)."""
        ids = self._tokenizer.encode(text).ids
        lean = self._lean_forward()
        if lean is not None:
            vector = lean(ids)["sentence_embedding"].float()
        else:
            vector = self._chain_one(ids)
        return np.asarray(vector.cpu().numpy()[0], dtype=np.float32)

    @property
    def query_forward(self) -> str:
        """How single texts (questions) are embedded: "lean" or "model" (its module chain)."""
        return "lean" if self._lean_forward() is not None else "model"

    def _chain_one(self, ids: Sequence[int]) -> Any:
        torch = self._torch
        tensor = torch.tensor([list(ids)], dtype=torch.int64)
        features = {
            "input_ids": tensor,
            "attention_mask": torch.ones_like(tensor),
            "token_type_ids": torch.zeros_like(tensor),
        }
        with torch.inference_mode():
            return self._forward({k: features[k] for k in self._keys})

    def _lean_forward(self) -> LeanForward | None:
        """Built on first use, kept only where it gives the model's own vectors."""
        with self._lean_lock:
            if self._lean is _UNBUILT:
                lean = None
                if self._session is None and self.device == "cpu":
                    lean = LeanForward.build(self.model)
                if lean is not None:
                    samples = [self._tokenizer.encode(text).ids for text in LEAN_SAMPLES]
                    if not lean.agrees_with(self._chain_one, samples):
                        lean = None
                self._lean = lean
            return self._lean  # type: ignore[return-value]

    def tokens(self, texts: Sequence[str]) -> int:
        """How many tokens the model reads for `texts` (special tokens in, padding out)."""
        return sum(len(e.ids) for e in self._tokenizer.encode_batch_fast(list(texts)))

    @property
    def dimension(self) -> int:
        return model_dimension(self.model)

    def _tokenize(self, texts: list[str]) -> _Tokens:
        flats, lengths = [], []
        for start in range(0, len(texts), TOKENIZE_PIECE):
            encodings = self._tokenizer.encode_batch_fast(texts[start : start + TOKENIZE_PIECE])
            ids = [e.ids for e in encodings]
            piece = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
            count = int(piece.sum())
            flats.append(np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=count))
            lengths.append(piece)
        length = np.concatenate(lengths)
        return _Tokens(np.concatenate(flats), np.cumsum(length) - length, length)

    def _batches(self, tokens: _Tokens) -> Iterator[_Batch]:
        """Batches of the whole list sorted by token count, longest first (memory trouble
        shows early), each within the padded-token budget."""
        order = np.argsort(-tokens.lengths, kind="stable")
        lengths = tokens.lengths[order]
        for group, width in _budget_groups(lengths, self.budget, self.max_batch):
            rows = order[group]
            width = min(width, max(int(lengths[group.start]), self._max_width))
            features = self._features(tokens.flat, tokens.starts[rows], tokens.lengths[rows], width)
            yield _Batch(rows, features)

    def _features(
        self,
        flat: np.ndarray[Any, Any],
        starts: np.ndarray[Any, Any],
        lengths: np.ndarray[Any, Any],
        width: int,
    ) -> dict[str, Any]:
        """Id and mask matrices for the rows `flat[start:start+length]`, padded to `width`,
        built with array operations only (a Python loop per row would hold the GIL the GPU
        feed needs)."""
        torch = self._torch
        mask = np.arange(width)[None, :] < lengths[:, None]
        before = np.cumsum(lengths) - lengths  # where each row starts among the kept tokens
        index = np.repeat(starts - before, lengths) + np.arange(int(lengths.sum()))
        ids = np.full(mask.shape, self._pad, dtype=np.int64)
        ids[mask] = flat[index]
        arrays = {
            "input_ids": ids,
            "attention_mask": mask.astype(np.int64),
            "token_type_ids": np.zeros_like(ids),
        }
        tensors = {k: torch.from_numpy(arrays[k]) for k in self._keys}
        if self._cuda:
            tensors = {k: v.pin_memory() for k, v in tensors.items()}
        return tensors

    def _forward(self, features: dict[str, Any]) -> Any:
        torch = self._torch
        if self._session is not None:
            feed = {k: v.numpy() for k, v in features.items()}
            return torch.from_numpy(self._session.run(None, feed)[0])
        on_device = {k: v.to(self.device, non_blocking=True) for k, v in features.items()}
        while True:
            try:
                with torch.inference_mode():
                    return self.model(on_device)["sentence_embedding"].float()
            except torch.cuda.OutOfMemoryError:
                if len(features["input_ids"]) == 1:
                    raise
                torch.cuda.empty_cache()
                self.budget = max(1024, self.budget // 2)
                log.warning("GPU out of memory: halving the batch budget to %d tokens", self.budget)
                half = len(features["input_ids"]) // 2
                first = self._forward({k: v[:half] for k, v in features.items()})
                second = self._forward({k: v[half:] for k, v in features.items()})
                return torch.cat([first, second])

    def _collect(self, pending: list[tuple[Any, Any]], out: Vectors) -> None:
        if not pending:
            return
        rows = np.concatenate([r for r, _ in pending])
        vectors = self._torch.cat([v for _, v in pending]).cpu().numpy()
        out[rows] = vectors
        pending.clear()


class StopRequested(Exception):
    """`should_stop` answered True between two batches."""


def _budget_groups(
    lengths: np.ndarray[Any, Any], budget: int, max_batch: int, *, step: int = WIDTH_STEP
) -> Iterator[tuple[slice, int]]:
    """Slices of `lengths` (sorted, longest first), each with its padded width: the first
    length rounded up to a multiple of `step`. A slice's count times its width stays within
    `budget`, its count within `max_batch`; a last slice short of that is cut into powers of
    two. Why: oneDNN keeps kernels and buffers for every input shape it meets (about 3 MB a
    shape for MiniLM in bf16), and exact widths and counts gave a long sync hundreds of
    shapes (800 MB); rounded, they are a few dozen, for a little padding."""
    start = 0
    while start < len(lengths):
        width = -(-max(int(lengths[start]), 1) // step) * step
        size = max(1, min(max_batch, budget // width))
        end = min(start + size, len(lengths))
        if end - start < size:  # the last slice
            while start < end:
                part = 1 << ((end - start).bit_length() - 1)
                yield slice(start, start + part), width
                start += part
            return
        yield slice(start, end), width
        start = end


def _truncating(tokenizer: Any, max_length: int) -> Any:
    """A private copy of the fast tokenizer that truncates as the model does and never pads."""
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    copy.no_padding()
    copy.enable_truncation(max_length=max_length)
    return copy
