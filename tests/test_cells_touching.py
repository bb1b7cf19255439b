"""Touching cells: split between lobes of different myofibril direction, never inside one
cell (engine/cells/touching.py)."""

from __future__ import annotations

import numpy as np

from engine.cells.segment import segment_candidates

PIXEL_UM = 0.15
GAP_UM = 14.0


def striated_pair(angles_deg: tuple[float, float], seed: int = 0,
                  brightness: tuple[float, float] = (1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """Two discs of radius 12 µm with centres GAP_UM apart, cut along their bisector (a
    broad contact: the neck is only ~2.3 µm shallower than the cells' centres, and after
    smoothing too little for the h = 2 µm watershed alone: the old segmenter kept one
    candidate), each with Z-lines at 1.8 µm in its own direction, on a dark
    noisy background; also the true labels (1 = left, 2 = right)."""
    shape = (int(40 / PIXEL_UM), int(52 / PIXEL_UM))
    yy, xx = np.indices(shape) * PIXEL_UM
    centres = ((20.0, 26.0 - GAP_UM / 2), (20.0, 26.0 + GAP_UM / 2))
    inside = np.zeros(shape, bool)
    for cy, cx in centres:
        inside |= np.hypot(yy - cy, xx - cx) < 12.0
    truth = np.where(inside, np.where(xx < 26.0, 1, 2), 0).astype(np.int32)
    image = np.zeros(shape, np.float32)
    for k, angle in enumerate(angles_deg):
        a = np.deg2rad(angle)
        frac = ((xx * np.cos(a) + yy * np.sin(a)) / 1.8) % 1.0
        lines = np.exp(-0.5 * (np.minimum(frac, 1 - frac) * 1.8 / 0.15) ** 2)
        image += (brightness[k] * (0.3 + lines) * (truth == k + 1)).astype(np.float32)
    rng = np.random.default_rng(seed)
    image = 100 + 200 * image + rng.normal(0, 5, shape).astype(np.float32)
    return image.astype(np.float32), truth


def _best_iou(labels: np.ndarray, truth: np.ndarray, k: int) -> float:
    cell = truth == k
    ids, counts = np.unique(labels[cell], return_counts=True)
    best = ids[np.argmax(counts)]
    return 0.0 if best == 0 else float(
        np.count_nonzero(cell & (labels == best)) / np.count_nonzero(cell | (labels == best)))


def test_touching_cells_of_different_direction_are_split():
    image, truth = striated_pair((0.0, 70.0))
    labels = segment_candidates(image, PIXEL_UM)
    assert labels.max() == 2
    assert _best_iou(labels, truth, 1) >= 0.8 and _best_iou(labels, truth, 2) >= 0.8


def test_touching_cells_of_different_brightness_are_split():
    image, truth = striated_pair((20.0, 20.0), seed=1, brightness=(1.0, 1.8))
    labels = segment_candidates(image, PIXEL_UM)
    assert labels.max() == 2
    assert _best_iou(labels, truth, 1) >= 0.8 and _best_iou(labels, truth, 2) >= 0.8


def test_one_cell_is_not_split():
    for seed, angle in enumerate([0.0, 45.0, 120.0]):
        image, truth = striated_pair((angle, angle), seed=seed)   # one cell, two lobes
        labels = segment_candidates(image, PIXEL_UM)
        assert labels.max() == 1
        assert np.count_nonzero((labels > 0) & (truth > 0)) > 0.9 * np.count_nonzero(truth)
