"""Model-free measurement of a noisy 1-D event profile: peak, and level crossings on each flank.

Used for the temporal profile (FDHM, rise, t50) and the spatial profile (FWHM) of an event. No
functional form of the whole event is assumed (the release/decay curve fitted before bakes in
the training simulator's time course and was biased on shapes it does not describe: t50 −44 %
on real spark shapes). Instead:

* **top**: a rough copy of the profile (Gaussian, ``rough_sigma`` samples) finds the top (rough
  value ≥ ``TOP_FRACTION`` of its maximum). The peak sample and value come from a shape fitted
  to the *raw* samples of the top, each candidate scored like Mallows' Cp (SSE / σ² + ``CP`` ×
  parameters, σ the profile's noise, so noisy tops favour the simplest shape): log-polynomials
  of degree 2 (a Gaussian top) or 4, weighted by the fitted values (Caruana/Guo: the
  logarithm's noise grows as 1/value), or a *split* peak, ``log A − a·|u|^p`` before a joint
  sample and ``log A − b·u^q`` after it (``p, q`` ∈ {1, 2}: a kink between two exponentials up
  to a rounded top). A log-polynomial follows rounded and asymmetric tops (a Gaussian top is quadratic in log, an
  exponential tail linear), a polynomial in ΔF/F0 does not (its vertex drifts to the slow side
  by a sample or two); the split peak follows sharp tops, which any polynomial rounds off and
  moves late. The maximum of noisy samples is biased upwards (durations then come out too
  short), a smoothed maximum downwards; it is kept (as the "model" with one parameter per
  sample) only when the noise is so low that every fit is worse. The candidates' peak samples
  and values are averaged with Akaike weights ``exp(−Δscore / 2)`` (``MODEL_AVERAGING``)
  rather than the best one taken: on noisy tops the best candidate flips between shapes whose
  peaks lie samples apart. On validation line-scans (24 development, 8 simulator; ``python -m
  offline.experiments.characterize_sweep --kind linescan --n-dev 24 --n-sim 8 --timecourse
  MODEL_AVERAGING=0``) the median rise error fell 28.2 → 25.7 % (development) and 25.9 → 22.5 %
  (simulator), t50 17.5 → 17.1 % and 14.5 → 14.4 %; on validation movies (8 + 4) the five
  errors moved by at most 1.3 points. The peak *value* may be weighed with a larger penalty
  per parameter (``amplitude_cp``, a model's ``characterize.amplitude_cp``) than the peak
  sample: σ is the whole profile's noise, mostly its baseline's, while photon noise grows
  with the signal, so at the top of a bright event the flexible shapes fit better than they
  should and their peaks follow the noise up (on Poisson-noise sparks of ΔF/F0 2 the median
  peak bias fell +11.8 → +6.0 % with a penalty of 4; ``tests/test_timecourse.py``; the
  line-scan models' ``postprocess.json`` provenance has the validation measurement).
* **plateaus** (embers): when the top is much longer than the rising edge, the top is two
  half-parabolas (own curvature each side) joined at the peak sample, searched over the top:
  a long slowly declining plateau has its peak at its start, which one polynomial misses.
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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.optimize import isotonic_regression

from engine.foot import fit_foot

#: the top fitted by the log-polynomial: rough value ≥ this fraction of the rough maximum
TOP_FRACTION = 0.4
#: degrees of the log-polynomials tried; model choice: SSE / σ² + CP × number of parameters
LOG_DEGREES = (2, 4)
CP = 2.0
#: reweighting rounds of the log fits
LOG_ROUNDS = 3
#: split peaks: joints searched where rough ≥ this fraction of the maximum; the powers of
#: each side; the split model is chosen when its SSE beats the polynomial's by this many
#: noise variances
JOINT_FRACTION = 0.7
SPLIT_POWERS = ((1, 1), (1, 2), (2, 1), (2, 2))
SPLIT_PARAMETERS = 3
#: average the candidate tops' peaks by their Akaike weights instead of taking the best one
#: (``python -m offline.experiments.characterize_sweep --timecourse MODEL_AVERAGING=0,1``)
MODEL_AVERAGING = True
#: plateau: the part above ``PLATEAU_TOP`` of the maximum lasts ``PLATEAU_RATIO`` times longer
#: than the rise from 20 % to that level
PLATEAU_TOP = 0.8
PLATEAU_RATIO = 4.0
#: a flank ends once the rough profile has stayed below this fraction of the peak
FLOOR_FRACTION = 0.05
#: and, walking out from the peak, at the lowest rough value before the rough profile climbs
#: ``VALLEY_RISE_SD`` noise SDs above it again (the valley before a neighbouring event)
VALLEY_FLANKS = True
VALLEY_RISE_SD = 3.0


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
            amplitude_cp: float = CP) -> Profile | None:
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

    Returns
    -------
    Profile or None
        None when the profile has no positive peak.
    """
    y = np.asarray(profile, np.float64)
    rough = ndimage.gaussian_filter1d(y, rough_sigma, mode="nearest") if rough_sigma > 0 else y
    lo, hi = search if search is not None and search[1] > search[0] else (0, len(y))
    k0 = lo + int(np.argmax(rough[lo:hi]))
    if not rough[k0] > 0:
        return None
    sd = noise_sd(y)
    if _is_plateau(rough, k0):
        amplitude, peak = _split_parabola(y, rough, k0, sd)
    else:
        amplitude, peak = _top_peak(y, rough, k0, split, sd,
                                    JOINT_FRACTION if joint_fraction is None else joint_fraction,
                                    amplitude_cp)
    if not amplitude > 0:
        return None
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
    return Profile(amplitude, peak, curve, start, stop, foot, foot_max_fraction)


def _top(rough: np.ndarray, k0: int, fraction: float) -> tuple[int, int]:
    """First and last index of the contiguous run around ``k0`` where ``rough`` ≥ ``fraction``
    of ``rough[k0]`` (at least ``k0 ± 1``, clipped to the profile)."""
    level = fraction * rough[k0]
    left = k0
    while left > 0 and rough[left - 1] >= level:
        left -= 1
    right = k0
    while right < len(rough) - 1 and rough[right + 1] >= level:
        right += 1
    return max(0, min(left, k0 - 1)), min(len(rough) - 1, max(right, k0 + 1))


def _is_plateau(rough: np.ndarray, k0: int) -> bool:
    """Whether the top lasts much longer than the rising edge (an ember); not when the rise
    is cut off by the start of the data."""
    left, right = _top(rough, k0, PLATEAU_TOP)
    foot = _top(rough, k0, 0.2)[0]
    if foot == 0:
        return False
    return right - left > PLATEAU_RATIO * max(left - foot, 1)


def _top_peak(y: np.ndarray, rough: np.ndarray, k0: int, split: bool, sd: float,
              joint_fraction: float, amplitude_cp: float) -> tuple[float, int]:
    """Peak value and sample from the top: the log-polynomials (degrees ``LOG_DEGREES``), the
    split log-power peak and the raw samples, each scored ``SSE / σ² + CP × parameters`` (SSE
    in ΔF/F0, σ = ``sd`` the profile's noise); with ``MODEL_AVERAGING`` their peaks are
    averaged with weights ``exp(−(score − best) / 2)`` (Akaike weights), else the best one is
    taken; the peak *value* is weighed the same way with ``amplitude_cp`` in place of ``CP``."""
    left, right = _top(rough, k0, TOP_FRACTION)
    x = np.arange(left, right + 1, dtype=np.float64)
    v = y[left : right + 1]
    if len(x) < 3:
        return float(y[k0]), k0
    variance = max(sd**2, 1e-30)
    log_y = np.log(np.clip(v, 0.05 * rough[k0], None))
    weight = np.clip(rough[left : right + 1], 1e-6, None)
    raw = int(np.argmax(v))  # the samples themselves: no error, one parameter per sample
    fits = [(0.0, len(v), float(v[raw]), float(left + raw))]  # (SSE / σ², parameters, ...)
    for degree in LOG_DEGREES:
        if len(x) >= degree + 3:
            sse, amplitude, peak = _log_polynomial(x - k0, v, log_y, weight, degree)
            fits.append((sse / variance, degree + 1, amplitude, peak + k0))
    if split:
        joints = np.arange(*_top(rough, k0, joint_fraction)) + 1
        joints = joints[(joints > left) & (joints < right)]
        fit = _log_split(x, v, log_y, weight, joints.astype(np.float64))
        if fit is not None:
            fits.append((fit[0] / variance, SPLIT_PARAMETERS, fit[1], fit[2]))
    chi2, size, amplitudes, peaks = (np.array(column, np.float64)
                                     for column in zip(*fits, strict=True))
    peak_weights = _weights(chi2 + CP * size)
    amplitude_weights = (peak_weights if amplitude_cp == CP
                         else _weights(chi2 + amplitude_cp * size))
    return float(amplitude_weights @ amplitudes), int(round(float(peak_weights @ peaks)))


def _weights(scores: np.ndarray) -> np.ndarray:
    """Akaike weights ``exp(−(score − best) / 2)``, normalized; without ``MODEL_AVERAGING``
    all on the best score."""
    if not MODEL_AVERAGING:
        return (np.arange(len(scores)) == int(np.argmin(scores))).astype(np.float64)
    w = np.exp(-(scores - scores.min()) / 2.0)
    return w / w.sum()


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


def _log_polynomial(x: np.ndarray, v: np.ndarray, log_y: np.ndarray, weight: np.ndarray,
                    degree: int) -> tuple[float, float, float]:
    """(SSE in ΔF/F0, peak value, peak sample relative to ``x``'s origin) of ``exp(poly(x))``
    with a polynomial of ``degree``: started by a fit of log ``v`` weighted by ``weight`` (the
    logarithm's noise is σ / value), then Gauss-Newton steps of least squares in ΔF/F0 (the
    log of noisy values is biased low, and a small value's log is noise)."""
    vander = np.vander(x, degree + 1)
    coef, *_ = np.linalg.lstsq(vander * weight[:, None], log_y * weight, rcond=None)
    for _ in range(LOG_ROUNDS - 1):
        weight = np.exp(np.clip(vander @ coef, -50.0, 50.0))
        step, *_ = np.linalg.lstsq(vander * weight[:, None], v - weight, rcond=None)
        coef = coef + step
    weight = np.exp(np.clip(vander @ coef, -50.0, 50.0))
    fine = np.linspace(x[0], x[-1], 8 * len(x))
    peak = round(float(fine[int(np.argmax(np.polyval(coef, fine)))]))
    sse = float(((v - weight) ** 2).sum())
    return sse, float(np.exp(min(np.polyval(coef, peak), 50.0))), float(peak)


def _log_split(x: np.ndarray, v: np.ndarray, log_y: np.ndarray, weight: np.ndarray,
               joints: np.ndarray) -> tuple[float, float, float] | None:
    """(SSE, peak value, peak sample) of the best split peak: log value ``log A − a·|u|^p``
    before the joint and ``log A − b·u^q`` after it (``u`` = distance to the joint, ``p``,
    ``q`` in ``SPLIT_POWERS``; ``p = q = 1`` is a kink between two exponentials, 2 a rounded
    side), weighted as :func:`_log_polynomial`, for every joint in ``joints`` at once."""
    if len(joints) == 0 or len(x) < 5:
        return None
    u = x[None, :] - joints[:, None]
    before, after = np.where(u < 0, -u, 0.0), np.where(u > 0, u, 0.0)
    best = None
    for p, q in SPLIT_POWERS:
        left, right = before**p, after**q
        log_a, a, b = _split_solve(np.broadcast_to(weight * weight, u.shape), left, right, log_y)
        for _ in range(LOG_ROUNDS - 1):  # Gauss-Newton in ΔF/F0, as _log_polynomial
            fitted = np.exp(np.clip(log_a[:, None] - a[:, None] * left - b[:, None] * right,
                                    -50.0, 50.0))
            steps = _split_solve(fitted * fitted, left, right, (v[None, :] - fitted) / fitted)
            log_a, a, b = log_a + steps[0], a + steps[1], b + steps[2]
        fitted = np.exp(np.clip(log_a[:, None] - a[:, None] * left - b[:, None] * right,
                                -50.0, 50.0))
        sse = ((v[None, :] - fitted) ** 2).sum(axis=1)
        sse[(a < 0) | (b < 0)] = np.inf
        j = int(np.argmin(sse))
        if np.isfinite(sse[j]) and (best is None or sse[j] < best[0]):
            best = (float(sse[j]), float(np.exp(min(log_a[j], 50.0))), float(joints[j]))
    return best


def _split_solve(w2: np.ndarray, left: np.ndarray, right: np.ndarray,
                 target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least squares of ``target ≈ c − a·left − b·right`` per row (``target`` one row
    for all, or one per row; ``left`` and ``right`` have disjoint supports, so the normal
    equations have one zero)."""
    s0, sl, sr = w2.sum(1), (w2 * left).sum(1), (w2 * right).sum(1)
    sll, srr = (w2 * left * left).sum(1), (w2 * right * right).sum(1)
    ty, tl, tr = (w2 * target).sum(1), (w2 * left * target).sum(1), (w2 * right * target).sum(1)
    # [[s0, -sl, -sr], [-sl, sll, 0], [-sr, 0, srr]] (c, a, b) = (ty, -tl, -tr)
    sll, srr = sll + 1e-12, srr + 1e-12
    c = (ty - sl * tl / sll - sr * tr / srr) / np.maximum(s0 - sl * sl / sll - sr * sr / srr,
                                                           1e-12)
    return c, (sl * c - tl) / sll, (sr * c - tr) / srr


def _split_parabola(y: np.ndarray, rough: np.ndarray, k0: int, sd: float) -> tuple[float, int]:
    """Peak value and sample of two half-parabolas joined at a sample of the top (least
    squares in ΔF/F0 with every inner sample of the top as the joint); the raw maximum when
    the noise is so low that it fits better (Cp, as :func:`_top_peak`)."""
    left, right = _top(rough, k0, PLATEAU_TOP)
    x = np.arange(left, right + 1, dtype=np.float64)
    v = y[left : right + 1]
    u = x[None, :] - x[1:-1, None]
    before, after = np.where(u < 0, u * u, 0.0), np.where(u > 0, u * u, 0.0)
    peak, a, b = _split_solve(np.ones_like(u), before, after, v)
    fitted = peak[:, None] - a[:, None] * before - b[:, None] * after
    sse = ((v[None, :] - fitted) ** 2).sum(axis=1)
    sse[(a < 0) | (b < 0)] = np.inf
    raw = int(np.argmax(v))
    if not np.isfinite(sse).any() or (
            sse.min() / max(sd**2, 1e-30) + CP * 3 > CP * len(v)):
        return float(v[raw]), left + raw
    best = int(np.argmin(sse))
    return float(peak[best]), left + 1 + best


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
