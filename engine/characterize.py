"""Characterization of one instance on its (noisy) ΔF/F0: amplitude, FWHM, FDHM, rise, t50.

Definitions are those of :mod:`engine.events` (SparkMaster-style):

* the ΔF/F0 crop is lightly smoothed with a Gaussian (``sigma_ms`` in time, ``sigma_um`` in
  space; the singleton Y of a line-scan is not smoothed) — SparkMaster averages a few lines/pixels
  around the peak for the same reason;
* the peak is the maximum of the smoothed ΔF/F0 inside the instance mask; ``amplitude_dff0`` is
  its value (the baseline of ΔF/F0 is 0 by construction);
* ``fwhm_um``: width at half amplitude of the spatial profile along X through the peak, at the
  peak frame (the scan line of a line-scan);
* ``fdhm_ms``: duration at half amplitude of the temporal profile through the peak pixel;
* ``rise_ms``: from the 10 % crossing before the peak to the peak; ``t50_ms``: from the peak to
  the 50 % crossing after it.

Crossings are searched outward from the peak (the first sample below the level) and located by
linear interpolation between the two samples around it; a crossing outside the crop gives NaN.
Times are ms from frame 0 of the stream (frame index × ``dt_ms``), positions µm from pixel 0.
"""

from __future__ import annotations

import math

import numpy as np

from engine.events import Event
from engine.instances import Instance, smooth_dff0

#: default smoothing before measuring (tuned on simulated sparks, see tests/test_characterize.py)
SIGMA_MS = 2.0
SIGMA_UM = 0.2


def crossing(profile: np.ndarray, peak: int, level: float, step: int) -> float:
    """Fractional index where ``profile`` first drops below ``level`` walking from ``peak``.

    Parameters
    ----------
    profile : 1-D ndarray
    peak : int
        Start index (at or above ``level``).
    level : float
    step : {-1, +1}
        Direction of the walk.

    Returns
    -------
    float
        Linearly interpolated crossing position, NaN if the profile never drops below ``level``.
    """
    index = peak
    while 0 <= index + step < len(profile):
        nxt = index + step
        if profile[nxt] < level:
            above, below = float(profile[index]), float(profile[nxt])
            fraction = (above - level) / (above - below) if above != below else 0.0
            return index + step * fraction
        index = nxt
    return math.nan


def _peak_position(smoothed: np.ndarray, mask: np.ndarray) -> tuple[int, int, int]:
    values = np.where(mask, smoothed, -np.inf)
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(values)), values.shape))


def characterize(
    instance: Instance,
    pixel_um: float,
    dt_ms: float,
    sigma_ms: float = SIGMA_MS,
    sigma_um: float = SIGMA_UM,
) -> dict:
    """Event fields of one instance (see module docstring).

    Returns
    -------
    dict
        ``kind, score, t_start_ms, t_peak_ms, t_end_ms, x_um, y_um, amplitude_dff0, fwhm_um,
        fdhm_ms, rise_ms, t50_ms`` (NaN where not measurable).
    """
    linescan = instance.axes == "TX"
    smoothed = smooth_dff0(instance.dff0, sigma_ms / dt_ms, sigma_um / pixel_um, linescan)
    tp, yp, xp = _peak_position(smoothed, instance.mask_in_context())
    amplitude = float(smoothed[tp, yp, xp])
    spatial = smoothed[tp, yp, :]
    temporal = smoothed[:, yp, xp]
    half = 0.5 * amplitude
    left, right = crossing(spatial, xp, half, -1), crossing(spatial, xp, half, +1)
    start, end = crossing(temporal, tp, half, -1), crossing(temporal, tp, half, +1)
    onset = crossing(temporal, tp, 0.1 * amplitude, -1)
    t0, y0, x0 = instance.dff0_origin
    positive = amplitude > 0
    return {
        "kind": instance.kind,
        "score": float(instance.score),
        "t_start_ms": instance.t_start * dt_ms,
        "t_peak_ms": (t0 + tp) * dt_ms,
        "t_end_ms": instance.t_end * dt_ms,
        "x_um": (x0 + xp) * pixel_um,
        "y_um": math.nan if linescan else (y0 + yp) * pixel_um,
        "amplitude_dff0": amplitude,
        "fwhm_um": (right - left) * pixel_um if positive else math.nan,
        "fdhm_ms": (end - start) * dt_ms if positive else math.nan,
        "rise_ms": (tp - onset) * dt_ms if positive else math.nan,
        "t50_ms": (end - tp) * dt_ms if positive else math.nan,
    }


def to_event(
    instance: Instance, pixel_um: float, dt_ms: float, stream: str = "", cell: str = ""
) -> Event:
    """Characterize ``instance`` and wrap it as an :class:`~engine.events.Event`."""
    fields = characterize(instance, pixel_um, dt_ms)
    return Event(event_id=instance.event_id, stream=stream, cell=cell, **fields)


def spark_frequency_per_100um_s(n_sparks: int, scan_length_um: float, duration_s: float) -> float:
    """Spark frequency in sparks / (100 µm · s) (SparkMaster's definition).

    For a line-scan ``scan_length_um`` is the length of the scan line inside the cell. For a movie
    pass the cell's length along X (the long axis), so that the number stays comparable with
    line-scans of the same cells; divide by the number of Y rows covering the cell for a
    per-line figure. Returns NaN for a non-positive length or duration.
    """
    if scan_length_um <= 0 or duration_s <= 0:
        return math.nan
    return n_sparks / (scan_length_um / 100.0) / duration_s
