"""Two sparks merged into one line-scan region, found by fitting one and two spark shapes.

A spark that fires 5-30 ms after a neighbour 1-2 µm away (a *pair*: one release triggering
the next site) starts on the first one's top or early decay. In the smoothed ΔF/F0 the two
often make a single maximum with a shoulder, so the split at dips between maxima
(``split_dip_sd``, :func:`engine.instances.split_sparks`) keeps them as one event, and that
event's amplitude, width and rise are the sum's (a merged pair's rise came out +69 % on
development validation line-scans).

Here each spark piece of a line-scan is fitted with one and with two *spark shapes*, each
``P · exp(−(x − x₀)² / 2(s² + g·u)) · h(u)``, ``u = t − t₀``, with ``h(u) = (1 − e^{−u/r})
e^{−u/d}`` (scaled to a peak of 1; 0 before ``t₀``): a Gaussian across the line whose variance
grows by ``g`` per sample as the Ca²⁺ spreads, and a rise-then-decay in time; least squares
on the smoothed ΔF/F0 of the piece's pixels (:func:`scipy.optimize.least_squares`, exact
derivatives, on a lattice of at most :data:`MAX_POINTS` pixels). The shapes are only a device
to find the two centres; no parameter reported for an event comes from them. The piece is
split in two -- each pixel to the shape that is larger there, then each part kept connected
around its own peak -- when all of these hold (:class:`PairRule`):

* the two shapes leave at least ``min_gain_fraction`` of the piece's sum of squares less
  unexplained than one (a fraction, not noise variances: at high signal any misfit of one
  shape to a single spark is many noise variances);
* their centres lie at least ``min_separation_um`` apart across the line. A single spark is
  symmetric about its site, so two shapes at one site never split it;
* each shape's peak is at least ``min_peak_sd`` noise SDs of the smoothed ΔF/F0 (measured
  around the region) and ``min_peak_ratio`` of the other's high, and lies inside the piece;
* the second shape explains at least ``min_excess_explained`` of what one shape leaves
  unexplained beyond the noise (:func:`excess_explained`);
* the two shapes peak at least ``min_delay_ms`` apart: one release triggers the next after
  the Ca²⁺ has crossed the gap between the sites, while two shapes fitted to the one top of an
  asymmetric single spark peak together;
* neither shape is more than ``max_width_ratio`` times as wide as the other at its peak (two
  sparks seen through the same optics have comparable widths; a lump in a spark's decay or
  the background under it is fitted by a much narrower or much wider shape).

A model may give a second, stricter rule for *faint* pairs (:func:`split_pair` takes several
rules; a piece is split when any accepts it): a lower peak only a few noise SDs high is
accepted where the two shapes lie further apart, peak longer apart, have closer widths and the
second explains more of the misfit (``pair_split_faint_*``, :class:`engine.instances.TrackerConfig`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.optimize import least_squares

#: parameters of one shape: peak, centre (px), SD at onset (px), onset (samples), rise and
#: decay constants (samples), growth of the variance (px² per sample)
N_PARAMETERS = 7
MAX_EVALUATIONS = 100
#: the fits stop once a step changes the sum of squares, the parameters or the gradient by less
#: than this (relative): the rule reads sums of squares to about 1 %, so 1e-3 decides as the
#: default 1e-8 does, in half to a third of the evaluations (docs/RESULTS.md, "Pairs split
#: where a second shape explains the misfit")
TOLERANCE = 1e-3
#: the shapes' variance grows by at most this much per ms (a spark spreads by diffusion)
MAX_GROWTH_UM2_MS = 0.5
#: pixels fitted at most (a lattice of the piece's pixels)
MAX_POINTS = 400


@dataclass(frozen=True)
class PairRule:
    """When two fitted shapes split a piece (a model's ``pair_split_*`` tracker values)."""

    #: the two shapes leave at least this fraction of the piece's sum of squares less
    #: unexplained than one does
    min_gain_fraction: float
    #: their centres lie at least this far apart across the line
    min_separation_um: float = 1.0
    #: each peaks at least this many noise SDs of the smoothed ΔF/F0 high
    min_peak_sd: float = 7.0
    #: and at least this fraction of the other's peak
    min_peak_ratio: float = 0.4
    #: the second shape explains at least this fraction of what one shape leaves beyond the
    #: noise (0: not tested)
    min_excess_explained: float = 0.0
    #: the two shapes' peaks lie at least this far apart in time (0: not tested)
    min_delay_ms: float = 0.0
    #: the wider shape is at most this many times as wide as the other at its peak (inf: not
    #: tested)
    max_width_ratio: float = math.inf

    def accepts(self, features: Mapping[str, float]) -> bool:
        """Whether a fit with these :func:`features` is split: every condition holds."""
        return (features["gain_fraction"] >= self.min_gain_fraction
                and features["separation_um"] >= self.min_separation_um
                and features["peak_sd"] >= self.min_peak_sd
                and features["peak_ratio"] >= self.min_peak_ratio
                and features["excess_explained"] >= self.min_excess_explained
                and features["delay_ms"] >= self.min_delay_ms
                and features["width_ratio"] <= self.max_width_ratio)


@dataclass(frozen=True)
class PairFit:
    """One and two spark shapes fitted to a piece (sums of squares scaled to all its pixels)."""

    one_sse: float
    two_sse: float
    #: (2, 6): peak, centre (px), SD (px), onset, rise and decay constants (samples)
    shapes: np.ndarray
    #: sum of squares of the piece's smoothed ΔF/F0
    signal: float

    @property
    def gain(self) -> float:
        return self.one_sse - self.two_sse


def split_pair(values: np.ndarray, part: np.ndarray, noise_sd: float, dt_ms: float,
               pixel_um: float, rule: PairRule | tuple[PairRule, ...]) -> np.ndarray | None:
    """Labels 1 and 2 of the two sparks in ``part`` (0 elsewhere), or None to keep it whole.

    Parameters
    ----------
    values : ndarray (t, 1, x)
        Smoothed ΔF/F0 on the piece's box.
    part : ndarray of bool, same shape
        The piece's pixels.
    noise_sd : float
        Noise SD of the smoothed ΔF/F0 (NaN or ≤ 0: no split).
    dt_ms, pixel_um : float
        Sampling.
    rule : PairRule or tuple of PairRule
        The conditions of the module docstring; with several, the piece is split when any
        of them accepts the fit.
    """
    split = split_pair_shapes(values, part, noise_sd, dt_ms, pixel_um, rule)
    return None if split is None else split[0]


def split_pair_shapes(values: np.ndarray, part: np.ndarray, noise_sd: float, dt_ms: float,
                      pixel_um: float, rule: PairRule | tuple[PairRule, ...]
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`split_pair`'s labels and the fitted shapes, ``(2, 7)``, row ``k`` the shape of
    label ``k + 1`` (for :func:`shape_values`); None to keep the piece whole."""
    rules = (rule,) if isinstance(rule, PairRule) else tuple(rule)
    if not (noise_sd > 0) or not rules:
        return None
    fit = fit_pair(values, part, dt_ms, pixel_um, min(r.min_gain_fraction for r in rules))
    if fit is None:
        return None
    fitted = features(fit, int(part.sum()), noise_sd, dt_ms, pixel_um)
    if not any(r.accepts(fitted) for r in rules):
        return None
    labels = _labels(fit.shapes, part)
    if labels is None:
        return None
    first = int(labels[_peak_index(fit.shapes[0])])
    return labels, fit.shapes if first == 1 else fit.shapes[::-1].copy()


def shape_values(shape: np.ndarray, t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """One fitted spark shape (a row of :func:`split_pair_shapes`) at samples ``t`` and pixels
    ``x`` of the piece's box (any broadcastable arrays; 0 before its onset)."""
    return _shape(np.asarray(shape, np.float64), np.asarray(t, np.float64),
                  np.asarray(x, np.float64))


def features(fit: PairFit, n_pixels: int, noise_sd: float, dt_ms: float,
             pixel_um: float) -> dict[str, float]:
    """What :meth:`PairRule.accepts` reads of a fit of ``n_pixels`` pixels: the gain as a
    fraction of the piece's sum of squares, :func:`excess_explained`, the centres' separation
    (µm), the lower peak in noise SDs and as a fraction of the higher, the time between the
    two peaks (ms) and the ratio of the wider shape's width at its peak to the other's."""
    peaks = fit.shapes[:, 0]
    times = [_peak_time(shape) for shape in fit.shapes]
    widths = [_peak_width(shape) for shape in fit.shapes]
    return {"gain_fraction": fit.gain / fit.signal if fit.signal else 0.0,
            "excess_explained": excess_explained(fit, n_pixels, noise_sd),
            "separation_um": float(abs(fit.shapes[0, 1] - fit.shapes[1, 1]) * pixel_um),
            "peak_sd": float(peaks.min() / noise_sd),
            "peak_ratio": float(peaks.min() / peaks.max()) if peaks.max() > 0 else 0.0,
            "delay_ms": float(abs(times[0] - times[1]) * dt_ms),
            "width_ratio": max(widths) / min(widths)}


def excess_explained(fit: PairFit, n_pixels: int, noise_sd: float) -> float:
    """The fraction of what one shape leaves unexplained beyond the noise (``n_pixels`` times
    the smoothed ΔF/F0's noise variance) that the second shape explains. Two sparks leave one
    shape a misfit that is mostly the second spark (near 1); a single spark carrying lumps
    (noise in a recorded shape) leaves several, of which a second shape takes one."""
    beyond_noise = fit.one_sse - n_pixels * noise_sd**2
    return fit.gain / beyond_noise if beyond_noise > 0 else 1.0


def fit_pair(values: np.ndarray, part: np.ndarray, dt_ms: float, pixel_um: float,
             min_gain_fraction: float = 0.0) -> PairFit | None:
    """The one- and two-shape fits of a line-scan piece (``values``, ``part``: as
    :func:`split_pair`); None for a piece too small or not a line-scan, or when a fit fails
    or the one shape leaves less than ``min_gain_fraction`` of the signal to gain."""
    if values.ndim != 3 or values.shape[1] != 1 or part.sum() < 12:
        return None
    t, _, x = np.nonzero(part)
    v = values[part].astype(np.float64)
    # the smoothed ΔF/F0 changes little between neighbours: fit on a lattice of at most
    # MAX_POINTS pixels and scale its sums of squares to the whole piece
    keep = _lattice(t, x, len(v))
    scale = len(v) / int(keep.sum())
    t, x, v = t[keep], x[keep], v[keep]
    one = _fit(_initial_one(values[:, 0, :], part[:, 0, :], dt_ms, pixel_um), t, x, v,
               dt_ms, pixel_um)
    if one is None or one[1] < min_gain_fraction * float(v @ v):  # nothing left to gain
        return None
    two = None
    for start in _initial_two(one[0], t, x, v):
        fit = _fit(start, t, x, v, dt_ms, pixel_um)
        if fit is not None and (two is None or fit[1] < two[1]):
            two = fit
    if two is None:
        return None
    return PairFit(scale * one[1], scale * two[1], two[0].reshape(2, N_PARAMETERS),
                   scale * float(v @ v))


def _lattice(t: np.ndarray, x: np.ndarray, n: int) -> np.ndarray:
    """Which of the ``n`` pixels ``(t, x)`` to fit: every k-th line and column, k the smallest
    stride that leaves at most :data:`MAX_POINTS`."""
    stride = max(1, math.ceil(math.sqrt(n / MAX_POINTS)))
    return (t % stride == 0) & (x % stride == 0)


def _shape(p: np.ndarray, t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """One spark shape (see the module docstring) at pixels ``(t, x)``."""
    peak, x0, s, t0, r, d, g = p
    u = np.maximum(t - t0, 0.0)
    h = -np.expm1(-u / r) * np.exp(-u / d)
    return peak / _h_max(r, d) * np.exp(-0.5 * (x - x0) ** 2 / (s * s + g * u)) * h


def _h_max(r: float, d: float) -> float:
    """Maximum of ``(1 − e^{−u/r}) e^{−u/d}`` (at ``u = r ln(1 + d/r)``)."""
    return d / (r + d) * (r / (r + d)) ** (r / d)


def _peak_time(p: np.ndarray) -> float:
    t0, r, d = p[3], p[4], p[5]
    return t0 + r * math.log1p(d / r)


def _peak_width(p: np.ndarray) -> float:
    """A shape's SD across the line (px) at its peak time (it grows by ``g`` per sample)."""
    return math.sqrt(p[2] ** 2 + p[6] * (_peak_time(p) - p[3]))


def _model(p: np.ndarray, t: np.ndarray, x: np.ndarray) -> np.ndarray:
    return sum(_shape(q, t, x) for q in p.reshape(-1, N_PARAMETERS))


def _jacobian(p: np.ndarray, t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Derivatives of :func:`_model` by each parameter, (pixels, parameters): each shape's
    ``f`` times the derivative of ``log f`` (0 before the onset, where ``f`` is 0)."""
    columns = []
    for q in p.reshape(-1, N_PARAMETERS):
        peak, x0, s, t0, r, d, g = q
        f = _shape(q, t, x)
        u = t - t0
        after = u > 0
        variance = s * s + g * np.where(after, u, 0.0)
        spread = 0.5 * (x - x0) ** 2 / variance**2  # d log f / d variance
        u = np.where(after, u, 1.0)
        rising = -np.expm1(-u / r)  # 1 − e^{−u/r}
        ratio = np.exp(-u / r) / rising  # e^{−u/r} / (1 − e^{−u/r})
        log_r = math.log(r / (r + d))
        dlog_u = np.where(after, ratio / r - 1.0 / d + g * spread, 0.0)
        dlog_r = np.where(after, -u / r**2 * ratio, 0.0) - log_r / d
        dlog_d = np.where(after, u / d**2, 0.0) + r / d**2 * log_r
        columns += [f / peak, f * (x - x0) / variance, f * spread * 2.0 * s, -f * dlog_u,
                    f * dlog_r, f * dlog_d, f * spread * np.where(after, u, 0.0)]
    return np.stack(columns, axis=1)


def _bounds(n: int, t: np.ndarray, x: np.ndarray, v: np.ndarray, dt_ms: float,
            pixel_um: float) -> tuple[np.ndarray, np.ndarray]:
    top = 10.0 * float(v.max())
    lo = [0.0, x.min() - 0.5, 0.15 / pixel_um, t.min() - 200.0 / dt_ms, 0.3 / dt_ms,
          1.0 / dt_ms, 0.0]
    hi = [top, x.max() + 0.5, 4.0 / pixel_um, float(t.max()), 200.0 / dt_ms, 1000.0 / dt_ms,
          MAX_GROWTH_UM2_MS * dt_ms / pixel_um**2]
    return np.array(lo * n), np.array(hi * n)


def _fit(start: np.ndarray, t: np.ndarray, x: np.ndarray, v: np.ndarray, dt_ms: float,
         pixel_um: float) -> tuple[np.ndarray, float] | None:
    """Least-squares shapes from ``start`` and their sum of squares, or None if it fails."""
    lo, hi = _bounds(len(start) // N_PARAMETERS, t, x, v, dt_ms, pixel_um)
    start = np.clip(start, lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo))
    try:
        fit = least_squares(lambda p: _model(p, t, x) - v, start, bounds=(lo, hi),
                            jac=lambda p: _jacobian(p, t, x), x_scale="jac",
                            max_nfev=MAX_EVALUATIONS, ftol=TOLERANCE, xtol=TOLERANCE,
                            gtol=TOLERANCE)
    except (ValueError, np.linalg.LinAlgError):
        return None
    if not np.isfinite(fit.cost):
        return None
    return fit.x, 2.0 * float(fit.cost)


def _initial_one(values: np.ndarray, part: np.ndarray, dt_ms: float,
                 pixel_um: float) -> np.ndarray:
    """One shape started from the piece's maximum: its line's half-width, the onset where the
    maximum's column first reaches 10 % of it, and the time it takes to fall to half."""
    inside = np.where(part, values, -np.inf)
    ti, xi = np.unravel_index(int(np.argmax(inside)), inside.shape)
    peak = float(values[ti, xi])
    line = part[ti] & (values[ti] >= 0.5 * peak)
    s = max(line.sum() / 2.355, 0.3 / pixel_um)
    column = np.where(part[:, xi], values[:, xi], -np.inf)
    onset = np.flatnonzero(column[: ti + 1] >= 0.1 * peak)
    t0 = float(onset[0] - 1) if onset.size else ti - 10.0 / dt_ms
    half = np.flatnonzero(column[ti:] < 0.5 * peak)
    t50 = float(half[0]) if half.size else 20.0 / dt_ms
    r = max((ti - t0) / 2.0, 0.5 / dt_ms)
    return np.array([peak, float(xi), s, t0, r, max(t50 / math.log(2.0), 2.0 / dt_ms), 0.0])


def _initial_two(one: np.ndarray, t: np.ndarray, x: np.ndarray,
                 v: np.ndarray) -> list[np.ndarray]:
    """Starts for two shapes: the fitted one plus a copy at the largest residual; and two
    copies at either end of the piece's long axis (intensity-weighted)."""
    starts = []
    residual = v - _shape(one, t, x)
    k = int(np.argmax(residual))
    if residual[k] > 0:
        second = one.copy()
        second[0] = residual[k]
        second[1] = x[k]
        second[3] = t[k] - (_peak_time(one) - one[3])
        starts.append(np.concatenate([one, second]))
    w = np.clip(v, 0.0, None)
    if w.sum() > 0:
        centre = np.array([np.average(t, weights=w), np.average(x, weights=w)])
        d = np.stack([t - centre[0], x - centre[1]])
        cov = (d * w) @ d.T / w.sum()
        values, vectors = np.linalg.eigh(cov)
        axis = vectors[:, -1] * math.sqrt(max(values[-1], 1e-9))
        pair = []
        for sign in (-1.0, 1.0):
            q = one.copy()
            q[0] = 0.7 * one[0]
            dt, dx = sign * axis
            q[1], q[3] = one[1] + dx, one[3] + dt
            pair.append(q)
        starts.append(np.concatenate(pair))
    return starts


def _labels(shapes: np.ndarray, part: np.ndarray) -> np.ndarray | None:
    """Each pixel of ``part`` to the larger shape; each label kept connected around its own
    peak (the rest to the other label). None when a peak lies outside the part."""
    t, _, x = np.indices(part.shape)
    owner = np.where(_shape(shapes[0], t, x) >= _shape(shapes[1], t, x), 1, 2)
    labels = np.where(part, owner, 0).astype(np.int32)
    peaks = []
    for shape in shapes:
        ti, _, xi = _peak_index(shape)
        if not (0 <= ti < part.shape[0] and 0 <= xi < part.shape[2] and part[ti, 0, xi]):
            return None
        peaks.append((ti, 0, xi))
    if labels[peaks[0]] == labels[peaks[1]]:
        return None
    out = np.zeros_like(labels)
    for peak in peaks:
        label = int(labels[peak])
        pieces, _ = ndimage.label(labels == label, structure=np.ones((3, 3, 3), bool))
        out[pieces == pieces[peak]] = label
    stray = part & (out == 0)
    if stray.any():  # cut off from its own peak: to the other label
        out[stray] = 3 - labels[stray]
    return out


def _peak_index(shape: np.ndarray) -> tuple[int, int, int]:
    """The ``(t, 0, x)`` sample nearest a shape's peak."""
    return int(round(_peak_time(shape))), 0, int(round(shape[1]))
