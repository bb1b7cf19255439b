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
- a capture that fails (an operation that cannot be captured, a driver that refuses) is
  logged once and that shape runs eagerly from then on (:class:`GraphCache`);
- optionally (``overlap_chunks=k > 1``) a batch is cut into ``k`` slices and the copies run on a
  second stream: the host-to-device copy of slice ``i + 1`` and the device-to-host copy of
  slice ``i - 1`` overlap the compute of slice ``i`` (CUDA events order each slice's copy →
  compute → copy);
- with ``max_batch``, a batch of ``n`` windows runs as the next power of two (capped at
  ``max_batch``; :func:`batch_bucket`), its extra rows ignored: a stream whose batches vary in
  size sees only ``log2(max_batch) + 1`` input shapes, so cuDNN's algorithm search and graph
  capture happen for those alone (:meth:`CudaRunner.warm` does them ahead, at the stream's
  start) instead of once per batch size in the middle of a stream;
- the probabilities come back into a fresh page-locked tensor from torch's caching host
  allocator (recycled once the caller drops the array), then the streams are synchronized: no
  second host copy;
- optionally (``output_dtype="float16"``) the probabilities are narrowed on the device before
  they come back: the device-to-host copy, four classes per input value and so four fifths of
  a window's bytes, halves (the copies, not the network, bounded the first H200 runs: docs/RESULTS.md
  "GPU"). The caller gets float16 probabilities (relative error ≤ 2⁻¹¹, below the network's
  own reduced precision when it runs in fp16/bf16); the stitcher widens the frames it keeps.
  The input stays float32: casting it to float16 on the host cost more than the copy it
  saved (measured on the H200 machine, README "GPU").

Torch is imported lazily (this module is only imported by GPU backends); :class:`GraphCache`
and :func:`split_batch` need no GPU and are tested on CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

GRAPH_WARMUP_RUNS = 2  # eager runs on the side stream before capture (cuDNN/TRT autotuning)
OUTPUT_DTYPES = ("float32", "float16")


@dataclass
class _Graph:
    graph: Any  # torch.cuda.CUDAGraph
    static_in: Any  # device tensor the graph reads
    static_out: Any  # device tensor the graph writes


class GraphCache:
    """Captured graphs keyed by input shape: ``capture(*args)`` runs once per key; a key whose
    capture raised is remembered (with the reason) and :meth:`get` returns ``None`` for it, so
    the caller runs that shape eagerly."""

    def __init__(self, capture: Callable[..., Any]) -> None:
        self._capture = capture
        self.graphs: dict[tuple[int, ...], Any] = {}
        self.failed: dict[tuple[int, ...], str] = {}

    def __len__(self) -> int:
        return len(self.graphs)

    def get(self, key: tuple[int, ...], *args: Any) -> Any | None:
        graph = self.graphs.get(key)
        if graph is not None or key in self.failed:
            return graph
        try:
            graph = self._capture(*args)
        except Exception as exc:  # noqa: BLE001 - that shape runs eagerly instead
            self.failed[key] = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("CUDA graph capture failed for input shape %s (%s); this shape runs "
                        "eagerly", key, self.failed[key])
            return None
        self.graphs[key] = graph
        return graph

    def clear(self) -> None:
        self.graphs.clear()
        self.failed.clear()


def batch_bucket(n: int, max_batch: int | None) -> int:
    """Rows a batch of ``n`` runs as: the next power of two ≥ ``n``, capped at ``max_batch``
    (``n`` itself when ``max_batch`` is ``None`` or ``n`` is larger)."""
    if max_batch is None or n >= max_batch:
        return n
    return min(1 << (n - 1).bit_length(), max_batch)


def batch_buckets(max_batch: int) -> list[int]:
    """Every bucket :func:`batch_bucket` can return for batches of 1..``max_batch``."""
    return sorted({batch_bucket(n, max_batch) for n in range(1, max_batch + 1)})


def split_batch(n: int, parts: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of at most ``parts`` near-equal slices of ``n`` items (none empty)."""
    parts = max(1, min(parts, n))
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


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
    output_dtype : "float32" or "float16": the type of the device-to-host copy and of the
        returned probabilities.
    graphs : capture and replay one CUDA graph per input shape.
    channels_last : send the input in channels-last(-3d) memory format.
    overlap_chunks : slices per batch whose copies (on a second stream) overlap the compute of
        the neighbouring slices; 1 = no slicing.
    max_batch : pad batches to :func:`batch_bucket` sizes up to this; ``None`` = run every
        batch at its own size.
    """

    def __init__(self, run: Callable[[Any], Any], device: str, graphs: bool = False,
                 channels_last: bool = False, overlap_chunks: int = 1,
                 max_batch: int | None = None, output_dtype: str = "float32") -> None:
        import torch

        if output_dtype not in OUTPUT_DTYPES:
            raise ValueError(f"output_dtype must be one of {OUTPUT_DTYPES}, got {output_dtype!r}")
        self._torch = torch
        self.output_dtype = getattr(torch, output_dtype)
        self.device = torch.device(device)
        self._run = run
        self.graphs_enabled = graphs
        self._channels_last = channels_last
        self.max_batch = max_batch
        self.overlap_chunks = max(1, int(overlap_chunks))
        self.stream = torch.cuda.Stream(device=self.device)
        self.copy_stream = (torch.cuda.Stream(device=self.device) if self.overlap_chunks > 1
                            else None)
        self._pinned_in: Any = None
        self._graphs = GraphCache(self._capture)
        self._pool = torch.cuda.graph_pool_handle() if graphs else None

    @property
    def n_graphs(self) -> int:
        """Number of captured CUDA graphs (one per input shape seen)."""
        return len(self._graphs)

    @property
    def graph_failures(self) -> dict[tuple[int, ...], str]:
        """Input shapes whose capture failed (they run eagerly), with the reason."""
        return dict(self._graphs.failed)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """float32 ``(B, 1, W, *spatial)`` host batch → host probabilities (``output_dtype``)."""
        torch = self._torch
        n = batch.shape[0]
        host_in = self._stage_in(batch, batch_bucket(n, self.max_batch))
        if self.copy_stream is not None and n > 1:
            return self._overlapped(host_in)[:n]
        with torch.cuda.stream(self.stream), torch.inference_mode():
            out = self._compute(self._to_device(host_in))[:n]
            host_out = _pinned(torch, tuple(out.shape), out.dtype)
            host_out.copy_(out, non_blocking=True)
        self.stream.synchronize()
        return host_out.numpy()

    def warm(self, item_shape: tuple[int, ...]) -> list[int]:
        """Run one batch of every bucket size (cuDNN's algorithm choice, graph capture) for
        items of ``item_shape`` now; returns the batch sizes run."""
        sizes = batch_buckets(self.max_batch) if self.max_batch else [1]
        for size in sizes:
            self(np.zeros((size, *item_shape), np.float32))
        return sizes

    def _compute(self, x: Any) -> Any:
        """``run(x)`` on the current stream, through the shape's CUDA graph when enabled; the
        probabilities in ``output_dtype``."""
        if self.graphs_enabled:
            graph = self._graphs.get(tuple(x.shape), x)
            if graph is not None:
                graph.static_in.copy_(x, non_blocking=True)
                graph.graph.replay()
                return graph.static_out
        return self._run(x).to(self.output_dtype)

    def _overlapped(self, host_in: Any) -> np.ndarray:
        """Slices: H2D on the copy stream → compute on the compute stream → D2H on the copy
        stream, ordered by events, so copies of one slice overlap compute of another."""
        torch = self._torch
        copy, compute = self.copy_stream, self.stream
        host_out = None
        with torch.inference_mode():
            for start, stop in split_batch(host_in.shape[0], self.overlap_chunks):
                with torch.cuda.stream(copy):
                    x = self._to_device(host_in[start:stop])
                compute.wait_stream(copy)
                with torch.cuda.stream(compute):
                    x.record_stream(compute)
                    out = self._compute(x)
                    out = out.clone() if self.graphs_enabled else out  # graph output is reused
                copy.wait_stream(compute)
                with torch.cuda.stream(copy):
                    out.record_stream(copy)
                    if host_out is None:
                        host_out = _pinned(torch, (host_in.shape[0], *out.shape[1:]), out.dtype)
                    host_out[start:stop].copy_(out, non_blocking=True)
        copy.synchronize()
        compute.synchronize()
        return host_out.numpy()

    def _stage_in(self, batch: np.ndarray, rows: int) -> Any:
        """The batch in the pinned input buffer, as ``rows`` rows (rows past the batch keep
        whatever they held: their outputs are dropped)."""
        shape = (rows, *batch.shape[1:])
        n = int(np.prod(shape))
        if self._pinned_in is None or self._pinned_in.numel() < n:
            self._pinned_in = self._torch.zeros(n, dtype=self._torch.float32, pin_memory=True)
        view = self._pinned_in[:n].view(shape)
        view.numpy()[:batch.shape[0]] = batch
        return view

    def _to_device(self, host_in: Any) -> Any:
        x = host_in.to(self.device, non_blocking=True)
        if self._channels_last:
            x = x.contiguous(memory_format=_channels_last_format(self._torch, x.ndim))
        return x

    def _capture(self, x: Any) -> _Graph:
        """Warm up on the current stream, then capture ``run`` for this input shape."""
        torch = self._torch
        static_in = x.clone()
        stream = torch.cuda.current_stream(self.device)
        for _ in range(GRAPH_WARMUP_RUNS):
            self._run(static_in)
        stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool, stream=stream):
            static_out = self._run(static_in).to(self.output_dtype)
        log.info("captured a CUDA graph for input shape %s", tuple(static_in.shape))
        return _Graph(graph, static_in, static_out)

    def close(self) -> None:
        self._graphs.clear()
        self._pinned_in = None


def _pinned(torch: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """A page-locked host tensor from torch's caching host allocator: its block goes back to
    the cache when the last array viewing it is dropped."""
    return torch.empty(shape, dtype=dtype, pin_memory=True)


def _channels_last_format(torch: Any, ndim: int) -> Any:
    return torch.channels_last_3d if ndim == 5 else torch.channels_last
