"""How a benchmark prints its result: one JSON object with --json, else aligned lines."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from docsync.plugin.embedding.machine import this_cpu


def emit(result: Mapping[str, Any], *, as_json: bool, cpu: bool = False) -> None:
    """Print `result`; with `cpu`, the CPU's model, its relevant flags (AVX512-BF16, AMX,
    VNNI, AVX2) and the CPUs this process may use beside it (`machine.this_cpu`)."""
    if cpu:
        result = {**result, **this_cpu().as_dict()}
    if as_json:
        print(json.dumps(result))
        return
    width = max(map(len, result), default=0)
    for key, value in result.items():
        print(f"{key:<{width}} {value}")
