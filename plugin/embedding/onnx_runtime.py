"""ONNX Runtime as the embedding engine (`DOCSYNC_BACKEND=onnx` or `onnx-int8`).

The model's whole module chain (transformer, then its own pooling and normalisation) is
exported once to ONNX and cached; `onnx-int8` also quantizes the weights of its matrix
products to int8 (dynamic quantization, per channel). int8 is about twice as fast on a CPU
but moves the vectors (mean cosine to fp32 about 0.994 on all-MiniLM-L6-v2), which is why it
is a choice and not the default: `bench/backends.py` measures the trade-off.

onnxruntime runs it and onnx exports it, both dependencies of docsync.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any

from docsync.plugin.embedding.machine import available_cpus
from docsync.plugin.errors import ConfigError
from docsync.plugin.folders import private_dirs

log = logging.getLogger("docsync.encoder")
_FILLING = threading.Lock()


def onnx_session(model: Any, keys: list[str], *, int8: bool, cache: Path) -> Any:
    """An ONNX Runtime session computing `model(features)["sentence_embedding"]`; the export
    is kept under `cache`/onnx, one folder per model's weights."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ConfigError(
            "DOCSYNC_BACKEND=onnx needs onnxruntime: pip install 'docsync-qdrant[onnx]'"
        ) from exc
    folder = cache / "onnx" / _fingerprint(model)
    plain = folder / "model.onnx"
    path = folder / "model-int8.onnx" if int8 else plain
    with _FILLING:  # torch's exporter keeps global state: one export at a time per process
        if not plain.exists():
            log.info("exporting the model to ONNX (once): %s", plain)
            export_chain(model, keys, plain)
        if int8 and not path.exists():
            _quantize(plain, path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = available_cpus()
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _fingerprint(model: Any) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().numpy().tobytes())
    digest.update(str(model.max_seq_length).encode())
    return digest.hexdigest()[:24]


def export_chain(model: Any, keys: list[str], path: Path) -> None:
    import torch

    class Chain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> Any:
            return self.model(dict(zip(keys, tensors, strict=True)))["sentence_embedding"]

    private_dirs(path.parent)
    sample = torch.ones((2, 8), dtype=torch.int64)
    tmp = _scratch(path)
    axes = {k: {0: "batch", 1: "tokens"} for k in keys}
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated, but the torch.export one (torch 2.13,
            # onnxscript 0.7) writes an invalid graph for this model (a duplicated output name):
            # keep the one that works, and its tests will say when it is gone. Its tracer
            # warnings are about the model's Python code, nothing a user can act on.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Chain().eval(),
                tuple(sample for _ in keys),
                str(tmp),
                input_names=keys,
                output_names=["embedding"],
                dynamic_axes={**axes, "embedding": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        _publish(tmp, path)
    except ImportError as exc:
        raise ConfigError(
            "exporting to ONNX needs the onnx package: pip install 'docsync-qdrant[onnx]'"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _quantize(plain: Path, path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    log.info("quantizing the ONNX model to int8 (once): %s", path)
    tmp = _scratch(path)
    # Matrix products only, one scale per output channel: per-tensor scales or quantized
    # other ops moved MiniLM's vectors to a cosine of 0.94 to fp32, this keeps 0.99.
    try:
        quantize_dynamic(
            plain,
            tmp,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
        _publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _publish(tmp: Path, path: Path) -> None:
    """Move a finished export into place, owner-only (the exporters write 0644)."""
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _scratch(path: Path) -> Path:
    """A file name beside `path` that no other process or thread writing the same cache entry
    uses: each writes its own, and the last atomic rename wins with a whole file."""
    return path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
