"""The imaged cell: where it is, its resting fluorescence and its Ca²⁺ release sites.

Resting fluorescence is heterogeneous the way it is in dye-loaded myocytes: striations at the
sarcomere period whose contrast and phase wander along the cell, a fine mitochondrial texture
and a slow large-scale gradient, a nucleus that is dimmer or brighter than the cytosol and has
no release sites, soft cell edges, and extracellular pixels (no dye: only offset and noise).
Release sites (CRUs) sit on the z-lines (the bright-band positions), ~0.7 µm apart across them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from offline.devsim.params import DevParams, draw

EDGE_UM = 0.3          # width of the soft cell edge
SITE_JITTER_UM = 0.08  # CRU position scatter around its z-line
SITE_SPACING_UM = 0.7  # CRU spacing across a z-line
MIN_EDGE_DISTANCE_UM = 1.0


@dataclass
class CellLayout:
    """Spatial maps (``(X,)`` or ``(Y, X)``) and release sites ``(n, 2)`` as (y, x) in µm."""

    inside: np.ndarray
    nucleus: np.ndarray
    resting: np.ndarray
    sites_um: np.ndarray

    def cytosol_extent(self, pixel_um: float) -> float:
        """Length (µm, line-scans) or area (µm², movies) of the cytosol outside the nucleus."""
        return float(np.count_nonzero(self.inside & ~self.nucleus)) * pixel_um**self.inside.ndim


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_px: float) -> np.ndarray:
    """Gaussian-filtered white noise scaled to unit SD."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), max(sigma_px, 0.5), mode="wrap")
    return field / max(float(field.std()), 1e-9)


def _sigmoid(d_um: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(d_um / EDGE_UM * 4.0, -30, 30)))


def _striations(rng: np.random.Generator, along_um: np.ndarray, params: DevParams,
                pixel_um: float) -> tuple[np.ndarray, float, float]:
    """Relative brightness ``1 + c·cos(2π(u − φ)/s)`` with wandering contrast and phase."""
    shape = along_um.shape
    period = draw(rng, params.sarcomere_um)
    phase0 = float(rng.uniform(0, period))
    phase = phase0 + 0.15 * smooth_noise(rng, shape, 6.0 / pixel_um)
    contrast = draw(rng, params.striation_contrast) * np.clip(
        1.0 + 0.4 * smooth_noise(rng, shape, 8.0 / pixel_um), 0.1, 1.6)
    bands = 1.0 + contrast * np.cos(2 * np.pi * (along_um - phase) / period)
    texture = (1.0 + 0.05 * smooth_noise(rng, shape, 0.4 / pixel_um)
               + 0.08 * smooth_noise(rng, shape, 12.0 / pixel_um))
    return bands * np.clip(texture, 0.5, None), period, phase0


def linescan_layout(n_px: int, pixel_um: float, params: DevParams,
                    rng: np.random.Generator) -> CellLayout:
    """A scan line along the cell's long axis, with the cell's ends possibly inside it."""
    x = np.arange(n_px) * pixel_um
    length = n_px * pixel_um
    ends = [draw(rng, params.extracellular_fraction, log=False) * length
            if rng.random() < params.cell_end_probability else -1.0 for _ in range(2)]
    edge = _sigmoid(x - ends[0]) * _sigmoid(length - ends[1] - x)
    bright, period, phase = _striations(rng, x, params, pixel_um)
    nucleus = np.zeros(n_px)
    inner = (x > ends[0] + 8) & (x < length - ends[1] - 8)
    if rng.random() < params.nucleus_probability and inner.any():
        centre, half = float(rng.choice(x[inner])), float(rng.uniform(4.0, 7.5))
        nucleus = _sigmoid(half - np.abs(x - centre))
        bright = bright * (1 - nucleus) + draw(rng, params.nucleus_brightness) * nucleus
    inside = edge > 0.5
    z_lines = np.arange(phase, length, period)
    xs = z_lines + rng.normal(0, SITE_JITTER_UM, len(z_lines))
    sites = np.stack([np.zeros_like(xs), xs], axis=1)
    return CellLayout(inside, nucleus > 0.5, (edge * bright).astype(np.float32),
                      keep_sites(sites, inside, nucleus > 0.5, pixel_um))


def movie_layout(n_rows: int, n_cols: int, pixel_um: float, params: DevParams,
                 rng: np.random.Generator) -> CellLayout:
    """A cell lying along X: extracellular rows above/below, maybe one rounded end."""
    y, x = np.mgrid[0:n_rows, 0:n_cols] * pixel_um
    height, width = n_rows * pixel_um, n_cols * pixel_um
    gap = draw(rng, params.extracellular_fraction, log=False) * height
    top = float(rng.uniform(0, gap)) + 0.3 * smooth_noise(rng, (n_cols,), 5.0 / pixel_um)
    bottom = height - (gap - top.mean()) + 0.3 * smooth_noise(rng, (n_cols,), 5.0 / pixel_um)
    edge = _sigmoid(y - top[None, :]) * _sigmoid(bottom[None, :] - y)
    if rng.random() < 0.4:  # one end of the cell in the field, rounded
        end = float(rng.uniform(0.05, 0.2)) * width
        dx = x - end if rng.random() < 0.5 else (width - end) - x
        mid = 0.5 * (top.mean() + bottom.mean())
        radius = 0.5 * (bottom.mean() - top.mean())
        dist = np.where(dx < radius, radius - np.hypot(radius - dx, y - mid), 10.0)
        edge = edge * _sigmoid(dist)
    tilt = math.radians(float(rng.uniform(-4, 4)))
    along = x * math.cos(tilt) + y * math.sin(tilt)
    bright, period, phase = _striations(rng, along, params, pixel_um)
    nucleus = np.zeros_like(edge)
    if rng.random() < params.nucleus_probability:
        cy, cx = float(np.mean(top) + np.mean(bottom)) / 2, float(rng.uniform(0.2, 0.8) * width)
        ay = max(1.5, float(rng.uniform(0.25, 0.4)) * (bottom.mean() - top.mean()))
        ax = float(rng.uniform(3.0, 6.0))
        nucleus = _sigmoid((1 - np.hypot((x - cx) / ax, (y - cy) / ay)) * min(ax, ay))
        bright = bright * (1 - nucleus) + draw(rng, params.nucleus_brightness) * nucleus
    inside = edge > 0.5
    return CellLayout(inside, nucleus > 0.5, (edge * bright).astype(np.float32),
                      keep_sites(_movie_sites(rng, period, phase, tilt, height, width),
                                  inside, nucleus > 0.5, pixel_um))


def _movie_sites(rng, period: float, phase: float, tilt: float, height: float,
                 width: float) -> np.ndarray:
    rows = np.arange(rng.uniform(0, SITE_SPACING_UM), height, SITE_SPACING_UM)
    lines = np.arange(phase - period * math.ceil(height / period), width + height, period)
    ys, us = np.meshgrid(rows, lines, indexing="ij")
    xs = (us - ys * math.sin(tilt)) / math.cos(tilt)
    sites = np.stack([ys.ravel(), xs.ravel()], axis=1)
    return sites + rng.normal(0, SITE_JITTER_UM, sites.shape)


def keep_sites(sites_um: np.ndarray, inside: np.ndarray, nucleus: np.ndarray,
                pixel_um: float) -> np.ndarray:
    """Sites in the cytosol, ≥ 1 µm from the cell edge and the nucleus."""
    usable = inside & ~nucleus
    margin = ndimage.distance_transform_edt(usable) * pixel_um >= MIN_EDGE_DISTANCE_UM
    if inside.ndim == 1:
        idx = np.round(sites_um[:, 1] / pixel_um).astype(int)
        ok = (idx >= 0) & (idx < inside.shape[0])
        ok[ok] = margin[idx[ok]]
    else:
        iy = np.round(sites_um[:, 0] / pixel_um).astype(int)
        ix = np.round(sites_um[:, 1] / pixel_um).astype(int)
        ok = (iy >= 0) & (iy < inside.shape[0]) & (ix >= 0) & (ix < inside.shape[1])
        ok[ok] = margin[iy[ok], ix[ok]]
    return sites_um[ok]
