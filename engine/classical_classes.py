"""Event classes for the classical detector from size and duration rules, frame-local so that
they stay streaming (bounded context, no dependence on how the stream is cut).

The unit is a *stretch*: a connected component of foreground within one frame (a run of a
line-scan line, a blob of a movie frame), after bridging gaps of ≤ 2 × ``bridge_px``. Every
pixel of a stretch gets the stretch's class, so an event is not cut into pieces of different
classes:

* **wave**: the stretch lies within ``spread`` (frames, px) of a stretch at least ``wave_min_px``
  wide (a spark or a puff is a few µm wide; a wave front spans the cell) that *lasts*: with
  ``wave_min_frames`` > 0, a wide stretch counts only where wide stretches cover its pixel in
  at least that many of the ``±wave_min_frames`` frames around it (a wave stays wide for
  hundreds of ms behind its front; two sparks bridged for a few lines do not);
* **puff**: at least half of the stretch's pixels stay at or above half of their local maximum
  (over ``±window`` frames) for ``min_frames`` of the ``±window`` frames around them — a full
  duration at half maximum well above a spark's ~25–45 ms — and the stretch is at least
  ``puff_min_px`` wide;
* everything else is a spark.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from .boxes import padded_box
from .classical_noise import box_sum
from .dense_ops import CPU_OPS, DenseOps

if TYPE_CHECKING:
    from .classical import ClassicalParams


class Stretches:
    """Connected foreground components within each frame of ``foreground`` ``(T, *spatial)``."""

    def __init__(self, foreground: np.ndarray, bridge_px: int,
                 ops: DenseOps = CPU_OPS) -> None:
        closed = foreground
        if bridge_px > 0:  # a mask: the window clipped to the array, as scipy's "constant"
            size = (1,) + (2 * bridge_px + 1,) * (foreground.ndim - 1)
            closed = ops.maximum_filter(foreground, size)
        structure = np.zeros((3,) * foreground.ndim, bool)
        structure[1] = True  # connected within a frame only
        self.labels, self.n = ndimage.label(closed, structure=structure)
        self.labels = np.where(foreground, self.labels, 0)
        extent = np.zeros(self.n + 1, np.int64)
        for label, slices in enumerate(ndimage.find_objects(self.labels), start=1):
            if slices is not None:
                extent[label] = max(s.stop - s.start for s in slices[1:])
        #: largest spatial extent (px) of each stretch, indexed by label (0: background)
        self.extent_px = extent
        # the stretches' pixels (flat indices) and their labels: the per-stretch rules are
        # counted and spread over these only, not over the background of the whole box
        self._where = np.flatnonzero(self.labels)
        self._ids = self.labels.reshape(-1)[self._where]

    def any(self, pixels: np.ndarray) -> np.ndarray:
        """Per pixel: whether any pixel of its stretch is in ``pixels``."""
        hit = np.zeros(self.n + 1, bool)
        hit[self._ids[self._at(pixels)]] = True
        return self._per_pixel(hit)

    def majority(self, pixels: np.ndarray) -> np.ndarray:
        """Per pixel: whether at least half of its stretch's pixels are in ``pixels``."""
        total = np.bincount(self._ids, minlength=self.n + 1)
        inside = np.bincount(self._ids[self._at(pixels)], minlength=self.n + 1)
        return self._per_pixel(2 * inside >= total)

    def wider_than(self, min_px: float) -> np.ndarray:
        """Per pixel: whether its stretch spans at least ``min_px``."""
        return self._per_pixel(self.extent_px >= min_px)

    def _at(self, pixels: np.ndarray) -> np.ndarray:
        """``pixels`` (bool, the labels' shape) at the stretches' pixels."""
        return np.asarray(pixels, bool).reshape(-1)[self._where]

    def _per_pixel(self, by_label: np.ndarray) -> np.ndarray:
        """``by_label`` (bool, indexed by label) at each pixel's stretch; False off them."""
        out = np.zeros(self.labels.shape, bool)
        out.reshape(-1)[self._where] = by_label[self._ids]
        return out


def wave_mask(stretches: Stretches, min_px: float, spread: tuple[int, int],
              min_frames: int = 0) -> np.ndarray:
    """Stretches within ``spread`` (frames, px) of a stretch at least ``min_px`` wide (whose
    pixel is wide in at least ``min_frames`` of the ``±min_frames`` frames around it)."""
    wide = stretches.wider_than(min_px)
    if not wide.any():
        return wide
    if min_frames > 0:
        lasting = box_sum(wide.astype(np.int64), min_frames, axes=(0,)) >= min_frames
        wide &= lasting
        if not wide.any():
            return wide
    frames, px = spread
    size = (2 * frames + 1,) + (2 * px + 1,) * (wide.ndim - 1)
    near = ndimage.maximum_filter(wide, size=size, mode="nearest")
    return stretches.any(near)


def puff_mask(stretches: Stretches, signal: np.ndarray, window: int, min_frames: int,
              min_px: float) -> np.ndarray:
    """Stretches at least ``min_px`` wide whose pixels mostly stay ≥ half their local maximum
    (over ``±window`` frames) for ``min_frames`` of those frames."""
    foreground = stretches.labels > 0
    # along time only: computed on the pixels that are foreground in some frame (the same
    # values; a few per cent of a movie's pixels)
    columns = foreground.reshape(foreground.shape[0], -1).any(axis=0)
    flat_signal = signal.reshape(signal.shape[0], -1)[:, columns]
    flat_fore = foreground.reshape(foreground.shape[0], -1)[:, columns]
    peak = ndimage.maximum_filter1d(flat_signal, 2 * window + 1, axis=0, mode="nearest")
    above_half = (flat_signal >= 0.5 * peak) & flat_fore
    long_flat = (box_sum(above_half.astype(np.int64), window, axes=(0,)) >= min_frames) & flat_fore
    long = np.zeros(foreground.shape, bool)
    long.reshape(long.shape[0], -1)[:, columns] = long_flat
    return stretches.wider_than(min_px) & stretches.majority(long)


class ClassRules:
    """The wave and puff rules of :class:`~engine.classical.ClassicalParams` in frames and
    pixels of one calibration."""

    def __init__(self, params: ClassicalParams, pixel_um: float, dt_ms: float,
                 dense_ops: DenseOps = CPU_OPS) -> None:
        self.dense_ops = dense_ops  # where the stretches' bridging runs (engine/dense_ops.py)
        self.bridge_px = int(round(params.bridge_um / pixel_um))
        self.wave_min_px = params.wave_min_um / pixel_um
        self.wave_spread = (int(math.ceil(params.wave_spread_ms / dt_ms)),
                            int(math.ceil(params.wave_spread_um / pixel_um)))
        self.wave_min_frames = int(math.ceil(params.wave_min_ms / dt_ms))
        #: frames the wave rule reads on each side: its spread, and how long a wide stretch
        #: must last
        wave_frames = self.wave_spread[0] + self.wave_min_frames
        self.puff_min_frames = int(math.ceil(params.puff_min_ms / dt_ms))
        self.puff_min_px = params.puff_min_um / pixel_um
        self.puff_window = int(math.ceil(params.puff_window_ms / dt_ms))
        #: frames of context the rules need on each side (the puff rule's local maximum and
        #: its duration count both look ``puff_window`` frames away)
        self.context = max(wave_frames, 2 * self.puff_window)
        #: (frames, px) around the foreground that the rules read: beyond it all is background
        self._reach = (max(wave_frames, self.puff_window) + 1,
                       max(self.wave_spread[1], self.bridge_px) + 1)

    def classify(self, z: np.ndarray, foreground: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Wave and puff masks (disjoint) of a chunk; ``z`` is 0 outside ``foreground``.
        Computed on the foreground's padded bounding box only (the same masks)."""
        wave = np.zeros(foreground.shape, bool)
        puff = np.zeros(foreground.shape, bool)
        box = padded_box(foreground, self._reach[:1] + self._reach[1:] * (foreground.ndim - 1))
        if box is not None:
            wave[box], puff[box] = self._classify(z[box], foreground[box])
        return wave, puff

    def _classify(self, z: np.ndarray, foreground: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        stretches = Stretches(foreground, self.bridge_px, self.dense_ops)
        wave = wave_mask(stretches, self.wave_min_px, self.wave_spread, self.wave_min_frames)
        puff = puff_mask(stretches, z, self.puff_window, self.puff_min_frames, self.puff_min_px)
        return wave, puff & ~wave
