"""A burst of candidate events: a line-scan with a grid of several hundred sparks packed into
about two seconds, after a quiet warm-up (for the characterization budget of
:mod:`engine.burst`, its test and ``bench/burst.py``).

Sparks are Gaussian in space (σ 2.5 px) × a 4-line rise and 6-line exponential decay, ΔF/F0
1.2 at the peak, on a flat cell of 15 photons per pixel at rest; 28 px and 50 lines apart, so
each is its own candidate. Detector as in :mod:`.optics`: gain 8 counts/photon, read noise
6 counts, offset 100 counts.
"""

from __future__ import annotations

import numpy as np

BLANK_COUNTS = 100.0
SPACING_PX = 28
SPACING_LINES = 50


def burst_linescan(n_sparks: int = 600, n_pixels: int = 512, seed: int = 0,
                   quiet_lines: int = 2000, after_lines: int = 600) -> tuple[np.ndarray, int]:
    """``(data, first_burst_line)``: uint16 ``(T, n_pixels)`` counts with ``n_sparks`` sparks
    starting at line ``quiet_lines``."""
    rng = np.random.default_rng(seed)
    per_row = (n_pixels - 20) // SPACING_PX
    rows = -(-n_sparks // per_row)
    photons = np.full((quiet_lines + rows * SPACING_LINES + after_lines, n_pixels), 15.0)
    lines = np.arange(40)
    in_time = np.where(lines < 4, lines / 4, np.exp(-(lines - 4) / 6))
    in_space = np.exp(-0.5 * (np.arange(-10, 11) / 2.5) ** 2)
    spark = 15.0 * 1.2 * in_time[:, None] * in_space[None, :]
    for k in range(n_sparks):
        t0 = quiet_lines + SPACING_LINES * (k // per_row)
        x0 = 2 + SPACING_PX * (k % per_row)
        photons[t0:t0 + 40, x0:x0 + 21] += spark
    counts = BLANK_COUNTS + 8 * rng.poisson(photons) + rng.normal(0, 6, photons.shape)
    return np.clip(counts, 0, 65535).astype(np.uint16), quiet_lines
