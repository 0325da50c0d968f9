"""The values a setting can take where the code, the settings' validation and the docs must
name the same ones: each a `Literal` type (what a setting's field is) and its values as a
tuple (for messages, loops and `--mode`'s choices). Imports nothing but `typing`, so settings
can be checked before torch or numpy load."""

from __future__ import annotations

from typing import Literal, get_args

Precision = Literal["auto", "fp32", "fp16", "bf16"]  # DOCSYNC_PRECISION
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
Backend = Literal["torch", "onnx", "onnx-int8"]  # DOCSYNC_BACKEND
BACKENDS: tuple[Backend, ...] = get_args(Backend)
SearchMode = Literal["dense", "keyword", "hybrid"]  # DOCSYNC_SEARCH_MODE, query --mode, ?mode=
SEARCH_MODES: tuple[SearchMode, ...] = get_args(SearchMode)
# The mode a search uses unless told otherwise: the one place to change it. Hybrid measured
# best on the labelled questions of bench/questions.jsonl (bench/quality.py, NOTES.md).
DEFAULT_SEARCH_MODE: SearchMode = "hybrid"
# DOCSYNC_CONTEXT_TOKENS, query --context: the tokens a hit's passage grows to around the
# chunk that matched (0: the chunk alone). Chosen by bench/quality.py.
DEFAULT_CONTEXT_TOKENS = 256
Fusion = Literal["rrf", "dbsf"]  # DOCSYNC_FUSION: how hybrid merges its two rankings
FUSIONS: tuple[Fusion, ...] = get_args(Fusion)
DEFAULT_FUSION: Fusion = "dbsf"  # measured best with passages (bench/quality.py)
DEFAULT_RRF_K = 60  # DOCSYNC_RRF_K: the usual constant of reciprocal rank fusion
# The fusion guard (docsync.plugin.guard): dense's and keyword's first DEFAULT_GUARD hits are
# kept within the fused first DEFAULT_GUARD_WITHIN (0: fusion alone).
DEFAULT_GUARD = 1
DEFAULT_GUARD_WITHIN = 5
# DOCSYNC_WRITE_ORDERING: how a server orders a write among a shard's replicas (Qdrant's
# names); weak is the server's own default.
WriteOrdering = Literal["weak", "medium", "strong"]
WRITE_ORDERINGS: tuple[WriteOrdering, ...] = get_args(WriteOrdering)
# DOCSYNC_QUANTIZATION: a compact copy of the vectors that searches scan first (int8: a
# quarter of the memory), rescored with the originals.
Quantization = Literal["none", "int8"]
QUANTIZATIONS: tuple[Quantization, ...] = get_args(Quantization)
# DOCSYNC_OCR: read scanned PDF pages and images with Tesseract where it is installed (auto),
# never (off), or always (on: a sync refuses to start without it).
Ocr = Literal["auto", "off", "on"]
OCRS: tuple[Ocr, ...] = get_args(Ocr)


def one_of(choices: tuple[str, ...]) -> str:
    """ "a, b or c", for messages."""
    return ", ".join(choices[:-1]) + " or " + choices[-1]
