"""Augmentation of the raw counts of a labelled recording, before the engine's ΔF/F0
preprocessing (so that training sees exactly what inference sees): gain, offset, extra noise
and acquisition artefacts (flicker, column patterns, bands, dark frames, drift)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from acquisition.labels import IGNORE

if TYPE_CHECKING:
    from offline.datasets import LabeledRecording


@dataclass
class Augmentation:
    """Augmentation of the raw counts (applied before the engine's ΔF/F0 preprocessing).

    ``gain`` and ``offset_counts`` are ranges; ``extra_noise_sd`` is a range of the SD of added
    Gaussian noise as a fraction of the cell's median signal above the blank.

    Acquisition artefacts, each applied to a recording with its probability ``p_*`` (0, the
    default, leaves the old behaviour and random stream unchanged); ranges are drawn uniformly
    per recording, the effects act on the signal above the blank (counts − blank):

    * ``flicker_sd``: per-line multiplicative laser flicker, ``1 + N(0, sd)`` per line/frame;
    * ``column_gain_sd`` / ``column_offset_sd_counts``: fixed-pattern gain ``1 + N(0, sd)``
      (clipped to 0.5–1.5) and offset ``N(0, sd)`` counts per column;
    * ``band_amplitude`` / ``band_scale_um``: smooth bright and dark bands along x, a factor
      ``1 + a·f(x)`` with ``f`` a smoothed random field of correlation length ``band_scale_um``
      scaled to a maximum of 1;
    * ``dark_fraction``: a block of that fraction of the columns, holding no event (labels
      unchanged), turned into dark extracellular pixels (``dark_level`` of the signal plus
      noise as large as that of the darkest columns);
    * ``drift_amplitude``: slow multiplicative drift ``1 + a·g(t)`` (``g`` smooth over about a
      quarter of the recording, maximum 1);
    * ``bleach_fraction``: extra exponential bleaching losing that fraction of the signal by the
      end of the recording.
    """

    gain: tuple[float, float] = (0.7, 1.4)
    offset_counts: tuple[float, float] = (-20.0, 20.0)
    extra_noise_sd: tuple[float, float] = (0.0, 0.3)
    flip_x: bool = True
    flip_y: bool = True
    p_flicker: float = 0.0
    flicker_sd: tuple[float, float] = (0.01, 0.05)
    p_column: float = 0.0
    column_gain_sd: tuple[float, float] = (0.05, 0.2)
    column_offset_sd_counts: tuple[float, float] = (0.0, 5.0)
    p_bands: float = 0.0
    band_amplitude: tuple[float, float] = (0.1, 0.3)
    band_scale_um: tuple[float, float] = (1.5, 10.0)
    p_dark: float = 0.0
    dark_fraction: tuple[float, float] = (0.05, 0.25)
    dark_level: tuple[float, float] = (0.0, 0.1)
    p_drift: float = 0.0
    drift_amplitude: tuple[float, float] = (0.0, 0.05)
    p_bleach: float = 0.0
    bleach_fraction: tuple[float, float] = (0.0, 0.5)

    def apply(self, rec: LabeledRecording, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """Augmented float32 counts and the matching blank."""
        blank = float(rec.blank) if rec.blank is not None else 0.0
        signal = rec.data.astype(np.float32) - blank
        signal *= rng.uniform(*self.gain)
        column_offset = self._artefacts(signal, rec, rng)
        level = float(np.median(signal[signal > np.percentile(signal, 50)])) if signal.size else 0.0
        noise_sd = rng.uniform(*self.extra_noise_sd) * max(level, 1.0)
        if noise_sd > 0:
            signal += rng.normal(0.0, noise_sd, size=signal.shape).astype(np.float32)
        if column_offset is not None:
            signal += column_offset
        new_blank = blank + rng.uniform(*self.offset_counts)
        return np.clip(signal + new_blank, 0, 65535).astype(np.float32), new_blank

    def _artefacts(self, signal: np.ndarray, rec: LabeledRecording,
                   rng: np.random.Generator) -> np.ndarray | None:
        """Apply the enabled acquisition artefacts to ``signal`` (``(T, ...)``, in place);
        returns the per-column offsets to add after the extra noise (``None``: none)."""
        def happens(p: float) -> bool:  # no random draw when disabled
            return p > 0 and rng.random() < p

        n_t, n_x = signal.shape[0], signal.shape[-1]
        along_t = (-1,) + (1,) * (signal.ndim - 1)
        if happens(self.p_bleach):
            remaining = 1.0 - rng.uniform(*self.bleach_fraction)
            signal *= (remaining ** (np.arange(n_t) / max(n_t - 1, 1))).astype(np.float32).reshape(along_t)
        if happens(self.p_drift):
            drift = _smooth_unit(n_t, n_t / 4.0, rng)
            signal *= (1.0 + rng.uniform(*self.drift_amplitude) * drift).reshape(along_t)
        if happens(self.p_flicker):
            flicker = 1.0 + rng.normal(0.0, rng.uniform(*self.flicker_sd), n_t)
            signal *= np.clip(flicker, 0.5, 1.5).astype(np.float32).reshape(along_t)
        if happens(self.p_bands):
            sigma_px = rng.uniform(*self.band_scale_um) / max(rec.pixel_um, 1e-6)
            bands = 1.0 + rng.uniform(*self.band_amplitude) * _smooth_unit(n_x, sigma_px, rng)
            signal *= np.clip(bands, 0.05, None)
        offset = None
        if happens(self.p_column):
            gain = np.clip(1.0 + rng.normal(0.0, rng.uniform(*self.column_gain_sd), n_x), 0.5, 1.5)
            signal *= gain.astype(np.float32)
            offset = rng.normal(0.0, rng.uniform(*self.column_offset_sd_counts), n_x).astype(np.float32)
        if happens(self.p_dark):
            self._darken(signal, rec.class_mask, rng)
        return offset

    def _darken(self, signal: np.ndarray, class_mask: np.ndarray, rng: np.random.Generator) -> None:
        """Turn a block of event-free columns (at an end of the line when one is free, else
        anywhere) into dark extracellular pixels."""
        n_x = signal.shape[-1]
        width = int(round(rng.uniform(*self.dark_fraction) * n_x))
        busy = ((class_mask > 0) & (class_mask != IGNORE)).reshape(-1, n_x).any(axis=0)
        if not 0 < width < n_x:
            return
        events_in = np.convolve(busy.astype(np.int64), np.ones(width, np.int64), mode="valid")
        starts = np.flatnonzero(events_in == 0)
        at_end = starts[(starts == 0) | (starts == n_x - width)]
        starts = at_end if at_end.size else starts
        if starts.size == 0:
            return
        start = int(starts[rng.integers(starts.size)])
        block = (Ellipsis, slice(start, start + width))
        columns = signal.reshape(-1, n_x)
        dark_cols = np.argsort(np.median(columns, axis=0))[: max(1, n_x // 20)]
        noise_sd = float(np.median(np.std(columns[:, dark_cols], axis=0)))
        dark = signal[block] * np.float32(rng.uniform(*self.dark_level))
        signal[block] = dark + rng.normal(0.0, noise_sd, dark.shape).astype(np.float32)

    def flips(self, ndim: int, rng: np.random.Generator) -> tuple[int, ...]:
        """Spatial axes (of a ``(T, ...)`` array) to flip for one window."""
        axes = []
        if self.flip_x and rng.random() < 0.5:
            axes.append(ndim - 1)
        if self.flip_y and ndim == 3 and rng.random() < 0.5:
            axes.append(1)
        return tuple(axes)


def _smooth_unit(n: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """A smoothed random field of ``n`` samples (correlation ``sigma`` samples), maximum
    absolute value 1, float32."""
    from scipy import ndimage

    field = ndimage.gaussian_filter1d(rng.standard_normal(n), max(sigma, 0.5), mode="reflect")
    return (field / max(float(np.abs(field).max()), 1e-12)).astype(np.float32)
