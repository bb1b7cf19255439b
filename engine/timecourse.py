"""Fit of a Ca²⁺ release time course to a noisy temporal profile (for FDHM, rise and t50).

Model (Cheng & Lederer 2008; the SparkMaster 2 approach of measuring on a fitted curve rather
than on a smoothed noisy trace): baseline 0 before onset ``t0``; during release (``t0`` to
``t0 + release``) the signal rises as ``1 − exp(−t/τ_on)``; after release it decays as
``exp(−t/τ_decay)``. Smoothing a noisy trace before taking its crossings widens FDHM and
stretches the rise (a 3 ms Gaussian added ~16 % to FDHM and ~55 % to the rise of simulated
sparks); the fitted curve has no such bias. Crossings are then read off the fitted curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit

GRID_MS = 0.05
MIN_R2 = 0.5


def release_curve(t_ms: np.ndarray, amplitude: float, t0_ms: float, release_ms: float,
                  tau_on_ms: float, tau_decay_ms: float) -> np.ndarray:
    """The model, peak ``amplitude`` at ``t0_ms + release_ms``."""
    t = np.asarray(t_ms, dtype=np.float64) - t0_ms
    norm = -math.expm1(-release_ms / tau_on_ms)
    rising = -np.expm1(-np.clip(t, 0, release_ms) / tau_on_ms) / norm
    decaying = np.exp(-np.clip(t - release_ms, 0, None) / tau_decay_ms)
    return amplitude * np.where(t < 0, 0.0, np.where(t <= release_ms, rising, decaying))


@dataclass(frozen=True)
class TimeCourse:
    """Durations read off the fitted curve (ms)."""

    fdhm_ms: float
    rise_ms: float  # 10 % crossing before the peak → peak
    t50_ms: float  # peak → 50 % decay
    r2: float


def fit_time_course(profile: np.ndarray, dt_ms: float, peak_index: int,
                    onset_guess: float, t50_guess: float) -> TimeCourse | None:
    """Fit :func:`release_curve` to ``profile`` (sampled every ``dt_ms``); None if it fails.

    ``onset_guess`` (index) and ``t50_guess`` (ms) seed the fit, e.g. from a smoothed trace.
    """
    t = np.arange(len(profile)) * dt_ms
    y = np.asarray(profile, np.float64)
    peak_ms = peak_index * dt_ms
    onset_ms = onset_guess * dt_ms if np.isfinite(onset_guess) else peak_ms - 10.0
    release0 = float(np.clip(peak_ms - onset_ms, 1.0, 80.0))
    decay0 = float(np.clip(t50_guess / math.log(2) if np.isfinite(t50_guess) else 20.0, 3, 400))
    p0 = (max(float(y[peak_index]), 1e-3), peak_ms - release0, release0, release0 / 2, decay0)
    bounds = ([0.0, t[0] - 100.0, 0.5, 0.3, 1.0], [np.inf, t[-1], 150.0, 150.0, 1000.0])
    try:
        params, _ = curve_fit(release_curve, t, y, p0=p0, bounds=bounds, maxfev=2000)
    except (RuntimeError, ValueError):
        return None
    residual = y - release_curve(t, *params)
    r2 = 1.0 - float(residual @ residual) / max(float(((y - y.mean()) ** 2).sum()), 1e-12)
    if r2 < MIN_R2:
        return None
    return _durations(params, r2)


def _durations(params: np.ndarray, r2: float) -> TimeCourse:
    amplitude, t0, release, tau_on, tau_decay = (float(p) for p in params)
    grid = np.arange(t0, t0 + release + GRID_MS, GRID_MS)
    rising = release_curve(grid, amplitude, t0, release, tau_on, tau_decay)
    t_half_up = grid[np.searchsorted(rising, 0.5 * amplitude)]
    t_tenth_up = grid[np.searchsorted(rising, 0.1 * amplitude)]
    t_peak = t0 + release
    t50 = tau_decay * math.log(2.0)
    return TimeCourse(fdhm_ms=t_peak + t50 - t_half_up, rise_ms=t_peak - t_tenth_up,
                      t50_ms=t50, r2=r2)
