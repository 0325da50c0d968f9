"""One question embedded from a model card's ONNX export, without torch.

A `docsync query` in a fresh process needs one vector. Through the model that means
importing torch and transformers and loading the weights (six seconds on two cores) for a
few milliseconds of arithmetic. ONNX Runtime and the tokenizers library import in a fraction
of that and run the same module chain (`card.question_model`, checked against the model when
the card was written), so the question's vector is the model's to within float rounding.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from docsync.plugin.embedding.card import ModelCard
from docsync.plugin.embedding.machine import available_cpus

Vector = np.ndarray[Any, np.dtype[np.float32]]


def features(ids: Sequence[int], inputs: Sequence[str]) -> dict[str, np.ndarray[Any, Any]]:
    """The model's input tensors for one text's ids: no padding, so every token is attended."""
    row = np.asarray([list(ids)], dtype=np.int64)
    every = {
        "input_ids": row,
        "attention_mask": np.ones_like(row),
        "token_type_ids": np.zeros_like(row),
    }
    return {name: every[name] for name in inputs}


class QuestionEncoder:
    """Questions in, the model's vectors out, through a card's export. The session starts on
    the first question (a fifth of a second for a small model) and is kept."""

    def __init__(self, card: ModelCard) -> None:
        self._card = card
        self._tokenizer = card.tokenizer()
        self._tokenizer.enable_truncation(max_length=card.max_tokens)
        self._session: Any = None
        self._lock = threading.Lock()

    def embed(self, text: str) -> Vector:
        ids = self._tokenizer.encode(text).ids
        vector = self._started().run(None, features(ids, self._card.inputs))[0][0]
        return np.asarray(vector, dtype=np.float32)

    def _started(self) -> Any:
        with self._lock:
            if self._session is None:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = available_cpus()
                self._session = ort.InferenceSession(
                    str(self._card.question_model), options, providers=["CPUExecutionProvider"]
                )
            return self._session
