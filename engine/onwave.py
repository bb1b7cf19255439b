"""Sparks that fire on a wave: transient blobs cut out of a wave's region.

A wave is one connected region, so a spark that fires where a wave is passing or decaying is
swallowed by it (in development validation movies, 16 of 70 sparks). A first attempt, a white
top-hat of the wave (commit 18d9ee6, removed in e2e8a23), let the wave's own static texture pass
for sparks. This test asks for what a spark on a wave has and a wave has not, a *local upstroke*:

1. **rise**: ``r(t) = s(t) − mean(s(t − k … t − 1))`` with ``s`` the ΔF/F0 smoothed a little
   (``SIGMA_UM``, ``SIGMA_MS``) and ``k`` frames covering ``RISE_MS``: static texture and
   the level of the wave cancel, a decaying wave gives ``r ≤ 0``, a spark's upstroke (≤ ~15 ms)
   gives about its amplitude; a wave's front gives ``r > 0`` too, but along a line across the
   cell;
2. **ring**: ``b = r − max(r on a ring of RING_UM around the pixel)``: a front, or anything
   larger than the ring, has ring points as high as its centre (``b ≤ 0``); a spark-sized blob
   has not;
3. ``z``: ``b / √(1 + level)`` (the noise of ΔF/F0 grows with the wave's level: shot noise;
   ``level`` the mean before ``t``), then standardized by its median and robust SD (1.4826 ×
   MAD) over the wave's pixels (mostly noise: sparks are few); seeds are local maxima of
   ``z ≥ min_z`` (the model directory's ``wave_spark_z``, chosen on validation recordings) at
   least ``START_MS`` after the wave's first frame (a wave starts as a local release, which is
   the wave's) and at least one smoothing width from the frame's edge (fewer pixels averaged
   there: noisier);
4. **lone and brief**: a seed whose ring reaches ``GROW_FRACTION`` of its excess within
   ``LOCAL_MS`` spreads (a wave starting, a front arriving, or a pair's partner: such sparks
   are lost), and a seed whose excess over the level before it is still above
   ``GROW_FRACTION`` of its peak ``DECAY_MS`` later is the rise of a wave (its start, or a
   front), not a spark's brief release;
5. each seed's spark: the pixels of the wave within ``RADIUS_UM`` of the seed, from ``k``
   frames before it to ``MAX_MS`` after it, whose excess over the level before the seed is at
   least ``GROW_FRACTION`` of the seed's, connected to the seed.

The sparks are cut out of the wave by the tracker (:mod:`engine.postprocess`); its spark size
filter and the significance test then judge them like any spark. The constants follow the
geometry of a spark (FWHM ~2 µm, rise ≤ 15 ms, FDHM 20–50 ms: Cheng & Lederer 2008); they were
set while looking at one development *validation* movie (seed 10,000,000: the smoothing
widened from 0.4 to 0.8 µm, the shot-noise scaling added, edge seeds dropped, the brevity test
added), never at test data.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from skimage.feature import peak_local_max

_MAD_TO_SD = 1.4826
SIGMA_UM = 0.8
SIGMA_MS = 2.0
RISE_MS = 20.0
RING_UM = (2.2, 3.2)
RING_ANGLES = 12
START_MS = 80.0
RADIUS_UM = 2.0
MAX_MS = 120.0
GROW_FRACTION = 0.5
MIN_DIST_UM = 1.8
DECAY_MS = 40.0
LOCAL_MS = 40.0


def _ring_offsets(pixel_um: float, linescan: bool) -> list[tuple[int, int]]:
    """(dy, dx) pixel offsets sampling the ring (two points per radius for a line-scan)."""
    offsets = set()
    for radius_um in RING_UM:
        radius = radius_um / pixel_um
        if linescan:
            offsets |= {(0, int(round(radius))), (0, -int(round(radius)))}
            continue
        for k in range(RING_ANGLES):
            angle = 2 * math.pi * k / RING_ANGLES
            offsets.add((int(round(radius * math.sin(angle))), int(round(radius * math.cos(angle)))))
    return sorted(offsets)


def _ring_max(a: np.ndarray, offsets: list[tuple[int, int]]) -> np.ndarray:
    """Per pixel, the maximum of ``a[:, y + dy, x + dx]`` over ``offsets``; the frame is
    mirrored at its edges (a front meeting the edge stays a front there)."""
    pad_y = max(abs(dy) for dy, _ in offsets)
    pad_x = max(abs(dx) for _, dx in offsets)
    padded = np.pad(a, ((0, 0), (pad_y, pad_y), (pad_x, pad_x)), mode="symmetric")
    ny, nx = a.shape[1:]
    out = np.full_like(a, -np.inf)
    for dy, dx in offsets:
        np.maximum(out, padded[:, pad_y + dy:pad_y + dy + ny, pad_x + dx:pad_x + dx + nx],
                   out=out)
    return out


def sparks_on_wave(dff0: np.ndarray, mask: np.ndarray, pixel_um: float, dt_ms: float,
                   linescan: bool, min_z: float) -> list[np.ndarray]:
    """Masks (each shaped like ``mask``) of the sparks inside a wave's ``mask``.

    Parameters
    ----------
    dff0 : ndarray (t, y, x)
        ΔF/F0 around the wave (``y`` of size 1 for a line-scan), frames before it included.
    mask : ndarray of bool, same shape
        The wave's pixels.
    pixel_um, dt_ms : float
        Calibration.
    linescan : bool
        No smoothing along the singleton ``y``; the ring is two points on each side.
    min_z : float
        Seed criterion (module docstring, step 3).
    """
    if not mask.any():
        return []
    sigma_px = SIGMA_UM / pixel_um
    s = ndimage.gaussian_filter(np.asarray(dff0, np.float32), mode="nearest",
                                sigma=(SIGMA_MS / dt_ms, 0.0 if linescan else sigma_px, sigma_px))
    k = max(1, int(round(RISE_MS / dt_ms)))
    csum = np.concatenate([np.zeros((1, *s.shape[1:]), np.float64), np.cumsum(s, axis=0)])
    t = np.arange(s.shape[0])
    lo = np.maximum(t - k, 0)
    count = np.maximum(t - lo, 1).reshape(-1, 1, 1)
    before = ((csum[t] - csum[lo]) / count).astype(np.float32)
    before[0] = s[0]
    rise = s - before
    offsets = _ring_offsets(pixel_um, linescan)
    blob = rise - _ring_max(rise, offsets)
    # noise grows with the wave's level (shot noise): blob / sqrt(1 + level), then robust z
    scaled = blob / np.sqrt(np.maximum(1.0 + before, 0.1))
    inside = scaled[mask]
    centre = float(np.median(inside))
    spread = _MAD_TO_SD * float(np.median(np.abs(inside - centre)))
    if not spread > 0:
        return []
    z = np.where(mask, (scaled - centre) / spread, np.float32(0.0))
    dist_px = max(1, int(math.ceil(MIN_DIST_UM / pixel_um / 2)))
    footprint = np.ones((2 * k + 1, 1 if linescan else 2 * dist_px + 1, 2 * dist_px + 1), bool)
    peaks = peak_local_max(z, footprint=footprint, threshold_abs=min_z,
                           labels=mask.astype(np.int32), exclude_border=False)
    start = int(np.argmax(mask.any(axis=(1, 2))))
    edge = int(math.ceil(sigma_px))  # smoothing averages fewer pixels at the frame's edge
    ny, nx = mask.shape[1:]
    peaks = [tuple(p) for p in peaks
             if p[0] - start >= START_MS / dt_ms and rise[tuple(p)] > 0
             and edge <= p[2] < nx - edge and (linescan or edge <= p[1] < ny - edge)]
    peaks.sort()
    radius = RADIUS_UM / pixel_um
    yy, xx = np.ogrid[:mask.shape[1], :mask.shape[2]]
    taken = np.zeros(mask.shape, bool)
    sparks = []
    for t0, y0, x0 in peaks:
        if taken[t0, y0, x0]:
            continue
        t_lo, t_hi = max(0, t0 - k), min(mask.shape[0], t0 + int(math.ceil(MAX_MS / dt_ms)) + 1)
        disk = ((yy - y0) ** 2 if not linescan else 0) + (xx - x0) ** 2 <= radius ** 2
        excess = s[t_lo:t_hi] - before[t0]
        peak = float(excess[t0 - t_lo, y0, x0])
        later = excess[t0 - t_lo:t0 - t_lo + max(1, int(round(LOCAL_MS / dt_ms))) + 1]
        if float(_ring_max(later, offsets)[:, y0, x0].max()) >= GROW_FRACTION * peak:
            continue  # it spreads: a wave starting or a front arriving, not a lone spark
        t_decay = min(mask.shape[0] - 1, t0 + max(1, int(round(DECAY_MS / dt_ms))))
        if s[t_decay, y0, x0] - before[t0, y0, x0] > GROW_FRACTION * peak:  # it stays up:
            continue  # a wave's own rise, not a spark's brief release
        grown = (excess >= GROW_FRACTION * peak) & disk[None]
        grown &= mask[t_lo:t_hi] & ~taken[t_lo:t_hi]
        parts, _ = ndimage.label(grown, structure=np.ones((3, 3, 3), bool))
        own = parts[t0 - t_lo, y0, x0]
        if not own:
            continue
        spark = np.zeros(mask.shape, bool)
        spark[t_lo:t_hi] = parts == own
        taken |= spark
        sparks.append(spark)
    return sparks
