"""Fakes at the seams, where the real thing is too slow for the test's purpose."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch


class HashModel:
    """Stands in for a sentence-transformers model: the real tokenizer, but each vector is a
    deterministic function of the input's token ids, so embedding costs next to nothing."""

    def __init__(self, tokenizer: Any, dimension: int = 384, max_seq_length: int = 256) -> None:
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.device = "cpu"
        self._dimension = dimension

    def get_embedding_dimension(self) -> int:
        return self._dimension

    def to(self, *_: Any) -> HashModel:
        return self

    def eval(self) -> HashModel:
        return self

    def preprocess(self, texts: list[str]) -> dict[str, Any]:
        return {"input_ids": None, "attention_mask": None}

    def __call__(self, features: dict[str, Any]) -> dict[str, Any]:
        ids, mask = features["input_ids"].numpy(), features["attention_mask"].numpy()
        rows = [self._vector(row[m.astype(bool)]) for row, m in zip(ids, mask, strict=True)]
        return {"sentence_embedding": torch.from_numpy(np.stack(rows))}

    def _vector(self, ids: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        seed = int.from_bytes(hashlib.sha256(ids.tobytes()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(self._dimension).astype(np.float32)
        return v / np.linalg.norm(v)  # type: ignore[no-any-return]
