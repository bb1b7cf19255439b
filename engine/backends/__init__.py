"""Inference backends behind one small protocol (torch / onnxruntime / TensorRT).

``make_backend(model, name="auto")`` picks and explains: ``auto`` → TensorRT when a CUDA GPU and
the ``tensorrt`` package are available (fp16 engines built on this GPU and cached), else torch on
CUDA, else onnxruntime on CPU (measured faster on this project's CPU benchmark,
``bench/network_cpu.py``: ~2x for the 2D line-scan net, ~5-8x for the 3D nets, whose
convolutions torch runs through its slow non-oneDNN path), else torch on CPU when onnxruntime is
missing. The choice and its reason (including why a preferred backend was passed over) are
logged and kept in ``backend.reason``.

Backends are built eagerly: a constructor that returns has built what the backend needs (the
TensorRT backend builds and runs a probe engine), so ``auto`` moves on to the next candidate
when building one raises anything (a TensorRT API missing from the installed version, a parser
or builder error, a CUDA error), not only :class:`BackendUnavailable`. A backend may also
have ``prepare(item_shape)`` (:func:`prepare_backend`), called when a stream starts, so that
nothing is built inside a stream's first ``predict``.
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

    ``predict(batch)``: ``batch`` float32 ``(B, 1, W, *spatial)`` → ``(B, C, W, *spatial)``
    probabilities (C = 4 classes, Dotti order), any spatial size; float32, or float16 from a GPU
    backend asked for float16 output (consumers widen what they keep).
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


def _tensorrt_available() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def make_backend(model: ModelDir | str | Path, name: str = "auto", device: str | None = None,
                 options: dict[str, dict] | None = None) -> Backend:
    """Build the backend ``name`` for ``model`` on ``device`` ("cpu" | "cuda" | None = best).

    ``options`` maps a backend name to keyword arguments of its constructor, used when that
    backend is built, e.g. ``{"tensorrt": {"precision": "fp16", "max_batch": 32},
    "torch": {"dtype": "float16"}}``.
    """
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKEND_NAMES}")
    if device not in (None, "cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ValueError(f"device must be 'cpu', 'cuda[:N]' or None, got {device!r}")
    model = as_model_dir(model)
    options = dict(options or {})
    if name == "auto":
        backend = _auto_backend(model, device, options)
    else:
        default = "cuda" if name == "tensorrt" or (name == "torch" and _cuda_available()) else "cpu"
        backend = _build(model, name, device or default, options)
        backend.reason = f"{name} requested explicitly"
    log.info("backend %s on %s for model %r: %s", backend.name, backend.device,
             model.config.name, backend.reason)
    return backend


def _auto_backend(model: ModelDir, device: str | None, options: dict[str, dict]) -> Backend:
    """TensorRT > torch CUDA > onnxruntime CPU > torch CPU: the first candidate that builds,
    with the reasons of those passed over on ``.reason``."""
    passed_over: list[str] = []
    for name, dev, why in _auto_candidates(device, passed_over):
        try:
            backend = _build(model, name, dev, options)
        except Exception as exc:  # noqa: BLE001 - any build failure: try the next candidate
            reason = f"{_LABELS[name, _kind(dev)]} unusable: {type(exc).__name__}: {exc}"
            passed_over.append(reason[:300])
            log.warning("auto backend: %s; trying the next backend", reason)
            continue
        skipped = "; ".join(passed_over)
        backend.reason = f"auto: {why}" + (f" (passed over: {skipped})" if skipped else "")
        return backend
    raise BackendUnavailable("no backend could be built: " + "; ".join(passed_over))


_LABELS = {("tensorrt", "cuda"): "TensorRT", ("torch", "cuda"): "torch on GPU",
           ("onnxruntime", "cpu"): "onnxruntime on CPU", ("torch", "cpu"): "torch on CPU"}


def _kind(device: str) -> str:
    return "cuda" if str(device).startswith("cuda") else "cpu"


def _auto_candidates(device: str | None, passed_over: list[str]):
    """``(backend name, device, why)`` in order of preference for ``device``."""
    if device is None or str(device).startswith("cuda"):
        if _cuda_available():
            gpu = device or "cuda"
            if _tensorrt_available():
                yield "tensorrt", gpu, "CUDA GPU and TensorRT available → TensorRT"
            else:
                passed_over.append("TensorRT not installed")
            yield "torch", gpu, "CUDA GPU available → torch on GPU"
        elif device is not None:
            raise BackendUnavailable(f"device {device!r} requested but torch sees no CUDA GPU")
        else:
            passed_over.append("no GPU")
        if device is not None:
            return  # a CUDA device was asked for: no CPU fallback
    if importlib.util.find_spec("onnxruntime") is not None:
        yield ("onnxruntime", "cpu", "onnxruntime on CPU (2-8x faster than torch on CPU, "
               "bench/network_cpu.py)")
    else:
        passed_over.append("onnxruntime not installed")
    yield "torch", "cpu", "torch on CPU"


def prepare_backend(backend: Backend, item_shape: tuple[int, ...]) -> None:
    """Let ``backend`` build what it needs for batches of ``(B, *item_shape)`` now (e.g. a
    TensorRT engine per window shape); a no-op for backends without ``prepare``."""
    prepare = getattr(backend, "prepare", None)
    if prepare is not None:
        prepare(tuple(item_shape))


def _build(model: ModelDir, name: str, device: str, options: dict[str, dict]) -> Backend:
    kwargs = dict(options.get(name, {}))
    if name == "tensorrt":
        from .tensorrt_backend import TensorRTBackend

        return TensorRTBackend(model, device=device, **kwargs)
    if name == "torch":
        from .torch_backend import TorchBackend

        return TorchBackend(model, device=device, **kwargs)
    from .onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(model, device=device, **kwargs)


__all__ = ["BACKEND_NAMES", "Backend", "BackendUnavailable", "as_model_dir", "check_batch",
           "make_backend", "prepare_backend"]
