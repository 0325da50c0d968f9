"""What the machine gives the model: the precision it runs in and the CPUs it may use.

fp16 on CUDA, bf16 on CPUs that compute it natively (AVX512-BF16 or AMX), fp32 elsewhere; one
torch thread per CPU this process may use (its affinity mask and cgroup quota, not the host's
core count, which oversubscribes a container).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from docsync.plugin.choices import PRECISIONS
from docsync.plugin.errors import ConfigError


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
