"""The simulated cell: outline, resting-fluorescence structure, nucleus and release sites.

A ventricular myocyte is modelled as a rounded rectangle (full-frame) or as a segment of the
scan line (line-scan: the line runs along the long axis and leaves the cell at both ends, so
that dark extracellular pixels are available to estimate the offset). Its resting
fluorescence, relative to the mean cytosol, is

``edge(d) × (1 + c·cos(2π x / s)) × (1 + smooth random field) × nucleus``

with a logistic edge of width ``edge_width_um`` on the signed distance ``d`` to the outline,
striations of period ``s`` = 1.8 µm (sarcomere length) and contrast ``c``, and a dimmer
(configurable) elliptical nucleus. Ca²⁺ release sites (RyR2 clusters) lie on the z-lines,
i.e. at the striation maxima, away from the edge and the nucleus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .params import CellParams

SITE_MARGIN_UM = 1.0


@dataclass
class CellModel:
    """Geometry of one simulated cell on the pixel grid.

    Attributes
    ----------
    resting
        Relative resting fluorescence, ``(X,)`` or ``(Y, X)`` float32, ≈1 in the cytosol,
        ≈0 outside the cell.
    inside
        Boolean cell mask (signed distance < 0); events are only labelled inside it.
    sites
        Boolean mask of pixels where release sites may sit (inside, ≥ 1 µm from the edge,
        outside the nucleus).
    z_lines_um
        x positions of the z-lines (µm from pixel 0).
    pixel_um
        Pixel size.
    """

    resting: np.ndarray
    inside: np.ndarray
    sites: np.ndarray
    z_lines_um: np.ndarray
    pixel_um: float

    @property
    def length_um(self) -> float:
        """Extent of the cell along x (µm)."""
        cols = np.flatnonzero(self.inside.reshape(-1, self.inside.shape[-1]).any(axis=0))
        return float((cols[-1] - cols[0] + 1) * self.pixel_um) if cols.size else 0.0

    @property
    def area_um2(self) -> float:
        """Cell area (µm²; for a line-scan the cell length in µm)."""
        return float(self.inside.sum()) * self.pixel_um ** self.inside.ndim


def _logistic_edge(signed_distance_um: np.ndarray, edge_width_um: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(signed_distance_um / (edge_width_um / 4.0)))


def _smooth_field(shape: tuple[int, ...], sigma_px: float, sd: float,
                  rng: np.random.Generator) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_px, mode="wrap")
    return sd * field / max(float(field.std()), 1e-12)


def _striations(x_um: np.ndarray, cell: CellParams, phase_um: float) -> np.ndarray:
    return 1.0 + cell.striation_contrast * np.cos(2 * np.pi * (x_um - phase_um) / cell.striation_spacing_um)


def _z_lines(x_lo_um: float, x_hi_um: float, cell: CellParams, phase_um: float) -> np.ndarray:
    spacing = cell.striation_spacing_um
    first = phase_um + np.ceil((x_lo_um - phase_um) / spacing) * spacing
    return np.arange(first, x_hi_um, spacing)


def _finish(distance_um: np.ndarray, nucleus: np.ndarray, x_um: np.ndarray, cell: CellParams,
            pixel_um: float, rng: np.random.Generator) -> CellModel:
    """Combine outline, striations, nucleus and inhomogeneity into a :class:`CellModel`."""
    phase_um = float(rng.uniform(0, cell.striation_spacing_um))
    resting = _logistic_edge(distance_um, cell.edge_width_um) * _striations(x_um, cell, phase_um)
    resting *= 1.0 + _smooth_field(distance_um.shape, 3.0 / pixel_um, cell.inhomogeneity, rng)
    resting *= np.where(nucleus, cell.nucleus_brightness, 1.0)
    inside = distance_um < 0
    sites = (distance_um < -SITE_MARGIN_UM) & ~ndimage.binary_dilation(nucleus, iterations=2)
    cols = np.flatnonzero(inside.reshape(-1, inside.shape[-1]).any(axis=0))
    z_lines = _z_lines(cols[0] * pixel_um, cols[-1] * pixel_um, cell, phase_um)
    return CellModel(np.clip(resting, 0, None).astype(np.float32), inside, sites, z_lines, pixel_um)


def linescan_cell(n_pixels: int, pixel_um: float, cell: CellParams,
                  rng: np.random.Generator) -> CellModel:
    """A cell crossed by the scan line along its long axis, leaving it near both ends."""
    x_um = np.arange(n_pixels) * pixel_um
    line_um = n_pixels * pixel_um
    left_um = rng.uniform(0.05, 0.11) * line_um
    right_um = line_um - rng.uniform(0.05, 0.11) * line_um
    distance_um = np.maximum(left_um - x_um, x_um - right_um)
    nucleus = np.zeros(n_pixels, bool)
    # the line crosses the nucleus in some cells (when the scanned stretch is long enough)
    if rng.random() < 0.4 and right_um - left_um > 24.0 + 10.0:
        centre_um = rng.uniform(left_um + 12, right_um - 12)
        nucleus = np.abs(x_um - centre_um) < rng.uniform(3.0, 5.0)
    return _finish(distance_um, nucleus, x_um, cell, pixel_um, rng)


def _rounded_box_distance(x_um: np.ndarray, y_um: np.ndarray, half_x_um: float,
                          half_y_um: float, radius_um: float) -> np.ndarray:
    """Exact signed distance to a rounded rectangle centred at the origin (µm)."""
    qx = np.abs(x_um) - (half_x_um - radius_um)
    qy = np.abs(y_um) - (half_y_um - radius_um)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0) - radius_um


def movie_cell(n_y: int, n_x: int, pixel_um: float, cell: CellParams,
               rng: np.random.Generator) -> CellModel:
    """A rounded-rectangle myocyte lying along x, with extracellular space on every side."""
    y_um, x_um = np.mgrid[0:n_y, 0:n_x] * pixel_um
    height_um, width_um = n_y * pixel_um, n_x * pixel_um
    half_y = rng.uniform(0.33, 0.4) * height_um
    half_x = rng.uniform(0.4, 0.46) * width_um
    cy = height_um / 2 + rng.uniform(-0.3, 0.3) * (height_um / 2 - half_y)
    cx = width_um / 2 + rng.uniform(-0.5, 0.5) * (width_um / 2 - half_x)
    radius = rng.uniform(0.6, 0.95) * half_y
    distance_um = _rounded_box_distance(x_um - cx, y_um - cy, half_x, half_y, radius)
    nx_um, ny_um = rng.uniform(3.5, 5.0), rng.uniform(0.45, 0.6) * half_y
    ncx = cx + rng.uniform(-0.4, 0.4) * half_x
    nucleus = ((x_um - ncx) / nx_um) ** 2 + ((y_um - cy) / ny_um) ** 2 < 1
    return _finish(distance_um, nucleus, x_um, cell, pixel_um, rng)
