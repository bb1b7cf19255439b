"""Sparks on a wave (engine.onwave): a spark firing in a wave's tail is found, the wave alone
(its front, its texture, its decay) gives none."""

from __future__ import annotations

import numpy as np
import pytest

from engine.onwave import sparks_on_wave

PIXEL_UM, DT_MS = 0.25, 10.0
SHAPE = (120, 40, 200)
SPARK_AT = (80, 20, 100)  # frame, row, column


def _wave() -> np.ndarray:
    """A front crossing the frame at 100 µm/s (4 px per frame), rising in 30 ms to 2.0, then
    decaying with 300 ms, plus static banded texture (0.2 ΔF/F0 at 1.8 µm)."""
    t = np.arange(SHAPE[0])[:, None, None] * DT_MS
    x = np.arange(SHAPE[2])[None, None, :] * PIXEL_UM
    since = t - 10.0 * x  # ms since the front passed (it reaches x µm at 10·x ms)
    level = np.where(since < 0, 0.0,
                     np.where(since < 30.0, 2.0 * since / 30.0, 2.0 * np.exp(-(since - 30) / 300)))
    texture = 0.2 * np.sin(2 * np.pi * x / 1.8)
    return np.broadcast_to(level + texture * (level > 0), SHAPE).astype(np.float32)


def _spark(amplitude: float = 1.5) -> np.ndarray:
    t0, y0, x0 = SPARK_AT
    t = np.arange(SHAPE[0])[:, None, None]
    y = np.arange(SHAPE[1])[None, :, None]
    x = np.arange(SHAPE[2])[None, None, :]
    sigma_px = 2.0 / 2.355 / PIXEL_UM  # FWHM 2 µm
    space = np.exp(-((y - y0) ** 2 + (x - x0) ** 2) / (2 * sigma_px ** 2))
    time = np.where(t < t0, 0.0, np.exp(-(t - t0) * DT_MS / 25.0))
    return (amplitude * space * time).astype(np.float32)


def _noisy(clean: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 0.3, clean.shape) * np.sqrt(1.0 + np.maximum(clean, 0))
    return (clean + noise).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spark_in_a_wave_tail_is_found(seed):
    wave = _wave()
    dff0 = _noisy(wave + _spark(), seed)
    mask = wave > 0.1
    sparks = sparks_on_wave(dff0, mask, PIXEL_UM, DT_MS, linescan=False, min_z=8.0)
    assert len(sparks) == 1
    found = sparks[0]
    assert found[SPARK_AT]
    t, y, x = np.nonzero(found)
    # compact: about the spark's size, not a piece of the wave
    assert (x.max() - x.min()) * PIXEL_UM <= 4.5 and (t.max() - t.min()) * DT_MS <= 120


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_wave_alone_gives_no_spark(seed):
    wave = _wave()
    dff0 = _noisy(wave, seed)
    assert sparks_on_wave(dff0, wave > 0.1, PIXEL_UM, DT_MS, linescan=False, min_z=8.0) == []


def test_empty_mask_gives_nothing():
    dff0 = np.zeros((10, 5, 5), np.float32)
    assert sparks_on_wave(dff0, np.zeros(dff0.shape, bool), PIXEL_UM, DT_MS, False, 8.0) == []
