"""PyTorch backend: the UNet in eval + inference mode, softmax on the device.

On CPU it is a plain ``net(x)``. On CUDA (all options off by default, so results stay float32
and eager unless asked):

- ``dtype="float16"/"bfloat16"``: reduced precision, either by casting the weights
  (``autocast=False``) or with :func:`torch.autocast` (``autocast=True``: weights stay float32,
  convolutions run in the reduced type, softmax and normalization in float32);
- ``channels_last=True``: channels-last(-3d) memory format for the network and its input (helps
  tensor-core convolutions in fp16/bf16 on recent GPUs; measure before enabling);
- pinned host buffers and ``non_blocking`` copies on a dedicated stream, optional CUDA
  graphs per window shape (``cuda_graphs=True``; a shape whose capture fails runs eagerly) and
  copies overlapped with compute (``overlap_chunks=k``), via
  :class:`~engine.backends.cuda_io.CudaRunner`;
- ``max_batch=N``: batches run padded to power-of-two sizes up to ``N``
  (:func:`~engine.backends.cuda_io.batch_bucket`), and :meth:`TorchBackend.prepare` runs each of
  those sizes once, so cuDNN's algorithm search and graph capture happen when a stream starts,
  not in its windows (the pipeline passes its ``max_batch``);
- ``output_dtype="float16"``: the probabilities narrowed to float16 on the GPU before the
  device-to-host copy, which halves (:class:`~engine.backends.cuda_io.CudaRunner`);
- ``compile=True``: :func:`torch.compile` of the network (kept only if its first run, at
  construction, succeeds; else eager, with the reason in ``options["compile"]``).

On CUDA the constructor runs one small batch, so a GPU that cannot run the network fails when
the backend is chosen (and ``auto`` falls back), not in a stream's first window. The choice of
weight and compute types is :func:`resolve_precision` (no GPU needed, tested on CPU).
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
CUDA_ONLY = ("dtype float16/bfloat16", "autocast", "channels_last", "cuda_graphs",
             "overlap_chunks", "compile", "output_dtype float16")


def resolve_precision(cuda: bool, dtype: str, autocast: bool,
                      bf16_supported: bool = True) -> tuple[str, str | None]:
    """``(weights dtype, autocast dtype or None)`` for the options.

    float32 → float32 weights, no autocast; reduced ``dtype`` with ``autocast`` → float32
    weights and convolutions autocast to ``dtype`` (softmax and reductions in float32); without
    → weights cast to ``dtype``. Reduced precision is CUDA only; bfloat16 needs a GPU that
    supports it (compute capability 8.0+).
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    if dtype == "float32":
        return "float32", None
    if not cuda:
        raise ValueError(f"dtype {dtype} is only supported on CUDA")
    if dtype == "bfloat16" and not bf16_supported:
        raise BackendUnavailable("this GPU does not support bfloat16 (needs compute "
                                 "capability 8.0+); use float16")
    return ("float32", dtype) if autocast else (dtype, None)


class TorchBackend:
    """Run a model directory's network with torch.

    Parameters
    ----------
    model : a :class:`ModelDir` or its path.
    device : "cpu", "cuda" or "cuda:N".
    dtype : "float32", or "float16"/"bfloat16" (CUDA only; the network's compute type).
    num_threads : intra-op CPU threads; ``None`` leaves torch's default (one per core).
        Note: torch's thread count is process-wide.
    autocast : CUDA, reduced ``dtype``: use :func:`torch.autocast` instead of casting weights.
    channels_last : CUDA: channels-last(-3d) memory format.
    cuda_graphs : CUDA: capture one CUDA graph per input shape and replay it.
    overlap_chunks : CUDA: slices per batch whose copies overlap the compute of the others.
    compile : CUDA: :func:`torch.compile` the network (eager if it fails).
    output_dtype : CUDA: "float32" or "float16", the type of the probabilities copied back
        from the GPU and returned.
    max_batch : CUDA: pad batches to power-of-two sizes up to this and warm them all in
        :meth:`prepare`; ``None``: every batch runs at its own size (ignored on CPU).
    """

    name = "torch"

    def __init__(self, model: ModelDir | str | Path, device: str = "cpu",
                 dtype: str = "float32", num_threads: int | None = None,
                 autocast: bool = False, channels_last: bool = False,
                 cuda_graphs: bool = False, overlap_chunks: int = 1,
                 compile: bool = False, max_batch: int | None = None,
                 output_dtype: str = "float32") -> None:
        self.model = as_model_dir(model)
        cuda = device.startswith("cuda")
        if cuda and not torch.cuda.is_available():
            raise BackendUnavailable(f"device {device!r} requested but torch sees no CUDA GPU")
        if not cuda and (autocast or channels_last or cuda_graphs or overlap_chunks != 1
                         or compile or output_dtype != "float32"):
            raise ValueError(f"{', '.join(CUDA_ONLY)} are only supported on CUDA")
        weights, compute = resolve_precision(cuda, dtype, autocast,
                                             cuda and _bf16_supported(device))
        if num_threads is not None and device == "cpu":
            torch.set_num_threads(num_threads)
        self.device = device
        self.reason = ""
        self._dtype = _DTYPES[dtype]
        self._autocast = compute is not None
        self._ndim = self.model.config.architecture.ndim
        self._net = self.model.build_network().to(device=device, dtype=_DTYPES[weights])
        if channels_last:
            fmt = torch.channels_last_3d if self._ndim == 3 else torch.channels_last
            self._net = self._net.to(memory_format=fmt)
        self.options = {"dtype": dtype, "autocast": self._autocast,
                        "channels_last": channels_last, "cuda_graphs": cuda_graphs,
                        "overlap_chunks": overlap_chunks, "compile": compile,
                        "output_dtype": output_dtype}
        self._runner = None
        self._prepared: set[tuple[int, ...]] = set()
        if cuda:
            from .cuda_io import CudaRunner

            # windows have a few fixed shapes: let cuDNN time its algorithms once per shape
            # (its heuristic choice for 3-D convolutions can be far from the fastest;
            # the first H200 run was flat in batch size, docs/RESULTS.md "GPU"; not yet re-measured)
            torch.backends.cudnn.benchmark = True
            self._eager_net = self._net
            if compile:
                self._net = torch.compile(self._net, dynamic=False)
            self._runner = CudaRunner(self._forward, device, graphs=cuda_graphs,
                                      channels_last=channels_last,
                                      overlap_chunks=overlap_chunks, max_batch=max_batch,
                                      output_dtype=output_dtype)
            self._check_runs()

    def _check_runs(self) -> None:
        """One small batch now (CUDA): errors surface when the backend is chosen; a failing
        ``torch.compile`` falls back to the eager network."""
        multiple = self.model.config.architecture.size_multiple()
        probe = np.zeros((1, 1, *(2 * m for m in multiple)), np.float32)
        try:
            self._runner(probe)
        except Exception as exc:  # noqa: BLE001 - retried eagerly, or re-raised
            if self._net is self._eager_net:
                raise
            reason = f"{type(exc).__name__}: {exc}"[:200]
            log.warning("torch.compile failed (%s); running the network eagerly", reason)
            self._net = self._eager_net
            self.options["compile"] = f"failed, eager: {reason}"
            self._runner._graphs.clear()
            self._runner(probe)

    def prepare(self, item_shape: tuple[int, ...]) -> None:
        """CUDA: run one batch of ``item_shape`` windows at every batch size the runner uses
        (cuDNN algorithm choice, graph capture), so a stream's windows do not pay for it; a
        no-op on CPU."""
        if self._runner is not None and tuple(item_shape) not in self._prepared:
            check_batch(np.zeros((1, *item_shape), np.float32), self._ndim)
            sizes = self._runner.warm(tuple(item_shape))
            log.info("torch CUDA: warmed batch sizes %s for windows %s", sizes, tuple(item_shape))
            self._prepared.add(tuple(item_shape))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """``(B, 1, W, *spatial)`` float32 → ``(B, C, W, *spatial)`` probabilities (float32;
        float16 on CUDA with ``output_dtype="float16"``)."""
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
        self._net = self._eager_net = None
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


def _bf16_supported(device: str) -> bool:
    return bool(torch.cuda.get_device_capability(torch.device(device))[0] >= 8)
