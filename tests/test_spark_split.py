"""Cost by the piece, the same result: single sparks cut out of a spark piece by the dip
between their peaks (split_sparks with ``min_dip``) on a line-scan's (t, x) as on its (t, 1,
x), and on a piece's own box as on the whole region's; the significance's box dilation one
axis at a time."""

from __future__ import annotations

import dataclasses

import numpy as np

from acquisition.stream_kind import StreamKind
from engine.instances import split_sparks
from engine.region_instances import RegionInstances, _SmoothedContext
from tests.test_postprocess import DT_MS, FRAMES, PX_UM, gaussian_spark

SHAPE = (400, 160)
DIP = 0.3


def _three_sparks(seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(t, 1, x) ΔF/F0: three sparks, two of them close, on noise; and the mask above 0.15."""
    clean = (gaussian_spark(SHAPE, 60.0, 8.0, amp=1.5) + gaussian_spark(SHAPE, 75.0, 9.6, amp=1.2)
             + gaussian_spark(SHAPE, 90.0, 20.0, amp=1.0))
    noisy = clean + np.random.default_rng(seed).normal(0.0, 0.02, SHAPE).astype(np.float32)
    return noisy[:, None, :], (clean > 0.15)[:, None, :]


def test_the_dip_split_of_a_linescan_cuts_as_the_full_three_axis_split_does():
    values, mask = _three_sparks()
    as_linescan = split_sparks(values, mask, 1, 1, linescan=True, min_dip=DIP)
    as_volume = split_sparks(values, mask, 1, 1, linescan=False, min_dip=DIP)
    assert as_linescan.shape == mask.shape and as_linescan.dtype == np.int32
    assert as_linescan.max() == 3  # the close pair is cut too: its dip is deeper than DIP
    np.testing.assert_array_equal(as_linescan, as_volume)
    assert (as_linescan[~mask] == 0).all() and (as_linescan[mask] > 0).all()


def test_a_piece_in_a_long_regions_box_is_cut_on_its_own_box_as_on_the_whole():
    """A region that lasted long (a wave, a brightness step) has a box far larger than each of
    its pieces: each piece is cut on its own box, with the cut it gets on the region's."""
    values, mask = _three_sparks()
    context = np.random.default_rng(7).normal(  # the region's context: noise around it
        0.0, 0.02, (3 * SHAPE[0], 1, SHAPE[1] + 40)).astype(np.float32)
    inner = (slice(SHAPE[0], 2 * SHAPE[0]), slice(0, 1), slice(20, 20 + SHAPE[1]))
    context[inner] = values
    config = dataclasses.replace(FRAMES, split_dip_sd=5.0, peak_sigma_ms=2.0, peak_sigma_um=0.3)
    instances = RegionInstances(StreamKind.LINESCAN, PX_UM, DT_MS, config, seed_threshold=0.5)
    smoothed = _SmoothedContext(context, inner, config, DT_MS, PX_UM, linescan=True)
    whole_region = split_sparks(smoothed.values[inner], mask, 1, 1, True,
                                config.split_dip_sd * smoothed.noise_sd)
    cut = instances._split(smoothed, mask)
    assert cut.max() >= 2
    np.testing.assert_array_equal(cut, whole_region)


def test_the_significance_box_dilation_is_the_full_box_dilation_one_axis_at_a_time():
    from scipy import ndimage

    from engine.significance import box_dilation

    rng = np.random.default_rng(0)
    for box in [(29, 1, 7), (30, 1, 6), (4, 3, 5), (1, 1, 1), (2, 2, 2), (15, 4, 8)]:
        mask = rng.random((60, 5, 40)) > 0.97
        np.testing.assert_array_equal(box_dilation(mask, box),
                                      ndimage.binary_dilation(mask, np.ones(box, bool)))


def test_an_instance_of_a_long_region_measures_on_its_own_crop_and_a_lone_one_on_the_context():
    """A spark on a long wave or a brightness step: its ΔF/F0 crop is its own box with the
    context's frames and margin, not the whole region's context (cost and background are its
    own); an instance that is the whole region keeps the whole context."""
    config = dataclasses.replace(FRAMES, context_before_ms=25.0, context_after_ms=30.0,
                                 context_margin_um=2.5)
    instances = RegionInstances(StreamKind.LINESCAN, PX_UM, DT_MS, config, seed_threshold=0.5)
    context_shape, context_origin = (3000, 1, 500), (1000, 0, 40)
    crop = instances._own_crop(context_shape, context_origin, (2500, 0, 300), (20, 1, 15))
    margin = int(np.ceil(2.5 / PX_UM))
    assert crop == (slice(1500 - 25, 1520 + 30), slice(0, 1),
                    slice(260 - margin, 275 + margin))
    # the region's own box: the context holds exactly its frames and margin around it
    whole = instances._own_crop(context_shape, context_origin, (1025, 0, 40 + margin),
                                (3000 - 55, 1, 500 - 2 * margin))
    assert whole == (slice(0, 3000), slice(0, 1), slice(0, 500))
