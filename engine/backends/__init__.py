"""Inference backends behind one small protocol (torch / onnxruntime; TensorRT later).

``make_backend(model, name="auto")`` picks and explains: ``auto`` → torch on CUDA when a GPU is
available, else onnxruntime on CPU (measured faster on this project's CPU benchmark,
``bench/network_cpu.py``: ~2x for the 2D line-scan net, ~5-8x for the 3D nets, whose
convolutions torch runs through its slow non-oneDNN path), else torch on CPU when onnxruntime is
missing. The choice and its reason are logged and kept in ``backend.reason``.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..models.model_dir import ModelDir

log = logging.getLogger(__name__)

BACKEND_NAMES = ("auto", "torch", "onnxruntime", "tensorrt")


class BackendUnavailable(RuntimeError):
    """The requested backend or device cannot run here."""


@runtime_checkable
class Backend(Protocol):
    """Turns a batch of network inputs into softmax probabilities.

    ``predict(batch)``: ``batch`` float32 ``(B, 1, W, *spatial)`` → float32 ``(B, C, W,
    *spatial)`` probabilities (C = 4 classes, Dotti order), any spatial size.
    """

    name: str
    device: str
    reason: str

    def predict(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


def as_model_dir(model: ModelDir | str | Path) -> ModelDir:
    """Accept a loaded :class:`ModelDir` or a path to one."""
    return model if isinstance(model, ModelDir) else ModelDir.load(model)


def check_batch(batch: np.ndarray, ndim: int) -> np.ndarray:
    """Validate a ``(B, 1, W, *spatial)`` batch for a ``ndim``-D network; float32 C-order."""
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    if batch.ndim != ndim + 2 or batch.shape[1] != 1:
        raise ValueError(f"batch must be (B, 1, W, {'X' if ndim == 2 else 'Y, X'}), "
                         f"got shape {batch.shape}")
    return batch


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def make_backend(model: ModelDir | str | Path, name: str = "auto", device: str | None = None,
                 ) -> Backend:
    """Build the backend ``name`` for ``model`` on ``device`` ("cpu" | "cuda" | None = best)."""
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKEND_NAMES}")
    if device not in (None, "cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ValueError(f"device must be 'cpu', 'cuda[:N]' or None, got {device!r}")
    if name == "tensorrt":
        raise BackendUnavailable("TensorRT backend not available: not implemented in this "
                                 "build yet; use 'torch' (CUDA) or 'onnxruntime'")
    model = as_model_dir(model)
    if name == "auto":
        name, device, reason = _auto_choice(device)
    else:
        device = device or ("cuda" if name == "torch" and _cuda_available() else "cpu")
        reason = f"{name} requested explicitly"
    backend = _build(model, name, device)
    backend.reason = reason
    log.info("backend %s on %s for model %r: %s", backend.name, backend.device,
             model.config.name, reason)
    return backend


def _auto_choice(device: str | None) -> tuple[str, str, str]:
    if device is None or str(device).startswith("cuda"):
        if _cuda_available():
            return "torch", device or "cuda", "auto: CUDA GPU available → torch on GPU"
        if device is not None:
            raise BackendUnavailable(f"device {device!r} requested but torch sees no CUDA GPU")
    if importlib.util.find_spec("onnxruntime") is not None:
        return "onnxruntime", "cpu", ("auto: no GPU → onnxruntime on CPU (2-8x faster than "
                                      "torch on CPU, bench/network_cpu.py)")
    return "torch", "cpu", "auto: no GPU and no onnxruntime → torch on CPU"


def _build(model: ModelDir, name: str, device: str) -> Backend:
    if name == "torch":
        from .torch_backend import TorchBackend

        return TorchBackend(model, device=device)
    from .onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(model, device=device)


__all__ = ["BACKEND_NAMES", "Backend", "BackendUnavailable", "as_model_dir", "check_batch",
           "make_backend"]
