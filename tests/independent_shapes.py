"""Spark shapes that ``acquisition.simulate`` does not make, for characterization tests.

Families (ΔF/F0 as a function of time and in-plane distance ρ from the release site):

* ``diffusion``: point-source release (constant or declining flux for 4–20 ms) diffusing in 3-D
  with first-order removal, seen through a Gaussian PSF (the PSF adds to the diffusion
  variance), a saturable dye (ΔF/F0 ∝ c / (c + K)) and first-order dye kinetics: rounded peak,
  fast-then-slow decay, sharp core with broad tails;
* ``out_of_focus``: the same, 0.6–1.5 µm from the focal plane and up to 0.6 µm off the scan
  line: lower, wider, slower;
* ``alpha``: ``(1 − e^(−t/τr))^n · (w·e^(−t/τ1) + (1−w)·e^(−t/τ2))`` with a Moffat spatial profile
  (``(1 + (ρ/a)²)^(−β)``) widening over time;
* ``ember``: a smooth step up to a 50–300 ms plateau declining slowly, then an exponential decay,
  with a Moffat profile.

Recordings are sampled at pixel 0.08–0.3 µm and 0.5–3 ms/line (line-scans) or 3–20 ms/frame
(movies, averaged over the frame), with Poisson noise at a per-pixel SNR (amplitude / baseline
noise SD) of 1.5–10 and a small ΔF/F0 baseline offset (F0 error). The ground truth is measured
on the noise-free sampled signal with the events-table definitions
(:func:`acquisition.simulate.groundtruth.measure_block`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage, signal

from acquisition.simulate.groundtruth import measure_block
from engine.instances import Instance

FINE_MS = 0.25
RHO_UM = np.arange(0.0, 8.0, 0.04)
PRE_MS = 60.0
FAMILIES = ("diffusion", "out_of_focus", "alpha", "ember")


def diffusion(rng: np.random.Generator, out_of_focus: bool = False):
    """(t, ρ, ΔF/F0) table of a reaction-diffusion spark through a confocal PSF."""
    release_ms, flux_tau = rng.uniform(4, 20), rng.choice([np.inf, rng.uniform(5, 20)])
    d_um2_ms, removal_ms = rng.uniform(0.005, 0.03), rng.uniform(15, 60)
    psf_xy, psf_z = rng.uniform(0.4, 0.7), rng.uniform(0.5, 0.8)
    z0, y0 = (rng.uniform(0.6, 1.5), rng.uniform(0, 0.6)) if out_of_focus else (rng.uniform(0, 0.3), 0.0)
    lag = np.arange(1, int(300 / FINE_MS)) * FINE_MS
    var_xy, var_z = 2 * d_um2_ms * lag + psf_xy**2, 2 * d_um2_ms * lag + psf_z**2
    norm = np.exp(-lag / removal_ms) / ((2 * np.pi) ** 1.5 * var_xy * np.sqrt(var_z))
    kernel = norm[:, None] * np.exp(-(RHO_UM[None, :] ** 2 + y0**2) / (2 * var_xy[:, None])
                                    - z0**2 / (2 * var_z[:, None]))
    flux = np.exp(-np.arange(0, release_ms, FINE_MS) / flux_tau)
    conc = signal.fftconvolve(kernel, flux[:, None], axes=0)[: len(lag)]
    focus_peak = np.convolve(norm, flux)[: len(lag)].max()
    dye_k = focus_peak * rng.uniform(0.3, 3.0)
    tau_dye = rng.uniform(3, 12)
    bound = signal.lfilter([FINE_MS / tau_dye], [1, FINE_MS / tau_dye - 1], conc / (conc + dye_k),
                           axis=0)
    scale = rng.uniform(0.4, 1.6) / (focus_peak / (focus_peak + dye_k))
    return lag, bound * scale


def _moffat(rho: np.ndarray, fwhm: np.ndarray | float, beta: float) -> np.ndarray:
    a = np.asarray(fwhm) / (2 * np.sqrt(2 ** (1 / beta) - 1))
    return (1 + (rho / a) ** 2) ** (-beta)


def alpha(rng: np.random.Generator):
    """(t, ρ, ΔF/F0) table of a biexponential spark with a rounded peak, Moffat in space."""
    t = np.arange(0, 350, FINE_MS)
    n, tau_r = rng.uniform(1.5, 4), rng.uniform(2, 8)
    tau1, tau2, w = rng.uniform(5, 20), rng.uniform(25, 80), rng.uniform(0.3, 0.9)
    course = (1 - np.exp(-t / tau_r)) ** n * (w * np.exp(-t / tau1) + (1 - w) * np.exp(-t / tau2))
    course /= course.max()
    fwhm, beta, growth = rng.uniform(1.2, 2.8), rng.uniform(1.0, 3.0), rng.uniform(0, 1.0)
    widths = fwhm * np.sqrt(1 + growth * np.clip(t - t[np.argmax(course)], 0, None) / tau2)
    return t, course[:, None] * _moffat(RHO_UM[None, :], widths[:, None], beta) * rng.uniform(0.3, 1.5)


def ember(rng: np.random.Generator):
    """(t, ρ, ΔF/F0) table of a long low plateau (50–300 ms), Moffat in space."""
    t = np.arange(0, 600, FINE_MS)
    rise, plateau, tau = rng.uniform(5, 20), rng.uniform(50, 300), rng.uniform(15, 50)
    decline = rng.uniform(0, 0.3)
    up = np.clip(t / rise, 0, 1)
    level = np.where(t < rise + plateau, 1 - decline * np.clip(t - rise, 0, None) / plateau,
                     (1 - decline) * np.exp(-(t - rise - plateau) / tau))
    course = ndimage.gaussian_filter1d(up * up * (3 - 2 * up) * level, 2.0 / FINE_MS)
    course /= course.max()
    profile = _moffat(RHO_UM, rng.uniform(1.0, 2.0), rng.uniform(1.5, 4))
    return t, course[:, None] * profile[None, :] * rng.uniform(0.15, 0.5)


def table(family: str, rng: np.random.Generator):
    if family == "diffusion":
        return diffusion(rng)
    if family == "out_of_focus":
        return diffusion(rng, out_of_focus=True)
    return alpha(rng) if family == "alpha" else ember(rng)


def sample(t: np.ndarray, values: np.ndarray, rng: np.random.Generator, movie: bool):
    """Noise-free (T, Y, X) recording of the table, its pixel size and sampling interval."""
    px = rng.uniform(0.1, 0.3) if movie else rng.uniform(0.08, 0.3)
    dt = rng.uniform(3.0, 20.0) if movie else rng.uniform(0.5, 3.0)
    times = np.arange(int((PRE_MS + t[-1]) / dt)) * dt - PRE_MS - rng.uniform(0, dt)
    offsets = np.linspace(0, dt, max(2, int(dt / FINE_MS)), endpoint=False) if movie else [0.0]
    course = np.mean([_at_times(t, values, times + o) for o in offsets], axis=0)
    xs = np.arange(int(12 / px)) * px - 6 + rng.uniform(-px / 2, px / 2)
    ys = np.zeros(1)
    if movie:
        ys = np.arange(int(6 / px)) * px - 3 + rng.uniform(-px / 2, px / 2)
    rho = np.hypot(xs[None, :], ys[:, None]).ravel()
    clean = np.stack([np.interp(rho, RHO_UM, row).reshape(len(ys), len(xs)) for row in course])
    return clean, px, dt


def _at_times(t: np.ndarray, values: np.ndarray, times: np.ndarray) -> np.ndarray:
    index = np.clip((times - t[0]) / (t[1] - t[0]), 0, len(t) - 1)
    lo = np.floor(index).astype(int)
    hi = np.minimum(lo + 1, len(t) - 1)
    frac = (index - lo)[:, None]
    out = values[lo] * (1 - frac) + values[hi] * frac
    out[times < t[0]] = 0.0
    return out


def instance_of(clean: np.ndarray, dff0: np.ndarray, px: float, dt: float, movie: bool,
                fraction: float = 0.2) -> Instance:
    """The event's mask (≥ ``fraction`` of its peak) with the engine's context around it."""
    labels, _ = ndimage.label(clean >= fraction * clean.max())
    mask = labels == labels[np.unravel_index(np.argmax(clean), clean.shape)]
    box = ndimage.find_objects(mask.astype(np.int32))[0]
    before, after, margin = math.ceil(25 / dt), math.ceil(30 / dt), math.ceil(2.5 / px)
    lo = (max(0, box[0].start - before), max(0, box[1].start - margin * movie),
          max(0, box[2].start - margin))
    hi = (box[0].stop + after, box[1].stop + margin * movie, box[2].stop + margin)
    crop = dff0[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.float32)
    return Instance("spark", 0.9, mask[box], tuple(s.start for s in box), crop, lo,
                    "TYX" if movie else "TX")


def case(family: str, rng: np.random.Generator, movie: bool, snr: float | None = None):
    """(instance, pixel_um, dt_ms, truth, clean) of one noisy event of ``family``."""
    t, values = table(family, rng)
    clean, px, dt = sample(t, values, rng, movie)
    if snr is None:
        snr = math.exp(rng.uniform(math.log(1.5), math.log(10)))
    photons = (snr / clean.max()) ** 2
    dff0 = rng.poisson(photons * (1 + clean)) / photons - 1 + rng.normal(0, 0.015)
    truth = measure_block(clean, (0, 0, 0), dt, px)
    return instance_of(clean, dff0, px, dt, movie), px, dt, truth, clean
