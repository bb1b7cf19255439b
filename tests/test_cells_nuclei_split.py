"""Touching cells split between their nuclei (engine.cells.segment.split_by_nuclei)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.cells.segment import segment_candidates

PIXEL_UM = 0.2


def _ellipse(shape, centre_um, a_um, b_um):
    yy, xx = np.indices(shape) * PIXEL_UM
    return ((xx - centre_um[0]) / a_um) ** 2 + ((yy - centre_um[1]) / b_um) ** 2 <= 1


def _field(centres_um, nuclei: bool, seed: int = 0):
    """Rod cells 24 × 16 µm with Z-disc stripes at 1.9 µm, each with a dark nucleus (half
    the cytoplasm) at its centre when ``nuclei``; cells side by side share their whole short
    edge (no neck). Returns the image and each cell's own mask."""
    shape = (300, 500)
    rng = np.random.default_rng(seed)
    xx = np.indices(shape)[1] * PIXEL_UM
    stripes = 0.5 + 0.5 * np.cos(2 * np.pi * xx / 1.9)
    image = np.full(shape, 10.0)
    masks, taken = [], np.zeros(shape, bool)
    for centre in centres_um:
        yy, xx_um = np.indices(shape) * PIXEL_UM
        cell = (np.abs(xx_um - centre[0]) <= 12.0) & (np.abs(yy - centre[1]) <= 8.0) & ~taken
        taken |= cell
        masks.append(cell)
        image[cell] = 100.0 + 60.0 * stripes[cell]
        if nuclei:
            nucleus = _ellipse(shape, centre, 4.0, 3.0)
            image[nucleus & cell] = 55.0
    image += rng.normal(0, 3.0, shape)
    return image.astype(np.float32), masks


def _best_iou(labels, mask):
    ids, counts = np.unique(labels[mask], return_counts=True)
    return max(n / (mask.sum() + (labels == i).sum() - n) for i, n in zip(ids, counts, strict=True) if i)


def test_two_touching_cells_with_nuclei_are_split():
    image, masks = _field([(25.0, 30.0), (49.0, 30.0)], nuclei=True)
    whole = segment_candidates(image, PIXEL_UM)
    assert whole.max() == 1  # no neck: the packaged segmenter keeps them together
    split = segment_candidates(image, PIXEL_UM, nuclei_split=True)
    assert split.max() == 2
    for mask in masks:
        assert _best_iou(split, mask) > 0.8


@pytest.mark.parametrize("nuclei", [True, False])
def test_a_single_cell_stays_whole(nuclei):
    image, masks = _field([(40.0, 30.0)], nuclei=nuclei)
    split = segment_candidates(image, PIXEL_UM, nuclei_split=True)
    assert split.max() == 1 and _best_iou(split, masks[0]) > 0.9


def test_touching_cells_without_nuclei_stay_as_the_packaged_segmenter_has_them():
    image, _ = _field([(25.0, 30.0), (49.0, 30.0)], nuclei=False)
    assert np.array_equal(segment_candidates(image, PIXEL_UM, nuclei_split=True),
                          segment_candidates(image, PIXEL_UM))
