"""Background and noise model of the classical detector: per-frame flicker, per-pixel level and
per-pixel noise SD, causal and exact under any cutting of the stream into chunks.

It works on ``ratio = F/F0 = 1 + ΔF/F0``:

* **flicker** (:func:`remove_flicker`): a frame's level is the ``quantile`` of its cell pixels'
  ratio to their own causal mean (a low quantile is not raised by a wave filling part of the
  frame); each frame is multiplied by (mean level of frames ``t ± radius``) / (its level), so
  line-to-line laser flicker goes while slow changes common to the frame (a wave's tail,
  bleaching, drift) stay for the per-pixel level;
* **level** (:class:`BackgroundState`): mean of the flicker-corrected ratio ``q`` over the last
  ``window`` frames at each pixel, so per-column fixed-pattern gain, bright and dim bands, the
  nucleus and slow drift are divided out; a second pass leaves out candidate-event pixels
  (SparkMaster's two-pass background); pixels whose level is below ``min_ratio`` (F0 floored by
  the preprocessor: extracellular space) are outside the cell;
* **noise SD**: from first differences in time, which a smooth Ca²⁺ transient hardly touches:
  SD = √π/2 × mean |q(t) − q(t−1)| over the same causal window, pooled over ``pool_px``
  pixels on each side (cell pixels only).

Window sums are integer sums of values rounded to 2⁻²⁰ (:class:`~engine.classical_stream.
CausalSums`), hence exact: a frame's output never depends on how the stream was cut.
"""

from __future__ import annotations

import math

import numpy as np

from .classical_stream import CausalSums
from .dense_ops import CPU_OPS, DenseOps

FIXED_POINT = float(2**20)
#: SD of a Gaussian from the mean absolute difference of two independent samples
_ABS_DIFF_TO_SD = math.sqrt(math.pi) / 2.0
#: values are clipped to this range before the fixed-point sums (|fixed| < 2³¹: no overflow)
_RATIO_RANGE = (-256.0, 256.0)


def to_fixed(values: np.ndarray) -> np.ndarray:
    """Values as int64 multiples of 2⁻²⁰ (rounded toward zero; NaN → 0): exact sums in any
    order."""
    clipped = np.clip(np.nan_to_num(np.asarray(values, np.float32)), *_RATIO_RANGE)
    return (clipped * np.float32(FIXED_POINT)).astype(np.int64)


def box_sum(values: np.ndarray, radius: int, axes: tuple[int, ...]) -> np.ndarray:
    """Sum over ``±radius`` along each of ``axes`` (truncated at the edges), as float64, on
    the CPU (:meth:`engine.dense_ops.DenseOps.box_sum`: exact for integers)."""
    return CPU_OPS.box_sum(values, radius, axes)


def frame_levels(values: np.ndarray, inside: np.ndarray, quantile: float,
                 ops: DenseOps = CPU_OPS) -> np.ndarray:
    """The ``quantile`` of each frame's ``values`` where ``inside``; 1 where none is."""
    flat, inside = values.reshape(values.shape[0], -1), inside.reshape(values.shape[0], -1)
    masked = np.where(inside, flat, np.inf)
    n_cell = np.count_nonzero(inside, axis=1)
    rank = np.floor(quantile * np.maximum(n_cell - 1, 0)).astype(np.int64)
    # the rank-th smallest value of each frame: a partial sort finds the same element
    level = ops.row_order_statistics(masked, rank)
    return np.where(n_cell > 0, level, 1.0).astype(np.float32)


def remove_flicker(ratio: np.ndarray, raw_level: np.ndarray, min_ratio: float, quantile: float,
                   radius: int, ops: DenseOps = CPU_OPS) -> np.ndarray:
    """``ratio`` ``(T, ...)`` × (mean level of frames ``t ± radius``) / (level of frame ``t``),
    a frame's level being the ``quantile`` of ``ratio / raw_level`` over its cell pixels
    (``raw_level`` > ``min_ratio``): dividing by each pixel's own level first takes the
    fixed pattern out of the spread, so the quantile is precise."""
    inside = raw_level > min_ratio
    with np.errstate(divide="ignore", invalid="ignore"):
        level = frame_levels(ratio / raw_level, inside, quantile, ops)
    ones = np.ones(level.shape, np.int64)
    slow = box_sum(to_fixed(level), radius, (0,)) / (box_sum(ones, radius, (0,)) * FIXED_POINT)
    # a frame without a positive level (dark: shutter, blanking) is left as it is
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(level > 0, slow / level, 1.0).astype(np.float32)
    return ratio * factor.reshape((-1,) + (1,) * (ratio.ndim - 1))


class BackgroundState:
    """Causal per-pixel level and noise SD of ``q`` for one stream.

    Parameters
    ----------
    window : int
        Frames of the causal window.
    pool_px : int
        Pixels pooled on each side (along every spatial axis) for the noise SD.
    min_ratio : float
        Pixels whose level is below this are outside the cell.
    ops : DenseOps
        Where the pooled window sums are formed (:mod:`engine.dense_ops`).
    """

    def __init__(self, window: int, pool_px: int, min_ratio: float,
                 ops: DenseOps = CPU_OPS) -> None:
        self.ops = ops
        self.window = max(2, int(window))
        self.pool_px = max(0, int(pool_px))
        self.min_ratio = float(min_ratio)
        #: differences a pixel needs in its window before its noise SD (and z) is trusted
        self.min_frames = max(2, self.window // 4)
        self._q, self._abs_diff, self._valid = (CausalSums(self.window) for _ in range(3))
        self._kept_q, self._kept = CausalSums(self.window), CausalSums(self.window)
        self._raw = CausalSums(self.window)
        self._previous: np.ndarray | None = None  # the last q frame seen

    def raw_level(self, ratio: np.ndarray) -> np.ndarray:
        """Causal mean of the uncorrected ratio of the next frames (for :func:`remove_flicker`)."""
        count = self._broadcast(self._raw.counts(ratio.shape[0]), ratio.ndim)
        return (self._raw.push(to_fixed(ratio)) / (count * FIXED_POINT)).astype(np.float32)

    def first_pass(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Level (all frames), noise SD of ``q / level`` (NaN until a quarter of the window
        holds differences, as at the start of the stream) and cell mask of the next frames
        ``q`` ``(n, ...)``."""
        count = self._broadcast(self._q.counts(q.shape[0]), q.ndim)
        level = (self._q.push(to_fixed(q)) / (count * FIXED_POINT)).astype(np.float32)
        in_cell = level > self.min_ratio
        return level, self._noise_sd(q, level, in_cell), in_cell

    def second_pass(self, q: np.ndarray, level: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """Level leaving out pixels where ``keep`` is False (``level`` where fewer than a
        tenth of the window's frames are kept)."""
        count = self._broadcast(self._kept.counts(q.shape[0]), q.ndim)
        kept_total = self._kept_q.push(to_fixed(np.where(keep, q, 0.0)))
        kept_count = self._kept.push(keep.astype(np.int64))
        kept_level = kept_total / (np.maximum(kept_count, 1) * FIXED_POINT)
        return np.where(kept_count * 10 >= count, kept_level, level).astype(np.float32)

    def _noise_sd(self, q: np.ndarray, level: np.ndarray, in_cell: np.ndarray) -> np.ndarray:
        """Noise SD of ``q / level`` (so that pooling mixes like with like)."""
        previous = q[:1] if self._previous is None else self._previous[None]
        with np.errstate(divide="ignore", invalid="ignore"):
            diff = np.abs(q - np.concatenate([previous, q[:-1]])) / level
        valid = in_cell.copy()
        if self._previous is None:
            valid[:1] = False  # the stream's first frame has no difference
        self._previous = q[-1].copy() if q.shape[0] else self._previous
        total = self._abs_diff.push(to_fixed(np.where(valid, diff, 0.0)))
        own_count = self._valid.push(valid.astype(np.int64))
        spatial = tuple(range(1, q.ndim))
        total = self.ops.box_sum(total, self.pool_px, spatial)
        count = self.ops.box_sum(own_count, self.pool_px, spatial)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_abs = total / (count * FIXED_POINT)
        enough = own_count >= self.min_frames
        return np.where(enough, _ABS_DIFF_TO_SD * mean_abs, np.nan).astype(np.float32)

    @staticmethod
    def _broadcast(counts: np.ndarray, ndim: int) -> np.ndarray:
        return counts.reshape((-1,) + (1,) * (ndim - 1))
