"""What the machine gives the model: the precision it runs in and the CPUs it may use.

fp16 on CUDA; on a CPU, whichever of fp32 and bf16 measured fastest there (`precisions`, when
the model's card is made), guessed from the CPU's flags only until it is measured (bf16 where
it computes it natively: AVX512-BF16 or AMX); one torch thread per CPU this process may use
(its affinity mask and cgroup quota, not the host's core count, which oversubscribes a
container). `this_cpu` names the CPU and its relevant flags, for every CPU figure.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from docsync.plugin.choices import PRECISIONS
from docsync.plugin.errors import ConfigError

CPUINFO = Path("/proc/cpuinfo")
# The flags that decide how fast a CPU embeds: bf16 and int8 dot products, the matrix units.
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


@dataclass(frozen=True)
class Cpu:
    """The CPU's model name, which of `FLAGS` it has, and how many CPUs this process may use:
    what a CPU figure means nothing without (a bf16 figure from AMX is not one from AVX2)."""

    name: str
    flags: tuple[str, ...]
    cpus: int

    def as_dict(self) -> dict[str, object]:
        return {"cpu": self.name, "cpu_flags": list(self.flags), "cpus": self.cpus}


def this_cpu(cpuinfo: Path = CPUINFO) -> Cpu:
    """This machine's `Cpu`, from /proc/cpuinfo (name "unknown", no flags, where it has none)."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        lines = []

    def field(name: str) -> str:
        line = next((line for line in lines if line.split(":")[0].strip() == name), "")
        return line.partition(":")[2].strip()

    present = set(field("flags").split())
    flags = tuple(flag for flag in FLAGS if flag in present)
    return Cpu(field("model name") or "unknown", flags, available_cpus())


def cpu_has_native_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU computes bf16 in hardware (AVX512-BF16 or AMX); on other CPUs bf16 is
    emulated and slower than fp32. Only a guess until it is measured (`precisions`)."""
    return bool({"avx512_bf16", "amx_bf16"} & set(this_cpu(cpuinfo).flags))


def resolve_precision(spec: str, device: str) -> str:
    """`auto`: fp16 on CUDA, bf16 on a CPU with native bf16, else fp32 (on a CPU, the
    runner replaces that guess by a measurement: `precisions`). An explicit
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
