"""The detector's offset (the *blank*, counts with no light), estimated from the first frames
of a recording when nobody gives it.

Three estimates, each with its own failure:

* **Quiet pixels** — pixels that see no light have no shot noise: their temporal variance
  is the read noise alone, far under a lit pixel's. Where enough pixels are that quiet
  (variance under ``DARK_VARIANCE_FRACTION`` of the median pixel's), the blank is the median
  of their means. The median, not the darkest: fixed-pattern (per-column) offsets spread
  these means, and their low percentiles lie under the offset.
* **Darkest pixels** — the ``dark_percentile`` (2 %) of the per-pixel mean image: the level of
  extracellular pixels where the read noise hides the shot noise. A line-scan drawn along the
  inside of a cell has no such pixels; its darkest pixels are then cell, and this estimate
  sits far up the cell's own signal: F0 shrinks and every ΔF/F0 is inflated (several-fold:
  ``python -m offline.experiments.blank_estimate``).
* **Photon transfer** — shot noise makes each pixel's temporal variance grow in proportion
  to its signal above the offset: ``var = gain · (mean − blank) + read²`` (Janesick,
  *Photon Transfer*, SPIE 2007; the EMVA 1288 standard's mean-variance method). A straight
  line through (mean, variance) of pixels of different brightness crosses zero variance at
  ``blank − read² / gain``: the blank, low by the read noise in photon units (a fraction of
  a photon to a few on a confocal PMT or an sCMOS). It needs no dark pixel, only pixels of
  different brightness (bands, nucleus, the cell's edges). The variance comes from
  differences of consecutive frames (robust median, so events and slow drift barely move
  it), after each line's (movie: each row's) common laser-intensity factor is divided out,
  so the line-to-line flicker of the light source is not counted as shot noise; means and
  variances are averaged over ``TRANSFER_SMOOTH_PX`` neighbours along x, so per-column
  offsets do not flatten the line.

Choice: the quiet pixels where the field has them; else the darkest pixels when they are
clearly darker than the cell, i.e. their mean lies within ``DARK_SIGNAL_FRACTION`` of the
typical pixel's signal above the photon-transfer blank (or below that blank); else the
photon-transfer blank, with the standard error of its fit; where the photon transfer cannot
be fitted (too little spread in brightness, no positive slope) the darkest pixels, with a
warning that ΔF/F0 may be inflated. :class:`BlankEstimate` says which was used, and the
quality report and its warnings carry it (:mod:`engine.quality`).

The constants were chosen on development validation line-scans (seeds 1700-1771 of
:mod:`offline.experiments.validation`) and confirmed on fresh ones:
``python -m offline.experiments.blank_estimate --n 48 --offset 1800 --n-sim 24`` and
``--kind movie --n 24 --offset 1424 --n-sim 0`` (docs/RESULTS.md, "The blank").
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

log = logging.getLogger(__name__)

#: where the blank came from (``QualityMonitor`` reports it)
GIVEN, DARK_PIXELS, PHOTON_TRANSFER, DARKEST_PIXELS = (
    "given", "dark_pixels", "photon_transfer", "darkest_pixels")
#: dark pixels count as extracellular when their signal above the photon-transfer blank is at
#: most this share of the typical pixel's
DARK_SIGNAL_FRACTION = 0.2
#: the photon transfer needs pixels of different brightness: the 10-90 % spread of the pixel
#: means at least this share of the typical pixel's signal above the blank
MIN_BRIGHTNESS_SPREAD = 0.1
#: the photon transfer's means and variances are averaged over this many neighbours along x
#: first: fixed-pattern offsets spread the pixel means without moving their variance, which
#: flattens the line and drags its blank down (regression dilution); the cell's brightness
#: varies over longer distances
TRANSFER_SMOOTH_PX = 5
#: a pixel whose noise variance is under this share of the median pixel's sees no light (read
#: noise only): where enough such pixels are (:data:`MIN_QUIET_PIXELS`: a count and a share
#: of the pixels), the blank is their median mean
DARK_VARIANCE_FRACTION = 0.3
MIN_QUIET_PIXELS = (5, 0.005)
#: the quiet pixels and the photon transfer look at no more values than this (frames × pixels)
MAX_VALUES = 4_000_000
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
    #: the photon-transfer blank's standard error over the typical pixel's signal above it: how
    #: uncertain the line's fit leaves F0 (None unless the blank is the photon transfer's). A
    #: lower bound: on dim development line-scans the blank was off by up to ~8 of these
    #: (``python -m offline.experiments.blank_estimate`` lists each recording's)
    f0_relative_sd: float | None = None

    def report(self) -> dict:
        """The quality report's ``blank`` entry (:mod:`engine.quality`)."""
        return {"counts": self.counts, "source": self.source,
                "f0_relative_sd": self.f0_relative_sd}


@dataclass(frozen=True)
class PhotonTransfer:
    """The line ``variance = gain · (mean − blank)`` through the pixels' binned medians."""

    blank: float
    gain: float
    spread: float  # 10-90 % spread of the pixel means over the typical signal above blank
    blank_sd: float  # the blank's standard error, from the line's fit


def estimate_blank(frames: np.ndarray, dark_percentile: float = 2.0) -> BlankEstimate:
    """The blank of ``frames`` ``(T, ...)`` (see the module docstring)."""
    frames = np.asarray(frames)
    mean_image = np.mean(frames, axis=0, dtype=np.float64)
    dark = float(np.percentile(mean_image, dark_percentile))
    typical = float(np.median(mean_image))
    data = _sampled(frames) if frames.shape[0] >= 3 and frames.ndim >= 2 else None
    quiet = None if data is None else _quiet_level(data)
    if quiet is not None:
        return BlankEstimate(quiet, DARK_PIXELS, dark, None, typical)
    transfer = None if data is None else _transfer(data)
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
    return BlankEstimate(transfer.blank, PHOTON_TRANSFER, dark, transfer.blank, typical,
                         transfer.blank_sd / max(typical - transfer.blank, 1e-9))


def quiet_pixels_level(frames: np.ndarray) -> float | None:
    """The median mean of the pixels whose noise is read noise alone (variance under
    :data:`DARK_VARIANCE_FRACTION` of the median pixel's, mean under the median): no light,
    no shot noise; None where fewer than :data:`MIN_QUIET_PIXELS` (count and share) are."""
    frames = np.asarray(frames)
    if frames.shape[0] < 3 or frames.ndim < 2:
        return None
    return _quiet_level(_sampled(frames))


def _quiet_level(data: np.ndarray) -> float | None:
    """:func:`quiet_pixels_level` of :func:`_sampled` frames."""
    mean = data.mean(axis=0)
    variance = _noise_variance(_without_flicker(data, mean, float(np.percentile(mean, 2.0))))
    quiet = ((variance < DARK_VARIANCE_FRACTION * np.median(variance))
             & (mean < np.median(mean)) & _unsaturated(data))
    if quiet.sum() < max(MIN_QUIET_PIXELS[0], MIN_QUIET_PIXELS[1] * quiet.size):
        return None
    return float(np.median(mean[quiet]))


def photon_transfer(frames: np.ndarray) -> PhotonTransfer | None:
    """The photon-transfer blank of ``frames`` ``(T, X)`` or ``(T, Y, X)``; None where it
    cannot be fitted (fewer than 3 frames, a non-positive slope, too little spread in
    brightness, or a blank at or above the typical pixel)."""
    frames = np.asarray(frames)
    if frames.shape[0] < 3 or frames.ndim < 2:
        return None
    return _transfer(_sampled(frames))


def _transfer(data: np.ndarray) -> PhotonTransfer | None:
    """:func:`photon_transfer` of :func:`_sampled` frames."""
    usable = _unsaturated(data)
    mean = data.mean(axis=0)
    if usable.sum() < TRANSFER_BINS * 4:
        return None
    blank = float(np.percentile(mean, 2.0))
    fit = None
    for _ in range(TRANSFER_ROUNDS):
        corrected = _without_flicker(data, mean, blank)
        fit = _fit_line(*(_along_x(values)[usable] for values in (
            corrected.mean(axis=0), _noise_variance(corrected))))
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
    return PhotonTransfer(blank, fit[1], spread, fit[2])


def _sampled(frames: np.ndarray) -> np.ndarray:
    """``frames`` as float ``(t, row, x)``, at most :data:`MAX_VALUES` of them: every k-th row
    of a large movie (rows are independent here: each has its own flicker factor), then the
    first frames; a 512×512 movie's 400 ms took 2 GB and 16 s whole."""
    data = frames.reshape(frames.shape[0], -1, frames.shape[-1])
    if data.size > MAX_VALUES:
        data = data[:, :: math.ceil(data.size / MAX_VALUES)]
    if data.size > MAX_VALUES:
        data = data[: max(3, MAX_VALUES // (data.shape[1] * data.shape[2]))]
    return data.astype(np.float64)


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


def _along_x(values: np.ndarray) -> np.ndarray:
    """``(row, x)`` values averaged over :data:`TRANSFER_SMOOTH_PX` neighbours along x."""
    if TRANSFER_SMOOTH_PX <= 1:
        return values
    return ndimage.uniform_filter1d(values, TRANSFER_SMOOTH_PX, axis=-1, mode="nearest")


def _noise_variance(data: np.ndarray) -> np.ndarray:
    """Each pixel's temporal noise variance from consecutive-frame differences (robust)."""
    diff = np.diff(data, axis=0)
    mad = np.median(np.abs(diff - np.median(diff, axis=0)), axis=0)
    return (_MAD_TO_SD * mad) ** 2 / 2.0


def _fit_line(mean: np.ndarray, variance: np.ndarray) -> tuple[float, float, float] | None:
    """``(blank, gain, SD of the blank)`` of the least-squares line through the median (mean, variance) of
    :data:`TRANSFER_BINS` quantile bins of the pixel means; None for a slope ≤ 0."""
    edges = np.quantile(mean, np.linspace(0.0, 1.0, TRANSFER_BINS + 1))
    index = np.clip(np.searchsorted(edges, mean, side="right") - 1, 0, TRANSFER_BINS - 1)
    points = [(np.median(mean[index == k]), np.median(variance[index == k]))
              for k in range(TRANSFER_BINS) if (index == k).any()]
    if len(points) < 4:  # the line's covariance needs more points than its two parameters + 1
        return None
    x, y = np.array(points).T
    if np.ptp(x) <= 0:
        return None
    (gain, intercept), cov = np.polyfit(x, y, 1, cov=True)
    if not gain > 0:
        return None
    blank = -intercept / gain
    # the SD of -intercept / gain (delta method) from the line's covariance
    gradient = np.array([-blank / gain, -1.0 / gain])  # d blank / d (gain, intercept)
    return float(blank), float(gain), float(np.sqrt(max(gradient @ cov @ gradient, 0.0)))


def blank_warning(blank: dict | None) -> str | None:
    """The quality report's warning for its ``blank`` entry (``{"counts", "source"}``), or
    None where the blank was given or the field has dark pixels."""
    if not blank:
        return None
    counts, source = blank["counts"], blank.get("source")
    if source == PHOTON_TRANSFER:
        sd = blank.get("f0_relative_sd")
        fit = (f"; its fit alone leaves F0 uncertain by ±{100 * sd:.0f} %"
               if sd is not None and np.isfinite(sd) else "")
        return (f"the field has no dark pixels: the offset {counts:.1f} counts was estimated "
                f"from the noise (photon transfer){fit}, and a dim field can be off by more: "
                "every ΔF/F0 depends on it, pass --blank if you know it")
    if source == DARKEST_PIXELS:
        return (f"the field has no dark pixels and its noise gives no offset: the darkest "
                f"pixels' {counts:.1f} counts were taken, so ΔF/F0 may be inflated and events "
                "false: pass --blank")
    return None
