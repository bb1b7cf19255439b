"""Sparks riding on a wave (engine.onwave): found when they stand out, none on a bare wave."""

from __future__ import annotations

import numpy as np
import pytest

from engine.onwave import OnWaveParams, sparks_on_wave
from engine.postprocess import InstanceTracker

PX_UM, DT_MS = 0.2, 5.0


def wave_movie(rng, spark_at=None, n_t=120, n_y=40, n_x=160, noise=0.15):
    """A wave sweeping along X at 0.1 µm/ms (ΔF/F0 1.0, 15 ms rise, 200 ms decay), optionally
    a spark (ΔF/F0 1.5, FWHM 2 µm, 30 ms) on it at ``spark_at`` = (t, y, x) samples."""
    t = np.arange(n_t)[:, None, None] * DT_MS
    x = np.arange(n_x)[None, None, :] * PX_UM
    y = np.arange(n_y)[None, :, None] * PX_UM
    since = t - 50.0 - x / 0.1
    wave = np.where(since < 0, 0.0, np.minimum(since / 15.0, 1.0) * np.exp(-np.clip(since - 15, 0, None) / 200))
    clean = np.broadcast_to(wave, (n_t, n_y, n_x)).astype(np.float64).copy()
    if spark_at is not None:
        ts, ys, xs = spark_at
        sd = 2.0 / 2.3548
        space = np.exp(-0.5 * (((x - xs * PX_UM) ** 2 + (y - ys * PX_UM) ** 2) / sd**2))
        dt = t - ts * DT_MS
        course = np.where(dt < 0, 0.0, np.minimum(dt / 10.0, 1.0) * np.exp(-np.clip(dt - 10, 0, None) / 25))
        clean += 1.5 * space * course
    return (clean + rng.normal(0, noise, clean.shape)).astype(np.float32), clean


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spark_on_a_wave_is_found_and_a_bare_wave_gives_none(seed):
    rng = np.random.default_rng(seed)
    params = OnWaveParams(min_z=6.0)
    spark = (70, 20, 40)  # 350 ms: well inside the wave at x = 8 µm (it arrived at 130 ms)
    data, clean = wave_movie(rng, spark)
    mask = clean > 0.2
    labels = sparks_on_wave(data, mask, PX_UM, DT_MS, False, params)
    assert labels.max() == 1
    t, y, x = np.argwhere(labels == 1).mean(axis=0)
    assert abs(t - 72) < 6 and abs(y - 20) < 3 and abs(x - 40) < 3
    bare, clean = wave_movie(rng)
    assert sparks_on_wave(bare, clean > 0.2, PX_UM, DT_MS, False, params).max() == 0


def test_off_by_default():
    rng = np.random.default_rng(3)
    data, clean = wave_movie(rng, (70, 20, 40))
    assert sparks_on_wave(data, clean > 0.2, PX_UM, DT_MS, False, OnWaveParams()).max() == 0


def test_tracker_cuts_the_spark_out_of_the_wave():
    """Through the tracker: a region the detector calls wave yields a wave and a spark when
    ``wave_spark_z`` is set, the wave alone when it is not."""
    rng = np.random.default_rng(4)
    data, clean = wave_movie(rng, (70, 20, 40))
    probs = np.zeros((data.shape[0], 4, *data.shape[1:]), np.float32)
    event = clean > 0.2
    probs[:, 0] = np.where(event, 0.0, 1.0)
    probs[:, 2] = np.where(event, 1.0, 0.0)  # channel 2: wave
    kinds = {}
    for z in (0.0, 6.0):
        tracker = InstanceTracker(data.shape[1:], PX_UM, DT_MS,
                                  thresholds={"foreground": 0.5, "wave_spark_z": z})
        found = tracker.push(0, probs, data) + tracker.flush()
        kinds[z] = sorted(inst.kind for inst in found)
    assert kinds[0.0] == ["wave"]
    assert kinds[6.0] == ["spark", "wave"]
