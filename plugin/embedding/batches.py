"""Texts to padded batches, the way the runner feeds the model (see `runner`).

Texts are tokenized by the Rust tokenizer directly (`encode_batch_fast`, which releases the
GIL) into one flat array of ids, sorted by *token* count, and cut into batches by a
padded-token budget (batch size times its longest input), so little compute goes to padding.
Padding is built with array operations only: a Python loop per row would hold the GIL that a
GPU's feeder thread needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

WIDTH_STEP = 16  # batch widths are padded up to a multiple of this (see budget_groups)
TOKENIZE_PIECE = 4096  # texts per tokenizer call (each call runs without the GIL)
Ints = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class Tokens:
    """The token ids of a list of texts, row after row in one array."""

    flat: Ints
    starts: Ints
    lengths: Ints


def tokenize(tokenizer: Any, texts: list[str]) -> Tokens:
    """`texts` through `tokenizer` (a `tokenizers.Tokenizer`), a piece at a time."""
    flats, lengths = [], []
    for start in range(0, len(texts), TOKENIZE_PIECE):
        encodings = tokenizer.encode_batch_fast(texts[start : start + TOKENIZE_PIECE])
        ids = [e.ids for e in encodings]
        piece = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        count = int(piece.sum())
        flats.append(np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=count))
        lengths.append(piece)
    length = np.concatenate(lengths)
    return Tokens(np.concatenate(flats), np.cumsum(length) - length, length)


def sorted_batches(
    tokens: Tokens, *, budget: int, max_batch: int, max_width: int
) -> Iterator[tuple[Ints, int]]:
    """Batches of the whole list sorted by token count, longest first (memory trouble shows
    early), each within the padded-token budget: the rows of each, and its padded width
    (never past `max_width`, the model's limit, unless an input is that long)."""
    order = np.argsort(-tokens.lengths, kind="stable")
    lengths = tokens.lengths[order]
    for group, width in budget_groups(lengths, budget, max_batch):
        yield order[group], min(width, max(int(lengths[group.start]), max_width))


def padded(tokens: Tokens, rows: Ints, width: int, pad: int) -> dict[str, Ints]:
    """Id, mask and type matrices for `rows` of `tokens`, padded with `pad` to `width`."""
    starts, lengths = tokens.starts[rows], tokens.lengths[rows]
    mask = np.arange(width)[None, :] < lengths[:, None]
    before = np.cumsum(lengths) - lengths  # where each row starts among the kept tokens
    index = np.repeat(starts - before, lengths) + np.arange(int(lengths.sum()))
    ids = np.full(mask.shape, pad, dtype=np.int64)
    ids[mask] = tokens.flat[index]
    return {
        "input_ids": ids,
        "attention_mask": mask.astype(np.int64),
        "token_type_ids": np.zeros_like(ids),
    }


def budget_groups(
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
