"""Fast inference with a sentence-transformers model.

sentence-transformers' `encode` tokenizes through the slow Python wrapper, sorts inputs by
*characters*, pads every batch of a fixed count to its longest member, and synchronises
with the device after each batch. Here instead:

- inputs are tokenized by the Rust tokenizer directly, sorted by *token* count, and cut into
  batches by a padded-token budget, so little compute goes to padding (`batches`);
- the model runs in the precision that suits the device (`machine.resolve_precision`); on a
  CPU, `auto` is the one measured fastest there (`precisions`, kept in the model's card);
- a whole window of texts is sorted together (sorting pieces of a thousand texts left a
  third of a GPU's batches as padding), and on CUDA its tokenizing starts on a thread of its
  own as soon as the caller knows the texts (`prepare`), while the previous window embeds;
- on CUDA, a feeder thread pads the next batches into pinned memory while the GPU works,
  copies are asynchronous, results stay on the GPU until the end, and running out of memory
  halves the budget and carries on.

The forward pass is the model's own module chain (`model(features)`), so pooling and
normalisation come from the model's configuration, never from here. On a CPU, a BERT encoder
runs through `docsync.plugin.embedding.lean` instead (same weights, same pooling modules, a
fraction of the per-call overhead, passages packed so no product is spent on padding), once
its vectors, one text alone and a batch of unequal lengths, have been checked against the
chain's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from docsync.plugin.background import ahead
from docsync.plugin.choices import BACKENDS
from docsync.plugin.embedding.batches import Tokens, padded, sorted_batches, tokenize
from docsync.plugin.embedding.card import model_dimension, model_inputs, plain_tokenizer, truncating
from docsync.plugin.embedding.lean import LeanForward
from docsync.plugin.embedding.machine import resolve_precision
from docsync.plugin.embedding.precisions import PrecisionTiming, time_precisions
from docsync.plugin.errors import ConfigError

log = logging.getLogger("docsync.encoder")
# Padded tokens per batch; a GPU needs large ones to fill its units. On a CPU batches of
# similar length (little padding for attention); since the lean pass packs its products, 4,096
# beat 2,048 (1.47x on the same batches, best of five, machine loaded; bench/NOTES.md).
CPU_TOKEN_BUDGET = 4096
CUDA_TOKEN_BUDGET = 131072
MAX_BATCH = 4096
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


@dataclass(frozen=True)
class RunnerOptions:
    """How a `Runner` runs its model (the encoder keeps them until it loads the model)."""

    precision: str = "auto"
    token_budget: int | None = None  # padded tokens per batch; None: the device's default
    max_batch: int | None = None  # inputs per batch at most; None: MAX_BATCH
    backend: str = "torch"  # or an ONNX Runtime backend (`choices.BACKENDS`), on a CPU
    prefetch: bool | None = None  # tokenize the next window on a thread; None: on CUDA
    cache: Path | None = None  # where the ONNX backends keep their export
    # `auto`'s measured choice on this CPU (from the model's card); None: timed at load
    timing: PrecisionTiming | None = None


@dataclass
class _Batch:
    rows: np.ndarray[Any, np.dtype[np.int64]]  # positions of these inputs in the caller's list
    features: dict[str, Any]


class Prepared:
    """Texts handed to the runner ahead of their embedding; on CUDA their tokenizing is
    already under way on a thread (see `Runner.prepare`)."""

    def __init__(self, texts: list[str], tokens: Future[Tokens] | None) -> None:
        self.texts = texts
        self._tokens = tokens

    def __len__(self) -> int:
        return len(self.texts)


class Runner:
    """Embeds texts with a loaded SentenceTransformer, fast (see the module docstring)."""

    def __init__(self, model: Any, options: RunnerOptions) -> None:
        import torch

        self._torch = torch
        self.device = str(model.device)
        self._cuda = self.device.startswith("cuda")
        # Tokenizing the next window on a thread pays where the device is not the CPU; on a
        # CPU the model already keeps every core busy.
        self.prefetch = self._cuda if options.prefetch is None else options.prefetch
        # The GPU feed: batches padded on a feeder thread, results left on the device until
        # the end of the call (a CPU computes each batch as it is called: nothing to overlap).
        self.feed_ahead = self._cuda
        self._tokenizing: ThreadPoolExecutor | None = None
        default_budget = CUDA_TOKEN_BUDGET if self._cuda else CPU_TOKEN_BUDGET
        self.budget = options.token_budget or default_budget
        self.max_batch = options.max_batch or MAX_BATCH
        self._tokenizer = truncating(plain_tokenizer(model.tokenizer), model.max_seq_length)
        self._max_width = int(model.max_seq_length)  # padding never goes past the model's limit
        self._pad = int(model.tokenizer.pad_token_id or 0)
        self._keys = model_inputs(model)
        self._session: Any = None
        self._lean: object = _UNBUILT
        self._lean_lock = threading.Lock()
        backend = options.backend
        self.timing: PrecisionTiming | None = None  # how `auto` chose on this CPU
        if backend == "torch":
            self.precision = self._precision(model, options)
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
            self.model,
            self._keys,
            int8=backend == "onnx-int8",
            cache=options.cache or default_cache(),
        )

    def _precision(self, model: Any, options: RunnerOptions) -> str:
        """The precision asked for; for `auto` on a CPU, the fastest measured here: by the
        model's card, or now (a second or two) where no card measured this CPU."""
        if options.precision.strip().lower() != "auto" or self.device != "cpu":
            return resolve_precision(options.precision, self.device)
        timing = options.timing if options.timing and options.timing.here() else None
        self.timing = timing or time_precisions(model)
        if self.timing is None:
            return resolve_precision(options.precision, self.device)
        return self.timing.fastest

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
            return self._chain({k: features[k] for k in self._keys})

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

    def _tokenize(self, texts: list[str]) -> Tokens:
        return tokenize(self._tokenizer, texts)

    def _batches(self, tokens: Tokens) -> Iterator[_Batch]:
        """The model's input tensors, batch by batch (see `batches.sorted_batches`); on CUDA
        in pinned memory, so that their copies to the device are asynchronous."""
        widest = self._max_width
        for rows, width in sorted_batches(
            tokens, budget=self.budget, max_batch=self.max_batch, max_width=widest
        ):
            arrays = padded(tokens, rows, width, self._pad)
            tensors = {k: self._torch.from_numpy(arrays[k]) for k in self._keys}
            if self._cuda:
                tensors = {k: v.pin_memory() for k, v in tensors.items()}
            yield _Batch(rows, tensors)

    def _forward(self, features: dict[str, Any]) -> Any:
        """A batch's vectors: on a CPU through the lean pass where it is trusted, packed (the
        padding dropped again), else through the model's module chain."""
        mask = features.get("attention_mask")
        if self.device == "cpu" and self._session is None and mask is not None:
            lean = self._lean_forward()
            if lean is not None:
                kept = mask.bool()
                return lean.batch(features["input_ids"][kept], kept.sum(1).tolist())
        return self._chain(features)

    def _chain(self, features: dict[str, Any]) -> Any:
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
                first = self._chain({k: v[:half] for k, v in features.items()})
                second = self._chain({k: v[half:] for k, v in features.items()})
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
