"""Detector model: from noise-free ΔF/F0 to uint16 counts.

Per pixel and line/frame ``i`` (time ``t = i·dt``)::

    photons = resting_photons · resting(x) · exp(−t / bleach_tau_s) · (1 + ΔF/F0) + background_photons
    counts  = gain · Poisson(photons) + Normal(0, read_noise) + blank

rounded and clipped to [0, 65535]. ``resting(x)`` is the cell's relative resting fluorescence
(≈0 outside the cell, so extracellular pixels hold only background photons, read noise and the
offset: the blank can be estimated from them). Bleaching acts on the dye only. The
computation runs in chunks of lines/frames to bound memory; the random stream is consumed in
the same order for a given shape, so the output is deterministic for a seed.
"""

from __future__ import annotations

import math

import numpy as np

from .params import OpticsParams

CHUNK_PIXELS = 4_000_000


def bleach_factor(n_time: int, dt_ms: float, bleach_tau_s: float) -> np.ndarray:
    """Relative dye brightness of each line/frame (1 at t = 0)."""
    if not math.isfinite(bleach_tau_s) or bleach_tau_s <= 0:
        return np.ones(n_time, np.float32)
    t_s = np.arange(n_time, dtype=np.float64) * dt_ms / 1e3
    return np.exp(-t_s / bleach_tau_s).astype(np.float32)


def _expected_photons(dff0: np.ndarray, resting: np.ndarray, bleach: np.ndarray,
                      optics: OpticsParams) -> np.ndarray:
    scale = bleach.reshape((-1,) + (1,) * resting.ndim) * (optics.resting_photons * resting)
    return scale * (1.0 + dff0) + optics.background_photons


def acquire(dff0: np.ndarray, resting: np.ndarray, dt_ms: float, optics: OpticsParams,
            rng: np.random.Generator) -> np.ndarray:
    """Noisy uint16 counts for the noise-free ``dff0`` (``(T, ...)``) of a cell."""
    bleach = bleach_factor(dff0.shape[0], dt_ms, optics.bleach_tau_s)
    out = np.empty(dff0.shape, np.uint16)
    step = max(1, CHUNK_PIXELS // max(1, resting.size))
    for first in range(0, dff0.shape[0], step):
        sl = slice(first, first + step)
        photons = _expected_photons(dff0[sl], resting, bleach[sl], optics)
        counts = optics.gain_counts_per_photon * rng.poisson(np.maximum(photons, 0)).astype(np.float32)
        counts += optics.blank_counts
        if optics.read_noise_counts > 0:
            counts += rng.normal(0.0, optics.read_noise_counts, counts.shape).astype(np.float32)
        out[sl] = np.clip(np.rint(counts), 0, np.iinfo(np.uint16).max)
    return out
