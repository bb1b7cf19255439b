"""Model-free measurement of a noisy 1-D event profile: peak, and level crossings on each flank.

Used for the temporal profile (FDHM, rise, t50) and the spatial profile (FWHM) of an event. No
functional form of the whole event is assumed (the release/decay curve fitted before bakes in
the training simulator's time course and was biased on shapes it does not describe: t50 −44 %
on real spark shapes). Instead:

* **top** and **plateaus**: a rough copy of the profile (Gaussian, ``rough_sigma`` samples)
  finds the top; the peak sample and value come from shapes fitted to the *raw* samples of
  the top (:mod:`engine.peak_top`).
* **flanks**: the samples before the peak are replaced by their least-squares *increasing* fit
  and those after it by their *decreasing* fit (isotonic regression), drawn piecewise linearly
  between the centres of the pooled blocks. That denoises without smoothing across the
  crossings and without a shape; each flank then crosses a level once. Flanks stop where the
  rough profile has stayed below ``FLOOR_FRACTION`` of the peak for ``hold`` samples (a later
  event at the same place is not pooled in), and, with ``VALLEY_FLANKS``, at the valley before
  a neighbouring event: walking out from the top, the lowest rough value before the rough
  profile climbs ``VALLEY_RISE_SD`` noise SDs above it again. A spark on the tail of a wave
  or of an earlier spark then keeps its own flank; before, the monotone fit pooled the earlier
  event in and put the 10 % crossing inside it (rises of a second and more). Crossings are
  searched on the flanks only, so a level the flank does not reach gives NaN.
* **foot** (``foot_max_fraction``, set by a model's ``postprocess.json``): a crossing low on
  the rising flank (the rise's 10 %) lies in the noise of the few samples around it, and the
  monotone fit, which turns baseline noise into a slowly rising staircase, places it early
  (rise too long). With the foot on, it comes from a power law fitted to the lower part of
  the flank (:mod:`engine.foot`), so every sample there weighs in.
* **crossings**: linearly interpolated between samples of the monotone fits (as the ground
  truth interpolates between samples of the noise-free signal); NaN when a flank never
  reaches the level inside the data.
* **bagged peak time** (``bag_replicates``, a model's ``characterize.peak_bag_replicates``;
  **off in every packaged model**): on a flat top the peak sample is unstable (noise moves it
  by samples, and with it the rise and t50, both measured from it). With bagging (Breiman
  1996) the top is searched again, the same way, in ``bag_replicates`` copies of the profile
  (:data:`BAG_BASE`: its monotone fit, its rough copy or itself) with fresh white noise of the
  profile's own SD, and the peak *time* (:attr:`Profile.peak_time`) is the mean of their
  peaks. The peak value, the monotone flanks and their crossings stay those of the measured
  profile. The noise comes from a generator seeded by the profile itself, so the same profile
  always gives the same peak time (streaming == batch). Measured on validation line-scans and
  not adopted: it steadies rounded tops (development rise 22.3 → 20.4 %) but moves sharp,
  asymmetric ones late (simulator rise 19.7 → 24.7 %), and costs about 1.7 ms of CPU per
  copy (docs/RESULTS.md, "The peak time bagged over noisy copies of the profile").
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.optimize import isotonic_regression

from engine.foot import fit_foot
from engine.peak_top import CP, JOINT_FRACTION, is_plateau, plateau_peak, top_peak

#: a flank ends once the rough profile has stayed below this fraction of the peak
FLOOR_FRACTION = 0.05
#: and, walking out from the peak, at the lowest rough value before the rough profile climbs
#: ``VALLEY_RISE_SD`` noise SDs above it again (the valley before a neighbouring event)
VALLEY_FLANKS = True
VALLEY_RISE_SD = 3.0
#: what the bagged peak's noisy copies are drawn around: 0 the monotone (denoised) profile,
#: 1 the profile smoothed like its rough copy, 2 the recorded profile
BAG_BASE = 0


@dataclass(frozen=True)
class Profile:
    """Peak of one profile and its denoised copy.

    ``curve`` is the denoised profile (monotone flanks, ``amplitude`` at ``peak``); crossings
    are fractional sample indices, searched on the flanks only (``start`` … ``stop`` − 1).
    """

    amplitude: float
    peak: int
    curve: np.ndarray
    start: int = 0
    stop: int | None = None
    #: the rising flank's fitted foot ``(onset, power, scale)`` (:func:`engine.foot.fit_foot`)
    foot: tuple[float, float, float] | None = None
    #: crossings at or below this fraction of the amplitude on the rising flank come from
    #: ``foot``
    foot_max_fraction: float = 0.0
    #: the bagged peak time (fractional sample index; None: ``peak``), see the module docstring
    bagged_peak: float | None = None

    @property
    def peak_time(self) -> float:
        """Sample index of the peak in time: the bagged one where measured, else ``peak``."""
        return float(self.peak) if self.bagged_peak is None else self.bagged_peak

    def before(self, fraction: float) -> float:
        """Index where the rising flank crosses ``fraction`` × amplitude (NaN if it never does);
        from the fitted foot when there is one and ``fraction`` ≤ ``foot_max_fraction`` (still
        NaN where the flank's data never reach that level)."""
        crossing = _crossing(self.curve[self.start : self.peak + 1][::-1],
                             fraction * self.amplitude, self.peak, -1)
        if (self.foot is not None and fraction <= self.foot_max_fraction
                and math.isfinite(crossing)):
            onset, power, scale = self.foot
            return min(onset + (fraction * self.amplitude / scale) ** (1.0 / power),
                       float(self.peak))
        return crossing

    def after(self, fraction: float) -> float:
        """Index where the falling flank crosses ``fraction`` × amplitude (NaN if it never does)."""
        return _crossing(self.curve[self.peak : self.stop], fraction * self.amplitude,
                         self.peak, +1)


def _crossing(walk: np.ndarray, level: float, origin: int, step: int) -> float:
    """First crossing below ``level`` of the non-increasing ``walk`` (``walk[0]`` at ``origin``)."""
    below = np.flatnonzero(walk < level)
    if below.size == 0 or below[0] == 0:
        return math.nan
    j = int(below[0])
    above, under = float(walk[j - 1]), float(walk[j])
    return origin + step * (j - 1 + (above - level) / (above - under))


def measure(profile: np.ndarray, rough_sigma: float, hold: int = 1,
            search: tuple[int, int] | None = None, split: bool = True,
            foot_max_fraction: float = 0.0,
            joint_fraction: float | None = None,
            amplitude_cp: float = CP, bag_replicates: int = 0) -> Profile | None:
    """Denoise ``profile`` around its event and locate its peak (see the module docstring).

    Parameters
    ----------
    profile : 1-D ndarray
        Baseline-subtracted profile (ΔF/F0).
    rough_sigma : float
        Gaussian smoothing (samples) of the rough copy that finds the top and the flank ends.
    hold : int
        Samples the rough profile must stay below the floor for a flank to end there.
    search : (int, int), optional
        Index range in which the top is searched (default: the whole profile).
    split : bool
        Whether split (possibly sharp) peaks are tried besides the log-polynomials.
    foot_max_fraction : float
        Crossings of the rising flank at or below this fraction of the amplitude come from
        its fitted foot (:func:`engine.foot.fit_foot`); 0: none.
    joint_fraction : float, optional
        Split peaks join where the rough profile is at least this fraction of its maximum
        (default :data:`JOINT_FRACTION`; a model's ``characterize.joint_fraction``).
    amplitude_cp : float
        The model-choice penalty per parameter for the peak *value* (default :data:`CP`, as
        the peak sample; a model's ``characterize.amplitude_cp``): the peak of a flexible top
        follows the noise upwards, a larger penalty leans on the smoother shapes.
    bag_replicates : int
        Noisy copies of the profile (drawn around :data:`BAG_BASE`) whose peaks are averaged
        into :attr:`Profile.bagged_peak` (module docstring); 0: no bagging.

    Returns
    -------
    Profile or None
        None when the profile has no positive peak.
    """
    y = np.asarray(profile, np.float64)
    lo, hi = search if search is not None and search[1] > search[0] else (0, len(y))
    joint = JOINT_FRACTION if joint_fraction is None else joint_fraction
    sd = noise_sd(y)
    top = _top(y, rough_sigma, (lo, hi), split, sd, joint, amplitude_cp)
    if top is None:
        return None
    amplitude, peak, k0, rough = top
    floor = FLOOR_FRACTION * rough[k0]
    start = _flank_end(rough, k0, floor, -1, hold)
    stop = max(_flank_end(rough, k0, floor, +1, hold), peak + 1)
    start = min(start, peak)
    if VALLEY_FLANKS:  # a neighbouring event is not pooled into the flank's monotone fit
        start = _valley(rough, min(peak, k0), start, -1, VALLEY_RISE_SD * sd)
        stop = _valley(rough, max(peak, k0), stop - 1, +1, VALLEY_RISE_SD * sd) + 1
    curve = y.copy()
    curve[start : peak + 1] = _monotone(y[start:peak], amplitude, increasing=True)
    curve[peak:stop] = _monotone(y[peak + 1 : stop], amplitude, increasing=False)
    foot = (fit_foot(y[start : peak + 1], amplitude, curve[start : peak + 1])
            if foot_max_fraction > 0 else None)
    if foot is not None:
        foot = (start + foot[0], foot[1], foot[2])
    bagged = (_bagged_peak(y, curve, rough_sigma, (lo, hi), split, sd, joint, amplitude_cp,
                           bag_replicates) if bag_replicates > 0 else None)
    return Profile(amplitude, peak, curve, start, stop, foot, foot_max_fraction, bagged)


def _top(y: np.ndarray, rough_sigma: float, search: tuple[int, int], split: bool, sd: float,
         joint: float, amplitude_cp: float) -> tuple[float, int, int, np.ndarray] | None:
    """``(amplitude, peak, k0, rough)`` of the top of ``y`` inside ``search`` (``k0``: the
    rough copy's maximum); None when there is no positive peak."""
    rough = ndimage.gaussian_filter1d(y, rough_sigma, mode="nearest") if rough_sigma > 0 else y
    lo, hi = search
    k0 = lo + int(np.argmax(rough[lo:hi]))
    if not rough[k0] > 0:
        return None
    if is_plateau(rough, k0):
        amplitude, peak = plateau_peak(y, rough, k0, sd)
    else:
        amplitude, peak = top_peak(y, rough, k0, split, sd, joint, amplitude_cp)
    return (amplitude, peak, k0, rough) if amplitude > 0 else None


def _bagged_peak(y: np.ndarray, curve: np.ndarray, rough_sigma: float, search: tuple[int, int],
                 split: bool, sd: float, joint: float, amplitude_cp: float,
                 replicates: int) -> float | None:
    """Mean peak of ``replicates`` copies of the profile (:data:`BAG_BASE`) with white noise
    of SD ``sd`` (None when no copy has a positive peak); the generator is seeded by ``y``."""
    if not sd > 0:
        return None
    if BAG_BASE == 0:
        base = curve
    elif BAG_BASE == 1:
        base = ndimage.gaussian_filter1d(y, max(rough_sigma, 1.0), mode="nearest")
    else:
        base = y
    rng = np.random.default_rng(zlib.crc32(np.ascontiguousarray(y, np.float64).tobytes()))
    peaks = []
    for _ in range(replicates):
        top = _top(base + rng.normal(0.0, sd, len(y)), rough_sigma, search, split, sd, joint,
                   amplitude_cp)
        if top is not None:
            peaks.append(top[1])
    return float(np.mean(peaks)) if peaks else None


def noise_sd(y: np.ndarray) -> float:
    """Robust noise SD from second differences (insensitive to slow signal)."""
    return float(noise_sds(np.asarray(y, np.float64)[:, None])[0])


def noise_sds(values: np.ndarray) -> np.ndarray:
    """:func:`noise_sd` of every column of a ``(T, X)`` array at once (0 for fewer than 5
    samples)."""
    values = np.asarray(values, np.float64)
    if values.shape[0] < 5:
        return np.zeros(values.shape[1])
    d2 = np.diff(values, 2, axis=0)
    return np.median(np.abs(d2 - np.median(d2, axis=0)), axis=0) / 0.6745 / math.sqrt(6.0)


def _flank_end(rough: np.ndarray, peak: int, floor: float, step: int, hold: int) -> int:
    """Exclusive end (step +1) or start (step −1) of the flank from ``peak``."""
    n = len(rough)
    index, run = peak, 0
    while 0 <= index + step < n:
        index += step
        run = run + 1 if rough[index] < floor else 0
        if run >= hold:
            return index + 1 if step > 0 else index
    return n if step > 0 else 0


def _valley(rough: np.ndarray, peak: int, end: int, step: int, rise: float) -> int:
    """Index of the lowest ``rough`` value walking from ``peak`` (the top) towards ``end``
    (inclusive) until ``rough`` climbs more than ``rise`` above that lowest value."""
    best = peak
    for index in range(peak + step, end + step, step):
        if rough[index] < rough[best]:
            best = index
        elif rough[index] > rough[best] + rise:
            break
    return best


def _monotone(y: np.ndarray, amplitude: float, increasing: bool) -> np.ndarray:
    """Monotone fit of a flank, with the peak sample (``amplitude``) appended at its peak end,
    piecewise linear between the centres of the pooled blocks (a step function would put every
    crossing at a block edge); a block of equal samples (a flat stretch) keeps all of them."""
    n = len(y)
    if n == 0:
        return np.array([amplitude])
    fit = isotonic_regression(y, increasing=increasing)
    bounds = np.asarray(fit.blocks)
    starts = bounds[:-1]
    ties = np.maximum.reduceat(y, starts) == np.minimum.reduceat(y, starts)
    keep = np.repeat(ties, np.diff(bounds))  # samples of flat blocks stay points themselves
    centres = np.concatenate([np.flatnonzero(keep).astype(np.float64),
                              ((starts + bounds[1:] - 1) / 2.0)[~ties]])
    values = np.minimum(np.concatenate([fit.x[keep], fit.x[starts][~ties]]), amplitude)
    order = np.argsort(centres)
    centres, values = centres[order], values[order]
    if increasing:
        centres, values = np.append(centres, n), np.append(values, amplitude)
    else:
        centres, values = np.insert(centres + 1, 0, 0.0), np.insert(values, 0, amplitude)
    return np.interp(np.arange(n + 1), centres, values)
