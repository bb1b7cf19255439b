"""Parameters of the development-set generator and their per-recording draws.

Every field that varies between recordings is a ``(low, high)`` range (drawn log-uniformly for
positive scales, uniformly otherwise); a scalar override fixes it (``pixel_um=0.2`` →
``(0.2, 0.2)``). The defaults are deliberately wider than castream's training ranges (pixel
0.08–0.3 µm, 0.5–3 ms/line, 3–20 ms/frame, resting SNR 1.5–10), see :mod:`offline.devsim`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

Range = tuple[float, float]


@dataclass(frozen=True)
class DevParams:
    """Fields shared by line-scans and movies (units in the names)."""

    duration_s: Range = (3.0, 5.0)
    pixel_um: Range = (0.08, 0.3)
    dt_ms: Range = (0.5, 3.0)
    resting_snr: Range = (1.5, 10.0)
    psf_fwhm_xy_um: Range = (0.3, 0.45)
    psf_fwhm_z_um: Range = (1.2, 2.0)
    dyes: tuple[str, ...] = ("fluo3", "fluo4")
    # fraction of the resting fluorescence from Ca-responsive cytosolic dye (the rest:
    # compartmentalized or protein-bound dye, autofluorescence) scales every ΔF/F0
    responsive_fraction: Range = (0.2, 0.4)
    # sparks: release current, plateau and closing time constant; library size per recording
    flux_pA: Range = (8.0, 30.0)
    plateau_ms: Range = (2.0, 14.0)
    decay_ms: Range = (6.0, 20.0)
    n_templates: int = 6
    max_focal_distance_um: float = 1.5
    ember_fraction: float = 0.06
    ember_flux_pA: Range = (1.5, 4.0)
    ember_ms: Range = (50.0, 300.0)
    macro_fraction: float = 0.03
    macro_flux_pA: Range = (40.0, 60.0)
    macro_plateau_ms: Range = (15.0, 40.0)
    pair_fraction: float = 0.08
    pair_distance_um: Range = (0.8, 2.0)
    pair_delay_ms: Range = (5.0, 30.0)
    repeat_fraction: float = 0.08
    repeat_delay_ms: Range = (50.0, 300.0)
    # waves
    wave_rate_per_s: float = 0.08
    wave_speed_um_per_s: Range = (50.0, 150.0)
    wave_amplitude_dff0: Range = (1.0, 3.0)
    wave_release_ms: Range = (15.0, 30.0)
    wave_pump_scale: Range = (0.7, 1.1)
    # cell and background
    extracellular_fraction: Range = (0.0, 0.25)
    cell_end_probability: float = 0.6  # line-scans: each end of the line outside the cell
    nucleus_probability: float = 0.3
    nucleus_brightness: Range = (0.6, 1.4)
    striation_contrast: Range = (0.03, 0.15)
    sarcomere_um: Range = (1.75, 2.0)
    # detector
    bleach_fraction: Range = (0.0, 0.5)
    flicker_sd: Range = (0.01, 0.05)
    drift_amplitude: Range = (0.0, 0.03)
    column_gain_sd: Range = (0.01, 0.04)
    column_offset_sd_counts: Range = (0.0, 3.0)
    gain_counts_per_photon: Range = (1.0, 8.0)
    read_noise_photons: Range = (0.2, 1.0)  # Gaussian read noise in photon equivalents
    offset_counts: Range = (50.0, 500.0)
    saturation_counts: float = 0.0  # 0: off (uint16 range only)
    # ground truth
    empty: bool = False
    truth_fraction_of_peak: float = 0.2
    ignore_below_dff0: float = 0.1
    # stress option, off: single sparks carry a recorded shape's noise
    # (:mod:`offline.devsim.template_noise`; SD as a fraction of each spark's peak)
    template_noise_sd: Range = (0.0, 0.0)
    template_noise_px: float = 1.0


@dataclass(frozen=True)
class LinescanDevParams(DevParams):
    """Line-scans ``(T, X)``: lines of 256–1024 px (mostly 512)."""

    n_px_choices: tuple[int, ...] = (256, 512, 512, 512, 1024)
    spark_rate_per_100um_s: Range = (3.0, 12.0)


@dataclass(frozen=True)
class MovieDevParams(DevParams):
    """Movies ``(T, Y, X)``: rows scanned one after another within each frame."""

    duration_s: Range = (1.5, 3.0)
    dt_ms: Range = (3.0, 20.0)
    n_rows: Range = (32.0, 64.0)
    n_cols: Range = (256.0, 256.0)
    spark_rate_per_100um2_s: Range = (0.8, 2.5)
    puff_rate_per_100um2_s: float = 0.15
    puff_sites: Range = (3.0, 8.0)
    puff_radius_um: Range = (0.8, 1.8)
    puff_duration_ms: Range = (50.0, 300.0)
    puff_flux_pA: Range = (1.0, 3.0)
    puff_plateau_ms: Range = (10.0, 60.0)
    wave_rate_per_s: float = 0.2
    ember_fraction: float = 0.0
    nucleus_probability: float = 0.8
    extracellular_fraction: Range = (0.0, 0.35)
    row_scan_timing: bool = True


def with_overrides(params: DevParams, overrides: Mapping[str, Any]) -> DevParams:
    """``params`` with fields replaced; a scalar for a range field fixes the range.

    Raises
    ------
    ValueError
        For a key that is not a field (the message lists the fields).
    """
    names = {f.name: f for f in dataclasses.fields(params)}
    changes = {}
    for key, value in overrides.items():
        if key not in names:
            raise ValueError(f"unknown dev-set parameter {key!r}; known: {', '.join(sorted(names))}")
        try:
            changes[key] = _coerce(getattr(params, key), value)
        except ValueError as exc:
            raise ValueError(f"dev-set parameter {key}={value!r}: {exc}") from None
    return dataclasses.replace(params, **changes)


def _coerce(current: Any, value: Any) -> Any:
    if isinstance(current, bool):
        return str(value).lower() in ("1", "true", "yes", "on")
    if isinstance(current, tuple):
        items = value if isinstance(value, (tuple, list)) else str(value).replace("..", ",").split(",")
        items = [v.strip() if isinstance(v, str) else v for v in items]
        if current and isinstance(current[0], str):
            return tuple(str(v) for v in items)
        if current and isinstance(current[0], int) and not isinstance(current[0], bool):
            return tuple(int(float(v)) for v in items)
        numbers = tuple(float(v) for v in items)
        return numbers if len(numbers) == 2 else (numbers[0], numbers[0])
    return type(current)(value)


def draw(rng: np.random.Generator, bounds: Range, log: bool = True) -> float:
    """A value in ``bounds``: log-uniform for positive ranges when ``log``, else uniform."""
    lo, hi = float(bounds[0]), float(bounds[1])
    if hi <= lo:
        return lo
    if log and lo > 0:
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    return float(rng.uniform(lo, hi))
