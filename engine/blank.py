"""The detector's offset (the *blank*, counts with no light), estimated from the first frames
of a recording when nobody gives it.

Two estimates, each with its own failure:

* **Dark pixels** — the ``dark_percentile`` (2 %) of the per-pixel mean image: the level of
  extracellular pixels, which hold only offset, read noise and a little stray light. Exact
  where the field has such pixels. A line-scan drawn along the inside of a cell has none;
  its darkest pixels are then cell, and this estimate sits far up the cell's own signal: F0
  shrinks and every ΔF/F0 is inflated (several-fold, see ``docs/RESULTS.md``).
* **Photon transfer** — shot noise makes each pixel's temporal variance grow in proportion
  to its signal above the offset: ``var = gain · (mean − blank) + read²`` (Janesick,
  *Photon Transfer*, SPIE 2007; the EMVA 1288 standard's mean-variance method). A straight
  line through (mean, variance) of pixels of different brightness crosses zero variance at
  ``blank − read² / gain``: the blank, low by the read noise in photon units (a fraction of
  a photon to a few on a confocal PMT or an sCMOS). It needs no dark pixel, only pixels of
  different brightness (bands, nucleus, the cell's edges). The variance comes from
  differences of consecutive frames (robust median, so events and slow drift barely move
  it), after each line's (movie: each row's) common laser-intensity factor is divided out,
  so the line-to-line flicker of the light source is not counted as shot noise.

Choice: the dark pixels when they are clearly darker than the cell, i.e. their mean lies
within ``DARK_SIGNAL_FRACTION`` of the typical pixel's signal above the photon-transfer blank
(or below that blank); else the photon-transfer blank; where the photon transfer cannot be
fitted (too little spread in brightness, no positive slope) the dark pixels, with a warning
that ΔF/F0 may be inflated. :class:`BlankEstimate` says which was used, and the quality
report and its warnings carry it (:mod:`engine.quality`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

#: where the blank came from (``QualityMonitor`` reports it)
GIVEN, DARK_PIXELS, PHOTON_TRANSFER, DARKEST_PIXELS = (
    "given", "dark_pixels", "photon_transfer", "darkest_pixels")
#: dark pixels count as extracellular when their signal above the photon-transfer blank is at
#: most this share of the typical pixel's (chosen on development validation line-scans
#: before the fresh confirmation: ``python -m offline.experiments.blank_estimate``)
DARK_SIGNAL_FRACTION = 0.2
#: the photon transfer needs pixels of different brightness: the 10-90 % spread of the pixel
#: means at least this share of the typical pixel's signal above the blank
MIN_BRIGHTNESS_SPREAD = 0.1
#: pixel-mean quantile bins of the photon-transfer line (the median variance of each)
TRANSFER_BINS = 20
#: the flicker factors and the line are fitted again about each new blank this many times
TRANSFER_ROUNDS = 2
_MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class BlankEstimate:
    """An estimated blank (``counts``) and how it was found (``source``: ``dark_pixels``,
    ``photon_transfer`` or ``darkest_pixels``), with both candidates (``transfer_counts``
    None where the photon transfer could not be fitted)."""

    counts: float
    source: str
    dark_counts: float
    transfer_counts: float | None
    typical_counts: float


@dataclass(frozen=True)
class PhotonTransfer:
    """The line ``variance = gain · (mean − blank)`` through the pixels' binned medians."""

    blank: float
    gain: float
    spread: float  # 10-90 % spread of the pixel means over the typical signal above blank


def estimate_blank(frames: np.ndarray, dark_percentile: float = 2.0) -> BlankEstimate:
    """The blank of ``frames`` ``(T, ...)`` (see the module docstring)."""
    frames = np.asarray(frames)
    mean_image = np.mean(frames, axis=0, dtype=np.float64)
    dark = float(np.percentile(mean_image, dark_percentile))
    typical = float(np.median(mean_image))
    transfer = photon_transfer(frames)
    if transfer is None:
        if typical > 0 and dark > 0.7 * typical:
            log.warning("blank estimate %.1f: no clearly dark extracellular pixels (median "
                        "%.1f) and no photon transfer to go by; pass the blank explicitly",
                        dark, typical)
            return BlankEstimate(dark, DARKEST_PIXELS, dark, None, typical)
        return BlankEstimate(dark, DARK_PIXELS, dark, None, typical)
    if dark - transfer.blank <= DARK_SIGNAL_FRACTION * (typical - transfer.blank):
        return BlankEstimate(dark, DARK_PIXELS, dark, transfer.blank, typical)
    log.warning("no clearly dark extracellular pixels (darkest %.1f, median %.1f counts): "
                "blank %.1f from the photon transfer (noise variance against mean)",
                dark, typical, transfer.blank)
    return BlankEstimate(transfer.blank, PHOTON_TRANSFER, dark, transfer.blank, typical)


def photon_transfer(frames: np.ndarray) -> PhotonTransfer | None:
    """The photon-transfer blank of ``frames`` ``(T, X)`` or ``(T, Y, X)``; None where it
    cannot be fitted (fewer than 3 frames, a non-positive slope, too little spread in
    brightness, or a blank at or above the typical pixel)."""
    frames = np.asarray(frames)
    if frames.shape[0] < 3 or frames.ndim < 2:
        return None
    data = frames.reshape(frames.shape[0], -1, frames.shape[-1]).astype(np.float64)  # t, row, x
    usable = _unsaturated(data)
    mean = data.mean(axis=0)
    if usable.sum() < TRANSFER_BINS * 4:
        return None
    blank = float(np.percentile(mean, 2.0))
    fit = None
    for _ in range(TRANSFER_ROUNDS):
        corrected = _without_flicker(data, mean, blank)
        fit = _fit_line(corrected.mean(axis=0)[usable], _noise_variance(corrected)[usable])
        if fit is None:
            return None
        blank = fit[0]
    typical = float(np.median(mean[usable]))
    if not blank < typical:
        return None
    lo, hi = np.percentile(mean[usable], [10, 90])
    spread = float((hi - lo) / (typical - blank))
    if spread < MIN_BRIGHTNESS_SPREAD:
        return None
    return PhotonTransfer(blank, fit[1], spread)


def _unsaturated(data: np.ndarray) -> np.ndarray:
    """Pixels ``(row, x)`` none of whose samples sits at the data's maximum, where that
    maximum is a clipping level (held by more than 0.1 % of the samples)."""
    top = data.max()
    at_top = data >= top
    if at_top.mean() <= 1e-3:
        return np.ones(data.shape[1:], bool)
    return ~at_top.any(axis=0)


def _without_flicker(data: np.ndarray, mean: np.ndarray, blank: float) -> np.ndarray:
    """``data`` with each (frame, row)'s common intensity factor about ``blank`` divided
    out: the median over the row's brighter pixels of (value − blank) / (mean − blank)."""
    signal = mean - blank
    bright = signal > 0.2 * np.median(signal[signal > 0]) if (signal > 0).any() else signal > 0
    if bright.sum() < 8:
        return data
    ratio = np.where(bright, (data - blank) / np.where(bright, signal, 1.0), np.nan)
    rows = bright.any(axis=-1)  # (row,): a row of a movie may lie wholly outside the cell
    factor = np.ones(data.shape[:2] + (1,))
    factor[:, rows] = np.nanmedian(ratio[:, rows], axis=2, keepdims=True)
    factor = np.where(np.isfinite(factor) & (factor > 0.2), factor, 1.0)
    return blank + (data - blank) / factor


def _noise_variance(data: np.ndarray) -> np.ndarray:
    """Each pixel's temporal noise variance from consecutive-frame differences (robust)."""
    diff = np.diff(data, axis=0)
    mad = np.median(np.abs(diff - np.median(diff, axis=0)), axis=0)
    return (_MAD_TO_SD * mad) ** 2 / 2.0


def _fit_line(mean: np.ndarray, variance: np.ndarray) -> tuple[float, float] | None:
    """``(blank, gain)`` of the least-squares line through the median (mean, variance) of
    :data:`TRANSFER_BINS` quantile bins of the pixel means; None for a slope ≤ 0."""
    edges = np.quantile(mean, np.linspace(0.0, 1.0, TRANSFER_BINS + 1))
    index = np.clip(np.searchsorted(edges, mean, side="right") - 1, 0, TRANSFER_BINS - 1)
    points = [(np.median(mean[index == k]), np.median(variance[index == k]))
              for k in range(TRANSFER_BINS) if (index == k).any()]
    if len(points) < 3:
        return None
    x, y = np.array(points).T
    if np.ptp(x) <= 0:
        return None
    gain, intercept = np.polyfit(x, y, 1)
    if not gain > 0:
        return None
    return float(-intercept / gain), float(gain)


def blank_warning(blank: dict | None) -> str | None:
    """The quality report's warning for its ``blank`` entry (``{"counts", "source"}``), or
    None where the blank was given or the field has dark pixels."""
    if not blank:
        return None
    counts, source = blank["counts"], blank.get("source")
    if source == PHOTON_TRANSFER:
        return (f"the field has no dark pixels: the offset {counts:.1f} counts was estimated "
                "from the noise (photon transfer), and every ΔF/F0 depends on it: pass "
                "--blank if you know it")
    if source == DARKEST_PIXELS:
        return (f"the field has no dark pixels and its noise gives no offset: the darkest "
                f"pixels' {counts:.1f} counts were taken, so ΔF/F0 may be inflated and events "
                "false: pass --blank")
    return None
