"""Characterization of one instance on its (noisy) ΔF/F0: amplitude, FWHM, FDHM, rise, t50.

Definitions are those of :mod:`engine.events` (SparkMaster-style; crossings linearly
interpolated between samples, the peak a sample, as in the ground truth). Nothing assumes the
training simulator's time course: the measurement is model-free where the data allow it, and
the one fitted shape (the spatial profile's pseudo-Voigt, a Gaussian↔Lorentzian family) is a
denoiser chosen by fit quality. Steps:

1. **position**: maximum, inside the instance mask, of the ΔF/F0 smoothed with a Gaussian
   (``sigma_ms``, ``sigma_um``; movies are not smoothed in time); movies are then averaged over
   ``movie_band_y_um`` of rows around it, giving one (T, X) slab.
2. **temporal profile** (first pass): mean over ``band_um`` across X; its **baseline** is the
   mean of the ``baseline_ms`` before the mask starts, shrunk towards 0 by its own noise
   (``baseline_prior_sd``); the top of its rough copy gives the peak time.
3. **spatial profile**: mean over ``band_ms`` around that peak, after each column's own baseline
   (the ``baseline_ms`` ending ``column_baseline_gap_ms`` before the mask starts, shrunk towards
   the columns' mean by empirical Bayes: :func:`column_baselines`) is removed: the fixed pattern
   a spatially smoothed F0 leaves in ΔF/F0 (striations, edges) otherwise bends the profile
   (FWHM error 33 % → 7 % on the training simulator's validation movies at 1,000 photons
   per pixel: ``python -m offline.experiments.column_baselines``); ``fwhm_um`` from a
   pseudo-Voigt
   fit over ±``voigt_half_um`` (:mod:`engine.spatialfit`) unless its reduced χ² is more than
   ``voigt_chi2_sd`` SDs above 1, then from the half-maximum crossings of the model-free
   profile. With ``fwhm_level_widths`` k (the accurate line-scan model: 2.5), ``fwhm_um``
   comes from a second fit to the profile less its residual level, the mean between k first-fit
   FWHMs and :data:`LEVEL_RING_UM` further from the peak: the pseudo-Voigt has no constant
   term, and a level left under the profile (an F0 slightly off, a neighbour's tail) bends
   its width; the matched filter, amplitude and timing keep the first fit.
4. **temporal profile** (final): weighted across X by the fitted spatial profile (a matched
   filter over the part ≥ ``matched_fraction`` of its peak: the best signal-to-noise ratio for
   a given spatial shape), baseline and :func:`~engine.timecourse.measure` again. FDHM, rise
   (10 % crossing before the peak → peak) and t50 (peak → 50 % crossing after it) are read off
   its monotone flanks; a crossing outside the crop gives NaN.
5. ``amplitude_dff0``: the peak of that temporal profile divided by how much the weighting (and,
   for movies, the row band) lowers a peak of the fitted spatial shape.

Independent synthetic benchmark (the families of ``tests/independent_shapes.py``, not
``acquisition.simulate``: reaction-diffusion sparks through a confocal PSF with a saturable dye,
in and out of focus, and biexponential sparks with Moffat profiles; pixel 0.08–0.3 µm,
0.5–3 ms/line or 3–20 ms/frame, SNR 1.5–10; 240 sparks per sampling), median relative error /
median bias, release-curve fit used before → this method:

=========  ==========================  ==========================
parameter  line-scans                  movies
=========  ==========================  ==========================
ΔF/F0      6.9 / +1.0 → 5.5 / +1.9 %   7.8 / −1.9 → 7.0 / +1.5 %
FWHM       9.1 / +1.8 → 7.3 / +0.8 %   9.7 / +1.9 → 9.6 / +0.2 %
FDHM       9.5 / −3.4 → 7.7 / +1.0 %   10.2 / −5.9 → 6.2 / +0.9 %
rise       20.4 / +13 → 16.2 / +0.8 %  14.9 / −6.4 → 5.2 / −0.6 %
t50        18.2 / −15 → 15.4 / +2.4 %  22.9 / −17 → 10.1 / +3.9 %
=========  ==========================  ==========================

Embers (50–300 ms plateaus, 80 per sampling): t50 57 → 5.6 % (line-scans), 51 → 7.4 % (movies);
rise 760 → 38 % and 350 → 41 % (the start of a flat top stays hard to place). Through the
whole engine on the training simulator (``castream evaluate
engine/models/default/linescan-accurate sim:linescan:12``, 128 matched sparks): ΔF/F0 7.3 %,
FWHM 9.7 %, FDHM 10.8 %, rise 17.6 %, t50 10.8 % (before: 9.4, 9.0, 9.0, 24.2, 11.2 %). Cost:
no iterative optimizer, every fit is closed-form or a fixed grid: 4–6 ms of CPU per event on a
busy 2-core machine, where the release-curve fit took 8–29 ms.
Times are ms from frame 0 of the stream (frame index × ``dt_ms``), positions µm from pixel 0.
The parameters named above are the fields of :class:`CharacterizeConfig`, read from the model
directory's ``postprocess.json`` (:mod:`engine.models.postprocess_file`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from engine.events import Event
from engine.instances import Instance, smooth_dff0
from engine.peak_top import CP, JOINT_FRACTION
from engine.spatialfit import LORENTZ_PENALTY, VoigtFit, fit_pseudo_voigt
from engine.timecourse import Profile, measure, noise_sd, noise_sds

#: width (µm) of the ring, on each side of the peak, whose mean is the spatial profile's residual
#: level (``CharacterizeConfig.fwhm_level_widths``)
LEVEL_RING_UM = 1.5


@dataclass(frozen=True)
class CharacterizeConfig:
    """Parameters of :func:`characterize` (model directory ``postprocess.json``, section
    ``characterize``; these defaults are the values the method was written and benchmarked with,
    see the module docstring)."""

    #: smoothing of the ΔF/F0 crop before the peak search (line-scans; movies: ``movie_sigma_*``)
    sigma_ms: float = 2.0
    sigma_um: float = 0.2
    #: the spatial profile is averaged over ``band_ms`` around the peak, the first temporal one
    #: over ``band_um`` around it (SparkMaster averages lines the same way)
    band_ms: float = 6.0
    band_um: float = 1.0
    #: smoothing of the rough copy of each profile that finds its top and flank ends
    profile_sigma_ms: float = 3.0
    profile_sigma_um: float = 0.15
    #: a temporal flank ends after staying this long under the floor (one noisy dip does not end it)
    hold_ms: float = 4.0
    #: movies: smoothing in X and Y only before the peak search; profiles averaged over
    #: ``movie_band_y_um`` of rows around the peak
    movie_sigma_ms: float = 0.0
    movie_sigma_um: float = 0.4
    movie_band_y_um: float = 0.4
    #: prior SD (ΔF/F0) of the baseline around an event (F0 errors): the mean of the
    #: ``baseline_ms`` before the mask is shrunk towards 0 by its own noise against this
    baseline_prior_sd: float = 0.02
    baseline_ms: float = 30.0
    #: pseudo-Voigt fit of the spatial profile: half-width of its window, first guess of the FWHM
    #: when the crossings fail, and how far (in SDs of χ²) from the noise its fit may be
    voigt_half_um: float = 3.0
    spark_fwhm_um: float = 1.9
    voigt_chi2_sd: float = 10.0
    #: the final temporal profile weights the columns where the fitted spatial profile is at
    #: least this fraction of its peak
    matched_fraction: float = 0.3
    #: the spatial profile is taken after each column's own baseline (the ``baseline_ms``
    #: ending this long before the mask starts, shrunk by empirical Bayes:
    #: :func:`column_baselines`) is removed; ``None``: not
    column_baseline_gap_ms: float | None = 5.0
    #: crossings of the rising flank at or below this fraction of the peak (the rise's 10 %)
    #: come from a power law fitted to its lower part (:func:`engine.foot.fit_foot`)
    #: instead of the monotone fit; 0: not
    foot_max_fraction: float = 0.0
    #: the temporal top's split (kinked) peak joins its two sides where the rough profile is
    #: at least this fraction of its maximum (:func:`engine.timecourse.measure`)
    joint_fraction: float = JOINT_FRACTION
    #: the temporal top's peak *value* weighs its candidate shapes with this penalty per
    #: parameter (:func:`engine.timecourse.measure`; the peak sample's is ``CP``)
    amplitude_cp: float = CP
    #: the spatial fit keeps a Lorentzian share only where it lowers the SSE by this many
    #: noise variances (:func:`engine.spatialfit.fit_pseudo_voigt`)
    lorentz_penalty: float = LORENTZ_PENALTY
    #: the temporal peak *time* (and so rise, t50 and ``t_peak_ms``) is the mean peak of this
    #: many noisy copies of the profile (bagging: :func:`engine.timecourse.measure`); 0: the
    #: peak sample
    peak_bag_replicates: int = 0
    #: the FWHM comes from a second pseudo-Voigt fit, to the spatial profile less its residual
    #: level: its mean between this many first-fit FWHMs and :data:`LEVEL_RING_UM` further
    #: from the peak, both sides (the fit has no constant term); 0: the first fit's FWHM
    fwhm_level_widths: float = 0.0

    def smoothing(self, linescan: bool) -> tuple[float, float]:
        """``(sigma_ms, sigma_um)`` of the peak search for this kind of stream."""
        if linescan:
            return self.sigma_ms, self.sigma_um
        return self.movie_sigma_ms, self.movie_sigma_um


DEFAULT_CONFIG = CharacterizeConfig()


def _peak_position(smoothed: np.ndarray, mask: np.ndarray) -> tuple[int, int, int]:
    values = np.where(mask, smoothed, -np.inf)
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(values)), values.shape))


def _band(center: int, half_width: int, size: int) -> slice:
    return slice(max(0, center - half_width), min(size, center + half_width + 1))


def baseline(profile: np.ndarray, end: int, samples: int,
             prior_sd: float = DEFAULT_CONFIG.baseline_prior_sd) -> float:
    """ΔF/F0 baseline from the last ``samples`` samples before ``end``, shrunk towards 0 by its
    noise against a prior SD of ``prior_sd``."""
    pre = np.asarray(profile[max(0, end - samples) : max(0, end)], np.float64)
    if len(pre) == 0:
        return 0.0
    sd = noise_sd(profile)
    var = sd * sd / len(pre) if sd > 0 else 0.0
    return float(pre.mean() * prior_sd**2 / (prior_sd**2 + var))


def characterize(
    instance: Instance,
    pixel_um: float,
    dt_ms: float,
    config: CharacterizeConfig = DEFAULT_CONFIG,
) -> dict:
    """Event fields of one instance (see module docstring).

    ``config`` holds every parameter (a model directory's ``postprocess.json``); its
    ``profile_sigma_ms`` and ``hold_ms`` set the rough copy and flank ends of the temporal
    profile (:func:`engine.timecourse.measure`).

    Returns
    -------
    dict
        ``kind, score, t_start_ms, t_peak_ms, t_end_ms, x_um, y_um, amplitude_dff0, fwhm_um,
        fdhm_ms, rise_ms, t50_ms`` (NaN where not measurable).
    """
    linescan = instance.stream_kind.is_linescan
    sigma_ms, sigma_um = config.smoothing(linescan)
    dff0 = instance.dff0.astype(np.float32)
    mask = instance.mask_in_context()
    smoothed = smooth_dff0(dff0, sigma_ms / dt_ms, sigma_um / pixel_um, linescan)
    tp, yp, xp = _peak_position(smoothed, mask)
    y_half = 0 if linescan else int(round(config.movie_band_y_um / pixel_um / 2))
    rows = _band(yp, y_half, dff0.shape[1])
    line = dff0[:, rows, :].mean(axis=1, dtype=np.float64)
    columns = _band(xp, int(round(config.band_um / pixel_um / 2)), line.shape[1])
    frames = np.flatnonzero(mask[:, rows, columns].any(axis=(1, 2)))
    timing = _Timing(dt_ms, config, frames)
    flat = line
    if config.column_baseline_gap_ms is not None:
        gap = max(1, int(round(config.column_baseline_gap_ms / dt_ms)))
        flat = line - column_baselines(line, timing.onset - gap, timing.pre)
    weights = np.zeros(line.shape[1])
    weights[columns] = 1.0
    tp = timing.rough_peak(line, weights, tp)
    spatial = flat[_band(tp, int(round(config.band_ms / dt_ms / 2)), line.shape[0])].mean(axis=0)
    in_space = measure(spatial, config.profile_sigma_um / pixel_um * (sigma_um > 0),
                       search=(columns.start, columns.stop), split=False,
                       amplitude_cp=config.amplitude_cp)
    voigt = _voigt(spatial, in_space, xp, pixel_um, config)
    width_fit = voigt
    if config.fwhm_level_widths > 0:
        first = _fwhm(voigt, in_space)
        if math.isfinite(first) and first > 0:
            width_fit = _voigt(spatial, in_space, xp, pixel_um, config,
                               config.fwhm_level_widths * first * pixel_um)
    if voigt is not None:
        matched = voigt.values(np.arange(line.shape[1]))
        matched[matched < config.matched_fraction * voigt.peak_value] = 0.0
        weights = matched if matched.sum() > 0 else weights
    in_time = timing.measure(line, weights)
    tp = in_time.peak_time if in_time is not None else tp
    out = _positions(instance, pixel_um, dt_ms, (tp, yp, in_space.peak if in_space else xp))
    out["fwhm_um"] = _fwhm(width_fit, in_space) * pixel_um
    shape = voigt if voigt is not None else in_space
    if in_time is not None and in_time.amplitude > 0:
        out["amplitude_dff0"] = in_time.amplitude * _band_ratio(shape, weights, y_half)
        out.update(_durations(in_time, dt_ms))
    return out


def column_baselines(line: np.ndarray, onset: int, samples: int) -> np.ndarray:
    """Per-column ΔF/F0 baselines of a ``(T, X)`` slab: each column's mean over the last
    ``samples`` samples before ``onset``, shrunk towards the columns' common mean by empirical
    Bayes (James-Stein: by the share of the spread across columns that their noise explains).

    The ΔF/F0 the engine sees has a fixed spatial pattern where its F0 is smoothed in space
    (striations, edges: ±0.1 and more at high photon counts); left in, it bends the spatial
    profile (FWHM). Where noise dominates the spread, the shrinkage leaves the columns alone.
    """
    pre = np.asarray(line[max(0, onset - samples) : max(0, onset)], np.float64)
    if len(pre) < 2 or line.shape[1] < 3:
        return np.zeros(line.shape[1])
    means = pre.mean(axis=0)
    noise = float(np.median(noise_sds(line))) ** 2
    noise_var = noise / len(pre)
    spread = float(means.var())
    share = max(0.0, 1.0 - noise_var / spread) if spread > 0 else 0.0
    return share * (means - means.mean())


class _Timing:
    """Baseline, peak and crossings of a temporal profile weighted across X."""

    def __init__(self, dt_ms: float, config: CharacterizeConfig, frames: np.ndarray):
        self.sigma = config.profile_sigma_ms / dt_ms
        self.hold = max(1, int(round(config.hold_ms / dt_ms)))
        self.onset = int(frames[0]) if frames.size else 0
        self.pre = max(1, int(round(config.baseline_ms / dt_ms)))
        self.prior_sd = config.baseline_prior_sd
        self.search = (int(frames[0]), int(frames[-1]) + 1) if frames.size else None
        self.foot = config.foot_max_fraction
        self.joint_fraction = config.joint_fraction
        self.amplitude_cp = config.amplitude_cp
        self.bag_replicates = int(config.peak_bag_replicates)

    def profile(self, line: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Weighted mean across X, minus its baseline."""
        temporal = line @ (weights / weights.sum())
        return temporal - baseline(temporal, self.onset, self.pre, self.prior_sd)

    def rough_peak(self, line: np.ndarray, weights: np.ndarray, default: int) -> int:
        """Maximum of the rough copy of the profile inside the search range."""
        rough = self.profile(line, weights)
        if self.sigma > 0:
            rough = ndimage.gaussian_filter1d(rough, self.sigma, mode="nearest")
        lo, hi = self.search or (0, len(rough))
        return lo + int(np.argmax(rough[lo:hi])) if hi > lo else default

    def measure(self, line: np.ndarray, weights: np.ndarray) -> Profile | None:
        """Peak and crossings of the profile (:func:`engine.timecourse.measure`)."""
        return measure(self.profile(line, weights), self.sigma, self.hold, self.search,
                       foot_max_fraction=self.foot, joint_fraction=self.joint_fraction,
                       amplitude_cp=self.amplitude_cp, bag_replicates=self.bag_replicates)


def _voigt(spatial: np.ndarray, in_space: Profile | None, xp: int, pixel_um: float,
           config: CharacterizeConfig, level_from_um: float = 0.0) -> VoigtFit | None:
    """Pseudo-Voigt fit of the spatial profile when it fits within the noise, else None; with
    ``level_from_um`` > 0, fitted to the profile less its mean between that distance from the
    peak and :data:`LEVEL_RING_UM` further (where at least 4 samples lie there)."""
    guess = math.nan
    if in_space is not None:
        guess = in_space.after(0.5) - in_space.before(0.5)
        xp = in_space.peak
    if not guess > 0:
        guess = config.spark_fwhm_um / pixel_um
    window = int(round(max(config.voigt_half_um / pixel_um, 1.5 * guess)))
    if level_from_um > 0:
        distance = np.abs(np.arange(len(spatial)) - xp) * pixel_um
        ring = (distance >= level_from_um) & (distance < level_from_um + LEVEL_RING_UM)
        if ring.sum() >= 4:
            spatial = spatial - float(spatial[ring].mean())
    fit = fit_pseudo_voigt(spatial, xp, guess, window, noise_sd(spatial), config.lorentz_penalty)
    if fit is None:
        return None
    dof = max(2 * window - 3, 1)
    return fit if fit.chi2 <= 1.0 + config.voigt_chi2_sd * math.sqrt(2.0 / dof) else None


def _fwhm(voigt: VoigtFit | None, in_space: Profile | None) -> float:
    """FWHM (px): the fitted one, else the model-free crossings (NaN when unmeasurable)."""
    if voigt is not None:
        return voigt.fwhm
    if in_space is None:
        return math.nan
    return in_space.after(0.5) - in_space.before(0.5)


def _band_ratio(shape: VoigtFit | Profile | None, weights: np.ndarray, y_half: int) -> float:
    """How much the X weighting and a ±``y_half`` row band lower the peak of ``shape``
    (the spatial profile, assumed the same along Y): peak / weighted mean."""
    if shape is None:
        return 1.0
    if isinstance(shape, VoigtFit):
        x = np.arange(len(weights), dtype=np.float64)
        values, peak, centre = shape.values(x), shape.peak_value, shape.centre
        rows = shape.values(centre + np.arange(-y_half, y_half + 1))
    else:
        values, peak = np.clip(shape.curve, 0.0, None), shape.amplitude
        rows = values[_band(shape.peak, y_half, len(values))]
    mean_x = float(weights @ values) / float(weights.sum())
    ratio = peak / mean_x if mean_x > 0 else 1.0
    return ratio * (peak / float(rows.mean()) if y_half and rows.mean() > 0 else 1.0)


def _durations(in_time: Profile, dt_ms: float) -> dict:
    """FDHM, rise and t50 (ms) from the temporal profile's crossings (NaN outside the data)."""
    half_up, half_down = in_time.before(0.5), in_time.after(0.5)
    return {"fdhm_ms": (half_down - half_up) * dt_ms,
            "rise_ms": (in_time.peak_time - in_time.before(0.1)) * dt_ms,
            "t50_ms": (half_down - in_time.peak_time) * dt_ms}


def _positions(instance: Instance, pixel_um: float, dt_ms: float,
               peak: tuple[int, int, int]) -> dict:
    """Kind, score, times and position of the event; its parameters NaN (filled later)."""
    t0, y0, x0 = instance.dff0_origin
    tp, yp, xp = peak
    nan = math.nan
    return {
        "kind": instance.kind,
        "score": float(instance.score),
        "t_start_ms": instance.t_start * dt_ms,
        "t_peak_ms": (t0 + tp) * dt_ms,
        "t_end_ms": instance.t_end * dt_ms,
        "x_um": (x0 + xp) * pixel_um,
        "y_um": nan if instance.stream_kind.is_linescan else (y0 + yp) * pixel_um,
        "amplitude_dff0": nan, "fwhm_um": nan, "fdhm_ms": nan, "rise_ms": nan, "t50_ms": nan,
    }


def locate(instance: Instance, pixel_um: float, dt_ms: float) -> dict:
    """Kind, score, times and position (the largest ΔF/F0 inside the mask, unsmoothed) with
    the five parameters NaN: the cheap fields of an event reported without characterization
    (:mod:`engine.burst`)."""
    peak = _peak_position(instance.dff0, instance.mask_in_context())
    return _positions(instance, pixel_um, dt_ms, peak)


def to_event(
    instance: Instance, pixel_um: float, dt_ms: float, stream: str = "", cell: str = "",
    config: CharacterizeConfig = DEFAULT_CONFIG,
) -> Event:
    """Characterize ``instance`` and wrap it as an :class:`~engine.events.Event`."""
    fields = characterize(instance, pixel_um, dt_ms, config)
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
