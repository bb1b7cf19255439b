"""The foot of a rising flank: where a low level (the 10 % of a spark's rise) is crossed.

Such a crossing lies in the noise of the few samples around it. A power law
``c · max(t − t0, 0)^p`` fitted to the lower part of the flank lets every sample of it weigh
in, and its free power keeps a steep onset that slows and a slow (out-of-focus) onset apart
without assuming the whole time course. Used by :func:`engine.timecourse.measure` when a
model's ``postprocess.json`` sets ``characterize.foot_max_fraction``.
"""

from __future__ import annotations

import numpy as np

#: the foot's powers tried (``< 1``: a steep onset that slows, ``> 1``: a slow onset) and the
#: step of its onset search (samples)
FOOT_POWERS = np.geomspace(0.25, 4.0, 17)
FOOT_STEP = 0.05
#: the foot is fitted to the rising flank up to where its monotone fit reaches this fraction
FOOT_TOP = 0.7
#: the foot is fitted to at most this many samples before the peak
FOOT_MAX_SAMPLES = 400


def fit_foot(flank: np.ndarray, amplitude: float,
             curve: np.ndarray) -> tuple[float, float, float] | None:
    """The foot of a rising ``flank`` (samples up to and including the peak; ``curve`` its
    monotone fit, same length): ``c · max(t − t0, 0)^p`` fitted by least squares to the samples
    up to where ``curve`` first reaches ``FOOT_TOP`` of ``amplitude`` (the part of the rise
    whose crossings lie in the noise), onset ``t0`` searched in steps of ``FOOT_STEP``
    (coarser on long flanks), power ``p`` in ``FOOT_POWERS``, ``c`` ≥ 0 solved for each.
    Returns ``(t0, p, c)`` (the level ``f`` × amplitude is crossed at
    ``t0 + (f · amplitude / c)^(1/p)``); None when fewer than 3 samples lie below
    ``FOOT_TOP``."""
    y = np.asarray(flank, np.float64)
    reach = np.flatnonzero(np.asarray(curve) >= FOOT_TOP * amplitude)
    end = int(reach[0]) + 1 if reach.size else len(y)
    first = max(0, end - FOOT_MAX_SAMPLES)
    y = y[first:end]
    n = len(y)
    if n < 3 or not amplitude > 0:
        return None
    onsets = np.arange(-1.0, n - 1.0, max(FOOT_STEP, n / 200.0))
    lag = np.clip(np.arange(n, dtype=np.float64)[None, :] - onsets[:, None], 0.0, None)
    g = lag[None, :, :] ** FOOT_POWERS[:, None, None]  # (power, onset, sample)
    gg = (g * g).sum(axis=2)
    c = np.maximum((g * y).sum(axis=2) / np.maximum(gg, 1e-300), 0.0)
    sse = ((y - c[:, :, None] * g) ** 2).sum(axis=2)
    sse[~(c > 0)] = np.inf
    k, j = np.unravel_index(int(np.argmin(sse)), sse.shape)
    if not np.isfinite(sse[k, j]):
        return None
    return float(onsets[j]) + first, float(FOOT_POWERS[k]), float(c[k, j])
