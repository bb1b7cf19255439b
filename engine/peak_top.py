"""The peak sample and value of a noisy 1-D event profile, from shapes fitted to its top.

Used by :func:`engine.timecourse.measure` (the temporal and spatial profiles of an event):

* **top**: the top is where the rough copy of the profile (its ``rough`` argument) has a
  value ≥ ``TOP_FRACTION`` of its maximum. The peak sample and value come from a shape fitted
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
"""

from __future__ import annotations

import numpy as np

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


def is_plateau(rough: np.ndarray, k0: int) -> bool:
    """Whether the top lasts much longer than the rising edge (an ember); not when the rise
    is cut off by the start of the data."""
    left, right = _top(rough, k0, PLATEAU_TOP)
    foot = _top(rough, k0, 0.2)[0]
    if foot == 0:
        return False
    return right - left > PLATEAU_RATIO * max(left - foot, 1)


def top_peak(y: np.ndarray, rough: np.ndarray, k0: int, split: bool, sd: float,
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


def plateau_peak(y: np.ndarray, rough: np.ndarray, k0: int, sd: float) -> tuple[float, int]:
    """Peak value and sample of two half-parabolas joined at a sample of the top (least
    squares in ΔF/F0 with every inner sample of the top as the joint); the raw maximum when
    the noise is so low that it fits better (Cp, as :func:`top_peak`)."""
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
