"""Streaming preprocessing: raw counts → ΔF/F0 (float32), then the model's input normalization.

Everything here depends only on frame indices, never on how frames were chunked, so the
streaming path (``serve``) and the batch path (``analyze``) give bit-identical results.

Method
------
1. **Blank** (camera/PMT offset, counts): given, or estimated once from the first
   ``warmup_frames`` frames (:mod:`engine.blank`): the level of the darkest, extracellular
   pixels where the field has them, else the offset the noise's photon transfer points to.
2. **Baseline F0** per pixel, causal and robust: frames are grouped in blocks of ``block_frames``
   (≈ ``baseline_block_ms``); each completed block contributes its per-pixel mean
   (blank-subtracted). F0 for the frames of block ``b`` is the ``baseline_quantile`` (default
   0.25) (order statistic) of the block means of blocks ``[b - history_blocks, b)`` (≈ ``baseline_window_ms``),
   Gaussian-smoothed in space (``spatial_sigma_px``) and floored at ``floor_fraction`` × the
   95th percentile of F0 (so extracellular pixels do not divide by ~0). Events occupy a pixel
   for a small fraction of the history, so a low quantile of block means ignores them, while
   slow bleaching is tracked. The first ``warmup_blocks`` blocks use the F0 of those blocks
   (the warm-up: their frames are emitted once the warm-up is complete).
3. ΔF/F0 = (F − blank) / F0 − 1, float32.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy import ndimage

from .blank import GIVEN, BlankEstimate, estimate_blank
from .dense_ops import CPU_OPS, DenseOps

log = logging.getLogger(__name__)


class Preprocessor:
    """Raw frames → ΔF/F0, streaming; see the module docstring for the method.

    Parameters
    ----------
    frame_shape : shape of one line ``(X,)`` or frame ``(Y, X)``.
    dt_ms : frame/line interval.
    blank : offset in counts; ``None`` → estimated from the warm-up frames.
    baseline_window_ms : history the rolling baseline looks at.
    baseline_block_ms : block length over which frames are averaged before the quantile.
    warmup_ms : frames buffered at the start to estimate blank and the first F0.
    dense_ops : where F0's order statistic is taken (:mod:`engine.dense_ops`; the same
        element either way).
    """

    def __init__(self, frame_shape: tuple[int, ...], dt_ms: float, blank: float | None = None,
                 baseline_window_ms: float = 2000.0, baseline_block_ms: float = 50.0,
                 warmup_ms: float = 400.0, baseline_quantile: float = 0.25,
                 spatial_sigma_px: float = 2.0, floor_fraction: float = 0.2,
                 dark_percentile: float = 2.0, first_index: int = 0,
                 dense_ops: DenseOps = CPU_OPS) -> None:
        self.dense_ops = dense_ops
        if dt_ms <= 0:
            raise ValueError(f"dt_ms must be > 0, got {dt_ms}")
        self.frame_shape = tuple(int(s) for s in frame_shape)
        self.dt_ms = float(dt_ms)
        self.blank = None if blank is None else float(blank)
        #: how the blank was found (None until it is estimated, and when it was given)
        self.blank_estimate: BlankEstimate | None = None
        self._blank_given = blank is not None
        self.block_frames = max(1, round(baseline_block_ms / dt_ms))
        self.history_blocks = max(1, round(baseline_window_ms / (self.block_frames * dt_ms)))
        self.warmup_blocks = min(self.history_blocks,
                                 max(1, round(warmup_ms / (self.block_frames * dt_ms))))
        self.quantile = float(baseline_quantile)
        self.spatial_sigma_px = float(spatial_sigma_px)
        self.floor_fraction = float(floor_fraction)
        self.dark_percentile = float(dark_percentile)
        self._next_in = first_index  # index of the next frame to be processed
        self._next_out = first_index  # index of the next emitted frame
        self._origin = first_index
        self._pending: list[np.ndarray] = []  # raw frames not yet emitted (warm-up only)
        self._block: list[np.ndarray] = []  # raw frames of the current block
        n_pixels = int(np.prod(self.frame_shape))
        # block means, pixel-major (a column per block, ring over the history): the quantile
        # then partitions contiguous rows
        self._history = np.empty((n_pixels, self.history_blocks), np.float32)
        self._n_blocks = 0
        self._f0: np.ndarray | None = None
        self._f0_block = -1  # block index the current _f0 is for

    @property
    def warmup_frames(self) -> int:
        """Frames buffered before the first output."""
        return self.warmup_blocks * self.block_frames

    @property
    def baseline(self) -> np.ndarray | None:
        """The current F0 image (blank-subtracted counts), once warmed up."""
        return self._f0

    def push(self, frames: np.ndarray) -> tuple[int, np.ndarray]:
        """Add frames (``(n, *frame_shape)``); return ``(first_index, dff0)`` of emitted frames.

        During warm-up fewer (possibly zero) frames come back; every frame is emitted exactly
        once, in order, across ``push`` and :meth:`flush`.
        """
        frames = self._check(frames)
        first_out = self._next_out
        if self._f0 is not None:
            return first_out, self._process(frames)
        need = self.warmup_frames - len(self._pending)
        self._pending.extend(frames[:need])
        if len(self._pending) < self.warmup_frames:
            return first_out, self._empty()
        warm = np.stack(self._pending)
        self._pending = []
        self._blank_from(warm)
        out = self._process(warm)
        if frames.shape[0] > need:
            out = np.concatenate([out, self._process(frames[need:])])
        return first_out, out

    def flush(self) -> tuple[int, np.ndarray]:
        """End of stream: emit frames still held by the warm-up (short streams)."""
        first_out = self._next_out
        if self._f0 is not None or not self._pending:
            return first_out, self._empty()
        frames = np.stack(self._pending)
        self._pending = []
        self._blank_from(frames)  # F0 from every block of the short stream
        self._next_out += frames.shape[0]
        return first_out, self._dff0(frames, self._f0)

    def _process(self, frames: np.ndarray) -> np.ndarray:
        out = np.empty(frames.shape, np.float32)
        i = 0
        while i < frames.shape[0]:
            index = self._next_in
            block = (index - self._origin) // self.block_frames
            n = min(frames.shape[0] - i, self.block_frames - len(self._block))
            f0 = self._f0_for(block)
            out[i:i + n] = self._dff0(frames[i:i + n], f0)
            self._block.extend(frames[i:i + n])
            if len(self._block) == self.block_frames:
                self._add_block_mean(np.mean(np.stack(self._block), axis=0) - self.blank)
                self._block = []
            self._next_in += n
            i += n
        self._next_out += frames.shape[0]
        return out

    @property
    def blank_report(self) -> dict | None:
        """The quality report's ``blank`` entry (:meth:`engine.blank.BlankEstimate.report`),
        None before the warm-up has estimated it."""
        if self._blank_given:
            return {"counts": self.blank, "source": GIVEN, "f0_relative_sd": None}
        return None if self.blank_estimate is None else self.blank_estimate.report()

    def _f0_for(self, block: int) -> np.ndarray:
        """F0 for frames of ``block``: from the blocks before it (or the warm-up blocks)."""
        if block < self.warmup_blocks:
            if self._f0 is None:
                raise AssertionError("warm-up F0 missing")
            return self._f0
        if block != self._f0_block:
            n_valid = min(self._n_blocks, self.history_blocks)
            self._f0 = self._baseline_from(self._history[:, :n_valid])
            self._f0_block = block
        return self._f0

    def _add_block_mean(self, mean: np.ndarray) -> None:
        self._history[:, self._n_blocks % self.history_blocks] = mean.ravel()
        self._n_blocks += 1

    def _blank_from(self, frames: np.ndarray) -> None:
        n_warm = min(frames.shape[0], self.warmup_frames)  # never more: chunking-independent
        if self.blank is None:
            self.blank_estimate = estimate_blank(frames[:n_warm], self.dark_percentile)
            self.blank = self.blank_estimate.counts
            log.info("estimated blank %.2f counts (%s) from %d frames", self.blank,
                     self.blank_estimate.source, n_warm)
        means = [(np.mean(frames[i:i + self.block_frames], axis=0) - self.blank).ravel()
                 for i in range(0, n_warm, self.block_frames)]
        self._f0 = self._baseline_from(np.stack(means, axis=1))
        self._f0_block = -1

    def _baseline_from(self, block_means: np.ndarray) -> np.ndarray:
        """F0 image from ``(n_pixels, n_blocks)`` block means: order statistic, smooth, floor."""
        rank = int(round(self.quantile * (block_means.shape[1] - 1)))
        f0 = self.dense_ops.order_statistic(block_means, rank).reshape(self.frame_shape)
        if self.spatial_sigma_px > 0:
            f0 = ndimage.gaussian_filter(f0, self.spatial_sigma_px, mode="nearest")
        floor = max(self.floor_fraction * float(np.percentile(f0, 95)), 1e-3)
        return np.maximum(f0, floor).astype(np.float32)

    def _dff0(self, frames: np.ndarray, f0: np.ndarray) -> np.ndarray:
        return ((frames - np.float32(self.blank)) / f0 - np.float32(1.0)).astype(np.float32)

    def _check(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        if tuple(frames.shape[1:]) != self.frame_shape:
            raise ValueError(f"frame shape {tuple(frames.shape[1:])} != {self.frame_shape}")
        return frames.astype(np.float32)  # a copy: callers may reuse their buffers

    def _empty(self) -> np.ndarray:
        return np.empty((0, *self.frame_shape), np.float32)


def check_finite(first: int, frames: np.ndarray) -> None:
    """A one-line ValueError for NaN or infinite values in float frames ``first ..``: they
    would make the blank, F0 and every ΔF/F0 NaN, and the recording would silently yield no
    events."""
    if frames.dtype.kind not in "fc" or np.isfinite(frames).all():
        return
    bad = ~np.isfinite(frames)
    where = int(np.argmax(bad.reshape(bad.shape[0], -1).any(axis=1)))
    raise ValueError(f"frames {first}..{first + frames.shape[0] - 1} hold {int(bad.sum())} NaN "
                     f"or infinite values (the first in frame {first + where}): castream needs "
                     "finite counts; replace or crop them before analysis")


def preprocess_recording(data: np.ndarray, dt_ms: float, **kwargs: Any) -> np.ndarray:
    """Batch ΔF/F0 of a whole recording ``(T, ...)``: identical to streaming it in any chunks."""
    pre = Preprocessor(data.shape[1:], dt_ms, **kwargs)
    parts = [pre.push(data)[1], pre.flush()[1]]
    return np.concatenate(parts, axis=0)


def network_input(dff0: np.ndarray, normalization: dict[str, Any]) -> np.ndarray:
    """Apply a model's ``normalization`` (from its config.json) to ΔF/F0 frames.

    ``{"input": "dff0", "offset": 0.0, "scale": 1.0, "clip": [lo, hi]}``:
    ``x = clip((dff0 - offset) / scale, lo, hi)``; ``offset``/``scale``/``clip`` optional.
    """
    kind = normalization.get("input", "dff0")
    if kind != "dff0":
        raise ValueError(f"unsupported normalization input {kind!r} (only 'dff0')")
    x = np.asarray(dff0, np.float32)
    offset = float(normalization.get("offset", 0.0))
    scale = float(normalization.get("scale", 1.0))
    if offset != 0.0 or scale != 1.0:
        x = (x - np.float32(offset)) / np.float32(scale)
    clip = normalization.get("clip")
    if clip is not None:
        x = np.clip(x, np.float32(clip[0]), np.float32(clip[1]))
    return x.astype(np.float32, copy=False)
