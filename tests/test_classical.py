"""Classical detector: seeded synthetic line-scans and movies with known ground truth, on clean
and hostile backgrounds (fixed-pattern column gain, per-line flicker, dim bands, extracellular
columns, bleaching); classes of broad/long events; exact streaming under any chunking."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage

from acquisition.labels import BACKGROUND, PUFF, SPARK, WAVE
from acquisition.stream_kind import StreamKind
from engine.boxes import padded_box
from engine.classical import ClassicalDetector, relative_extent
from engine.classical_stream import CausalSums, ContextStage
from engine.postprocess import InstanceTracker
from engine.preprocess import preprocess_recording

DT_MS, PX_UM, BLANK = 1.5, 0.14, 100.0
SPARKS = [(300.0 + 450.0 * i, 9.0 + 9.0 * (i % 4)) for i in range(6)]  # (t_ms, x_um)


def spark_dff0(t_ms, x_um, t0, x0, amplitude=0.8):
    rise = np.clip((t_ms - t0 + 10.0) / 10.0, 0.0, 1.0)
    decay = np.where(t_ms < t0, 1.0, np.exp(-np.clip(t_ms - t0, 0.0, None) / 25.0))
    return amplitude * rise * decay * np.exp(-0.5 * ((x_um - x0) / 0.85) ** 2)


def raw_linescan(seed, n_t=3000, n_x=400, sparks=(), photons=15.0, col_gain_sd=0.0,
                 flicker_sd=0.0, dim_band=None, dark_block=None, bleach_tau_s=None, extra=None):
    """Counts ``(n_t, n_x)`` with blank 100 and 8 counts/photon; extracellular 20 px each side.

    ``dim_band``/``dark_block``: ``(first_px, n_px)`` at 40 % brightness / no dye at all;
    ``extra``: noise-free ΔF/F0 added to the sparks.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_t)[:, None] * DT_MS
    x = np.arange(n_x)[None, :] * PX_UM
    clean = np.zeros((n_t, n_x)) if extra is None else extra.astype(float)
    for t0, x0 in sparks:
        clean += spark_dff0(t, x, t0, x0)
    resting = np.full(n_x, photons)
    resting[:20] = resting[-20:] = 0.0
    if dim_band is not None:
        resting[dim_band[0]:sum(dim_band)] *= 0.4
    if dark_block is not None:
        resting[dark_block[0]:sum(dark_block)] = 0.0
    expected = resting * (1.0 + clean) + 0.3
    if bleach_tau_s is not None:
        expected = expected * np.exp(-t / (1e3 * bleach_tau_s))
    expected = expected * (1.0 + flicker_sd * rng.standard_normal((n_t, 1)))
    gain = 8.0 * (1.0 + col_gain_sd * rng.standard_normal(n_x))
    return gain * rng.poisson(np.clip(expected, 0, None)) + BLANK + rng.normal(0, 6.0, (n_t, n_x))


def hostile(seed, sparks=(), dark_block=(150, 15), **kwargs):
    """ΔF/F0 of a line-scan with 15 % column gain, 3 % flicker, a dim band, a dark block (unless
    None) and bleaching (τ 8 s)."""
    raw = raw_linescan(seed, sparks=sparks, col_gain_sd=0.15, flicker_sd=0.03,
                       dim_band=(250, 40), dark_block=dark_block, bleach_tau_s=8.0, **kwargs)
    return preprocess_recording(raw, DT_MS, blank=BLANK)


def detect(dff0, blocks=None, pixel_um=PX_UM, dt_ms=DT_MS, **kwargs):
    """Events of the classical detector through the tracker, fed in ``blocks`` of frames."""
    detector = ClassicalDetector(pixel_um, dt_ms, StreamKind.from_item_shape(dff0.shape[1:]),
                                 **kwargs)
    tracker = InstanceTracker(dff0.shape[1:], pixel_um, dt_ms, detector.thresholds)
    stream, found = detector.stream(), []
    cuts = np.cumsum([0, *(blocks or [len(dff0)])])
    outputs = [stream.push(dff0[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    for probs in [*outputs, stream.flush()]:
        if len(probs):
            first = tracker.next_frame
            found += tracker.push(first, probs, dff0[first:first + len(probs)])
    return found + tracker.flush()


def centres(found):
    return sorted((i.t_start * DT_MS, (i.origin[2] + i.mask.shape[2] / 2) * PX_UM) for i in found)


def assert_finds(found, sparks):
    """Every spark found (start within 15 ms, centre within 1 µm) and nothing away from them
    (a spark's late tail may be split off by the tracker's peak splitting: ≤ 80 ms after)."""
    points = centres(found)
    for t_true, x_true in sparks:
        assert any(abs(t - t_true) < 15 and abs(x - x_true) < 1.0 for t, x in points)
    for t, x in points:
        assert any(-15 < t - t_true < 80 and abs(x - x_true) < 1.5 for t_true, x_true in sparks)


def per_line_sd_false_alarms(dff0, sparks, k=5.0):
    """Pixels beyond ``k`` SDs of the old per-line robust SD, away from any spark."""
    smoothed = ndimage.gaussian_filter(dff0, (4.0 / DT_MS, 0.3 / PX_UM))
    mad = np.median(np.abs(smoothed - np.median(smoothed, axis=1, keepdims=True)), axis=1)
    z = smoothed / (1.4826 * mad[:, None])
    near = np.zeros(dff0.shape, bool)
    for t0, x0 in sparks:
        t, x = int(t0 / DT_MS), int(x0 / PX_UM)
        near[t - 20:t + 80, x - 30:x + 30] = True
    return int(np.count_nonzero((z >= k) & ~near))


def test_finds_sparks_on_a_clean_background():
    dff0 = preprocess_recording(raw_linescan(0, sparks=SPARKS), DT_MS, blank=BLANK)
    found = detect(dff0)
    assert {i.kind for i in found} == {"spark"}
    assert_finds(found, SPARKS)


@pytest.mark.parametrize("seed", [1, 4])
def test_finds_sparks_where_a_per_line_sd_fails(seed):
    """Fixed-pattern gain, flicker and a dim band: the old per-line robust SD is swamped."""
    raw = raw_linescan(seed, sparks=SPARKS, col_gain_sd=0.15, flicker_sd=0.03, dim_band=(250, 40))
    dff0 = preprocess_recording(raw, DT_MS, blank=BLANK)
    assert per_line_sd_false_alarms(dff0, SPARKS) > 100
    found = detect(dff0)
    assert {i.kind for i in found} == {"spark"}
    assert_finds(found, SPARKS)


def test_finds_sparks_beside_extracellular_columns_with_bleaching():
    found = detect(hostile(1, sparks=SPARKS))
    assert {i.kind for i in found} == {"spark"}
    assert_finds(found, SPARKS)


@pytest.mark.parametrize("seed", [2, 3])
def test_nothing_on_noise_with_flicker_bands_and_extracellular_columns(seed):
    assert detect(hostile(seed)) == []


def test_extracellular_columns_are_never_foreground():
    dff0 = hostile(4, sparks=SPARKS)
    probs = ClassicalDetector(PX_UM, DT_MS).predict_block(dff0)
    outside = np.r_[0:20, 152:163, 380:400]  # the dark block is 150-164 (F0 smoothed at its edges)
    assert np.all(probs[:, BACKGROUND][:, outside] == 1.0)


def wave_dff0(n_t, n_x, speed_um_s=100.0, start_ms=300.0, amplitude=1.2):
    """A front from x = 0 crossing the line, then an exponential decay (t50 ≈ 140 ms)."""
    t = np.arange(n_t)[:, None] * DT_MS
    x = np.arange(n_x)[None, :] * PX_UM
    since = t - start_ms - 1e3 * x / speed_um_s
    return amplitude * np.clip(since / 20.0, 0.0, 1.0) * np.exp(-np.clip(since - 20.0, 0.0, None)
                                                                 / 200.0)


def puff_dff0(n_t, n_x, t0=600.0, x0=30.0, plateau_ms=180.0, amplitude=0.45):
    t = np.arange(n_t)[:, None] * DT_MS
    x = np.arange(n_x)[None, :] * PX_UM
    since = t - t0
    time = np.clip(since / 20.0, 0.0, 1.0) * np.exp(-np.clip(since - plateau_ms, 0.0, None) / 60.0)
    return amplitude * time * np.exp(-0.5 * ((x - x0) / 1.8) ** 2)


def test_a_wave_is_one_wave_not_a_train_of_sparks():
    extra = wave_dff0(1600, 400)
    dff0 = preprocess_recording(raw_linescan(5, n_t=1600, extra=extra), DT_MS, blank=BLANK)
    kinds = [i.kind for i in detect(dff0)]
    assert kinds.count("wave") == 1 and kinds.count("spark") <= 1


def test_a_long_broad_release_is_a_puff():
    extra = puff_dff0(1600, 400)
    dff0 = preprocess_recording(raw_linescan(6, n_t=1600, extra=extra), DT_MS, blank=BLANK)
    assert [i.kind for i in detect(dff0)] == ["puff"]


def test_events_do_not_depend_on_blocks():
    dff0 = hostile(7, sparks=SPARKS, extra=puff_dff0(3000, 400, t0=2500.0, x0=45.0))
    batch = detect(dff0)
    stream = detect(dff0, blocks=[61] * 49 + [11])
    assert [i.kind for i in batch].count("puff") == 1 and len(batch) >= len(SPARKS) + 1
    assert [(i.event_id, i.kind, i.origin, i.mask.tobytes()) for i in batch] == [
        (i.event_id, i.kind, i.origin, i.mask.tobytes()) for i in stream
    ]


@pytest.mark.parametrize(("linescan", "wave_min_ms"), [(True, 0.0), (True, 30.0), (False, 0.0),
                                                       (False, 30.0)])
def test_pseudo_probabilities_do_not_depend_on_chunks(linescan, wave_min_ms):
    rng = np.random.default_rng(8)
    if linescan:
        dff0 = hostile(8, sparks=SPARKS[:3], extra=wave_dff0(3000, 400, start_ms=2000.0))[:2400]
        detector = ClassicalDetector(PX_UM, DT_MS, wave_min_ms=wave_min_ms)
    else:
        t = np.arange(150)[:, None, None] * 6.8
        x = np.arange(96)[None, None, :] * 0.2
        wave = 1.2 * np.clip((t - 300 - 1e3 * x / 100.0) / 20.0, 0, 1)
        dff0 = (rng.poisson(12 * (1 + wave) * np.ones((1, 16, 1))) / 12 - 1).astype(np.float32)
        detector = ClassicalDetector(0.2, 6.8, StreamKind.MOVIE, wave_min_ms=wave_min_ms)
    stream = detector.stream()
    whole = np.concatenate([stream.push(dff0), stream.flush()])
    assert whole.shape == (len(dff0), 4, *dff0.shape[1:]) and whole.dtype == np.float32
    np.testing.assert_allclose(whole.sum(axis=1), 1.0, rtol=1e-6)
    assert whole[:, WAVE].max() > 0.4 and whole[:, SPARK].max() > 0.4
    cuts = np.unique(np.r_[0, np.sort(rng.integers(1, len(dff0), 25)), len(dff0)])
    stream = detector.stream()
    parts = [stream.push(dff0[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    np.testing.assert_array_equal(np.concatenate([*parts, stream.flush()]), whole)


def test_predict_block_with_bounded_context_equals_the_stream():
    dff0 = hostile(9, sparks=SPARKS[:2])[:1500]
    detector = ClassicalDetector(PX_UM, DT_MS)
    whole = detector.predict_block(dff0)
    before, after, parts = detector.context_before, detector.context_after, []
    for first in range(0, 1500, 250):
        lo, hi = max(0, first - before - 5), min(1500, first + 250 + after + 5)  # extra trimmed
        parts.append(detector.predict_block(dff0[lo:hi], first - lo, hi - first - 250))
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert whole[:, PUFF].max() == 0.0


def test_causal_sums_are_exact_window_sums():
    rng = np.random.default_rng(10)
    values = rng.integers(-1000, 1000, (200, 3))
    sums, cut = CausalSums(17), [0, 1, 5, 60, 61, 200]
    got = np.concatenate([sums.push(values[a:b]) for a, b in zip(cut[:-1], cut[1:], strict=True)])
    expected = np.array([values[max(0, t - 16):t + 1].sum(axis=0) for t in range(200)])
    np.testing.assert_array_equal(got, expected)


def _moving_sum(arrays, n_before, n_after):
    """A stage function with 2 frames of context before and 3 after."""
    (x,) = arrays
    padded = np.pad(x, (2, 3), mode="edge")
    out = np.array([padded[i:i + 6].sum() for i in range(len(x))])
    return (out[n_before:len(x) - n_after],)


def test_context_stage_gives_each_frame_once_with_its_context():
    x = np.arange(50.0) ** 2
    stage = ContextStage(_moving_sum, before=2, after=3)
    outs = [stage.push((x[a:b],)) for a, b in [(0, 1), (1, 4), (4, 30), (30, 50)]]
    got = np.concatenate([o[0] for o in [*outs, stage.flush()] if o is not None])
    np.testing.assert_array_equal(got, _moving_sum((x,), 0, 0)[0])


def test_context_stage_waits_for_min_emit_frames_and_gives_the_same_outputs():
    x = np.arange(50.0) ** 2
    stage = ContextStage(_moving_sum, before=2, after=3, min_emit=10)
    outs = [stage.push((x[a:b],)) for a, b in [(0, 1), (1, 4), (4, 12), (12, 13), (13, 30),
                                                (30, 50)]]
    assert outs[:3] == [None, None, None]  # 12 frames in, 9 computable: wait for 10
    got = np.concatenate([o[0] for o in [*outs, stage.flush()] if o is not None])
    np.testing.assert_array_equal(got, _moving_sum((x,), 0, 0)[0])


@pytest.mark.parametrize("linescan", [True, False])
def test_emission_batch_changes_nothing_but_the_look_ahead(linescan):
    """Frames computed one chunk at a time (emit_ms 0) or in 100-ms batches: bitwise equal
    pseudo-probabilities, with waves and sparks present; only the look-ahead grows."""
    rng = np.random.default_rng(12)
    if linescan:
        dff0 = hostile(12, sparks=SPARKS[:3], extra=wave_dff0(3000, 400, start_ms=2000.0))[:2400]
        calibration, kind, chunk = (PX_UM, DT_MS), StreamKind.LINESCAN, 64
    else:
        t = np.arange(160)[:, None, None] * 6.8
        x = np.arange(96)[None, None, :] * 0.2
        wave = 1.2 * np.clip((t - 300 - 1e3 * x / 100.0) / 20.0, 0, 1)
        dff0 = (rng.poisson(12 * (1 + wave) * np.ones((1, 16, 1))) / 12 - 1).astype(np.float32)
        calibration, kind, chunk = (0.2, 6.8), StreamKind.MOVIE, 4
    outputs = {}
    for emit_ms in (0.0, 100.0):
        detector = ClassicalDetector(*calibration, kind, emit_ms=emit_ms)
        stream = detector.stream()
        parts = [stream.push(dff0[i:i + chunk]) for i in range(0, len(dff0), chunk)]
        outputs[emit_ms] = (np.concatenate([*parts, stream.flush()]), detector)
    np.testing.assert_array_equal(outputs[0.0][0], outputs[100.0][0])
    assert outputs[0.0][0][:, WAVE].max() > 0.4 and outputs[0.0][0][:, SPARK].max() > 0.4
    slow, fast = outputs[0.0][1], outputs[100.0][1]
    assert slow.lookahead_frames == slow.context_after
    assert fast.lookahead_frames == fast.context_after + fast.emit_frames - 1


def test_padded_box():
    mask = np.zeros((10, 8, 9), bool)
    assert padded_box(mask, (1, 1, 1)) is None
    mask[4, 2, 7] = mask[5, 3, 8] = True
    assert padded_box(mask, (2, 1, 3)) == (slice(2, 8), slice(1, 5), slice(4, 9))


def test_flicker_removal_leaves_a_dark_frame_finite():
    """A frame whose level is 0 (shutter closed) gets no flicker correction instead of inf/NaN."""
    from engine.classical_noise import remove_flicker

    ratio = np.ones((9, 16), np.float32)
    ratio[4] = 0.0  # a dark frame
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = remove_flicker(ratio, np.ones_like(ratio), 0.1, 0.5, 2)
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[4], 0.0)


def test_puff_rule_on_foreground_pixels_equals_the_whole_array() -> None:
    """The puff rule reads time series of pixels that are foreground at some time only; the
    same mask as computing the local maximum and the duration count over every pixel."""
    from scipy import ndimage

    from engine.classical_classes import Stretches, puff_mask
    from engine.classical_noise import box_sum

    def whole_array(stretches, signal, window, min_frames, min_px):
        foreground = stretches.labels > 0
        peak = ndimage.maximum_filter(signal, size=(2 * window + 1, 1, 1), mode="nearest")
        above_half = (signal >= 0.5 * peak) & foreground
        long = box_sum(above_half.astype(np.int64), window, axes=(0,)) >= min_frames
        return stretches.wider_than(min_px) & stretches.majority(long & foreground)

    rng = np.random.default_rng(1)
    for _ in range(30):
        shape = (int(rng.integers(5, 50)), int(rng.integers(1, 12)), int(rng.integers(5, 40)))
        z = ndimage.gaussian_filter(rng.normal(size=shape), 1.5) * 10
        foreground = z > rng.uniform(0.5, 3)
        z = np.where(foreground, z, 0).astype(np.float32)
        stretches = Stretches(foreground, int(rng.integers(0, 3)))
        args = (int(rng.integers(1, 8)), int(rng.integers(1, 8)), float(rng.uniform(1, 10)))
        np.testing.assert_array_equal(puff_mask(stretches, z, *args),
                                      whole_array(stretches, z, *args))


@pytest.mark.parametrize("shape, half", [((90, 70), (6, 4)), ((40, 12, 30), (3, 2, 2))])
@pytest.mark.parametrize("relative_grow", [0.2, 0.35, 0.0])
def test_relative_extent_is_the_whole_array_maximum_filter(shape, half, relative_grow):
    """The extent rule evaluated around the strong pixels only gives the mask of a maximum
    filter over the whole array (bright blobs near the edges, each other and weak ones)."""
    rng = np.random.default_rng(len(shape) + int(10 * relative_grow))
    z = rng.normal(0.0, 2.0, shape).astype(np.float32)
    for _ in range(6):
        centre = tuple(int(rng.integers(0, n)) for n in shape)
        blob = tuple(slice(max(0, c - 3), c + 3) for c in centre)
        z[blob] += np.float32(rng.uniform(5.0, 40.0))
    k_grow = 3.5
    peak = ndimage.maximum_filter(z, size=[2 * h + 1 for h in half], mode="nearest")
    expected = (z >= k_grow) & (z >= relative_grow * peak)
    got = relative_extent(z, k_grow, relative_grow, half)
    assert (relative_grow * z > k_grow).any() == (relative_grow > 0)
    np.testing.assert_array_equal(got, expected)
    assert expected.sum() < (z >= k_grow).sum() or relative_grow == 0


def test_stretch_rules_are_those_of_each_stretch() -> None:
    """any / majority / wider_than give every pixel of a stretch its stretch's answer, counted
    per stretch label, and False off the stretches."""
    from engine.classical_classes import Stretches

    rng = np.random.default_rng(5)
    foreground = rng.random((12, 6, 40)) < 0.12
    pixels = rng.random(foreground.shape) < 0.5
    stretches = Stretches(foreground, 1)
    labels = stretches.labels
    assert stretches.n > 20
    expected_any, expected_majority = np.zeros_like(foreground), np.zeros_like(foreground)
    for label in range(1, stretches.n + 1):
        own = labels == label
        expected_any[own] = pixels[own].any()
        expected_majority[own] = 2 * pixels[own].sum() >= own.sum()
    np.testing.assert_array_equal(stretches.any(pixels), expected_any)
    np.testing.assert_array_equal(stretches.majority(pixels), expected_majority)
    wide = stretches.wider_than(4)
    np.testing.assert_array_equal(wide, (stretches.extent_px >= 4)[labels] & (labels > 0))
    assert 0 < wide.sum() < foreground.sum()


@pytest.mark.parametrize("quantile", [0.0, 0.3, 0.45, 1.0])
def test_frame_levels_are_the_quantile_rank_of_the_cell_pixels(quantile) -> None:
    """Each frame's level is its cell pixels' value of rank floor(quantile × (n − 1)); 1 for a
    frame without cell pixels."""
    from engine.classical_noise import frame_levels

    rng = np.random.default_rng(3)
    values = rng.normal(1.0, 0.1, (7, 5, 30)).astype(np.float32)
    inside = rng.random(values.shape) < 0.7
    inside[2] = False
    got = frame_levels(values, inside, quantile)
    for frame in range(values.shape[0]):
        cell = np.sort(values[frame][inside[frame]])
        want = cell[int(np.floor(quantile * (cell.size - 1)))] if cell.size else 1.0
        assert got[frame] == np.float32(want)
    assert got.dtype == np.float32 and got[2] == 1.0


def test_a_wave_must_stay_wide_for_wave_min_ms() -> None:
    """Two sparks bridged into one wide stretch for a few lines are not a wave once
    ``wave_min_ms`` asks a wide stretch to last; a band that stays wide (a wave) still is,
    over its whole extent, and with the rule off both are waves."""
    from engine.classical import ClassicalParams
    from engine.classical_classes import ClassRules

    foreground = np.zeros((400, 300), bool)  # lines × pixels, 1 ms/line, 0.1 µm/px
    foreground[50:58, 20:200] = True  # 18 µm wide for 8 ms: two sparks joined
    foreground[40:80, 20:40] = foreground[40:80, 180:200] = True  # the sparks themselves
    foreground[200:380, 60:260] = True  # 20 µm wide for 180 ms: a wave
    z = np.where(foreground, 10.0, 0.0).astype(np.float32)

    def waves(wave_min_ms: float) -> np.ndarray:
        rules = ClassRules(ClassicalParams(wave_min_ms=wave_min_ms), pixel_um=0.1, dt_ms=1.0)
        return rules.classify(z, foreground)[0]

    off, on = waves(0.0), waves(20.0)
    assert off[52, 100] and off[60, 30]  # the bridge and a spark near it named wave
    assert not on[30:100].any()  # neither, when a wide stretch must last 20 ms
    assert on[200:380, 60:260].all() and off[200:380, 60:260].all()
    assert ClassRules(ClassicalParams(wave_min_ms=20.0), 0.1, 1.0).context >= (
        ClassRules(ClassicalParams(), 0.1, 1.0).context)
