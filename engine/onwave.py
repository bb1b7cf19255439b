"""Sparks riding on a wave: local maxima that stand out of the wave's own broad profile.

A wave instance is one connected region; a spark that fires inside it (or that the wave's
region grew into) would otherwise be swallowed by the wave. Inside each wave instance:

1. the ΔF/F0 is smoothed a little (``sigma_um``, ``sigma_ms``) and its broad part, a
   morphological opening with a box of ``background_um`` × ``background_ms`` of a smoother copy
   (``background_sigma_*``: a minimum filter of noise is biased low), is subtracted (a *white
   top-hat*: structures smaller than the box stay, the wave's body and its fronts, wider and
   longer than the box, go; an opening keeps edges where a smoothing would blur them);
2. the residual is scaled to robust noise SDs (median and MAD over the wave's pixels: sparks
   are a small part of them);
3. local maxima of that z at least ``min_z`` high (and a spark's peak distance apart) seed
   sparks when their residual is also at least ``min_ratio`` times the wave's own level there
   (the largest opened ΔF/F0 within the box around the seed): a decaying wave's crest and its
   rising front are shaved by the opening too (by a fraction of the wave), a spark that an
   annotator would see on a wave stands above the wave; and not in the wave's first
   ``background_ms`` (a wave starts as small as a spark); each seed grows by a watershed of the residual over the wave's pixels down to
   ``grow_fraction`` of its own peak.

The sparks found are cut out of the wave; the tracker's spark size filter and the significance
test then apply to them as to any spark. ``min_z`` comes from the model directory (the
thresholds key ``wave_spark_z``; 0 or absent: off) and is chosen on validation recordings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.segmentation import watershed

_MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class OnWaveParams:
    """Parameters of :func:`sparks_on_wave` (physical units)."""

    min_z: float = 0.0  # seed criterion in robust noise SDs of the residual; 0: off
    background_um: float = 5.0  # opening box: wider than a spark
    background_ms: float = 80.0  # and longer
    sigma_um: float = 0.3  # smoothing before the top-hat
    sigma_ms: float = 3.0
    background_sigma_um: float = 1.0  # the opening runs on a smoother copy (a minimum filter
    background_sigma_ms: float = 10.0  # of noise is biased low by several noise SDs)
    min_ratio: float = 1.0  # seed residual / the wave's opened ΔF/F0 at the seed
    grow_fraction: float = 0.5  # a spark keeps the pixels above this fraction of its peak
    min_dist_um: float = 1.8  # seeds closer than this in space and time keep the larger one
    min_dist_ms: float = 20.0


def _odd(n: float) -> int:
    return max(1, 2 * int(round((n - 1) / 2)) + 1)


def sparks_on_wave(dff0: np.ndarray, mask: np.ndarray, pixel_um: float, dt_ms: float,
                   linescan: bool, params: OnWaveParams) -> np.ndarray:
    """Labels (1..k, 0 elsewhere) of the sparks inside a wave's ``mask``.

    Parameters
    ----------
    dff0 : ndarray (t, y, x)
        ΔF/F0 on the wave's bounding box (``y`` of size 1 for a line-scan).
    mask : ndarray of bool (t, y, x)
        The wave's pixels.
    pixel_um, dt_ms : float
        Calibration.
    linescan : bool
        No filtering along the singleton ``y``.
    params : OnWaveParams
        ``min_z`` ≤ 0 returns no sparks.
    """
    labels = np.zeros(mask.shape, np.int32)
    if params.min_z <= 0 or mask.sum() < 16:
        return labels
    sigma = (params.sigma_ms / dt_ms, 0.0 if linescan else params.sigma_um / pixel_um,
             params.sigma_um / pixel_um)
    dff0 = np.asarray(dff0, np.float32)
    smoothed = ndimage.gaussian_filter(dff0, sigma=sigma, mode="nearest")
    smoother = ndimage.gaussian_filter(
        dff0, mode="nearest",
        sigma=(params.background_sigma_ms / dt_ms,
               0.0 if linescan else params.background_sigma_um / pixel_um,
               params.background_sigma_um / pixel_um))
    space = _odd(params.background_um / pixel_um)
    size = (_odd(params.background_ms / dt_ms), 1 if linescan else space, space)
    opened = ndimage.grey_opening(smoother, size=size, mode="nearest")
    residual = smoothed - opened
    inside = residual[mask]
    centre = float(np.median(inside))
    spread = _MAD_TO_SD * float(np.median(np.abs(inside - centre)))
    if not spread > 0:
        return labels
    z = np.where(mask, (residual - centre) / spread, np.float32(0.0))
    dist_px = max(1, int(math.ceil(params.min_dist_um / pixel_um / 2)))
    dist_frames = max(1, int(math.ceil(params.min_dist_ms / dt_ms / 2)))
    footprint = np.ones((2 * dist_frames + 1, 1 if linescan else 2 * dist_px + 1,
                         2 * dist_px + 1), bool)
    peaks = peak_local_max(z, footprint=footprint, threshold_abs=params.min_z,
                           labels=mask.astype(np.int32), exclude_border=False)
    if len(peaks):
        at = tuple(peaks.T)
        start = int(np.argmax(mask.any(axis=(1, 2))))  # the wave's initiation looks like a
        peaks = peaks[peaks[:, 0] - start >= params.background_ms / dt_ms]  # spark: not there
        at = tuple(peaks.T)
        level = ndimage.maximum_filter(opened, size=size, mode="nearest")[at]
        peaks = peaks[residual[at] >= params.min_ratio * np.maximum(level, 0.0)]
    if len(peaks) == 0:
        return labels
    peaks = peaks[np.lexsort(peaks.T[::-1])]  # deterministic ids: by (t, y, x)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    low = params.grow_fraction * float(residual[tuple(peaks.T)].min())
    basins = watershed(-residual, markers=markers, mask=mask & (residual >= low))
    peak_values = np.concatenate([[np.inf], residual[tuple(peaks.T)]])
    keep = basins > 0
    keep[keep] = residual[keep] >= params.grow_fraction * peak_values[basins[keep]]
    labels[keep] = basins[keep]
    # each spark is the connected part of its basin that holds its seed
    out = np.zeros_like(labels)
    for index, seed in enumerate(peaks, start=1):
        parts, _ = ndimage.label(labels == index, structure=np.ones((3, 3, 3), bool))
        own = parts[tuple(seed)]
        if own:
            out[parts == own] = index
    return out
