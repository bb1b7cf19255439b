"""TensorRT backend: engines built from the model's ONNX graph on this GPU, run from torch.

One engine per window shape ``(W, *spatial)`` (padded at the end of each axis to the
architecture's ``size_multiple()`` with the onnxruntime backend's
:func:`~engine.backends.onnxruntime_backend.pad_to_multiple`, then cropped back), loaded from
the cache or built (:mod:`engine.backends.tensorrt_build`: optimization profile with batch
min 1 / opt ``opt_batch`` / max ``max_batch``, the window's fixed T and spatial dims, fp16 by
default, weak typing on TensorRT 10.x and strong typing on 11.x, a timing cache). Batches
larger than ``max_batch`` run in slices.

Engines are built eagerly, never inside a stream's first ``predict`` when the pipeline is used:
the constructor builds and runs a small probe engine (so that ``auto`` can fall back to torch
when TensorRT cannot build or run here: :func:`engine.backends.make_backend`), plus one per
``warm_shapes``; :meth:`TensorRTBackend.prepare` builds the engine of a stream's window shape
when the stream starts (:class:`engine.pipeline.DetectorFactory`).

Execution: I/O are torch CUDA tensors; ``context.set_input_shape`` + ``set_tensor_address`` +
``execute_async_v3`` on the runner's :class:`torch.cuda.Stream`, with pinned host staging and
optional CUDA graphs (one per batch size) from :class:`~engine.backends.cuda_io.CudaRunner`.
The output buffer is allocated once at ``max_batch`` and batch sizes use views of it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..models.model_dir import ModelDir
from . import BackendUnavailable, as_model_dir, check_batch
from .onnxruntime_backend import pad_to_multiple, resolve_onnx
from .tensorrt_build import (
    INPUT_NAME,
    OUTPUT_NAME,
    BuildSpec,
    import_tensorrt,
    load_or_build,
    onnx_precision,
    resolve_typing,
    trt_logger,
)

log = logging.getLogger(__name__)


@dataclass
class _Loaded:
    """A deserialized engine for one window shape, its context and its runner."""

    engine: Any
    context: Any
    output: Any  # torch CUDA tensor (max_batch, C, W, *spatial)
    runner: Any  # CudaRunner
    path: Path


class TensorRTBackend:
    """Run a model with TensorRT on a CUDA GPU.

    Parameters
    ----------
    model : a :class:`ModelDir` or its path.
    device : "cuda" or "cuda:N".
    precision : "fp16" (default), "fp32", "bf16" or "int8" (TensorRT 10.x weak typing and Q/DQ
        graphs only).
    max_batch, opt_batch : batch range of the optimization profile (min is 1).
    workspace_gib : builder workspace limit (``set_memory_pool_limit``).
    cuda_graphs : capture one CUDA graph per batch size and replay it.
    typing : "auto" (weak on TensorRT 10.x, strong on 11.x), "weak" (10.x only) or "strong".
    probe : build and run a small engine now, so that a TensorRT that cannot build or run
        here fails at construction rather than in a stream.
    warm_shapes : window shapes ``(W, *spatial)`` whose engines are built now.
    """

    name = "tensorrt"

    def __init__(self, model: ModelDir | str | Path, device: str = "cuda",
                 precision: str = "fp16", max_batch: int = 32, opt_batch: int | None = None,
                 workspace_gib: float = 4.0, cuda_graphs: bool = False, typing: str = "auto",
                 probe: bool = True, warm_shapes: tuple[tuple[int, ...], ...] = ()) -> None:
        self._trt = import_tensorrt()
        self._torch = _import_torch_cuda(device)
        self.model = as_model_dir(model)
        self.device = device
        self.reason = ""
        self.precision = precision
        self.typing = resolve_typing(self._trt, precision, typing)
        self.max_batch = max_batch
        self.opt_batch = opt_batch or max(1, min(8, max_batch))
        self.workspace_bytes = int(workspace_gib * (1 << 30))
        self.cuda_graphs = cuda_graphs
        self._multiple = self.model.config.architecture.size_multiple()
        self._ndim = self.model.config.architecture.ndim
        BuildSpec(Path("-"), (1, 1), precision, self.opt_batch, max_batch,
                  typing=self.typing)  # validate before any export or build
        self.onnx_path = resolve_onnx(self.model, onnx_precision(precision, self.typing))
        self._runtime = self._trt.Runtime(trt_logger(self._trt))
        self._engines: dict[tuple[int, ...], _Loaded] = {}
        gpu = self._torch.device(device)
        self._gpu_name = self._torch.cuda.get_device_name(gpu)
        self._capability = tuple(self._torch.cuda.get_device_capability(gpu))
        if probe:
            self._probe()
        for shape in warm_shapes:
            self.prepare((1, *shape))

    def prepare(self, item_shape: tuple[int, ...]) -> None:
        """Build (or load) now the engine for batches of ``(B, *item_shape)``, ``item_shape =
        (1, W, *spatial)`` before padding."""
        padded = tuple(-(-int(s) // m) * m for s, m in zip(item_shape[1:], self._multiple,
                                                           strict=True))
        self._engine_for((1, *padded))

    def _probe(self) -> None:
        """Build and run the smallest engine of the model's first window length: parse, build,
        deserialize and execute must all work here, and the output be finite probabilities."""
        frames = next(iter(self.model.config.window.values())).frames
        item = (1, frames, *(2 * m for m in self._multiple[1:]))
        probs = self.predict(np.zeros((1, *item), np.float32))
        if not np.all(np.isfinite(probs)) or not np.allclose(probs.sum(axis=1), 1, atol=1e-2):
            raise BackendUnavailable("TensorRT probe engine returned invalid probabilities")

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """``(B, 1, W, *spatial)`` float32 → ``(B, C, W, *spatial)`` float32 probabilities."""
        batch = check_batch(batch, self._ndim)
        sizes = batch.shape[2:]
        padded = pad_to_multiple(batch, self._multiple)
        loaded = self._engine_for(padded.shape[1:])
        parts = [loaded.runner(padded[i:i + self.max_batch])
                 for i in range(0, padded.shape[0], self.max_batch)]
        probs = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if probs.shape[2:] != sizes:
            crop = (slice(None), slice(None), *[slice(0, s) for s in sizes])
            probs = np.ascontiguousarray(probs[crop])
        return probs

    @property
    def engine_paths(self) -> list[Path]:
        """Cached engine files in use (one per window shape seen)."""
        return [loaded.path for loaded in self._engines.values()]

    def _engine_for(self, window_shape: tuple[int, ...]) -> _Loaded:
        loaded = self._engines.get(window_shape)
        if loaded is None:
            loaded = self._engines[window_shape] = self._load(window_shape)
        return loaded

    def _load(self, window_shape: tuple[int, ...]) -> _Loaded:
        spec = BuildSpec(self.onnx_path, window_shape, self.precision, self.opt_batch,
                         self.max_batch, self.workspace_bytes, self.typing)
        with self._torch.cuda.device(self._torch.device(self.device)):
            serialized, path = load_or_build(self._trt, spec, self._gpu_name, self._capability)
            engine = self._runtime.deserialize_cuda_engine(serialized)
            if engine is None:
                raise BackendUnavailable(f"TensorRT could not deserialize {path}; delete it "
                                         "to rebuild")
            context = engine.create_execution_context()
            output = self._output_buffer(engine, context, spec)
        from .cuda_io import CudaRunner

        runner = CudaRunner(lambda x: self._execute(context, output, x), self.device,
                            graphs=self.cuda_graphs)
        log.info("TensorRT engine ready: %s (%s, %s typing, batch 1..%d)", path.name,
                 self.precision, self.typing, self.max_batch)
        return _Loaded(engine, context, output, runner, path)

    def _output_buffer(self, engine: Any, context: Any, spec: BuildSpec) -> Any:
        """Device output buffer for ``max_batch`` windows (views serve smaller batches)."""
        torch = self._torch
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        if INPUT_NAME not in names or OUTPUT_NAME not in names:
            raise BackendUnavailable(f"engine tensors {names}; expected {INPUT_NAME!r} and "
                                     f"{OUTPUT_NAME!r} (export with castream export)")
        dtypes = {self._trt.float32: torch.float32, self._trt.float16: torch.float16}
        if hasattr(self._trt, "bfloat16"):
            dtypes[self._trt.bfloat16] = torch.bfloat16
        dtype = dtypes[engine.get_tensor_dtype(OUTPUT_NAME)]
        context.set_input_shape(INPUT_NAME, spec.profile(spec.max_batch))
        shape = tuple(context.get_tensor_shape(OUTPUT_NAME))
        return torch.empty(shape, dtype=dtype, device=self.device)

    def _execute(self, context: Any, output: Any, x: Any) -> Any:
        """Enqueue one batch on the current stream; returns the output view (device)."""
        torch = self._torch
        x = x.contiguous()
        out = output[:x.shape[0]]
        context.set_input_shape(INPUT_NAME, tuple(x.shape))
        context.set_tensor_address(INPUT_NAME, x.data_ptr())
        context.set_tensor_address(OUTPUT_NAME, out.data_ptr())
        if not context.execute_async_v3(torch.cuda.current_stream().cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        return out

    def close(self) -> None:
        for loaded in self._engines.values():
            loaded.runner.close()
        self._engines.clear()
        self._runtime = None


def _import_torch_cuda(device: str) -> Any:
    """torch, after checking that ``device`` is a CUDA device torch can see."""
    if not str(device).startswith("cuda"):
        raise BackendUnavailable(f"TensorRT runs on CUDA devices only, got device {device!r}")
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable("TensorRT backend needs a CUDA GPU, but torch sees none")
    return torch
