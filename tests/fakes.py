"""Fakes at the seams, where the real thing is too slow for the test's purpose."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np


class HashModel:
    """Stands in for a sentence-transformers model: the real tokenizer, but each vector is a
    deterministic function of its text's hash, so embedding costs next to nothing."""

    def __init__(self, tokenizer: Any, dimension: int = 384, max_seq_length: int = 256) -> None:
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.device = "cpu"
        self._dimension = dimension
        self.calls: list[int] = []

    def get_embedding_dimension(self) -> int:
        return self._dimension

    def encode(self, inputs: Sequence[str], **_: Any) -> np.ndarray[Any, Any]:
        self.calls.append(len(inputs))
        rows = [self._vector(text) for text in inputs]
        return np.stack(rows) if rows else np.empty((0, self._dimension), np.float32)

    def _vector(self, text: str) -> np.ndarray[Any, Any]:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(self._dimension).astype(np.float32)
        return v / np.linalg.norm(v)  # type: ignore[no-any-return]
