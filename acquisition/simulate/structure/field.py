"""Assemble a field: place objects, blur them by focus and PSF, image them, keep the truth."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from . import patterns, shapes
from .clutter import clutter_layers, clutter_rng
from .params import CELL_SOURCES, PATTERN_CLASSES, StructureFieldParams

log = logging.getLogger(__name__)

BACKGROUND_SIGNAL = 0.03      # autofluorescence / unbound marker outside cells
CELL_THICKNESS_UM = {"adult": 10.0, "neonatal": 5.0, "ipsc": 4.0}
#: a cell's sarcomerisation rating (1–4) from its Z-disc + half its beaded-row area fraction
SARCOMERISATION_BOUNDS = (0.15, 0.4, 0.7)
#: directionality rating (4 = aligned) from the SD of the rendered myofibril directions (°)
DIRECTIONALITY_BOUNDS_DEG = (10.0, 20.0, 35.0)


@dataclass
class StructureField:
    """A simulated structure image and its ground truth.

    ``image`` is uint16 counts (offset included), ``(Y, X)`` or ``(Z, Y, X)``; ``labels`` the
    int32 object ids ``(Y, X)`` (0 = background; every object, cell or not); ``pattern_map``
    the local pattern class per pixel (:data:`PATTERN_CLASSES`); ``objects`` one dict per
    object id (see :func:`simulate_structure_field`).
    """

    image: np.ndarray
    labels: np.ndarray
    pattern_map: np.ndarray
    objects: list[dict]
    pixel_um: float
    z_step_um: float | None
    offset_counts: float
    style: str
    params: StructureFieldParams = field(repr=False, default_factory=StructureFieldParams)
    #: rendered myofibril direction per pixel (rad from +x, y down; float32 ``(Y, X)``) on the
    #: oriented pixels of cardiomyocytes (the directionality rating's pixels), NaN elsewhere
    direction_rad: np.ndarray | None = field(repr=False, default=None)

    @property
    def axes(self) -> str:
        return "ZYX" if self.image.ndim == 3 else "YX"

    def cell_labels(self) -> np.ndarray:
        """``labels`` with only true cells (cardiomyocytes) kept."""
        keep = np.zeros(int(self.labels.max()) + 1, bool)
        for obj in self.objects:
            keep[obj["object_id"]] = bool(obj["is_cell"])
        return np.where(keep[self.labels], self.labels, 0).astype(np.int32)


def rating(value: float, bounds: tuple[float, ...], ascending: bool = True) -> int:
    """1-based class of ``value`` among ``bounds`` (descending classes if not ``ascending``)."""
    index = int(np.searchsorted(bounds, value, side="right"))
    return index + 1 if ascending else len(bounds) + 1 - index


def _object_plan(rng: np.random.Generator, params: StructureFieldParams) -> list[tuple[str, str]]:
    probs = np.array([params.source_probabilities.get(s, 0.0) for s in CELL_SOURCES])
    sources = rng.choice(CELL_SOURCES, size=params.n_cardiomyocytes, p=probs / probs.sum())
    plan = [("cardiomyocyte", str(s)) for s in sources]
    plan += [("out_of_focus", str(rng.choice(CELL_SOURCES)))] * params.n_out_of_focus
    plan += [("fibroblast", "")] * params.n_fibroblasts + [("dead", "")] * params.n_dead
    return plan + [("debris", "")] * params.n_debris


def _place(rng, mask, occupied, touching: bool, margin_px: int) -> tuple[int, int] | None:
    """Top-left corner where ``mask`` fits (touching an earlier object if asked), or None."""
    h, w = mask.shape
    big_h, big_w = occupied.shape
    if h + 2 * margin_px >= big_h or w + 2 * margin_px >= big_w:
        return None
    grown = ndimage.binary_dilation(occupied, iterations=2) if occupied.any() else occupied
    for _ in range(300):
        y = int(rng.integers(margin_px, big_h - h - margin_px))
        x = int(rng.integers(margin_px, big_w - w - margin_px))
        overlap = np.count_nonzero(grown[y:y + h, x:x + w] & mask)
        if (touching and 0 < overlap <= 0.04 * mask.sum()) or (not touching and overlap == 0):
            return y, x
    return None


def _render(rng, kind, source, params, mask, angle):
    pixel_um, style = params.pixel_um, params.style
    if kind in ("cardiomyocyte", "out_of_focus"):
        truth = patterns.draw_cell_truth(rng, source, angle)
        signal, region = patterns.render_cardiomyocyte(rng, mask, truth, pixel_um, style)
        return signal, region, truth
    if kind == "fibroblast":
        return (*patterns.render_fibroblast(rng, mask, angle, pixel_um, style), None)
    return (*patterns.render_blob(rng, mask, pixel_um, bright_rim=kind == "dead"), None)


def _shape(rng, kind, source, pixel_um):
    if kind in ("cardiomyocyte", "out_of_focus"):
        return shapes.CELL_SHAPES[source](rng, pixel_um)
    return {"fibroblast": shapes.spindle, "dead": shapes.disk, "debris": shapes.debris}[kind](
        rng, pixel_um)


def _truth_row(obj_id, kind, source, truth, mask_full, region, params, z_um,
               rater_errors) -> dict:
    pixel_um = params.pixel_um
    rows, cols = np.nonzero(mask_full)
    row = {"object_id": obj_id, "kind": kind, "is_cell": int(kind == "cardiomyocyte"),
           "x_um": float(cols.mean() * pixel_um), "y_um": float(rows.mean() * pixel_um),
           "area_um2": float(rows.size * pixel_um ** 2), "z_um": z_um,
           "cell_source": source if kind == "cardiomyocyte" else "", "organisation": np.nan,
           "structure_score": np.nan, "rater_scores": [], "sarcomerisation": 0,
           "directionality": 0, "sarcomere_length_um": np.nan, "orientation_deg": np.nan,
           "angle_spread_deg": np.nan, "pattern_fractions": {}}
    if truth is None or kind != "cardiomyocyte":
        return row
    cell_px = max(int(mask_full.sum()), 1)
    fractions = {name: float(np.count_nonzero(region == i) / cell_px)
                 for i, name in enumerate(PATTERN_CLASSES) if i}
    raters = [int(np.clip(round(truth.organisation + error), 1, 5)) for error in rater_errors]
    sarc_value = fractions["zdiscs"] + 0.5 * fractions["organized_puncta"]
    row.update(organisation=truth.organisation, structure_score=float(np.mean(raters)),
               rater_scores=raters, sarcomere_length_um=truth.sarcomere_length_um,
               orientation_deg=truth.orientation_deg,
               angle_spread_deg=truth.realized_spread_deg,
               sarcomerisation=rating(sarc_value, SARCOMERISATION_BOUNDS),
               directionality=_directionality(truth, fractions),
               pattern_fractions=fractions)
    return row


def _directionality(truth, fractions: dict[str, float]) -> int:
    """AMES-like directionality rating (4 = aligned) from the spread of the myofibril
    directions a rater can see; 1 when under 10 % of the cell shows oriented structure."""
    oriented = fractions["zdiscs"] + fractions["fibres"] + fractions["organized_puncta"]
    if oriented < 0.1:
        return 1
    return rating(truth.realized_spread_deg, DIRECTIONALITY_BOUNDS_DEG, ascending=False)


def simulate_structure_field(params: StructureFieldParams | None = None,
                             seed: int = 0) -> StructureField:
    """Simulate one field of view with ground truth (deterministic for a seed).

    ``objects`` rows: ``object_id, kind, is_cell, x_um, y_um`` (centroid, sample i at
    i × pixel_um), ``area_um2, z_um, cell_source, organisation`` (hidden, continuous),
    ``structure_score`` (mean of two raters' integer 1–5 ratings of the organisation),
    ``rater_scores, sarcomerisation, directionality`` (1–4; 0 for non-cells),
    ``sarcomere_length_um, orientation_deg, angle_spread_deg, pattern_fractions``.
    """
    params = params or StructureFieldParams()
    streams = np.random.SeedSequence(seed).spawn(4)
    rng_layout, rng_pattern, rng_noise, rng_rater = (np.random.default_rng(s) for s in streams)
    labels = np.zeros(params.shape_px, np.int32)
    pattern_map = np.zeros(params.shape_px, np.uint8)
    direction = np.full(params.shape_px, np.nan, np.float32)
    layers, objects = [], []
    rng_clutter = clutter_rng(seed) if params.depth_clutter_probability > 0 else None
    for kind, source in _object_plan(rng_layout, params):
        mask, angle = _shape(rng_layout, kind, source, params.pixel_um)
        touching = (kind == "cardiomyocyte" and bool(objects)
                    and rng_layout.random() < params.touching_probability)
        corner = _place(rng_layout, mask, labels > 0, touching, int(2.0 / params.pixel_um))
        if corner is None:
            log.debug("no room for a %s of %s px", kind, mask.shape)
            continue
        y, x = corner
        window = (slice(y, y + mask.shape[0]), slice(x, x + mask.shape[1]))
        free = mask & (labels[window] == 0)
        signal, region, truth = _render(rng_pattern, kind, source, params, free, angle)
        if kind == "out_of_focus":
            region = np.where(free, patterns.DIFFUSE, 0).astype(np.uint8)
        obj_id = len(objects) + 1
        labels[window][free] = obj_id
        pattern_map[window][free] = region[free]
        if kind == "cardiomyocyte" and truth is not None and truth.direction_rad is not None:
            direction[window][free] = truth.direction_rad[free]
        z_um, thickness_um = _depth(rng_layout, kind, source)
        layers.append((y, x, signal, z_um, thickness_um))
        full = np.zeros(params.shape_px, bool)
        full[window] = free
        objects.append(_truth_row(obj_id, kind, source, truth, full, region[free], params,
                                  z_um, rng_rater.normal(0, params.rater_noise_sd, 2)))
        if rng_clutter is not None and kind == "cardiomyocyte":
            extra, kinds = clutter_layers(rng_clutter, free, y, x, params)
            layers += extra
            objects[-1]["clutter"] = kinds
    image, offset = _detect(_optical_stack(layers, params), params, rng_noise)
    return StructureField(image, labels, pattern_map, objects, params.pixel_um,
                          params.z_step_um if params.z_slices else None, offset,
                          params.style.name, params, direction)


def _depth(rng, kind, source) -> tuple[float, float]:
    """Centre depth (µm from the focal plane) and thickness of an object."""
    if kind == "out_of_focus":
        return float(rng.choice([-1, 1]) * rng.uniform(4.0, 8.0)), 3.0
    if kind == "cardiomyocyte":
        return float(rng.normal(0, 0.3)), CELL_THICKNESS_UM[source]
    return float(rng.normal(0, 0.5)), 3.0


def _focal_planes(params: StructureFieldParams) -> np.ndarray:
    if not params.z_slices:
        return np.zeros(1)
    return (np.arange(params.z_slices) - (params.z_slices - 1) / 2) * params.z_step_um


def _optical_stack(layers, params: StructureFieldParams) -> np.ndarray:
    """Noise-free signal per focal plane: defocus blur and dimming, then the PSF."""
    planes = _focal_planes(params)
    stack = np.zeros((len(planes), *params.shape_px), np.float32)
    for y, x, signal, z_um, thickness_um in layers:
        for k, plane_um in enumerate(planes):
            defocus_um = max(abs(plane_um - z_um) - thickness_um / 2, 0.0)
            _add_blurred(stack[k], signal * (1 / (1 + (defocus_um / 2.0) ** 2)), y, x,
                         0.5 * defocus_um / params.pixel_um)
    style = params.style
    for k in range(len(planes)):
        sharp = ndimage.gaussian_filter(stack[k], style.psf_sigma_um / params.pixel_um)
        if style.psf_halo_fraction:
            halo = ndimage.gaussian_filter(sharp, style.psf_halo_sigma_um / params.pixel_um)
            sharp = (1 - style.psf_halo_fraction) * sharp + style.psf_halo_fraction * halo
        stack[k] = sharp
    return stack


def _add_blurred(plane: np.ndarray, signal: np.ndarray, y: int, x: int, sigma_px: float) -> None:
    pad = int(np.ceil(3 * sigma_px))
    blurred = ndimage.gaussian_filter(np.pad(signal, pad), sigma_px) if sigma_px > 0.3 else \
        np.pad(signal, pad)
    y0, x0 = y - pad, x - pad
    ys = slice(max(y0, 0), min(y0 + blurred.shape[0], plane.shape[0]))
    xs = slice(max(x0, 0), min(x0 + blurred.shape[1], plane.shape[1]))
    plane[ys, xs] += blurred[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]


def _detect(stack: np.ndarray, params: StructureFieldParams, rng) -> tuple[np.ndarray, float]:
    """Uneven illumination, shot noise, read noise and camera offset → uint16 counts."""
    style = params.style
    yy, xx = np.meshgrid(*(np.linspace(0, 1, n) for n in params.shape_px), indexing="ij")
    c = rng.normal(size=5)
    shading = c[0] * yy + c[1] * xx + c[2] * yy ** 2 + c[3] * xx ** 2 + c[4] * xx * yy
    shading = 1 + style.illumination_variation * (shading - shading.mean()) / (
        np.ptp(shading) + 1e-9)
    photons = rng.uniform(*style.photons_per_unit)
    offset = float(rng.uniform(*style.offset_counts))
    expected = photons * (stack + BACKGROUND_SIGNAL) * shading
    counts = rng.poisson(expected) + rng.normal(offset, rng.uniform(*style.read_noise_counts),
                                                 stack.shape)
    image = np.clip(np.round(counts), 0, 65535).astype(np.uint16)
    return (image if params.z_slices else image[0]), offset
