"""Cell and non-cell outlines as boolean masks on a local pixel grid (sizes in µm).

Every function returns ``(mask, long_axis_deg)``: a tight boolean mask and the direction of
the object's long axis (degrees from +x, y pointing down, in [0, 180)).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from skimage.draw import polygon as draw_polygon

Mask = tuple[np.ndarray, float]


def _grid(half_extent_um: float, pixel_um: float) -> tuple[np.ndarray, np.ndarray]:
    n = int(np.ceil(half_extent_um / pixel_um))
    coords = np.arange(-n, n + 1) * pixel_um
    return np.meshgrid(coords, coords, indexing="ij")  # (y, x) in µm


def _rotated(y_um: np.ndarray, x_um: np.ndarray, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates along (u) and across (v) the direction ``angle_deg``."""
    a = np.deg2rad(angle_deg)
    return x_um * np.cos(a) + y_um * np.sin(a), -x_um * np.sin(a) + y_um * np.cos(a)


def _tight(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("empty shape")
    return mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def radial_mask(radius_um: Callable[[np.ndarray], np.ndarray], max_radius_um: float,
                elongation: float, angle_deg: float, pixel_um: float) -> Mask:
    """A star-shaped outline ``r <= radius_um(phi)``, stretched by ``elongation`` along
    ``angle_deg``."""
    y, x = _grid(max_radius_um * elongation + 1.0, pixel_um)
    u, v = _rotated(y, x, angle_deg)
    u = u / np.sqrt(elongation)
    v = v * np.sqrt(elongation)
    return _tight(np.hypot(u, v) <= radius_um(np.arctan2(v, u))), angle_deg % 180.0


def harmonic_radius(rng: np.random.Generator, radius_um: float, roughness: float,
                    orders: range = range(2, 7)) -> Callable[[np.ndarray], np.ndarray]:
    """``r(phi) = R (1 + sum_k a_k cos(k phi + p_k))`` with random amplitudes ~ roughness/k."""
    amps = rng.uniform(0, roughness, len(orders)) / np.array(list(orders)) * 2
    phases = rng.uniform(0, 2 * np.pi, len(orders))

    def radius(phi: np.ndarray) -> np.ndarray:
        wobble = sum(a * np.cos(k * phi + p) for a, k, p in zip(amps, orders, phases, strict=True))
        return radius_um * (1 + wobble)
    return radius


def spread_cell(rng: np.random.Generator, pixel_um: float) -> Mask:
    """hiPSC-CM-like spread cell: irregular, 24–44 µm across, lobed outline."""
    radius = rng.uniform(12.0, 22.0)
    fn = harmonic_radius(rng, radius, roughness=0.3)
    return radial_mask(fn, radius * 1.7, rng.uniform(1.0, 1.6), rng.uniform(0, 180), pixel_um)


def polygonal_cell(rng: np.random.Generator, pixel_um: float) -> Mask:
    """Neonatal-like polygonal cell: 5–7 corners, 18–32 µm across, mildly elongated."""
    radius = rng.uniform(9.0, 16.0)
    n = int(rng.integers(5, 8))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = radius * rng.uniform(0.75, 1.25, n)
    elongation, angle = rng.uniform(1.0, 1.8), rng.uniform(0, 180)
    u = radii * np.cos(angles) * np.sqrt(elongation)
    v = radii * np.sin(angles) / np.sqrt(elongation)
    a = np.deg2rad(angle)
    x, y = u * np.cos(a) - v * np.sin(a), u * np.sin(a) + v * np.cos(a)
    half = radius * 1.25 * np.sqrt(elongation) + 1.0
    size = int(np.ceil(2 * half / pixel_um)) + 1
    mask = np.zeros((size, size), bool)
    rr, cc = draw_polygon((y + half) / pixel_um, (x + half) / pixel_um, mask.shape)
    mask[rr, cc] = True
    return _tight(mask), angle


def rod_cell(rng: np.random.Generator, pixel_um: float) -> Mask:
    """Adult ventricular rod: 60–110 µm long, 14–24 µm wide, stepped (intercalated) ends."""
    length, width = rng.uniform(60.0, 110.0), rng.uniform(14.0, 24.0)
    angle = rng.uniform(0, 180)
    y, x = _grid(length / 2 + 1.0, pixel_um)
    u, v = _rotated(y, x, angle)
    half_len = length / 2 - width / 2
    # width varies slowly along the cell; the ends are stepped by a per-side offset
    wobble = 1 + 0.08 * np.sin(2 * np.pi * u / length * rng.uniform(1, 3) + rng.uniform(0, 6))
    s = rng.uniform(-4, 4, 4)
    steps = np.where(u > 0, np.where(v > 0, s[0], s[1]), np.where(v > 0, s[2], s[3]))
    along = np.clip(np.abs(u) - half_len - steps, 0, None)
    inside = np.hypot(along, v / wobble) <= width / 2
    return _tight(inside), angle % 180.0


def spindle(rng: np.random.Generator, pixel_um: float) -> Mask:
    """Fibroblast-like spindle: 30–60 µm long, 6–12 µm wide, pointed ends."""
    length, width = rng.uniform(30.0, 60.0), rng.uniform(6.0, 12.0)
    angle = rng.uniform(0, 180)
    y, x = _grid(length / 2 + 1.0, pixel_um)
    u, v = _rotated(y, x, angle)
    inside = (np.abs(u) / (length / 2)) ** 1.3 + (np.abs(v) / (width / 2)) ** 2 <= 1
    return _tight(inside), angle % 180.0


def disk(rng: np.random.Generator, pixel_um: float) -> Mask:
    """Dead, rounded cell: 10–18 µm across, nearly circular."""
    radius = rng.uniform(5.0, 9.0)
    fn = harmonic_radius(rng, radius, roughness=0.04)
    return radial_mask(fn, radius * 1.2, 1.0, 0.0, pixel_um)


def debris(rng: np.random.Generator, pixel_um: float) -> Mask:
    """Debris: irregular blob, 2–10 µm across."""
    radius = rng.uniform(1.0, 5.0)
    fn = harmonic_radius(rng, radius, roughness=0.5, orders=range(2, 5))
    return radial_mask(fn, radius * 2.2, rng.uniform(1.0, 2.5), rng.uniform(0, 180), pixel_um)


CELL_SHAPES = {"adult": rod_cell, "neonatal": polygonal_cell, "ipsc": spread_cell}
