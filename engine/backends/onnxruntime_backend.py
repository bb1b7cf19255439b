"""ONNX Runtime backend (CPU execution provider; CUDA EP when asked for and available).

The ONNX graph is the model directory's ``model.onnx`` when present (written by ``castream
export`` via :func:`engine.models.model_dir.export_onnx`, which records the SHA-256 of the
weights it was exported from; a graph from other weights than ``weights.safetensors``, or one
that records no digest, is refused for this backend and TensorRT); otherwise it is exported once into a
cache, ``$CASTREAM_CACHE_DIR/onnx/`` (default ``~/.cache/castream/onnx/``), keyed by a hash of
the weights and config, and reused. The graph includes the softmax and has dynamic axes; spatial
sizes must be multiples of the architecture's ``size_multiple()``, so this backend pads at the
end of each axis (edge values) and crops back.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from ..models.model_dir import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    ModelDir,
    check_onnx_matches_weights,
    export_onnx,
)
from . import BackendUnavailable, as_model_dir, check_batch

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where exported ONNX graphs are cached."""
    root = os.environ.get("CASTREAM_CACHE_DIR") or Path.home() / ".cache" / "castream"
    return Path(root) / "onnx"


#: part of the cache key: bump when export_onnx writes a different graph for the same weights
#: (2: the class softmax as plain operations), so old cached graphs are not reused
EXPORT_VERSION = 2


def _model_hash(model: ModelDir) -> str:
    digest = hashlib.sha256(f"export-{EXPORT_VERSION}".encode())
    if model.path is not None and (model.path / WEIGHTS_FILE).is_file():
        digest.update((model.path / WEIGHTS_FILE).read_bytes())
        digest.update((model.path / CONFIG_FILE).read_bytes())
    else:
        for key in sorted(model.weights):
            digest.update(key.encode())
            digest.update(np.ascontiguousarray(model.weights[key]).tobytes())
        digest.update(repr(model.config.to_dict()).encode())
    return digest.hexdigest()[:24]


def resolve_onnx(model: ModelDir, precision: str = "fp32") -> Path:
    """The model's ONNX graph computing in ``precision``.

    fp32: ``model.onnx`` of the directory (refused unless it records the digest of the model's
    weights: :func:`~engine.models.model_dir.check_onnx_matches_weights`), or a cached export
    (created on first use, keyed by the weights). fp16 / bf16 (strongly typed TensorRT
    engines): a cached export of the weights in that precision, float32 I/O
    (:func:`~engine.models.onnx_reduced.export_reduced_onnx`).
    """
    if precision == "fp32" and model.onnx_path is not None:
        check_onnx_matches_weights(model, model.onnx_path)
        return model.onnx_path
    suffix = "" if precision == "fp32" else f"-{precision}"
    path = cache_dir() / f"{_model_hash(model)}{suffix}.onnx"
    if not path.is_file():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        if precision == "fp32":
            export_onnx(model, tmp)
        else:
            from ..models.onnx_reduced import export_reduced_onnx

            export_reduced_onnx(model, tmp, precision)
        os.replace(tmp, path)  # atomic: concurrent processes never see a partial file
    return path


def pad_to_multiple(batch: np.ndarray, multiple: tuple[int, ...]) -> np.ndarray:
    """Pad axes 2.. at their end (edge mode) up to multiples of ``multiple``."""
    pads = [(0, 0), (0, 0)] + [(0, -s % m) for s, m in zip(batch.shape[2:], multiple, strict=True)]
    if all(p == (0, 0) for p in pads):
        return batch
    return np.pad(batch, pads, mode="edge")


class OnnxRuntimeBackend:
    """Run a model with onnxruntime; ``device`` "cpu" or "cuda" (CUDA execution provider).

    ``num_threads``: intra-op threads (``None``: onnxruntime's default, one per core).
    ``spin``: let idle pool threads busy-wait; off by default because the engine shares the
    CPU with preprocessing and post-processing, and spinning threads starve them (measured:
    no loss of network throughput on 2 shared cores, often a gain).
    """

    name = "onnxruntime"

    def __init__(self, model: ModelDir | str | Path, device: str = "cpu",
                 num_threads: int | None = None, spin: bool = False) -> None:
        import onnxruntime as ort

        self.model = as_model_dir(model)
        self.device = device
        self.reason = ""
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendUnavailable("onnxruntime has no CUDAExecutionProvider here "
                                         "(install onnxruntime-gpu) ")
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = num_threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        self.onnx_path = resolve_onnx(self.model)
        self._session = ort.InferenceSession(str(self.onnx_path), options, providers=providers)
        self._multiple = self.model.config.architecture.size_multiple()
        self._ndim = self.model.config.architecture.ndim
        log.debug("onnxruntime session on %s from %s", providers, self.onnx_path)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """``(B, 1, W, *spatial)`` float32 → ``(B, C, W, *spatial)`` float32 probabilities."""
        batch = check_batch(batch, self._ndim)
        sizes = batch.shape[2:]
        probs = self._session.run(None, {"input": pad_to_multiple(batch, self._multiple)})[0]
        if probs.shape[2:] != sizes:
            probs = np.ascontiguousarray(probs[(slice(None), slice(None),
                                                *[slice(0, s) for s in sizes])])
        return probs

    def close(self) -> None:
        self._session = None
