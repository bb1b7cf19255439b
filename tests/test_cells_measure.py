"""Classical structure measurements and segmentation against known ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from acquisition.simulate.structure import StructureFieldParams, simulate_structure_field
from engine.cells.measure import glcm_features, orientation_order, sarcomere_periodicity
from engine.cells.segment import segment_candidates


def striated_patch(length_um: float, angle_deg: float, pixel_um: float = 0.15,
                   size_um: float = 30.0, noise: float = 0.1, seed: int = 0):
    """Z-lines written independently of the simulator: a disc of thin Gaussian lines."""
    n = int(size_um / pixel_um)
    yy, xx = np.indices((n, n)) * pixel_um
    a = np.deg2rad(angle_deg)
    along = xx * np.cos(a) + yy * np.sin(a)
    frac = (along / length_um) % 1.0
    distance = np.minimum(frac, 1 - frac) * length_um
    image = np.exp(-0.5 * (distance / 0.15) ** 2)
    image += np.random.default_rng(seed).normal(0, noise, image.shape)
    mask = np.hypot(yy - size_um / 2, xx - size_um / 2) < size_um * 0.45
    return image.astype(np.float32) + 1.0, mask


@pytest.mark.parametrize(("length_um", "angle_deg"), [(1.7, 0.0), (1.9, 33.0), (2.1, 100.0)])
def test_sarcomere_length_within_one_percent(length_um, angle_deg):
    image, mask = striated_patch(length_um, angle_deg)
    result = sarcomere_periodicity(image, mask, 0.15)
    assert abs(result.sarcomere_length_um / length_um - 1) < 0.01
    # the repeat runs along the myofibril axis = the direction the discs are stacked in
    assert min(abs(result.direction_deg - angle_deg % 180), 180 - abs(
        result.direction_deg - angle_deg % 180)) < 3


def test_noise_has_no_sarcomere_length():
    rng = np.random.default_rng(1)
    image = rng.normal(10, 1, (200, 200)).astype(np.float32)
    mask = np.ones_like(image, bool)
    assert np.isnan(sarcomere_periodicity(image, mask, 0.15).sarcomere_length_um)


def test_orientation_order_separates_aligned_from_isotropic():
    image, mask = striated_patch(1.9, 20.0)
    aligned, direction = orientation_order(image, mask, 0.15)
    rng = np.random.default_rng(2)
    spots = np.zeros(image.shape, np.float32)
    spots[rng.integers(0, image.shape[0], 400), rng.integers(0, image.shape[1], 400)] = 5
    from scipy import ndimage

    isotropic, _ = orientation_order(ndimage.gaussian_filter(spots, 1.5), mask, 0.15)
    assert aligned > 0.9 > 0.3 > isotropic
    assert min(abs(direction - 20.0), 180 - abs(direction - 20.0)) < 3


def test_fibres_turned_by_90_degrees_agree_with_zdiscs():
    """Z-discs across 20° myofibrils on the left, fibres along them on the right."""
    discs, mask = striated_patch(1.9, 20.0)
    fibres, _ = striated_patch(1.2, 110.0)  # lines along 20°: the repeat runs at 110°
    right = np.zeros(mask.shape, bool)
    right[:, mask.shape[1] // 2:] = True
    image = np.where(right, fibres, discs)
    mixed, _ = orientation_order(image, mask, 0.15)
    turned, direction = orientation_order(image, mask, 0.15, across=right)
    assert turned > 0.85 and mixed < 0.3
    assert min(abs(direction - 20.0), 180 - abs(direction - 20.0)) < 5


def test_glcm_peak_distance_near_the_repeat():
    image, mask = striated_patch(1.9, 0.0)
    features = glcm_features(image, mask, 0.15)
    assert abs(features["glcm_peak_distance_um"] - 1.9) <= 0.16
    assert features["glcm_peak_height"] > 0.3


def test_simulated_cells_sarcomere_length_within_three_percent():
    errors = []
    for seed in range(3):
        field = simulate_structure_field(StructureFieldParams(shape_px=(700, 700)), seed=seed)
        for obj in field.objects:
            if not obj["is_cell"]:
                continue
            rows, cols = np.nonzero(field.labels == obj["object_id"])
            window = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
            result = sarcomere_periodicity(field.image[window].astype(np.float32),
                                           field.labels[window] == obj["object_id"],
                                           field.pixel_um)
            if np.isfinite(result.sarcomere_length_um):
                errors.append(abs(result.sarcomere_length_um / obj["sarcomere_length_um"] - 1))
    assert len(errors) >= 4
    assert np.median(errors) < 0.03


def test_segmentation_finds_the_simulated_cells():
    field = simulate_structure_field(StructureFieldParams(shape_px=(900, 900)), seed=4)
    labels = segment_candidates(field.image.astype(np.float32), field.pixel_um)
    cells = [o for o in field.objects if o["is_cell"]]
    ious = []
    for obj in cells:
        truth = field.labels == obj["object_id"]
        ids, counts = np.unique(labels[truth], return_counts=True)
        best = ids[np.argmax(counts)]
        ious.append(0.0 if best == 0 else
                    np.count_nonzero(truth & (labels == best)) / np.count_nonzero(
                        truth | (labels == best)))
    assert len(cells) >= 2
    assert min(ious) >= 0.5 and np.median(ious) >= 0.9  # detection criterion: IoU >= 0.5
    assert labels.max() >= len(cells)  # non-cell candidates are produced too


def test_noise_only_field_gives_no_candidates():
    rng = np.random.default_rng(3)
    noise = rng.poisson(100, (400, 400)).astype(np.float32)
    assert segment_candidates(noise, 0.15).max() == 0
