"""The values a setting can take where the code, the settings' validation and the docs must
name the same ones. Imports nothing, so settings can be checked before torch or numpy load."""

from __future__ import annotations

PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # DOCSYNC_PRECISION
BACKENDS = ("torch", "onnx", "onnx-int8")  # DOCSYNC_BACKEND
SEARCH_MODES = ("dense", "keyword", "hybrid")  # DOCSYNC_SEARCH_MODE, query --mode, ?mode=
# The mode a search uses unless told otherwise: the one place to change it. Hybrid measured
# best on the labelled questions of bench/questions.jsonl (bench/quality.py, NOTES.md).
DEFAULT_SEARCH_MODE = "hybrid"
# DOCSYNC_CONTEXT_TOKENS, query --context: the tokens a hit's passage grows to around the
# chunk that matched (0: the chunk alone). Chosen by bench/quality.py.
DEFAULT_CONTEXT_TOKENS = 256
FUSIONS = ("rrf", "dbsf")  # DOCSYNC_FUSION: how hybrid merges its two rankings
DEFAULT_FUSION = "dbsf"  # measured best with passages (bench/quality.py)
DEFAULT_RRF_K = 60  # DOCSYNC_RRF_K: the usual constant of reciprocal rank fusion
# DOCSYNC_WRITE_ORDERING: how a server orders a write among a shard's replicas (Qdrant's
# names); weak is the server's own default.
WRITE_ORDERINGS = ("weak", "medium", "strong")
# DOCSYNC_QUANTIZATION: a compact copy of the vectors that searches scan first (int8: a
# quarter of the memory), rescored with the originals.
QUANTIZATIONS = ("none", "int8")


def one_of(choices: tuple[str, ...]) -> str:
    """ "a, b or c", for messages."""
    return ", ".join(choices[:-1]) + " or " + choices[-1]
