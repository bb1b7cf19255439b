"""Acquisition artefacts of the training augmentation (raw counts, before ΔF/F0): each one is
seeded, has the intended effect and leaves the labels alone; disabled ones change nothing."""

import numpy as np
import pytest

from acquisition import simulate
from offline import augmentation, datasets

N_T, N_X, BLANK, LEVEL = 400, 256, 100.0, 200.0
#: everything else off, so that only the artefact under test acts
PLAIN = {"gain": (1.0, 1.0), "offset_counts": (0.0, 0.0), "extra_noise_sd": (0.0, 0.0)}


def _recording() -> datasets.LabeledRecording:
    """Flat signal ``LEVEL`` above ``BLANK`` and one labelled event (1.5 × ``LEVEL``) in
    lines 50-79, columns 100-109."""
    data = np.full((N_T, N_X), BLANK + LEVEL, np.uint16)
    data[50:80, 100:110] = BLANK + 1.5 * LEVEL
    classes = np.zeros((N_T, N_X), np.uint8)
    classes[50:80, 100:110] = 1
    return datasets.LabeledRecording(data=data, class_mask=classes, instance_mask=classes.astype(np.int32),
                                     pixel_um=0.14, dt_ms=1.5, axes="TX", blank=BLANK)


def _factor(**artefact) -> np.ndarray:
    """What the artefact multiplied the signal above the blank by (offsets included)."""
    rec = _recording()
    labels, data = rec.class_mask.copy(), rec.data.copy()
    counts, blank = augmentation.Augmentation(**PLAIN, **artefact).apply(rec, np.random.default_rng(3))
    assert blank == BLANK and np.array_equal(rec.class_mask, labels)  # labels untouched
    assert np.array_equal(rec.data, data)
    return (counts - blank) / (data - BLANK)


def test_disabled_artefacts_keep_the_old_augmentation_exactly():
    rec = _recording()
    old, _ = augmentation.Augmentation().apply(rec, np.random.default_rng(0))
    ranges_only, _ = augmentation.Augmentation(flicker_sd=(0.5, 0.5), bleach_fraction=(0.9, 0.9)).apply(
        rec, np.random.default_rng(0))
    assert np.array_equal(old, ranges_only)


def test_flicker_scales_whole_lines():
    factor = _factor(p_flicker=1.0, flicker_sd=(0.03, 0.03))
    assert 0.02 < factor[:, 0].std() < 0.04 and np.isclose(factor.mean(), 1.0, atol=0.01)
    assert np.allclose(factor, factor[:, :1], atol=1e-4)  # same factor along the line


def test_column_gain_and_offset_are_fixed_patterns():
    factor = _factor(p_column=1.0, column_gain_sd=(0.1, 0.1), column_offset_sd_counts=(3.0, 3.0))
    assert 0.07 < factor[0].std() < 0.13
    assert np.allclose(factor[:50], factor[:1], atol=1e-3)  # constant over time
    offset = (factor[60] - factor[0]) * LEVEL / (1 / 1.5 - 1)  # event pixels: 1.5 x the signal
    assert 1.0 < np.abs(offset[100:110]).mean() < 6.0


def test_bands_are_smooth_along_x():
    factor = _factor(p_bands=1.0, band_amplitude=(0.2, 0.2), band_scale_um=(3.0, 3.0))
    assert np.isclose(np.abs(factor[0] - 1).max(), 0.2, atol=1e-3)
    assert np.abs(np.diff(factor[0])).max() < 0.05  # bands, not pixel noise
    assert np.allclose(factor, factor[:1], atol=1e-4)


def test_dark_block_avoids_events():
    factor = _factor(p_dark=1.0, dark_fraction=(0.2, 0.2), dark_level=(0.05, 0.05))
    dark = np.isclose(factor[0], 0.05)
    assert dark.sum() == round(0.2 * N_X) and np.allclose(factor[:, ~dark], 1.0)
    assert not dark[100:110].any()
    assert dark[0] or dark[-1]  # extracellular space at an end of the line


def test_dark_block_needs_event_free_columns():
    rec = _recording()
    rec.class_mask[:, :] = 1
    counts, _ = augmentation.Augmentation(**PLAIN, p_dark=1.0).apply(rec, np.random.default_rng(0))
    assert np.array_equal(counts, rec.data)


def test_drift_is_slow_and_small():
    trace = _factor(p_drift=1.0, drift_amplitude=(0.05, 0.05))[:, 0]
    assert np.isclose(np.abs(trace - 1).max(), 0.05, atol=1e-3)
    assert np.abs(np.diff(trace)).max() < 0.005


def test_bleaching_loses_the_drawn_fraction_by_the_end():
    trace = _factor(p_bleach=1.0, bleach_fraction=(0.4, 0.4))[:, 0]
    assert np.isclose(trace[0], 1.0) and np.isclose(trace[-1], 0.6, atol=1e-3)
    assert (np.diff(trace) <= 0).all()


def test_artefacts_are_seeded():
    rec = _recording()
    aug = augmentation.Augmentation(p_flicker=0.5, p_column=0.5, p_bands=0.5, p_dark=0.5, p_drift=0.5,
                                p_bleach=0.5)
    a, _ = aug.apply(rec, np.random.default_rng(9))
    b, _ = aug.apply(rec, np.random.default_rng(9))
    assert np.array_equal(a, b)


@pytest.mark.parametrize("key", ["spark_t50_ms", "spark_amplitude_dff0"])
def test_randomize_scales_event_distributions_and_sets_cell_params(key):
    source = datasets.SimulatedSource("linescan", randomize={f"{key}_scale": [2.0, 2.0],
                                                             "nucleus_brightness": [1.3, 1.3]})
    params = source._make_params(simulate, {"phenotype": "wt", **source._draw(np.random.default_rng(0))})
    base = getattr(simulate.PHENOTYPES["wt"], key)
    assert np.isclose(getattr(params.stats, key).median, 2 * base.median)
    assert np.isclose(params.cell.nucleus_brightness, 1.3)
