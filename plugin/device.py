"""Turn the `DOCSYNC_DEVICE` setting into a torch device name, or refuse it at start."""

from __future__ import annotations

import os
import platform
import re
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from docsync.plugin.errors import ConfigError

NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")  # one folder per GPU while the driver is loaded
DEVICES = "auto, cpu, cuda, cuda:N or mps"  # DOCSYNC_DEVICE's names, for messages
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
# OpenMP's waiting threads spin briefly, then sleep. Its default (torch's CPU builds use GNU
# OpenMP) spins for 300,000 turns at every barrier: on a CPU shared with other work the thread
# it waits for is off the core, and on 2 busy cores (load 8-15) that spinning was most of a
# sync's CPU (0.070-0.092 CPU-s a chunk against 0.027-0.030 sleeping at once). Sleeping at
# once (`OMP_WAIT_POLICY=PASSIVE`) doubles a question's latency on a quiet machine instead
# (3.1 -> 5.8 ms, MiniLM: each of its hundred operators wakes the other thread). 30,000 turns
# keeps both: 3.08 ms a question quiet; 300 passages with 2 other busy processes, 9.2 CPU-s
# against 8.9 passive and 16.6 by default (bench/NOTES.md, issue 27).
SPIN_TURNS = "30000"
OPENMP_WAITS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")  # a user who sets either is obeyed


def check_device(spec: str) -> str:
    """`spec` normalised, or a `ConfigError` for a name that is no device (checked without
    importing torch; whether the device is there is `resolve_device`'s to say)."""
    spec = spec.strip().lower()
    if _DEVICE.fullmatch(spec):
        return spec
    raise ConfigError(f"unknown device {spec!r}: use {DEVICES}")


def calm_cpu_waits() -> None:
    """Make OpenMP's idle threads spin briefly, then sleep (`SPIN_TURNS`), unless the
    environment already says how they wait. Read when torch loads OpenMP: called before the
    first `import torch`; in a process that imported torch already it changes nothing."""
    if not any(name in os.environ for name in OPENMP_WAITS):
        os.environ["GOMP_SPINCOUNT"] = SPIN_TURNS


def check_present(spec: str) -> str:
    """`spec` normalised, or the `ConfigError` `resolve_device` would give when the model
    loads, for a device that is plainly not there: asked at start by every command, so one
    that never loads the model (a question embedded by the model card's export, a sync with
    nothing to embed) refuses it too instead of ignoring it. Judged without importing torch
    (an NVIDIA driver that sees the GPU, a torch built for CUDA; MPS on Apple silicon);
    `resolve_device` still checks exactly when the model loads."""
    spec = check_device(spec)
    if spec in ("auto", "cpu") or sys.platform not in ("linux", "darwin"):
        return spec  # elsewhere there is no cheap sign of a GPU: the model's load decides
    if spec == "mps":
        if not _apple_silicon():
            raise ConfigError("DOCSYNC_DEVICE=mps but this machine has no usable MPS device")
        return spec
    gpus = _visible_gpus()
    if not _cuda_build() or gpus == 0:
        raise ConfigError(
            f"DOCSYNC_DEVICE={spec} but no CUDA device is available ({_why_no_cuda()})"
        )
    _, _, index = spec.partition(":")
    if index and int(index) >= gpus:
        raise ConfigError(f"DOCSYNC_DEVICE={spec} but only {gpus} CUDA device(s) are present")
    return spec


def _cuda_build() -> bool:
    try:
        return "+cpu" not in version("torch")
    except PackageNotFoundError:
        return False


def _visible_gpus() -> int:
    """GPUs the NVIDIA driver sees (one folder each), as many as CUDA_VISIBLE_DEVICES lets
    through where it is set (CUDA stops at its first invalid entry, such as -1)."""
    try:
        gpus = sum(1 for _ in NVIDIA_GPUS.iterdir())
    except OSError:
        return 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return gpus
    listed = 0
    for entry in visible.split(","):
        if not entry.strip() or entry.strip().startswith("-"):
            break
        listed += 1
    return min(gpus, listed)


def _why_no_cuda() -> str:
    if not _cuda_build():
        try:
            return f"torch {version('torch')} is built without CUDA"
        except PackageNotFoundError:
            return "torch is not installed"
    if not NVIDIA_GPUS.is_dir():
        return f"no NVIDIA driver is loaded: {NVIDIA_GPUS} does not exist"
    return "the NVIDIA driver sees no GPU, or CUDA_VISIBLE_DEVICES hides them"


def _apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


def likely_device(spec: str) -> str:
    """The device `resolve_device(spec)` would choose, guessed without importing torch (a
    second and more on a small machine): what sizes work before a model is loaded. `auto`
    is cuda where an NVIDIA driver sees a GPU and torch is not a CPU-only build."""
    spec = check_device(spec)
    if spec != "auto":
        return spec
    if _cuda_build() and NVIDIA_GPUS.is_dir() and any(NVIDIA_GPUS.iterdir()):
        return "cuda"
    if _apple_silicon():
        return "mps"
    return "cpu"


def resolve_device(spec: str) -> str:
    """`auto` picks cuda, then mps, then cpu; an explicit device that is not there is an error,
    never a silent fallback to the CPU."""
    import torch

    spec = check_device(spec)
    if spec == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if _mps_available(torch) else "cpu"
    if spec == "cpu":
        return "cpu"
    if spec == "mps":
        if not _mps_available(torch):
            raise ConfigError("DOCSYNC_DEVICE=mps but this machine has no usable MPS device")
        return "mps"
    return _cuda(torch, spec)


def _cuda(torch: object, spec: str) -> str:
    cuda = torch.cuda  # type: ignore[attr-defined]
    if not cuda.is_available():
        build = torch.version.cuda or "none"  # type: ignore[attr-defined]
        raise ConfigError(
            f"DOCSYNC_DEVICE={spec} but no CUDA device is available "
            f"(torch {torch.__version__}, CUDA build: {build})"  # type: ignore[attr-defined]
        )
    _, _, index = spec.partition(":")
    if index and int(index) >= cuda.device_count():
        raise ConfigError(
            f"DOCSYNC_DEVICE={spec} but only {cuda.device_count()} CUDA device(s) are present"
        )
    return spec


def _mps_available(torch: object) -> bool:
    backends = getattr(torch, "backends", None)
    mps = getattr(backends, "mps", None)
    return bool(mps is not None and mps.is_available())
