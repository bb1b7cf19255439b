"""The per-pixel reductions of a stream's analysis, on the CPU (numpy / scipy) or on the GPU
the network runs on (torch), giving the same numbers.

Profiling the default (hybrid) movie detector on a 64×512 movie (600 frames, 4-frame chunks,
``cProfile`` over :func:`engine.pipeline.analyze_array`) put most of the time outside the
network in work done on every pixel of every frame: the classical half's Gaussian smoothing
of its z-transform and its pooled window sums, the preprocessor's order statistic of block
means (F0) and the noise maps' medians. Those are the operations here. What the tracker does
after them -- connected components, peak finding, splitting, characterization -- runs on the
bounding boxes of candidate pixels only, so it scales with the events, not with the frames,
and stays on the CPU (where ``serve --processes`` spreads it over the cores).

:class:`DenseOps` is the reference, numpy and scipy; :class:`TorchDenseOps` does the same on a
torch device, and is what a stream gets when its network runs on a CUDA GPU
(:func:`dense_ops_for`). Equality, stated (tested on torch's CPU device here; the same tests
marked ``gpu`` run on CUDA):

* :meth:`~DenseOps.order_statistic`, :meth:`~DenseOps.median`,
  :meth:`~DenseOps.median_abs_difference` and :meth:`~DenseOps.box_sum` of integers are
  exact: the same elements are selected, the same two middle values averaged in float32, and
  integer window sums are formed in int64;
* :meth:`~DenseOps.gaussian_filter` repeats scipy's ``correlate1d`` arithmetic (float64
  accumulation of the centre, then of symmetric pairs from the outside in, the result rounded
  to float32 after each axis); a GPU may fuse a multiply and an add, so results may differ by
  one float32 rounding step (relative 6e-8) in a few pixels;
* :meth:`~DenseOps.box_sum` of floats sums a float64 cumulative sum's differences where
  scipy keeps a running sum: equal to float64 rounding (relative 1e-12 of the largest sum).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

log = logging.getLogger(__name__)


def _edge_padded(line, pad: int):
    """``line`` (a torch tensor) with its first and last values repeated ``pad`` times along
    the last axis (scipy's "nearest")."""
    import torch

    shape = (*line.shape[:-1], pad)
    return torch.cat([line[..., :1].expand(shape), line, line[..., -1:].expand(shape)], dim=-1)


def _kernel(sigma: float, truncate: float) -> np.ndarray:
    """scipy's ``gaussian_filter1d`` weights (float64, symmetric, summing to 1)."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (float(sigma) * float(sigma)) * x**2)
    return phi / phi.sum()


class DenseOps:
    """The reference: numpy and scipy on the CPU."""

    device = "cpu"
    name = "numpy"

    def gaussian_filter(self, values: np.ndarray, sigma: Sequence[float],
                        truncate: float) -> np.ndarray:
        """``scipy.ndimage.gaussian_filter(values, sigma, mode="nearest", truncate=...)`` of a
        float32 array (one sigma per axis), float32."""
        return ndimage.gaussian_filter(np.asarray(values, np.float32), list(sigma),
                                       mode="nearest", truncate=truncate)

    def box_sum(self, values: np.ndarray, radius: int, axes: tuple[int, ...]) -> np.ndarray:
        """Sum over ``±radius`` along each of ``axes`` (zeros beyond the edges), float64.

        Exact for integers below 2⁵³ (0/1 masks, counts) whatever the array's extent;
        otherwise float64-accurate, which is enough along spatial axes (a frame is always
        filtered whole)."""
        out = np.asarray(values, np.float64)
        if radius <= 0:
            return out
        size = 2 * radius + 1
        for axis in axes:
            out = ndimage.uniform_filter1d(out, size, axis=axis, mode="constant") * size
        return np.rint(out) if np.issubdtype(np.asarray(values).dtype, np.integer) else out

    def order_statistic(self, values: np.ndarray, rank: int) -> np.ndarray:
        """The ``rank``-th smallest (from 0) along the last axis."""
        return np.partition(values, rank, axis=-1)[..., rank]

    def row_order_statistics(self, values: np.ndarray, ranks: np.ndarray) -> np.ndarray:
        """Of each row of ``values`` ``(n, m)``, its ``ranks[i]``-th smallest (from 0)."""
        return np.array([np.partition(row, k)[k] for row, k in zip(values, ranks, strict=True)],
                        values.dtype)

    def maximum_filter(self, values: np.ndarray, size: Sequence[int]) -> np.ndarray:
        """The largest value within ``size`` (odd, per axis) around each element, the window
        clipped to the array (``scipy.ndimage.maximum_filter``'s "nearest"; for values ≥ 0,
        such as masks, its "constant" with 0 too)."""
        return ndimage.maximum_filter(values, size=list(size), mode="nearest")

    def median(self, values: np.ndarray) -> np.ndarray:
        """``np.median(values, axis=0)`` of a float32 array, float32."""
        return np.median(np.asarray(values, np.float32), axis=0)

    def median_abs_difference(self, values: np.ndarray) -> np.ndarray:
        """Median over axis 0 of ``|values[t] − values[t − 1]|`` (float32)."""
        return np.median(np.abs(np.diff(np.asarray(values, np.float32), axis=0)), axis=0)


def _own_stream(method):
    """Run ``method`` on the calling thread's own CUDA stream (:meth:`TorchDenseOps._stream`)."""

    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        with self._stream():
            return method(self, *args, **kwargs)

    return wrapped


class TorchDenseOps(DenseOps):
    """The same operations on a torch device (``"cuda"``, ``"cuda:1"``, or ``"cpu"`` for
    tests); arrays go there and come back as numpy arrays.

    On a GPU each calling thread (``serve``'s post-processing workers) queues its work on a
    CUDA stream of its own, not on the default stream, so an operation waits for its own
    copies and kernels only -- not for a batch of the network or another stream's work."""

    name = "torch"

    def __init__(self, device: str) -> None:
        import torch

        self._torch = torch
        self.device = str(device)
        self._device = torch.device(self.device)
        self._local = threading.local()

    def _stream(self):
        if self._device.type != "cuda":
            return contextlib.nullcontext()
        stream = getattr(self._local, "stream", None)
        if stream is None:
            stream = self._local.stream = self._torch.cuda.Stream(device=self._device)
        return self._torch.cuda.stream(stream)

    def _to(self, values: np.ndarray, dtype=None):
        tensor = self._torch.from_numpy(np.ascontiguousarray(values))
        return tensor.to(self._device, dtype=dtype)

    @_own_stream
    def gaussian_filter(self, values: np.ndarray, sigma: Sequence[float],
                        truncate: float) -> np.ndarray:
        if np.size(values) == 0:  # nothing to move: the reference says what comes back
            return super().gaussian_filter(values, sigma, truncate)
        torch = self._torch
        out = self._to(np.asarray(values, np.float32))
        for axis, s in enumerate(sigma):
            if s <= 1e-15:  # scipy leaves such an axis alone
                continue
            weights = _kernel(s, truncate)
            radius = weights.size // 2
            line = out.movedim(axis, -1).to(torch.float64)
            padded = _edge_padded(line, radius)
            n = line.shape[-1]
            acc = padded[..., radius:radius + n] * float(weights[radius])
            for j in range(radius, 0, -1):  # scipy's correlate1d: pairs from the outside in
                acc = acc + (padded[..., radius - j:radius - j + n]
                             + padded[..., radius + j:radius + j + n]) * float(weights[radius - j])
            out = acc.to(torch.float32).movedim(-1, axis)
        return out.cpu().numpy()

    @_own_stream
    def box_sum(self, values: np.ndarray, radius: int, axes: tuple[int, ...]) -> np.ndarray:
        torch = self._torch
        values = np.asarray(values)
        if radius <= 0:
            return values.astype(np.float64)
        integer = np.issubdtype(values.dtype, np.integer)
        out = self._to(values, torch.int64 if integer else torch.float64)
        for axis in axes:
            line = out.movedim(axis, -1)
            zeros = torch.zeros((*line.shape[:-1], 1), dtype=line.dtype, device=line.device)
            cum = torch.cat([zeros, line.cumsum(-1)], dim=-1)  # cum[i] = sum of line[:i]
            n = line.shape[-1]
            hi = torch.clamp(torch.arange(n, device=line.device) + radius + 1, max=n)
            lo = torch.clamp(torch.arange(n, device=line.device) - radius, min=0)
            out = (cum[..., hi] - cum[..., lo]).movedim(-1, axis)
        return out.to(torch.float64).cpu().numpy()

    @_own_stream
    def order_statistic(self, values: np.ndarray, rank: int) -> np.ndarray:
        tensor = self._to(values)
        return tensor.kthvalue(int(rank) + 1, dim=-1).values.cpu().numpy()

    @_own_stream
    def row_order_statistics(self, values: np.ndarray, ranks: np.ndarray) -> np.ndarray:
        torch = self._torch
        ordered = self._to(values).sort(dim=1).values
        index = self._to(np.asarray(ranks, np.int64)).reshape(-1, 1)
        return torch.gather(ordered, 1, index)[:, 0].cpu().numpy()

    @_own_stream
    def maximum_filter(self, values: np.ndarray, size: Sequence[int]) -> np.ndarray:
        values = np.asarray(values)
        if values.size == 0:
            return super().maximum_filter(values, size)
        boolean = values.dtype == np.bool_
        out = self._to(values.view(np.uint8) if boolean else values)
        for axis, width in enumerate(size):
            half = int(width) // 2
            if half <= 0:
                continue
            # repeating the edge values leaves every clipped window's maximum as it is
            padded = _edge_padded(out.movedim(axis, -1), half)
            out = padded.unfold(-1, 2 * half + 1, 1).amax(-1).movedim(-1, axis)
        result = out.cpu().numpy()
        return result.view(np.bool_) if boolean else result

    @_own_stream
    def median(self, values: np.ndarray) -> np.ndarray:
        if np.size(values) == 0:
            return super().median(values)
        return self._median(self._to(np.asarray(values, np.float32)))

    @_own_stream
    def median_abs_difference(self, values: np.ndarray) -> np.ndarray:
        if np.shape(values)[0] < 2 or np.size(values) == 0:  # no difference: numpy's NaN
            return super().median_abs_difference(values)
        tensor = self._to(np.asarray(values, np.float32))
        return self._median((tensor[1:] - tensor[:-1]).abs())

    def _median(self, tensor) -> np.ndarray:
        """numpy's median over axis 0: the middle value, or the float32 mean of the two."""
        n = tensor.shape[0]
        ordered = tensor.sort(dim=0).values
        if n % 2:
            return ordered[n // 2].cpu().numpy()
        return ((ordered[n // 2 - 1] + ordered[n // 2]) / 2).cpu().numpy()


def dense_ops_for(device: str | None) -> DenseOps:
    """The operations for a stream whose network runs on ``device``: torch there when it is
    a CUDA GPU torch can use, else the numpy reference (a TensorRT backend may run beside a
    torch built without CUDA: the reason is logged)."""
    if device is None or not str(device).startswith("cuda"):
        return CPU_OPS
    import torch

    if not torch.cuda.is_available():
        log.warning("per-pixel reductions on the CPU: the network runs on %s but this torch "
                    "(%s) cannot use CUDA", device, torch.__version__)
        return CPU_OPS
    return TorchDenseOps(str(device))


#: the reference, shared (it holds no state)
CPU_OPS = DenseOps()
