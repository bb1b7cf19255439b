"""PyTorch backend: the UNet in eval + inference mode, softmax on the device."""

from __future__ import annotations

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
    """

    name = "torch"

    def __init__(self, model: ModelDir | str | Path, device: str = "cpu",
                 dtype: str = "float32", num_threads: int | None = None) -> None:
        self.model = as_model_dir(model)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable(f"device {device!r} requested but torch sees no CUDA GPU")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        if dtype != "float32" and not device.startswith("cuda"):
            raise ValueError(f"dtype {dtype} is only supported on CUDA")
        if num_threads is not None and device == "cpu":
            torch.set_num_threads(num_threads)
        self.device = device
        self.reason = ""
        self._dtype = _DTYPES[dtype]
        self._ndim = self.model.config.architecture.ndim
        self._net = self.model.build_network().to(device=device, dtype=self._dtype)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """``(B, 1, W, *spatial)`` float32 → ``(B, C, W, *spatial)`` float32 probabilities."""
        batch = check_batch(batch, self._ndim)
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(device=self.device, dtype=self._dtype)
            probs = torch.softmax(self._net(x).float(), dim=1)
            return probs.cpu().numpy()

    def close(self) -> None:
        self._net = None
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
