"""Z-disc marker patterns inside one object's mask (sharp signal, before the PSF).

Cardiomyocytes get a hidden organisation ``o`` in [1, 5] that sets the area fractions of
Gerbin et al.'s local patterns (Z-discs, fibres, organized puncta = beaded rows,
disorganized puncta, diffuse), the number of myofibril-direction domains and their angular
spread. Regions are laid out by quantiles of one smooth random field, so mature (Z-disc)
regions border fibres, then beaded rows, then puncta — as in maturing hiPSC-CMs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .params import PATTERN_CLASSES, RenderStyle

ZDISC, FIBRES, ORG_PUNCTA, DIS_PUNCTA, DIFFUSE = (PATTERN_CLASSES.index(n) for n in (
    "zdiscs", "fibres", "organized_puncta", "disorganized_puncta", "diffuse"))
_ORGANISATION_RANGE = {"adult": (3.6, 5.0), "neonatal": (1.5, 5.0), "ipsc": (1.0, 5.0)}
_SARCOMERE_RANGE_UM = {"adult": (1.85, 2.1), "neonatal": (1.7, 2.0), "ipsc": (1.7, 1.95)}


@dataclass
class CellTruth:
    """Hidden variables of one cardiomyocyte (ground truth before rendering)."""

    source: str
    organisation: float            # continuous, 1 (puncta) … 5 (aligned Z-discs)
    sarcomere_length_um: float
    orientation_deg: float         # main myofibril direction, degrees from +x (y down)
    angle_spread_deg: float        # SD of domain directions around the main one
    n_domains: int
    fractions: dict[str, float] = field(default_factory=dict)  # target pattern fractions
    realized_spread_deg: float = float("nan")  # SD of directions actually rendered
    #: rendered myofibril direction (rad, from +x, y down) over the cell's window; NaN
    #: outside its oriented pixels (Z-discs, fibres, beaded rows) — the field the
    #: directionality rating's spread is taken over
    direction_rad: np.ndarray | None = field(default=None, repr=False)


def draw_cell_truth(rng: np.random.Generator, source: str, long_axis_deg: float) -> CellTruth:
    """Hidden variables of a cardiomyocyte of ``source`` (adult rods align with their axis)."""
    o = float(rng.uniform(*_ORGANISATION_RANGE[source]))
    spread = float(np.clip(12.0 * (5.0 - o) + rng.normal(0, 5.0), 2.0, 70.0))
    n_domains = 1 + int(rng.poisson(1.5 * max(0.0, 5.0 - o)))
    base = long_axis_deg if source == "adult" else rng.uniform(0, 180)
    zdisc = float(np.clip((o - 2.2) / 2.3 + rng.normal(0, 0.08), 0, 1))
    weights = np.array([np.exp(-((o - 3.1) / 0.8) ** 2), np.exp(-((o - 2.2) / 0.7) ** 2),
                        np.exp(-((o - 1.2) / 0.8) ** 2), 0.25])
    rest = (1 - zdisc) * weights / weights.sum()
    fractions = dict(zip(("zdiscs", "fibres", "organized_puncta", "disorganized_puncta",
                          "diffuse"), [zdisc, *rest.tolist()], strict=True))
    length = float(rng.uniform(*_SARCOMERE_RANGE_UM[source]))
    return CellTruth(source, o, length, float(base) % 180.0, spread, n_domains, fractions)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_px: float) -> np.ndarray:
    """Gaussian-filtered white noise scaled to unit SD."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), max(sigma_px, 0.5), mode="wrap")
    return noise / (noise.std() + 1e-12)


def _nearest_integer_distance(values: np.ndarray) -> np.ndarray:
    frac = values - np.floor(values)
    return np.minimum(frac, 1 - frac)


def _orientation_field(rng, mask, truth, pixel_um):
    """Per-pixel myofibril angle (rad), domain index (Voronoi domains of random seeds) and
    the seeds (µm). Angles are constant per domain, so the local period is exactly the
    sarcomere length everywhere (jitter displaces discs without changing their period)."""
    rows, cols = np.nonzero(mask)
    pick = rng.choice(rows.size, size=min(truth.n_domains, rows.size), replace=False)
    seeds = np.stack([rows[pick], cols[pick]], axis=1)
    yy, xx = np.indices(mask.shape)
    _, domain = cKDTree(seeds).query(np.stack([yy.ravel(), xx.ravel()], 1))
    domain = domain.reshape(mask.shape)
    angles = np.deg2rad(truth.orientation_deg + rng.normal(0, truth.angle_spread_deg,
                                                           len(seeds)))
    angles[0] = np.deg2rad(truth.orientation_deg)  # the largest share follows the main axis
    return angles[domain], domain, seeds * pixel_um


def _myofibril_coordinates(rng, mask, truth, pixel_um, style):
    """Distances (µm) to the nearest Z-disc along and to the nearest myofibril axis across."""
    theta, domain, seeds_um = _orientation_field(rng, mask, truth, pixel_um)
    yy, xx = np.indices(mask.shape) * pixel_um
    cy, cx = seeds_um[domain, 0], seeds_um[domain, 1]  # each domain's own origin
    along = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
    across = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
    along += rng.uniform(0, truth.sarcomere_length_um, domain.max() + 1)[domain]
    along += style.disc_jitter_um * smooth_noise(rng, mask.shape, 0.8 / pixel_um)
    spacing = rng.uniform(*style.myofibril_spacing_um)
    disc_um = truth.sarcomere_length_um * _nearest_integer_distance(
        along / truth.sarcomere_length_um)
    fibre_um = spacing * _nearest_integer_distance(across / spacing)
    return disc_um, fibre_um, spacing, theta


def _regions(rng, mask, fractions, pixel_um) -> np.ndarray:
    """Pattern class per pixel inside ``mask`` by quantiles of a smooth random field."""
    order = ("zdiscs", "fibres", "organized_puncta", "disorganized_puncta", "diffuse")
    values = smooth_noise(rng, mask.shape, 3.0 / pixel_um)[mask]
    ranks = np.empty(values.size)
    ranks[np.argsort(-values)] = np.arange(values.size) / max(values.size, 1)
    bounds = np.cumsum([fractions[name] for name in order])
    region = np.zeros(mask.shape, np.uint8)
    region[mask] = np.array([PATTERN_CLASSES.index(n) for n in order], np.uint8)[
        np.minimum(np.searchsorted(bounds, ranks, side="right"), len(order) - 1)]
    return region


def puncta(rng, region_mask, density_per_um2, sigma_um, pixel_um) -> np.ndarray:
    """Gaussian puncta (peak ≈ 1) at Poisson positions inside ``region_mask``."""
    area_um2 = region_mask.sum() * pixel_um ** 2
    impulses = np.zeros(region_mask.shape)
    rows, cols = np.nonzero(region_mask)
    if rows.size:
        pick = rng.integers(0, rows.size, rng.poisson(density_per_um2 * area_um2))
        np.add.at(impulses, (rows[pick], cols[pick]), rng.uniform(0.5, 1.5, pick.size))
    sigma_px = sigma_um / pixel_um
    return ndimage.gaussian_filter(impulses, sigma_px) * 2 * np.pi * sigma_px ** 2


def _nucleus(rng, mask, pixel_um) -> np.ndarray:
    inner = ndimage.distance_transform_edt(mask) * pixel_um
    if inner.max() < 5.0:
        return np.zeros_like(mask)
    rows, cols = np.nonzero(inner >= min(5.0, inner.max() * 0.6))
    k = rng.integers(rows.size)
    yy, xx = np.indices(mask.shape) * pixel_um
    a, b, phi = rng.uniform(3.5, 5.0), rng.uniform(2.5, 3.5), rng.uniform(0, np.pi)
    du, dv = xx - cols[k] * pixel_um, yy - rows[k] * pixel_um
    u = du * np.cos(phi) + dv * np.sin(phi)
    v = -du * np.sin(phi) + dv * np.cos(phi)
    return ((u / a) ** 2 + (v / b) ** 2 <= 1) & mask


def _sparse_fibres(rng, fibre_um, spacing_um, pixel_um) -> np.ndarray:
    """Non-periodic fibres: every myofibril axis, each kept or dropped by a smooth random
    field, with varying brightness (no lateral period to mistake for sarcomeres)."""
    keep = smooth_noise(rng, fibre_um.shape, 1.5 / pixel_um) > 0.3
    brightness = 1 + 0.4 * smooth_noise(rng, fibre_um.shape, 1.0 / pixel_um)
    return np.exp(-0.5 * (fibre_um / 0.12) ** 2) * keep * np.clip(brightness, 0.2, None)


def render_cardiomyocyte(rng: np.random.Generator, mask: np.ndarray, truth: CellTruth,
                         pixel_um: float, style: RenderStyle) -> tuple[np.ndarray, np.ndarray]:
    """Sharp marker signal (float32, ≈ 0–1.5) and pattern map (uint8) of one cardiomyocyte."""
    disc_um, fibre_um, spacing, theta = _myofibril_coordinates(rng, mask, truth, pixel_um,
                                                               style)
    region = _regions(rng, mask, truth.fractions, pixel_um)
    nucleus = _nucleus(rng, mask, pixel_um)
    region[nucleus] = DIFFUSE
    myofibril = np.clip(1.4 * np.exp(-0.5 * (fibre_um / (0.35 * spacing)) ** 2), 0, 1)
    zdisc = np.exp(-0.5 * (disc_um / style.disc_width_um) ** 2) * myofibril
    fibre = 0.55 * _sparse_fibres(rng, fibre_um, spacing, pixel_um)
    beads = (np.exp(-0.5 * (disc_um / 0.18) ** 2) * np.exp(-0.5 * (fibre_um / 0.18) ** 2)
             * (smooth_noise(rng, mask.shape, 0.3 / pixel_um) > 0.2))
    scattered = puncta(rng, region == DIS_PUNCTA, style.puncta_density_per_um2,
                       style.punctum_sigma_um, pixel_um)
    structure = np.select([region == ZDISC, region == FIBRES, region == ORG_PUNCTA,
                           region == DIS_PUNCTA], [zdisc, fibre, beads, scattered], 0.0)
    cytoplasm = rng.uniform(0.12, 0.28) * np.where(nucleus, 0.5, 1.0)
    signal = (cytoplasm + structure) * mask * rng.uniform(0.7, 1.3)
    oriented = np.isin(region, ORIENTED) & mask
    truth.realized_spread_deg = realized_spread_deg(theta, oriented)
    truth.direction_rad = np.where(oriented, theta, np.nan).astype(np.float32)
    return signal.astype(np.float32), region


#: pattern classes whose myofibril direction a rater can see
ORIENTED = (ZDISC, FIBRES, ORG_PUNCTA)


def realized_spread_deg(theta: np.ndarray, oriented: np.ndarray) -> float:
    """Circular SD (axial data, degrees) of the myofibril direction over the oriented pixels
    (Z-discs, fibres, beaded rows); 90° (no direction) when there are none."""
    if oriented.sum() == 0:
        return 90.0
    resultant = np.abs(np.mean(np.exp(2j * theta[oriented])))
    return float(np.rad2deg(np.sqrt(-2 * np.log(np.clip(resultant, 1e-12, 1.0))) / 2))


def render_fibroblast(rng, mask, long_axis_deg, pixel_um, style):
    """Spindle with diffuse signal and non-periodic stress fibres, no sarcomeres."""
    truth = CellTruth("", 1.0, 1.0, long_axis_deg, 6.0, 3)
    _, fibre_um, _, _ = _myofibril_coordinates(rng, mask, truth, pixel_um, style)
    fibres = 0.35 * _sparse_fibres(rng, fibre_um, 0.0, pixel_um)
    fibres *= smooth_noise(rng, mask.shape, 2.0 / pixel_um) > -0.3
    signal = (rng.uniform(0.2, 0.4) + fibres) * mask
    return signal.astype(np.float32), np.where(mask, FIBRES, 0).astype(np.uint8)


def render_blob(rng, mask, pixel_um, bright_rim: bool):
    """Dead rounded cell (bright rim) or debris: bright, granular, no pattern."""
    level = rng.uniform(0.6, 1.6)
    grain = np.clip(1 + 0.25 * smooth_noise(rng, mask.shape, 0.3 / pixel_um), 0.2, None)
    signal = level * grain * mask
    if bright_rim:
        depth_um = ndimage.distance_transform_edt(mask) * pixel_um
        signal *= 1 + 0.8 * np.exp(-depth_um / 0.8)
    return signal.astype(np.float32), np.where(mask, DIFFUSE, 0).astype(np.uint8)
