"""Ronneberger et al.'s separation weights: large between close events, 1 elsewhere."""

import numpy as np
import pytest

from offline import training_windows
from offline.separation import separation_weights

MODEL_CONFIG = {"normalization": {"input": "dff0", "clip": [-2.0, 10.0]}}


def test_weights_peak_in_the_gap_between_two_close_events():
    mask = np.zeros((40, 80), np.int32)
    mask[10:20, 10:20] = 1
    mask[10:20, 24:34] = 2  # a 4-pixel gap
    mask[10:20, 60:70] = 3  # far from both
    w = separation_weights(mask, w0=10.0, sigma_px=5.0)
    assert w.dtype == np.float32 and w.shape == mask.shape
    assert np.all(w[mask > 0] == 1.0)  # events keep weight 1
    gap = w[15, 20:24]
    # d1 + d2 = 5 in the gap (1 + 4, 2 + 3, ...): 1 + 10 exp(-25 / 50)
    assert np.allclose(gap, 1 + 10 * np.exp(-0.5), rtol=1e-5)
    assert w[15, 45] < 1.01  # between 2 and 3: 11 + 15 px apart, far
    assert w[35, 75] == 1.0 and w[2, 40] < gap.min()
    assert np.all(separation_weights(np.zeros((5, 5), np.int32), 10.0, 5.0) == 1.0)
    with pytest.raises(ValueError, match="sigma_px"):
        separation_weights(mask, 10.0, 0.0)


def test_lone_event_adds_no_weight():
    mask = np.zeros((30, 30), np.int32)
    mask[10:15, 10:15] = 7
    assert np.all(separation_weights(mask, 10.0, 5.0) == 1.0)  # d2 is infinite


def test_windows_carry_the_weights_cropped_with_the_labels():
    from offline import datasets

    rec = datasets.SimulatedSource("linescan", "train", seed=3, params={"duration_s": 2.0},
                                   randomize={"spark_rate_per_100um_s": [40.0, 40.0]}
                                   ).recording(0)
    whole = separation_weights(rec.instance_mask, 10.0, 5.0)
    assert whole.max() > 2.0  # dense sparks: some squeezed background
    sampler = training_windows.WindowSampler((rec.data.shape[0], rec.data.shape[1]),
                                             MODEL_CONFIG, None, windows_per_recording=2,
                                             separation=(10.0, 5.0))
    for _x, y, w in sampler.windows(rec, np.random.default_rng(0)):
        # a window the size of the recording is the recording: weights unchanged
        assert np.array_equal(y, rec.class_mask) and np.array_equal(w, whole)
    plain = training_windows.WindowSampler((64, 32), MODEL_CONFIG, None, windows_per_recording=2)
    assert all(len(pair) == 2 for pair in plain.windows(rec, np.random.default_rng(0)))


def test_config_reads_separation_and_names_unknown_keys():
    from offline.train import TrainConfig, separation

    cfg = TrainConfig.load("offline/configs/linescan_distilled_separation.json")
    assert separation(cfg) == (10.0, 5.0)
    assert separation(TrainConfig.load("offline/configs/linescan_distilled_dense.json")) is None
    cfg.training["loss"]["separation"] = {"w0": 5.0, "sigma": 3.0}
    with pytest.raises(ValueError, match="unknown keys"):
        separation(cfg)
    cfg.training["loss"]["separation"] = {"w0": 5.0, "sigma_px": 0.0}
    with pytest.raises(ValueError, match="sigma_px > 0"):
        separation(cfg)
