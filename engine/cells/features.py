"""Per-ROI features: geometry, intensity statistics and the classical structure measures.

One :func:`roi_features` dict per label id; keys are :data:`FEATURE_NAMES` (all floats,
NaN where not measurable) plus ``cell_id``, ``x_um``, ``y_um`` (centroid, sample i at
i × pixel_um) and ``bbox``. Intensities are normalized by the field's background and the
median level of all candidate pixels, so features do not depend on laser power or offset.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from skimage.measure import regionprops

from .measure import glcm_features, orientation_order, sarcomere_periodicity
from .patterns import PATTERN_FEATURES

GEOMETRY = ("area_um2", "aspect_ratio", "solidity", "compactness", "eccentricity")
INTENSITY = ("mean_level", "intensity_cv", "intensity_skew", "edge_contrast")
STRUCTURE = ("sarcomere_length_um", "periodicity_log_ratio", "orientation_order",
             "glcm_max_cv", "glcm_peak_height", "glcm_peak_distance_um")
#: bumped whenever a feature's definition changes (training caches are keyed by it)
FEATURES_VERSION = 3
#: measured classically by :func:`roi_features`
CLASSICAL_FEATURES: tuple[str, ...] = GEOMETRY + INTENSITY + STRUCTURE
#: every feature a model may use: the classical ones and the pattern fractions
FEATURE_NAMES: tuple[str, ...] = CLASSICAL_FEATURES + PATTERN_FEATURES


def field_levels(plane: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Background level (median outside every ROI) and the median level inside ROIs."""
    outside = plane[labels == 0]
    inside = plane[labels > 0]
    background = float(np.median(outside)) if outside.size else float(np.min(plane))
    foreground = float(np.median(inside)) if inside.size else background + 1.0
    return background, max(foreground, background + 1e-6)


def roi_features(plane: np.ndarray, labels: np.ndarray, pixel_um: float,
                 structure: bool = True,
                 levels: tuple[float, float] | None = None) -> list[dict]:
    """Features of every ROI of ``labels`` (ids in increasing order); intensities normalized
    by ``levels`` (background, candidate level), by default :func:`field_levels` of the
    arguments (a window of a field passes its field's levels)."""
    background, foreground = levels or field_levels(plane, labels)
    scale = foreground - background
    rows = []
    for region in regionprops(labels):
        r0, c0, r1, c1 = region.bbox
        crop = plane[r0:r1, c0:c1]
        mask = region.image
        values = (crop[mask] - background) / scale
        row = {"cell_id": int(region.label), "bbox": (r0, c0, r1, c1),
               "y_um": float(region.centroid[0] * pixel_um),
               "x_um": float(region.centroid[1] * pixel_um)}
        row.update(_geometry(region, pixel_um))
        row.update(_intensity(values, crop, mask, background, scale))
        row.update(_structure(crop, mask, pixel_um) if structure else
                   dict.fromkeys(STRUCTURE, np.nan))
        rows.append(row)
    return rows


def _geometry(region, pixel_um: float) -> dict[str, float]:
    major, minor = region.axis_major_length, region.axis_minor_length
    perimeter = max(region.perimeter, 1.0)
    return {"area_um2": float(region.area * pixel_um ** 2),
            "aspect_ratio": float(major / minor) if minor > 0 else np.nan,
            "solidity": float(region.solidity),
            "compactness": float(perimeter ** 2 / (4 * np.pi * region.area)),
            "eccentricity": float(region.eccentricity)}


def _intensity(values, crop, mask, background, scale) -> dict[str, float]:
    mean = float(values.mean())
    from scipy import ndimage

    ring = ndimage.binary_dilation(mask, iterations=3) & ~mask
    outside = (crop[ring] - background) / scale if ring.any() else np.zeros(1)
    return {"mean_level": mean,
            "intensity_cv": float(values.std() / (abs(mean) + 1e-6)),
            "intensity_skew": float(stats.skew(values)) if values.size > 2 else 0.0,
            "edge_contrast": float(mean - np.median(outside))}


def _structure(crop: np.ndarray, mask: np.ndarray, pixel_um: float) -> dict[str, float]:
    crop = crop.astype(np.float32)
    periodicity = sarcomere_periodicity(crop, mask, pixel_um)
    order, _ = orientation_order(crop, mask, pixel_um)
    return {"sarcomere_length_um": periodicity.sarcomere_length_um,
            "periodicity_log_ratio": float(np.log10(max(periodicity.peak_ratio, 1.0))),
            "orientation_order": order, **glcm_features(crop, mask, pixel_um)}


def feature_matrix(rows: list[dict], names: tuple[str, ...] | list[str],
                   fill: dict[str, float] | None = None) -> np.ndarray:
    """``(n, len(names))`` float32; NaN replaced by ``fill[name]`` (default 0)."""
    fill = fill or {}
    matrix = np.array([[row.get(n, np.nan) for n in names] for row in rows], np.float64)
    matrix = matrix.reshape(len(rows), len(names))
    for j, name in enumerate(names):
        matrix[np.isnan(matrix[:, j]), j] = fill.get(name, 0.0)
    return matrix.astype(np.float32)
