"""From noise-free ΔF/F0 to the detector's uint16 counts.

    photons = resting_photons · resting(x) · (1 + ΔF/F0) · bleach(t) · drift(t)
              · flicker(line) · column_gain(x)
    counts  = offset + column_offset(x) + gain · Poisson(photons) + Normal(0, read_noise)

``flicker`` is the laser's line-to-line intensity noise (one factor per scanned line: per
line of a line-scan, per row and frame of a movie); bleaching follows ``exp(−t/τ)`` with τ set
by the fraction lost over the recording; counts are rounded and clipped to uint16, or to the
saturation level when one is set.
"""

from __future__ import annotations

import math

import numpy as np

from offline.devsim.calibration import RecordingSetup
from offline.devsim.cell import CellLayout

CHUNK_FRAMES = 128


def acquire(clean_dff0: np.ndarray, layout: CellLayout, setup: RecordingSetup,
            rng: np.random.Generator) -> np.ndarray:
    """Noisy uint16 counts of ``clean_dff0`` (shape ``setup.shape``)."""
    det = setup.detector
    n_t = setup.shape[0]
    t_s = np.arange(n_t) * setup.dt_ms / 1000.0
    duration_s = max(t_s[-1], 1e-3)
    bleach = (np.exp(-t_s / (duration_s / -math.log(1 - det.bleach_fraction)))
              if det.bleach_fraction > 0 else np.ones(n_t))
    period_s = float(rng.uniform(1.0, 8.0))
    drift = 1.0 + det.drift_amplitude * np.sin(2 * np.pi * t_s / period_s + rng.uniform(0, 6.3))
    per_frame = (bleach * drift).astype(np.float32)
    n_x = setup.shape[-1]
    column_gain = np.clip(1.0 + det.column_gain_sd * rng.standard_normal(n_x), 0.5, None)
    column_offset = det.column_offset_sd_counts * rng.standard_normal(n_x)
    base = (det.resting_photons * layout.resting * column_gain).astype(np.float32)
    top = det.saturation_counts if det.saturation_counts > 0 else 65535.0
    out = np.empty(setup.shape, dtype=np.uint16)
    flicker_shape = setup.shape[:-1] + (1,)
    for start in range(0, n_t, CHUNK_FRAMES):
        sl = slice(start, min(start + CHUNK_FRAMES, n_t))
        n = sl.stop - sl.start
        scale = per_frame[sl].reshape((n,) + (1,) * (len(setup.shape) - 1))
        flicker = 1.0 + det.flicker_sd * rng.standard_normal((n,) + flicker_shape[1:])
        photons = base * scale * np.clip(flicker, 0.5, None) * (1.0 + clean_dff0[sl])
        counts = det.gain_counts_per_photon * rng.poisson(np.maximum(photons, 0.0))
        counts = counts + det.offset_counts + column_offset
        counts += det.read_noise_counts * rng.standard_normal(counts.shape)
        out[sl] = np.clip(np.rint(counts), 0, top).astype(np.uint16)
    return out
