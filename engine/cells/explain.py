"""Occlusion sensitivity of a cell's organisation score: which parts of the cell raise it.

A square of side ``patch_um`` (default 2.5 µm, about 1.3 sarcomeres) slides over the cell
with a stride of half its side; at each position the cell's pixels under the square are set
to the cell's mean intensity (pixels outside the ROI and the ROI's shape are left alone),
the cell is measured again exactly as :func:`~engine.cells.analyze.measure_rows`
measures it (classical features, pattern fractions and oriented measures on a window of
the field, normalized by the whole field's levels) and all occluded versions are scored by
the structure network in one batch. The map at a pixel is the mean, over the squares that
covered it, of ``estimate(original) − estimate(occluded)`` in score units: positive where
hiding the pixels lowers the score (evidence of organisation), negative where hiding them
raises it (evidence against), NaN outside the ROI.

It explains the heads' raw organisation estimate (``CellsModel.score``'s
``organisation_estimate``), not the reported ``structure_score``: that is the estimate
mapped to the two raters' median, a step function, whose change under one small occlusion
is mostly 0.

Cost is bounded: at most ``max_occlusions`` squares per cell (default 128); in a larger
cell the stride grows (and the square with it, so no pixel is left uncovered) until the
count fits. Each occlusion costs one measurement of the cell (tens of ms on one core).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .analyze import measure_rows, structure_patches
from .features import field_levels
from .model import CellsModel

#: defaults: square side (µm), most squares per cell, least ROI cover of a square
PATCH_UM = 2.5
MAX_OCCLUSIONS = 128
MIN_COVER = 0.2
#: the window measured around a cell: its bounding box padded by more than half the pattern
#: net's receptive field (≈ 60 px), so its classes inside the cell are the whole field's, with
#: an even origin (the net's output grid is every second pixel of the field)
WINDOW_PAD_PX = 36

#: ``score_batch(images (n, H, W)) -> (n,)`` organisation estimates of occluded windows
ScoreBatch = Callable[[np.ndarray], np.ndarray]


@dataclass
class Explanation:
    """One cell's occlusion map, on the window ``box`` of the field (``(row, column)``
    slices): ``change`` (float32, score units, NaN outside the ROI), the unoccluded
    ``estimate``, and the squares used."""

    cell_id: int
    box: tuple[slice, slice]
    change: np.ndarray
    estimate: float
    n_occlusions: int
    patch_px: int
    stride_px: int

    @property
    def peak(self) -> float:
        """The largest ``|change|`` (a tiny positive number when nothing changed), for a
        symmetric colour scale."""
        finite = np.abs(self.change[np.isfinite(self.change)])
        return float(finite.max()) if finite.size and finite.max() > 0 else 1e-9


def occlusion_squares(mask: np.ndarray, patch_px: int, max_occlusions: int,
                      min_cover: float = MIN_COVER) -> tuple[list[tuple[int, int]], int, int]:
    """Top-left corners of the squares over ``mask``, the square side and the stride (px).

    The stride starts at half ``patch_px`` and grows until at most ``max_occlusions`` squares
    cover the ROI by at least ``min_cover`` of the square (of the ROI, for an ROI smaller than
    a square); the side grows with it to stay ≥ the stride.
    """
    if max_occlusions < 1 or patch_px < 1:
        raise ValueError(f"need at least one occlusion of at least 1 px, got "
                         f"{max_occlusions} of {patch_px} px")
    rows, cols = np.nonzero(mask)
    stride = max(1, patch_px // 2)
    while True:
        side = max(patch_px, stride)
        least = min_cover * min(side ** 2, rows.size)
        corners = [(y, x) for y in range(rows.min() - side // 2, rows.max() + 1, stride)
                   for x in range(cols.min() - side // 2, cols.max() + 1, stride)
                   if _covered_px(mask, y, x, side) >= least]
        if len(corners) <= max_occlusions:
            return corners, side, stride
        stride += max(1, stride // 8)


def _covered_px(mask: np.ndarray, y: int, x: int, side: int) -> int:
    return int(mask[max(y, 0):y + side, max(x, 0):x + side].sum())


def occlusion_map(window: np.ndarray, mask: np.ndarray, score_batch: ScoreBatch,
                  patch_px: int, max_occlusions: int = MAX_OCCLUSIONS,
                  fill: float | None = None,
                  ) -> tuple[np.ndarray, float, int, int, int]:
    """The occlusion map of ``window`` (see the module docstring) for any ``score_batch``.

    Returns the map (NaN outside ``mask``), the unoccluded estimate, the number of squares,
    their side and stride (px). ``fill`` defaults to the mean of ``window`` over ``mask``.
    """
    mask = np.asarray(mask, bool)
    if not mask.any():
        raise ValueError("the cell's mask is empty")
    corners, side, stride = occlusion_squares(mask, patch_px, max_occlusions)
    fill = float(window[mask].mean()) if fill is None else fill
    images = np.repeat(window[None].astype(np.float32), len(corners) + 1, axis=0)
    for k, (y, x) in enumerate(corners, start=1):
        box = (slice(max(y, 0), y + side), slice(max(x, 0), x + side))
        images[k][box] = np.where(mask[box], fill, images[k][box])
    estimates = np.asarray(score_batch(images), np.float64)
    total = np.zeros(window.shape, np.float64)
    covered = np.zeros(window.shape, np.float64)
    for k, (y, x) in enumerate(corners, start=1):
        box = (slice(max(y, 0), y + side), slice(max(x, 0), x + side))
        total[box] += estimates[0] - estimates[k]
        covered[box] += 1
    change = np.where(mask & (covered > 0), total / np.maximum(covered, 1), np.nan)
    return change.astype(np.float32), float(estimates[0]), len(corners), side, stride


def cell_window(labels: np.ndarray, cell_id: int, pad_px: int = WINDOW_PAD_PX
                ) -> tuple[slice, slice]:
    """The cell's bounding box padded by ``pad_px``, clipped to the field, even origin."""
    rows, cols = np.nonzero(labels == cell_id)
    if rows.size == 0:
        raise ValueError(f"cell {cell_id} is not in the label image")
    y0, x0 = (max(0, (int(v.min()) - pad_px) // 2 * 2) for v in (rows, cols))
    return (slice(y0, min(labels.shape[0], int(rows.max()) + 1 + pad_px)),
            slice(x0, min(labels.shape[1], int(cols.max()) + 1 + pad_px)))


def model_scorer(window_labels: np.ndarray, pixel_um: float, model: CellsModel,
                 levels: tuple[float, float]) -> ScoreBatch:
    """Scores windows whose only ROI is ``window_labels`` as the engine scores that cell."""
    def score_batch(images: np.ndarray) -> np.ndarray:
        rows, patches = [], []
        for image in images:
            measured = measure_rows(image, window_labels, pixel_um, model, levels)
            rows += measured
            patches.append(structure_patches(image, window_labels, measured, pixel_um,
                                             model, levels))
        stacked = None if patches[0] is None else np.concatenate(patches)
        return model.score(rows, stacked)["organisation_estimate"]

    return score_batch


def explain_cell(plane: np.ndarray, labels: np.ndarray, cell_id: int, pixel_um: float,
                 model: CellsModel, patch_um: float = PATCH_UM,
                 max_occlusions: int = MAX_OCCLUSIONS,
                 levels: tuple[float, float] | None = None) -> Explanation:
    """The occlusion map of cell ``cell_id`` of the analysed ``plane`` and its ``labels``.

    ``levels`` are the field's (background, candidate level) (default: computed here; pass
    them when explaining several cells of one field).
    """
    if not patch_um > 0:
        raise ValueError(f"the occlusion square must be positive, got {patch_um} µm")
    levels = levels or field_levels(plane, labels)
    box = cell_window(labels, cell_id)
    window_labels = np.where(labels[box] == cell_id, cell_id, 0).astype(np.int32)
    scorer = model_scorer(window_labels, pixel_um, model, levels)
    change, estimate, count, side, stride = occlusion_map(
        plane[box].astype(np.float32), window_labels > 0, scorer,
        max(1, round(patch_um / pixel_um)), max_occlusions)
    return Explanation(cell_id, box, change, estimate, count, side, stride)
