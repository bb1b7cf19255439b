"""Block-wise maps of a stream (engine/noise_map.py): the resting ΔF/F0 of each pixel."""

from __future__ import annotations

import numpy as np

from engine.noise_map import NoiseMaps, RestingLevels

DT_MS = 1.5


def _stream(n_frames=1200, width=64, seed=0):
    """ΔF/F0 of a line-scan: white noise (SD 0.3) and one column offset by +0.5 at rest."""
    rng = np.random.default_rng(seed)
    dff0 = rng.normal(0.0, 0.3, (n_frames, width)).astype(np.float32)
    dff0[:, 20] += 0.5
    return dff0


def test_resting_level_finds_an_offset_column_and_leaves_the_others_at_zero():
    dff0 = _stream()
    levels = RestingLevels((64,), DT_MS)
    levels.add(0, dff0)
    block = levels.block_frames
    assert levels.map_before(block - 1) is None  # no complete block yet
    level = levels.map_before(block)
    assert level.shape == (64,)
    # the median of 54 kept frames has a standard error of 1.2533 × 0.3 / √54 ≈ 0.05: the
    # offset comes out shrunk by 3 of them (0.35 ± 0.05), ordinary columns at 0 (a few may
    # keep a sliver: 0.3 % of them stand 3 standard errors out by chance)
    assert 0.2 < level[20] < 0.5
    others = np.delete(level, 20)
    assert np.mean(others == 0.0) > 0.9 and np.abs(others).max() < 0.1


def test_resting_levels_do_not_depend_on_chunking():
    dff0 = _stream(seed=1)
    whole, chunked = RestingLevels((64,), DT_MS), RestingLevels((64,), DT_MS)
    whole.add(0, dff0)
    first = 0
    for size in (7, 64, 1, 300, 129, 2000):
        chunked.add(first, dff0[first:first + size])
        first += size
    for frame in (300, 700, 1100):
        np.testing.assert_array_equal(whole.map_before(frame), chunked.map_before(frame))


def test_a_stream_joined_mid_block_waits_for_the_next_block():
    dff0 = _stream(seed=2)
    levels = RestingLevels((64,), DT_MS)
    start = levels.block_frames // 2
    levels.add(start, dff0[start:])
    assert levels.map_before(levels.block_frames) is None
    assert levels.map_before(2 * levels.block_frames) is not None


def test_noise_maps_still_give_the_noise_in_dff0_units():
    rng = np.random.default_rng(3)
    counts = (100.0 + rng.normal(0.0, 5.0, (600, 32))).astype(np.float32)
    maps = NoiseMaps((32,), DT_MS)
    maps.add(0, counts)
    noise = maps.dff0_map_before(600, blank=0.0)
    np.testing.assert_allclose(np.median(noise), 0.05, rtol=0.1)
