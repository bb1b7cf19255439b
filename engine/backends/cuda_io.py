"""CUDA plumbing shared by the GPU backends: pinned host staging, a dedicated stream, CUDA graphs.

:class:`CudaRunner` turns a device function ``run(x) -> probs`` (torch CUDA tensors in and out,
launched on the current stream) into ``numpy → numpy``:

- the host batch is copied into a page-locked (pinned) buffer and sent to the GPU with a
  ``non_blocking`` copy on the runner's own :class:`torch.cuda.Stream` (so it never serializes
  with work on the default stream);
- optionally (``graphs=True``) the device function is captured once per input shape as a CUDA
  graph (:class:`torch.cuda.CUDAGraph`) and replayed afterwards: one launch instead of one per
  kernel, which matters for the small per-window kernels of a U-Net at small batch sizes. The
  window geometry is fixed per model and stream kind, so only a handful of shapes (one per batch
  size seen) are ever captured; all graphs share one memory pool;
- the probabilities come back through a pinned output buffer, then the stream is synchronized.

Torch is imported lazily (this module is only imported by GPU backends).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

GRAPH_WARMUP_RUNS = 2  # eager runs on the side stream before capture (cuDNN/TRT autotuning)


@dataclass
class _Graph:
    graph: Any  # torch.cuda.CUDAGraph
    static_in: Any  # device tensor the graph reads
    static_out: Any  # device tensor the graph writes


class CudaRunner:
    """Run ``run(x)`` on ``device`` with pinned staging, a private stream and optional graphs.

    Parameters
    ----------
    run : callable
        ``run(x: torch.Tensor) -> torch.Tensor``; ``x`` is float32 ``(B, 1, W, *spatial)`` on the
        device, the result any float dtype (returned as float32). It must launch its work on
        ``torch.cuda.current_stream()`` and, for graphs, allocate nothing whose address it
        keeps between calls except through torch's allocator.
    device : "cuda" or "cuda:N".
    graphs : capture and replay one CUDA graph per input shape.
    channels_last : send the input in channels-last(-3d) memory format.
    """

    def __init__(self, run: Callable[[Any], Any], device: str, graphs: bool = False,
                 channels_last: bool = False) -> None:
        import torch

        self._torch = torch
        self.device = torch.device(device)
        self._run = run
        self.graphs_enabled = graphs
        self._channels_last = channels_last
        self.stream = torch.cuda.Stream(device=self.device)
        self._pinned_in: Any = None
        self._pinned_out: Any = None
        self._graphs: dict[tuple[int, ...], _Graph] = {}
        self._pool = torch.cuda.graph_pool_handle() if graphs else None

    @property
    def n_graphs(self) -> int:
        """Number of captured CUDA graphs (one per input shape seen)."""
        return len(self._graphs)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """float32 ``(B, 1, W, *spatial)`` host batch → float32 host probabilities."""
        torch = self._torch
        host_in = self._stage_in(batch)
        with torch.cuda.stream(self.stream), torch.inference_mode():
            if self.graphs_enabled:
                out = self._graph_run(host_in)
            else:
                out = self._run(self._to_device(host_in))
            host_out = self._stage_out(out)
            host_out.copy_(out, non_blocking=True)
        self.stream.synchronize()
        return host_out.numpy().copy()  # the pinned buffer is reused by the next call

    def _stage_in(self, batch: np.ndarray) -> Any:
        n = batch.size
        if self._pinned_in is None or self._pinned_in.numel() < n:
            self._pinned_in = self._torch.empty(n, dtype=self._torch.float32, pin_memory=True)
        view = self._pinned_in[:n].view(batch.shape)
        view.numpy()[...] = batch
        return view

    def _stage_out(self, out: Any) -> Any:
        n = out.numel()
        if self._pinned_out is None or self._pinned_out.numel() < n:
            self._pinned_out = self._torch.empty(n, dtype=self._torch.float32, pin_memory=True)
        return self._pinned_out[:n].view(tuple(out.shape))

    def _to_device(self, host_in: Any) -> Any:
        x = host_in.to(self.device, non_blocking=True)
        if self._channels_last:
            x = x.contiguous(memory_format=_channels_last_format(self._torch, x.ndim))
        return x

    def _graph_run(self, host_in: Any) -> Any:
        key = tuple(host_in.shape)
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._graphs[key] = self._capture(self._to_device(host_in))
        graph.static_in.copy_(host_in, non_blocking=True)  # pinned host → the graph's input
        graph.graph.replay()
        return graph.static_out

    def _capture(self, static_in: Any) -> _Graph:
        """Warm up on the runner's stream, then capture ``run`` for this input shape."""
        torch = self._torch
        for _ in range(GRAPH_WARMUP_RUNS):
            self._run(static_in)
        self.stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool, stream=self.stream):
            static_out = self._run(static_in).float()
        log.info("captured a CUDA graph for input shape %s", tuple(static_in.shape))
        return _Graph(graph, static_in, static_out)

    def close(self) -> None:
        self._graphs.clear()
        self._pinned_in = self._pinned_out = None


def _channels_last_format(torch: Any, ndim: int) -> Any:
    return torch.channels_last_3d if ndim == 5 else torch.channels_last
