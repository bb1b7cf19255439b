"""Pseudo-Voigt fit of a spatial profile: a flexible denoiser for FWHM at low SNR.

The model is ``g·G(x) + l·L(x)`` with a Gaussian ``G`` and a Lorentzian ``L`` of the *same*
FWHM ``W`` centred at ``c`` (``g, l ≥ 0``): from a pure Gaussian to a sharp core with broad
tails (what a confocal spark profile looks like), and its FWHM is ``W`` whatever the mix. For
a given ``(c, W)`` the model is linear in ``(g, l)``, so ``(c, W)`` are searched on grids (one
coarse, then finer and finer ones, all candidates of a grid at once) and ``(g, l)`` solved by least squares. The fit uses
the whole profile (±``window`` px), so it averages far more noise than the half-maximum
crossings of a noisy profile; it is used only when it fits within the noise (see
:func:`engine.characterize.characterize`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FOUR_LN2 = 4.0 * math.log(2.0)
#: relative widths tried around the first guess (coarse), then around the best (fine)
COARSE_WIDTHS = np.geomspace(0.5, 2.0, 13)
FINE_WIDTHS = np.geomspace(0.93, 1.075, 7)
#: centre offsets (px) tried around the guess, then around the best
COARSE_SHIFTS = np.linspace(-1.5, 1.5, 7)
#: rounds of the fine grid, each 4× finer than the last
REFINEMENTS = 3
#: the Lorentzian share must lower the SSE by this many noise variances to be kept (the
#: default; a model's ``characterize.lorentz_penalty`` sets its own: 32 for line-scans)
LORENTZ_PENALTY = 8.0
FINE_SHIFTS = np.linspace(-0.25, 0.25, 5)


@dataclass(frozen=True)
class VoigtFit:
    """FWHM (px), centre (px), peak value at the sample nearest the centre, reduced χ²."""

    fwhm: float
    centre: float
    peak_value: float
    chi2: float
    weights: tuple[float, float] = (1.0, 0.0)

    def values(self, x: np.ndarray) -> np.ndarray:
        """The fitted profile at positions ``x`` (px)."""
        columns = _design(np.asarray(x, np.float64), np.array([self.centre]),
                          np.array([self.fwhm]))[0]
        return columns @ np.asarray(self.weights)


def fit_pseudo_voigt(profile: np.ndarray, centre: float, fwhm_guess: float, window: int,
                     noise_sd: float, lorentz_penalty: float = LORENTZ_PENALTY
                     ) -> VoigtFit | None:
    """Fit ``profile`` within ``centre ± window`` (see the module docstring); a Lorentzian
    share is kept only where it lowers the SSE by ``lorentz_penalty`` noise variances.

    Returns None with fewer than 6 samples, a non-positive guess or no positive fit.
    """
    lo, hi = max(0, int(centre) - window), min(len(profile), int(centre) + window + 1)
    x = np.arange(lo, hi, dtype=np.float64)
    y = np.asarray(profile[lo:hi], np.float64)
    if len(x) < 6 or not fwhm_guess > 0:
        return None
    fits = []
    for gaussian_only in (True, False):
        best = _search(x, y, centre + COARSE_SHIFTS, fwhm_guess * COARSE_WIDTHS, gaussian_only)
        for zoom in range(REFINEMENTS):  # each round searches a grid 4× finer
            if best is None:
                break
            scale = 0.25**zoom
            best = _search(x, y, best[1] + FINE_SHIFTS * scale, best[2] * FINE_WIDTHS**scale,
                           gaussian_only) or best
        if best is not None:
            fits.append(best)
    if not fits:
        return None
    variance = max(noise_sd, 1e-12) ** 2
    sse, c, width, coef = min(fits, key=lambda f: f[0] + (0.0 if f[3][1] == 0 else
                                                          lorentz_penalty * variance))
    nearest = float(np.clip(round(c), x[0], x[-1]))
    peak_value = float(_design(np.array([nearest]), np.array([c]), np.array([width]))[0, 0] @ coef)
    chi2 = sse / (max(noise_sd, 1e-12) ** 2 * max(len(x) - 4, 1))
    return VoigtFit(float(width), float(c), peak_value, float(chi2),
                    (float(coef[0]), float(coef[1])))


def _design(x: np.ndarray, centres: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """(candidates, samples, 2): Gaussian and Lorentzian columns of each candidate."""
    d2 = (x[None, :] - centres[:, None]) ** 2 / (widths[:, None] ** 2)
    return np.stack([np.exp(-FOUR_LN2 * d2), 1.0 / (1.0 + 4.0 * d2)], axis=2)


def _search(x: np.ndarray, y: np.ndarray, centres: np.ndarray, widths: np.ndarray,
            gaussian_only: bool) -> tuple[float, float, float, np.ndarray] | None:
    """Best (SSE, centre, width, (g, l)) over the grid of ``centres × widths``."""
    cc, ww = (a.ravel() for a in np.meshgrid(centres, widths))
    design = _design(x, cc, ww)
    gauss, lorentz = design[..., 0], design[..., 1]
    sgg, sgl, sll = (gauss * gauss).sum(1), (gauss * lorentz).sum(1), (lorentz * lorentz).sum(1)
    rg, rl = gauss @ y, lorentz @ y
    det = np.maximum(sgg * sll - sgl * sgl, 1e-12)
    coef = np.stack([(sll * rg - sgl * rl) / det, (sgg * rl - sgl * rg) / det], axis=1)
    single = np.stack([np.clip(rg / sgg, 0, None), np.zeros(len(cc))], 1)
    single_l = np.stack([np.zeros(len(cc)), np.clip(rl / sll, 0, None)], 1)
    if gaussian_only:
        coef = single
        sse = _sse(design, y, coef)
    else:
        coef = np.where((coef < 0).any(axis=1, keepdims=True), single, coef)
        sse = _sse(design, y, coef)
        sse_l = _sse(design, y, single_l)
        use_l = sse_l < sse
        coef[use_l], sse[use_l] = single_l[use_l], sse_l[use_l]
    sse[coef.sum(axis=1) <= 0] = np.inf
    k = int(np.argmin(sse))
    if not np.isfinite(sse[k]):
        return None
    return float(sse[k]), float(cc[k]), float(ww[k]), coef[k]


def _sse(design: np.ndarray, y: np.ndarray, coef: np.ndarray) -> np.ndarray:
    residual = y[None, :] - design[..., 0] * coef[:, :1] - design[..., 1] * coef[:, 1:]
    return (residual * residual).sum(axis=1)
