"""The values a setting can take where the code, the settings' validation and the docs must
name the same ones. Imports nothing, so settings can be checked before torch or numpy load."""

from __future__ import annotations

PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # DOCSYNC_PRECISION
BACKENDS = ("torch", "onnx", "onnx-int8")  # DOCSYNC_BACKEND


def one_of(choices: tuple[str, ...]) -> str:
    """ "a, b or c", for messages."""
    return ", ".join(choices[:-1]) + " or " + choices[-1]
