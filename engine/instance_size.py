"""An instance's size in physical units: Dotti et al.'s (2024) size filters, and the width
rules that name a spark piece or a puff too wide for one release site a wave
(``TrackerConfig.wide_spark_is_wave_um`` / ``wide_puff_is_wave_um``).

Masks are ``(T, Y, X)`` booleans; a line-scan is ``(T, 1, X)`` and only its X counts.
"""

from __future__ import annotations

import numpy as np

from engine.instances import TrackerConfig, frames_of


def extent_um(mask: np.ndarray, pixel_um: float, linescan: bool) -> float:
    """Largest spatial extent of a (t, y, x) instance mask over its whole life, µm (x only for
    line-scans)."""
    xs = np.flatnonzero(mask.any(axis=(0, 1)))
    ys = np.flatnonzero(mask.any(axis=(0, 2)))
    width_px = int(xs[-1] - xs[0] + 1) if len(xs) else 0
    if not linescan and len(ys):
        width_px = max(width_px, int(ys[-1] - ys[0] + 1))
    return width_px * pixel_um + 1e-9  # 3 px x 0.2 um counts as 0.6 um


def wide_puff_is_wave(kind: str, mask: np.ndarray, pixel_um: float, config: TrackerConfig,
                      linescan: bool) -> str:
    """``kind``, or ``"wave"`` for a puff at least ``config.wide_puff_is_wave_um`` wide."""
    limit = config.wide_puff_is_wave_um
    if kind == "puff" and limit is not None and extent_um(mask, pixel_um, linescan) >= limit:
        return "wave"
    return kind


def widest_front_um(mask: np.ndarray, pixel_um: float, linescan: bool) -> float:
    """Largest spatial extent of a (t, y, x) instance mask within one frame, µm (x only for
    line-scans)."""
    def spans(occupied: np.ndarray) -> np.ndarray:  # (t, n) -> extent per frame, px
        first = np.argmax(occupied, axis=1)
        last = occupied.shape[1] - 1 - np.argmax(occupied[:, ::-1], axis=1)
        return np.where(occupied.any(axis=1), last - first + 1, 0)

    width_px = spans(mask.any(axis=1))
    if not linescan:
        width_px = np.maximum(width_px, spans(mask.any(axis=2)))
    return int(width_px.max(initial=0)) * pixel_um + 1e-9


def wide_spark_is_wave(kind: str, mask: np.ndarray, pixel_um: float, config: TrackerConfig,
                       linescan: bool) -> str:
    """``kind``, or ``"wave"`` for a spark piece whose front reaches
    ``config.wide_spark_is_wave_um`` within one frame."""
    limit = config.wide_spark_is_wave_um
    if kind == "spark" and limit is not None and widest_front_um(mask, pixel_um,
                                                                 linescan) >= limit:
        return "wave"
    return kind


def passes_size_filter(
    kind: str, mask: np.ndarray, pixel_um: float, dt_ms: float, config: TrackerConfig,
    linescan: bool,
) -> bool:
    """Dotti's size filters on a (t, y, x) instance mask."""
    frames = np.flatnonzero(mask.any(axis=(1, 2)))
    duration_frames = int(frames[-1] - frames[0] + 1) if len(frames) else 0
    width_um = extent_um(mask, pixel_um, linescan)
    if kind == "spark":
        return (duration_frames >= frames_of(config.spark_min_ms, dt_ms)
                and width_um >= config.spark_min_width_um)
    if kind == "puff":
        return duration_frames >= frames_of(config.puff_min_ms, dt_ms)
    return width_um >= config.wave_min_width_um
