"""Spark parameters of one event, measured on its own noise-free ΔF/F0 (DESIGN.md definitions).

* amplitude: peak ΔF/F0 (the baseline of ΔF/F0 is 0);
* FWHM: full width at half maximum of the spatial profile along X through the peak pixel, at
  the peak time;
* FDHM: full duration at half maximum of the temporal profile through the peak pixel;
* rise: from the 10 % crossing before the peak to the peak; t50: from the peak to the 50 %
  crossing after it.

Crossings are located by linear interpolation between the samples on either side; a profile
that does not come down to the level inside the recording gives NaN.
"""

from __future__ import annotations

import math

import numpy as np


def crossing(profile: np.ndarray, peak_index: int, level: float, step: int) -> float:
    """Fractional index where ``profile`` first drops below ``level`` walking from the peak in
    direction ``step`` (−1 or +1); NaN when it never does."""
    i = peak_index
    while 0 <= i + step < len(profile):
        if profile[i + step] < level:
            a, b = float(profile[i]), float(profile[i + step])
            return i + step * (a - level) / (a - b)
        i += step
    return math.nan


def half_width(profile: np.ndarray, peak_index: int, fraction: float = 0.5) -> float:
    """Distance (samples) between the crossings of ``fraction``·peak on both sides."""
    level = fraction * float(profile[peak_index])
    return crossing(profile, peak_index, level, 1) - crossing(profile, peak_index, level, -1)


def measure_contribution(values: np.ndarray, dt_ms: float, pixel_um: float) -> dict[str, float]:
    """Peak position (crop indices, time first) and the five parameters of one event.

    Parameters
    ----------
    values
        The event's own ΔF/F0 on a crop, ``(T, X)`` or ``(T, Y, X)``.
    dt_ms, pixel_um
        Sampling.
    """
    peak = np.unravel_index(int(np.argmax(values)), values.shape)
    amplitude = float(values[peak])
    temporal = values[(slice(None),) + tuple(peak[1:])]
    spatial = values[tuple(peak[:-1]) + (slice(None),)]
    it = int(peak[0])
    return {
        "peak_index": tuple(int(i) for i in peak),
        "amplitude_dff0": amplitude,
        "fwhm_um": half_width(spatial, int(peak[-1])) * pixel_um,
        "fdhm_ms": half_width(temporal, it) * dt_ms,
        "rise_ms": (it - crossing(temporal, it, 0.1 * amplitude, -1)) * dt_ms,
        "t50_ms": (crossing(temporal, it, 0.5 * amplitude, 1) - it) * dt_ms,
    }
