"""Area fractions of six local patterns per ROI (Gerbin et al. 2021's patch classes:
background, diffuse/other, fibres, disorganized puncta, organized puncta, organized Z-discs),
from the cells model's :class:`~engine.cells.networks.PatternNet` run once over the field at
half resolution, and two directionality cues over the oriented pixels only (Z-discs, fibres,
beaded rows; puncta and diffuse cytoplasm do not dilute them): the orientation order
parameter and the spread of the myofibril direction measured at the sarcomere scale
(:func:`~engine.cells.measure.orientation_spread`, as ``ln(1 + degrees)``)."""

from __future__ import annotations

import numpy as np

PATTERN_CLASSES: tuple[str, ...] = ("background", "diffuse", "fibres", "disorganized_puncta",
                                    "organized_puncta", "zdiscs")
#: pattern fractions, then the orientation order and ln(1 + orientation spread in degrees)
#: over oriented pixels only (Z-discs, fibres, organized puncta: what a rater judges
#: directionality on; NaN under 20 such pixels)
PATTERN_FEATURES: tuple[str, ...] = (*(f"frac_{name}" for name in PATTERN_CLASSES),
                                     "oriented_order", "orientation_spread_log")
#: what a model fills in for a NaN spread (no oriented pixels): ln(1 + 90°), no direction
NO_SPREAD_LOG = float(np.log1p(90.0))
ORIENTED_CLASSES = (2, 4, 5)
FIBRES = 2
#: the net's output grid: one value per STRIDE × STRIDE input pixels
STRIDE = 2


def normalized(plane: np.ndarray, background: float, scale: float) -> np.ndarray:
    """What every cells network sees: (image − background) / (candidate level − background)."""
    return ((plane - background) / scale).astype(np.float32)


def oriented_measures(plane: np.ndarray, labels: np.ndarray, classes: np.ndarray, row: dict,
                      pixel_um: float) -> dict[str, float]:
    """``oriented_order`` (fibre pixels turned by 90°: their gradient runs across the
    myofibril, a Z-disc's along it) and ``orientation_spread_log`` of one ROI over its oriented
    pixels; NaN under 20 such pixels."""
    from .measure import orientation_order, orientation_spread

    r0, c0, r1, c1 = row["bbox"]
    half = classes[r0 // STRIDE: (r1 + STRIDE - 1) // STRIDE,
                   c0 // STRIDE: (c1 + STRIDE - 1) // STRIDE]
    full = np.repeat(np.repeat(half, STRIDE, axis=0), STRIDE, axis=1)
    full = full[r0 % STRIDE: r0 % STRIDE + r1 - r0, c0 % STRIDE: c0 % STRIDE + c1 - c0]
    mask = labels[r0:r1, c0:c1] == row["cell_id"]
    if full.shape != mask.shape:  # the net's grid ends short of an odd-sized border
        full = np.pad(full, [(0, m - f) for m, f in zip(mask.shape, full.shape, strict=True)],
                      mode="edge")
    oriented = mask & np.isin(full, ORIENTED_CLASSES)
    if oriented.sum() < 20:
        return {"oriented_order": float("nan"), "orientation_spread_log": float("nan")}
    crop = plane[r0:r1, c0:c1].astype(np.float32)
    order = orientation_order(crop, oriented, pixel_um, across=full == FIBRES)[0]
    spread = orientation_spread(crop, mask, pixel_um, oriented)
    return {"oriented_order": order, "orientation_spread_log": float(np.log1p(spread))}


def pattern_fractions(classes: np.ndarray, labels: np.ndarray,
                      ids: list[int]) -> dict[int, dict[str, float]]:
    """Fraction of each class among the output pixels of each ROI id."""
    grid = labels[::STRIDE, ::STRIDE][: classes.shape[0], : classes.shape[1]]
    n_classes = len(PATTERN_CLASSES)
    counts = np.zeros((int(labels.max()) + 1, n_classes))
    np.add.at(counts, (grid.ravel(), classes[: grid.shape[0], : grid.shape[1]].ravel()), 1)
    out = {}
    for roi in ids:
        total = counts[roi].sum()
        values = counts[roi] / total if total else np.full(n_classes, np.nan)
        out[roi] = dict(zip(PATTERN_FEATURES[:n_classes], values.tolist(), strict=True))
    return out
