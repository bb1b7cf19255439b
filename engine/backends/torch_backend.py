"""PyTorch backend: the UNet in eval + inference mode, softmax on the device.

On CPU it is a plain ``net(x)``. On CUDA (all options off by default, so results stay float32
and eager unless asked):

- ``dtype="float16"/"bfloat16"``: reduced precision, either by casting the weights
  (``autocast=False``) or with :func:`torch.autocast` (``autocast=True``: weights stay float32,
  convolutions run in the reduced type, softmax and normalization in float32);
- ``channels_last=True``: channels-last(-3d) memory format for the network and its input (helps
  tensor-core convolutions in fp16/bf16 on recent GPUs; measure before enabling);
- pinned host buffers and ``non_blocking`` copies on a dedicated stream, and optional CUDA
  graphs per window shape (``cuda_graphs=True``), via :class:`~engine.backends.cuda_io.CudaRunner`.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
import torch

from ..models.model_dir import ModelDir
from . import BackendUnavailable, as_model_dir, check_batch

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class TorchBackend:
    """Run a model directory's network with torch.

    Parameters
    ----------
    model : a :class:`ModelDir` or its path.
    device : "cpu", "cuda" or "cuda:N".
    dtype : "float32", or "float16"/"bfloat16" (CUDA only; output is always float32).
    num_threads : intra-op CPU threads; ``None`` leaves torch's default (one per core).
        Note: torch's thread count is process-wide.
    autocast : CUDA, reduced ``dtype``: use :func:`torch.autocast` instead of casting weights.
    channels_last : CUDA: channels-last(-3d) memory format.
    cuda_graphs : CUDA: capture one CUDA graph per input shape and replay it.
    """

    name = "torch"

    def __init__(self, model: ModelDir | str | Path, device: str = "cpu",
                 dtype: str = "float32", num_threads: int | None = None,
                 autocast: bool = False, channels_last: bool = False,
                 cuda_graphs: bool = False) -> None:
        self.model = as_model_dir(model)
        cuda = device.startswith("cuda")
        if cuda and not torch.cuda.is_available():
            raise BackendUnavailable(f"device {device!r} requested but torch sees no CUDA GPU")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        if not cuda and (dtype != "float32" or autocast or channels_last or cuda_graphs):
            raise ValueError("dtype float16/bfloat16, autocast, channels_last and cuda_graphs "
                             "are only supported on CUDA")
        if num_threads is not None and device == "cpu":
            torch.set_num_threads(num_threads)
        self.device = device
        self.reason = ""
        self._dtype = _DTYPES[dtype]
        self._autocast = autocast and dtype != "float32"
        self._ndim = self.model.config.architecture.ndim
        weights_dtype = torch.float32 if self._autocast else self._dtype
        self._net = self.model.build_network().to(device=device, dtype=weights_dtype)
        if channels_last:
            fmt = torch.channels_last_3d if self._ndim == 3 else torch.channels_last
            self._net = self._net.to(memory_format=fmt)
        self._runner = None
        if cuda:
            from .cuda_io import CudaRunner

            self._runner = CudaRunner(self._forward, device, graphs=cuda_graphs,
                                      channels_last=channels_last)
        self.options = {"dtype": dtype, "autocast": self._autocast,
                        "channels_last": channels_last, "cuda_graphs": cuda_graphs}

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """``(B, 1, W, *spatial)`` float32 → ``(B, C, W, *spatial)`` float32 probabilities."""
        batch = check_batch(batch, self._ndim)
        if self._runner is not None:
            return self._runner(batch)
        with torch.inference_mode():
            return self._forward(torch.from_numpy(batch)).numpy()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Device tensor in (float32) → float32 probabilities on the same device."""
        if self._autocast:
            context = torch.autocast(device_type="cuda", dtype=self._dtype)
        else:
            context = contextlib.nullcontext()
            x = x.to(self._dtype)
        with context:
            logits = self._net(x)
        return torch.softmax(logits.float(), dim=1)

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        self._net = None
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
