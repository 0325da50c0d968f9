"""Turn the `DOCSYNC_DEVICE` setting into a torch device name, or refuse it at start."""

from __future__ import annotations

from plugin.errors import ConfigError


def resolve_device(spec: str) -> str:
    """`auto` picks cuda, then mps, then cpu; an explicit device that is not there is an error,
    never a silent fallback to the CPU."""
    import torch

    spec = spec.strip().lower()
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
    if spec == "cuda" or spec.startswith("cuda:"):
        return _cuda(torch, spec)
    raise ConfigError(f"unknown device {spec!r}: use auto, cpu, cuda, cuda:N or mps")


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
