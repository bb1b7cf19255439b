"""Directionality cue and score map of the cells model against known ground truth: the
orientation spread at the sarcomere scale orders seeded patterns of known spread, reads beaded
rows along their myofibrils, and the rater-median map keeps ranks."""

from __future__ import annotations

import numpy as np
import pytest

from engine.cells.measure import orientation_spread
from engine.cells.model import rater_median_map

PIXEL_UM = 0.15


def domains_patch(angles_deg, length_um: float = 1.9, spacing_um: float = 1.2,
                  beads: bool = False, size_um: float = 48.0, seed: int = 0):
    """Myofibrils written independently of the simulator: vertical bands (one per angle) of
    Z-discs (or beaded rows: discs cut into dots by the myofibril spacing), PSF-blurred,
    with noise. The axial circular SD of the angles, weighted by band area, is the truth."""
    from scipy import ndimage

    n = int(size_um / PIXEL_UM)
    yy, xx = np.indices((n, n)) * PIXEL_UM
    band = np.minimum((xx / size_um * len(angles_deg)).astype(int), len(angles_deg) - 1)
    theta = np.deg2rad(np.asarray(angles_deg, float))[band]
    along = xx * np.cos(theta) + yy * np.sin(theta)
    across = -xx * np.sin(theta) + yy * np.cos(theta)
    disc = np.abs((along / length_um + 0.5) % 1.0 - 0.5) * length_um
    image = np.exp(-0.5 * (disc / 0.1) ** 2)
    if beads:
        fibre = np.abs((across / spacing_um + 0.5) % 1.0 - 0.5) * spacing_um
        image = np.exp(-0.5 * (disc / 0.18) ** 2) * np.exp(-0.5 * (fibre / 0.18) ** 2)
    image = ndimage.gaussian_filter(image, 0.12 / PIXEL_UM) + 0.2
    image += np.random.default_rng(seed).normal(0, 0.05, image.shape)
    mask = np.hypot(yy - size_um / 2, xx - size_um / 2) < size_um * 0.45
    resultant = np.abs(np.mean(np.exp(2j * theta[mask])))
    truth = np.rad2deg(np.sqrt(-2 * np.log(min(resultant, 1.0))) / 2)
    return image.astype(np.float32), mask, truth


@pytest.mark.parametrize("beads", [False, True])
def test_spread_orders_patterns_of_known_spread(beads):
    base = 30.0
    measured, truths = [], []
    for half in (0.0, 6.0, 15.0, 30.0):
        image, mask, truth = domains_patch([base - half, base + half, base - half / 2,
                                            base + half / 2], beads=beads, seed=int(half))
        measured.append(orientation_spread(image, mask, PIXEL_UM))
        truths.append(truth)
    assert measured == sorted(measured), (measured, truths)
    # close to the truth: a few degrees of estimation noise and band-edge mixing
    assert all(abs(m - t) < 4.0 for m, t in zip(measured, truths, strict=True)), (measured,
                                                                                  truths)


def test_beaded_rows_read_along_the_myofibril():
    """Dots on a lattice (period 1.9 µm along, 1.2 µm across) give the same direction as
    Z-discs of that myofibril; on the raw image the structure tensor is ambiguous."""
    from engine.cells.measure import orientation_order

    discs, mask, _ = domains_patch([20.0, 20.0])
    beads, _, _ = domains_patch([20.0, 20.0], beads=True)
    assert orientation_spread(beads, mask, PIXEL_UM) < 5.0
    _, disc_dir = orientation_order(discs, mask, PIXEL_UM)
    assert abs(disc_dir - 20.0) < 3.0


def test_random_puncta_have_a_large_spread():
    rng = np.random.default_rng(3)
    from scipy import ndimage

    impulses = (rng.random((320, 320)) < 0.01).astype(np.float32)
    image = ndimage.gaussian_filter(impulses, 0.15 / PIXEL_UM) + 0.2
    image += rng.normal(0, 0.02, image.shape).astype(np.float32)
    mask = np.ones(image.shape, bool)
    aligned, _, _ = domains_patch([45.0])
    assert orientation_spread(image, mask, PIXEL_UM) > 25.0
    assert orientation_spread(aligned, np.ones(aligned.shape, bool), PIXEL_UM) < 3.0


def test_spread_needs_twenty_pixels():
    image, mask, _ = domains_patch([0.0])
    few = np.zeros_like(mask)
    few[100, 100:110] = True
    assert np.isnan(orientation_spread(image, mask, PIXEL_UM, few))


def test_rater_median_map_keeps_ranks_and_lands_on_the_rating_grid():
    estimate = np.linspace(1.0, 5.0, 401)
    mapped = rater_median_map(estimate, 0.25, 0.05)
    assert np.all(np.diff(mapped) > 0)                   # strictly increasing: same ranks
    assert mapped.min() >= 1.0 and mapped.max() <= 5.0
    at = dict(zip(np.round(estimate, 2), mapped, strict=True))
    assert at[3.0] == pytest.approx(3.0)
    assert at[3.5] == pytest.approx(3.5)                 # both raters split: mean 3.5
    assert abs(at[3.2] - 3.0) < 0.02                     # most likely both say 3
    # the median is the least-absolute-error guess of two integer raters' mean
    rng = np.random.default_rng(0)
    organisation = rng.uniform(1, 5, 4000)
    raters = np.clip(np.round(organisation[:, None] + rng.normal(0, 0.25, (4000, 2))), 1, 5)
    truth = raters.mean(axis=1)
    assert np.mean(np.abs(rater_median_map(organisation, 0.25, 0.05) - truth)) < \
        np.mean(np.abs(organisation - truth))
